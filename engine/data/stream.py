"""EventStream: an event array together with the instruments its ids refer to."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.errors import DataError
from engine.events import EVENT_DTYPE
from engine.instruments import InstrumentRegistry


@dataclass
class EventStream:
    """Events (EVENT_DTYPE, ordered by `ts_local`) plus their instrument registry.

    `meta` carries provenance and reports: the source files, and the counts of anything a
    loader repaired or skipped on request (so nothing is dropped without being reported).
    """

    events: np.ndarray
    instruments: InstrumentRegistry
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.events.dtype != EVENT_DTYPE:
            raise DataError(f"events have dtype {self.events.dtype}, expected EVENT_DTYPE")

    def __len__(self) -> int:
        return len(self.events)


def check_order(events: np.ndarray, *, path: str | None = None, row_offset: int = 0) -> None:
    """Raise DataError at the first event whose `ts_local` goes backwards."""
    ts = events["ts_local"]
    if len(ts) > 1:
        back = np.flatnonzero(ts[1:] < ts[:-1])
        if len(back):
            i = int(back[0]) + 1
            raise DataError(
                f"timestamps go backwards: local time {int(ts[i])} after {int(ts[i - 1])} "
                f"({len(back)} such rows; pass repair='sort' to sort them and report the count)",
                path=path,
                line=i + row_offset,
                field="ts_local",
            )
