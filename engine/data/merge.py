"""Merge several event streams into one, in strict local-time order.

Tie-break (fixed and documented): events are ordered by `ts_local`; equal times keep the
order of the sources as given, then the order of rows within a source. A stable sort gives
exactly that, and it keeps every venue message (rows sharing a receive time) contiguous.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.data.stream import EventStream
from engine.events import EVENT_DTYPE
from engine.instruments import InstrumentRegistry


def merge_streams(streams: Sequence[EventStream]) -> EventStream:
    """One stream ordered by ts_local (ties: source order, then row order)."""
    if len(streams) == 1:
        return streams[0]
    registry = InstrumentRegistry()
    parts = []
    for s in streams:
        remap = np.array([registry.add(inst) for inst in s.instruments], dtype=np.uint32)
        ev = np.array(s.events, dtype=EVENT_DTYPE, copy=True)
        if len(remap) and len(ev):
            ev["instrument"] = remap[ev["instrument"]]
        parts.append(ev)
    events = np.concatenate(parts) if parts else np.zeros(0, dtype=EVENT_DTYPE)
    order = np.argsort(events["ts_local"], kind="stable")
    events = events[order]
    meta = {"source": [], "merged_from": [s.meta for s in streams]}
    for s in streams:
        src = s.meta.get("source", [])
        meta["source"].extend(src if isinstance(src, list) else [src])
    return EventStream(events, registry, meta)
