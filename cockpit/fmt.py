"""Text for the panes: times, prices, sizes and money, in fixed widths.

Prices and sizes are the engine's integer ticks and lots; the instrument turns them into
exact decimals (engine/instruments.py). Nothing here computes a trading figure: it only
formats what the engine reported.
"""

from __future__ import annotations

import datetime as _dt
from functools import lru_cache
from typing import Final

from engine.instruments import Instrument

_UTC: Final = _dt.UTC


def clock_time(ts_ns: int, millis: bool = True) -> str:
    """HH:MM:SS(.mmm) UTC of a timestamp in ns."""
    if ts_ns <= 0:
        return "--:--:--.---" if millis else "--:--:--"
    secs, ns = divmod(int(ts_ns), 1_000_000_000)
    t = _dt.datetime.fromtimestamp(secs, _UTC)
    text = t.strftime("%H:%M:%S")
    return f"{text}.{ns // 1_000_000:03d}" if millis else text


def date_time(ts_ns: int) -> str:
    """YYYY-MM-DD HH:MM:SS.mmm UTC of a timestamp in ns."""
    if ts_ns <= 0:
        return "----------" + " " + clock_time(0)
    secs = int(ts_ns) // 1_000_000_000
    day = _dt.datetime.fromtimestamp(secs, _UTC).strftime("%Y-%m-%d")
    return f"{day} {clock_time(ts_ns)}"


@lru_cache(maxsize=1 << 16)
def price(inst: Instrument | None, ticks: int) -> str:
    """Exact price text of ticks (cached: a ladder redraws the same prices every frame)."""
    return inst.format_price(ticks) if inst is not None else str(int(ticks))


def half_ticks_price(inst: Instrument | None, ticks_x2: int) -> str:
    """Exact price of ticks_x2 / 2 ticks (a mid can fall on a half tick)."""
    if ticks_x2 % 2 == 0:
        return price(inst, ticks_x2 // 2)
    if inst is None:
        return f"{ticks_x2 / 2:.1f}"
    return format(inst.tick_size * ticks_x2 / 2, "f")


@lru_cache(maxsize=1 << 16)
def size(inst: Instrument | None, lots: int) -> str:
    """Exact size text of lots, trailing zeros kept (columns line up); cached."""
    return inst.format_size(lots) if inst is not None else str(int(lots))


def short_size(inst: Instrument | None, lots: int, width: int) -> str:
    """Size text that fits width: trailing zeros dropped, then k/M suffixes."""
    text = size(inst, lots)
    if len(text) <= width:
        return text
    if "." in text:
        text = text.rstrip("0").rstrip(".")
        if len(text) <= width:
            return text
    value = float(text)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= div:
            for digits in (2, 1, 0):
                out = f"{value / div:.{digits}f}{suffix}"
                if len(out) <= width:
                    return out
    whole = f"{value:.0f}"
    return whole if len(whole) <= width else "#" * max(width, 1)


def money(value: float, width: int = 0) -> str:
    """Quote-currency amount with a sign and thousands separators."""
    text = f"{value:+,.2f}" if abs(value) < 1e9 else f"{value:+.3e}"
    return text.rjust(width) if width else text


def count(n: int) -> str:
    """An integer with thousands separators."""
    return f"{int(n):,}"


def rate(per_s: float) -> str:
    """Events per second, compact (1.2M/s)."""
    if per_s <= 0:
        return "0/s"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if per_s >= div:
            return f"{per_s / div:.1f}{suffix}/s"
    return f"{per_s:.0f}/s"


def duration(seconds: float) -> str:
    """Wall time, compact: 9s, 4m05s, 2h03m."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def fit(text: str, width: int, align: str = "<") -> str:
    """Pad or cut text to exactly width cells (ASCII and box characters only)."""
    if width <= 0:
        return ""
    if len(text) > width:
        return text[: width - 1] + "…" if width > 1 else text[:1]
    return f"{text:{align}{width}}"
