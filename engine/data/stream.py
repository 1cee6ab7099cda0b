"""EventStream: an event array together with the instruments its ids refer to."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.errors import DataError, UsageError
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


def in_time_order(
    events: np.ndarray,
    repair: str | None = None,
    *,
    path: str | None = None,
    row_offset: int = 0,
) -> tuple[np.ndarray, int | None]:
    """The events in `ts_local` order, and how many rows a repair moved (None: no repair).

    Without `repair`, disorder is a DataError (`check_order`); with repair='sort' the rows
    are sorted stably (equal times keep their order) and the moved rows counted.
    """
    if repair is None:
        check_order(events, path=path, row_offset=row_offset)
        return events, None
    if repair != "sort":
        raise UsageError(f"repair must be None or 'sort', got {repair!r}")
    ts = events["ts_local"]
    if len(ts) < 2 or not (ts[1:] < ts[:-1]).any():
        return events, 0
    order = np.argsort(ts, kind="stable")
    return events[order], int(np.count_nonzero(order != np.arange(len(order))))
