"""The event model: one structured dtype for every event, plus kind, side and flag codes.

This module is the single source of truth for the layout of an event. Prices and sizes are
integers (ticks and lots of the event's instrument, see `engine.instruments`); times are
integer nanoseconds since the Unix epoch. Integers make replays bit-for-bit reproducible.
"""

from __future__ import annotations

from typing import Final

import numpy as np

EVENT_DTYPE: Final = np.dtype(
    [
        ("ts_exch", np.int64),  # exchange timestamp, ns since epoch (0 when the venue gave none)
        ("ts_local", np.int64),  # local receive timestamp, ns; streams are ordered by this
        ("price", np.int64),  # ticks of the instrument
        ("size", np.int64),  # lots of the instrument
        ("instrument", np.uint32),  # id in the InstrumentRegistry
        ("kind", np.uint8),  # one of the KIND_* codes
        ("side", np.int8),  # SIDE_BUY (bid), SIDE_SELL (ask) or SIDE_NONE
        ("flags", np.uint16),  # FLAG_* bits
    ]
)
"""40 bytes, naturally aligned: memory-mapped files hold raw arrays of it."""

assert EVENT_DTYPE.itemsize == 40

# Kinds. Market data kinds are < 16; the engine's own scheduled kinds start at 16.
KIND_BOOK_DELTA: Final = 1
"""Set the size of one price level to `size` (absolute, not a change); 0 removes the level."""
KIND_BOOK_SNAPSHOT: Final = 2
"""One level of a snapshot; a KIND_BOOK_CLEAR precedes the first row of every snapshot."""
KIND_BOOK_CLEAR: Final = 3
"""Remove every level of the instrument's book (`side` SIDE_NONE) or of one side."""
KIND_TRADE: Final = 4
"""A trade printed by the venue; `side` is the aggressor's side (SIDE_NONE if unknown)."""
KIND_QUOTE: Final = 5
"""Best bid or best ask (one row a side; the ask row of a quote carries FLAG_LAST)."""
KIND_ENGINE_FIRST: Final = 16
"""First code reserved for the engine's own events (order arrival, acknowledgement, timer)."""

KIND_NAMES: Final = {
    KIND_BOOK_DELTA: "book_delta",
    KIND_BOOK_SNAPSHOT: "book_snapshot",
    KIND_BOOK_CLEAR: "book_clear",
    KIND_TRADE: "trade",
    KIND_QUOTE: "quote",
}
KIND_CODES: Final = {v: k for k, v in KIND_NAMES.items()}

SIDE_BUY: Final = 1
SIDE_SELL: Final = -1
SIDE_NONE: Final = 0
SIDE_NAMES: Final = {SIDE_BUY: "buy", SIDE_SELL: "sell", SIDE_NONE: "none"}

FLAG_LAST: Final = 1
"""Last row of a venue message: the book is consistent only after a row with this flag."""
FLAG_SNAPSHOT: Final = 2
"""The row belongs to a snapshot (or to the clear that starts one)."""
FLAG_EXCH_TS_MISSING: Final = 4
"""The venue gave no exchange time; `ts_exch` was copied from `ts_local`."""
FLAG_RESYNC: Final = 8
"""The row starts a resynchronisation after a sequence gap (the book was rebuilt)."""
FLAG_LOCAL_TS_MISSING: Final = 16
"""The source has no local receive time; `ts_local` was copied from `ts_exch`."""

FLAG_NAMES: Final = {
    FLAG_LAST: "last",
    FLAG_SNAPSHOT: "snapshot",
    FLAG_EXCH_TS_MISSING: "exch_ts_missing",
    FLAG_RESYNC: "resync",
    FLAG_LOCAL_TS_MISSING: "local_ts_missing",
}


def empty_events(n: int) -> np.ndarray:
    """A zeroed array of `n` events."""
    return np.zeros(n, dtype=EVENT_DTYPE)
