"""What a stream holds: counts, time span, instruments and a book sanity replay."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from engine.data.stream import EventStream
from engine.events import FLAG_LAST, FLAG_NAMES, KIND_NAMES


def iso_ns(ns: int) -> str:
    """UTC ISO-8601 text of a nanosecond timestamp (microsecond precision shown)."""
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def book_sanity(stream: EventStream, depth: int = 5) -> list[dict]:
    """Replay the book and report per instrument: crossed messages, final top of book."""
    from engine.book import (
        NO_PRICE,
        apply_events_checked,
        best_ask,
        best_bid,
        level_count,
        new_book,
    )

    n_inst = max(1, len(stream.instruments))
    book = new_book(n_inst)
    crossed = np.zeros(n_inst, dtype=np.int64)
    messages = np.zeros(n_inst, dtype=np.int64)
    apply_events_checked(book, stream.events, 0, len(stream.events), crossed, messages)
    out = []
    for iid, inst in enumerate(stream.instruments):
        bb, ba = best_bid(book, iid), best_ask(book, iid)
        out.append(
            {
                "instrument": f"{inst.venue}:{inst.symbol}",
                "book_messages": int(messages[iid]),
                "crossed_messages": int(crossed[iid]),
                "final_best_bid": None if bb == NO_PRICE else inst.format_price(bb),
                "final_best_ask": None if ba == NO_PRICE else inst.format_price(ba),
                "final_bid_levels": int(level_count(book, iid, 1)),
                "final_ask_levels": int(level_count(book, iid, -1)),
                "levels_dropped_capacity": int(book.dropped[iid]),
            }
        )
    return out


def summarize(stream: EventStream, *, with_book: bool = True) -> dict:
    """A JSON-ready description of a stream (what `cockpit data inspect` prints)."""
    ev = stream.events
    kinds = np.bincount(np.asarray(ev["kind"]), minlength=256)
    flags = np.asarray(ev["flags"])
    summary: dict = {
        "events": int(len(ev)),
        "bytes": int(ev.nbytes),
        "kinds": {KIND_NAMES.get(k, f"kind{k}"): int(c) for k, c in enumerate(kinds) if c},
        "flags": {name: int(((flags & bit) != 0).sum()) for bit, name in FLAG_NAMES.items()},
        "messages": int(((flags & FLAG_LAST) != 0).sum()),
        "instruments": [],
    }
    if len(ev):
        ts = np.asarray(ev["ts_local"])
        lat = np.asarray(ev["ts_local"]) - np.asarray(ev["ts_exch"])
        summary["time_span"] = {
            "first": iso_ns(int(ts[0])),
            "last": iso_ns(int(ts[-1])),
            "seconds": round((int(ts[-1]) - int(ts[0])) / 1e9, 6),
            "monotone": bool((ts[1:] >= ts[:-1]).all()),
        }
        summary["feed_latency_us"] = {
            "median": round(float(np.median(lat)) / 1e3, 3),
            "p99": round(float(np.percentile(lat, 99)) / 1e3, 3),
        }
    iids = np.asarray(ev["instrument"])
    counts = np.bincount(iids, minlength=len(stream.instruments)) if len(ev) else []
    for iid, inst in enumerate(stream.instruments):
        summary["instruments"].append(
            {
                "id": iid,
                "venue": inst.venue,
                "symbol": inst.symbol,
                "tick_size": str(inst.tick_size),
                "lot_size": str(inst.lot_size),
                "events": int(counts[iid]) if len(counts) else 0,
            }
        )
    if with_book and len(ev):
        summary["book"] = book_sanity(stream)
    report = {k: v for k, v in stream.meta.items() if k not in ("merged_from",)}
    if report:
        summary["meta"] = report
    return summary
