"""Seeded synthetic market: the embedded default market of demos, tests and benchmarks.

The model is a zero-intelligence order flow (after Smith, Farmer, Gillemot and
Krishnamurthy, "Statistical theory of the continuous double auction", 2003), one independent
book per instrument, with a hidden fundamental price that the flow leans towards so the mid
wanders like a real one instead of sitting still:

- Venue messages arrive as a Poisson process whose rate is the sum of three intensities:
  limit orders (`limit_rate` a second), market orders (`market_rate` a second) and cancels
  (`cancel_rate` a second per resting order, counted as resting lots / `mean_order_lots`,
  so a deep book shrinks and a thin one refills).
- A limit order (buy or sell alike) rests behind its own touch, 0 to `max_depth` ticks
  back: 60 % from a geometric law (30 % at the touch, each tick further 0.7 times as
  likely), 40 % uniformly, which gives the usual profile of a peak near the touch and a
  long flat tail. When the spread is wider than a tick it improves inside the spread
  instead, half the time (more for the side the fundamental favours, never for the other
  when the lean is full). Limit orders never cross.
- A market order's side leans towards the fundamental (up to 95/5 when the mid is
  `_BIAS_TICKS` away from it). Most are smaller than a typical resting order; one in eight
  is several times larger and walks the book, printing one trade and one delta per level
  (immediate-or-cancel across at most `_MAX_WALK` levels).
- A cancel picks a resting lot uniformly (so a level is chosen in proportion to its size,
  levels stranded further than `max_depth` from the touch weighted up) and removes one
  order's worth of it, or the whole level if that is smaller.
- The fundamental follows a geometric random walk (`volatility`, annualised) with rare
  jumps (`jump_rate` a second, mean relative size `jump_size`), sampled at each message.
- Each side keeps at least one level, so the book is never empty, never crossed, and no
  size is ever negative. A market order or cancel that could only act by emptying a side
  (one lot left) becomes a sell order resting behind the touch instead (rare).

Output rows (EVENT_DTYPE): per instrument a KIND_BOOK_CLEAR and one KIND_BOOK_SNAPSHOT row
per level (FLAG_SNAPSHOT; the last row also FLAG_LAST), then a quote message. Afterwards one
venue message per order-flow action: its KIND_BOOK_DELTA rows (absolute level size, 0
removes) and KIND_TRADE rows (side of the aggressor; trade before the delta of each level),
then a KIND_QUOTE pair (bid row SIDE_BUY, ask row SIDE_SELL) when the best bid or ask price
or size changed. The last row of every message carries FLAG_LAST, including the very last
row of the stream: generation stops at exactly `n_events` rows because, when fewer rows
remain than the next action needs, it is replaced by a one-row order behind the touch (this
touches only the final few messages of a stream).

Determinism: the random numbers come from our own xoshiro256** in integer arithmetic, one
stream per instrument seeded by splitmix64 from (seed, instrument id), and the floating
point uses only IEEE-exact operations (+ - * / and sqrt; the logarithm is our own series),
so the bytes do not depend on the numpy or numba version or on the platform's libm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final

import numpy as np
from numba import njit

from engine.data.stream import EventStream
from engine.errors import DataError, UsageError
from engine.events import (
    EVENT_DTYPE,
    FLAG_LAST,
    FLAG_SNAPSHOT,
    KIND_BOOK_CLEAR,
    KIND_BOOK_DELTA,
    KIND_BOOK_SNAPSHOT,
    KIND_NAMES,
    KIND_QUOTE,
    KIND_TRADE,
    SIDE_BUY,
    SIDE_NONE,
    SIDE_SELL,
)
from engine.instruments import Instrument, InstrumentRegistry

EPOCH_2024_NS: Final = 1_704_067_200_000_000_000
"""2024-01-01T00:00:00Z in ns: the default exchange time of the first message."""
SECONDS_PER_YEAR: Final = 365.25 * 86_400.0
MAX_INSTRUMENTS: Final = 100_000

# Shape of the flow: fixed rather than configuration, tuned so that spread, depth profile
# and trade mix look like a liquid venue's (see the realism tests).
_CAP: Final = 256
"""Levels a side can hold; placement keeps far fewer (about max_depth plus stranded ones)."""
_MAX_WALK: Final = 8
"""Most levels one market order trades through (the rest of it is cancelled, IOC)."""
_WALK_PROB: Final = 0.125
"""Share of market orders that are large (several times the mean order) and walk the book."""
_SMALL_MARKET: Final = 0.8
"""Small market orders are this fraction of a limit order on average: the touch is rarely
emptied by one, so the spread stays near a tick."""
_TOUCH_PROB: Final = 0.3
"""Geometric placement: chance of the touch; each tick further back is 0.7 times as likely."""
_FLAT_SHARE: Final = 0.4
"""Share of limit orders placed uniformly up to max_depth: the book's long flat tail."""
_IMPROVE_PROB: Final = 0.5
"""Chance that a limit order improves inside a spread wider than a tick (before the lean)."""
_BIAS_TICKS: Final = 4.0
"""Distance from mid to fundamental (ticks) at which the flow leans fully to one side."""
_FAR_WEIGHT: Final = 8
"""Cancel weight of a lot stranded more than max_depth behind its touch: old quotes decay."""
_ROUND_PROB: Final = 0.3
"""Share of orders with a round size (a multiple of mean_order_lots / 5), as people type."""

# Side index of the book arrays: 0 holds bids (best = highest), 1 asks (best = lowest).
_BID: Final = 0
_ASK: Final = 1

# Integer parameters (one int64 array, so the kernel has one signature).
_P_LEVELS, _P_DEPTH, _P_MEAN, _P_ROUND, _P_LAT, _P_JIT, _P_START = range(7)
# Float parameters.
_F_LIMIT, _F_MARKET, _F_CANCEL, _F_SIGMA, _F_JUMP_RATE, _F_JUMP_SIZE = range(6)


@dataclass(frozen=True)
class SyntheticConfig:
    """What to generate; every field is checked on construction (UsageError naming it)."""

    n_events: int = 200_000
    """Rows to generate, exactly."""
    seed: int = 7
    """0 <= seed < 2**64; the same seed and config give the same bytes."""
    n_instruments: int = 1
    """Instruments SYN0, SYN1, ... with independent books, interleaved by local time."""
    start_price: str | Decimal | tuple[str | Decimal, ...] = "100.00"
    """Initial best bid, one for all instruments or one per instrument (on the tick grid)."""
    tick_size: str | Decimal = "0.01"
    """Price step of every instrument; prices in the events are integer ticks of it."""
    lot_size: str | Decimal = "0.001"
    """Size step of every instrument; sizes in the events are integer lots of it."""
    symbol_prefix: str = "SYN"
    """Instrument i is named f"{symbol_prefix}{i}"."""
    venue: str = "synthetic"
    start_time_ns: int = EPOCH_2024_NS
    """Exchange time of the initial snapshots, ns since the Unix epoch."""
    book_levels: int = 20
    """Levels a side of the initial book."""
    max_depth: int = 30
    """Ticks behind its touch at which a limit order may rest at most."""
    mean_order_lots: int = 500
    """Mean size of a limit order, lots (0.5 with the default lot size)."""
    limit_rate: float = 40.0
    """Limit orders a second, per instrument."""
    market_rate: float = 5.0
    """Market orders a second, per instrument."""
    cancel_rate: float = 0.6
    """Cancels a second per resting order (resting lots / mean_order_lots)."""
    volatility: float = 0.3
    """Annualised volatility of the fundamental price (0.3 = 30 %)."""
    jump_rate: float = 1.0 / 600.0
    """Jumps of the fundamental a second (0 disables them)."""
    jump_size: float = 0.002
    """Mean relative size of a jump (0.002 = 20 ticks at 100.00 with tick 0.01)."""
    latency_ns: int = 200_000
    """Mean feed latency: ts_local - ts_exch, before the clamp that keeps it non-decreasing."""
    latency_jitter_ns: int = 50_000
    """Latency is uniform within +- this around latency_ns."""

    def __post_init__(self) -> None:
        if isinstance(self.start_price, list):  # keep the frozen config hashable
            object.__setattr__(self, "start_price", tuple(self.start_price))
        _int(self, "n_events", 1)
        _int(self, "seed", 0, 2**64 - 1)
        _int(self, "n_instruments", 1, MAX_INSTRUMENTS)
        _int(self, "start_time_ns", 0, 2**62)
        _int(self, "book_levels", 1, _CAP // 4)
        _int(self, "max_depth", 1, _CAP // 4)
        _int(self, "mean_order_lots", 1, 10**12)
        _int(self, "latency_ns", 0, 10**12)
        _int(self, "latency_jitter_ns", 0, self.latency_ns)
        # Bounds keep every wait and price far from int64 overflow.
        for name in ("limit_rate", "market_rate", "cancel_rate"):
            _float(self, name, 1e-3, 1e7)
        _float(self, "volatility", 0.0, 10.0)
        _float(self, "jump_rate", 0.0, 1e3)
        _float(self, "jump_size", 0.0, 0.5)
        if not isinstance(self.symbol_prefix, str) or not self.symbol_prefix:
            raise UsageError("SyntheticConfig.symbol_prefix must be a non-empty string")
        if not isinstance(self.venue, str) or not self.venue:
            raise UsageError("SyntheticConfig.venue must be a non-empty string")
        insts = self.instruments()  # checks tick_size, lot_size and start_price
        floor = self.book_levels + self.max_depth + 1
        for inst, price in zip(insts, self.start_ticks(), strict=True):
            if price < floor:
                raise UsageError(
                    f"SyntheticConfig.start_price {inst.format_price(price)} of {inst.symbol} "
                    f"is too low: the initial book needs at least {floor} ticks below it"
                )
        need = self.n_instruments * (2 * self.book_levels + 3)
        if self.n_events < need:
            raise UsageError(
                f"SyntheticConfig.n_events must be at least {need} (the initial books and "
                f"quotes of {self.n_instruments} instrument(s)), got {self.n_events}"
            )

    def instruments(self) -> list[Instrument]:
        """The generated instruments, in id order."""
        out = []
        for i in range(self.n_instruments):
            try:
                out.append(
                    Instrument(
                        symbol=f"{self.symbol_prefix}{i}",
                        venue=self.venue,
                        tick_size=self.tick_size,
                        lot_size=self.lot_size,
                    )
                )
            except UsageError as exc:
                field = "tick_size" if "tick_size" in exc.message else "lot_size"
                raise UsageError(f"SyntheticConfig.{field}: {exc.message}") from None
        return out

    def start_ticks(self) -> list[int]:
        """Initial best bid of each instrument, in ticks."""
        prices = self.start_price
        if not isinstance(prices, tuple | list):
            prices = (prices,) * self.n_instruments
        if len(prices) != self.n_instruments:
            raise UsageError(
                f"SyntheticConfig.start_price has {len(prices)} prices for "
                f"{self.n_instruments} instruments"
            )
        ticks = []
        for inst, price in zip(self.instruments(), prices, strict=True):
            try:
                value = Decimal(str(price))
                if not value.is_finite() or value <= 0:
                    raise UsageError(f"SyntheticConfig.start_price must be positive, got {price}")
                ticks.append(inst.price_to_ticks(value))
            except (InvalidOperation, DataError) as exc:
                raise UsageError(f"SyntheticConfig.start_price {price!r}: {exc}") from None
        return ticks

    def to_dict(self) -> dict:
        """JSON-ready form (decimals as text) for stream metadata and file headers."""
        out = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, tuple | list):
                value = [str(v) for v in value]
            elif isinstance(value, Decimal):
                value = str(value)
            out[name] = value
        return out


def _int(cfg: SyntheticConfig, name: str, lo: int, hi: int | None = None) -> None:
    value = getattr(cfg, name)
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise UsageError(f"SyntheticConfig.{name} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise UsageError(f"SyntheticConfig.{name} must be {bound}, got {value}")


def _float(cfg: SyntheticConfig, name: str, lo: float, hi: float) -> None:
    value = getattr(cfg, name)
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise UsageError(f"SyntheticConfig.{name} must be a number, got {value!r}")
    if not math.isfinite(value) or not lo <= value <= hi:
        raise UsageError(f"SyntheticConfig.{name} must be between {lo:g} and {hi:g}, got {value}")


_MASK64: Final = (1 << 64) - 1


def _splitmix64(x: int) -> tuple[int, int]:
    """One splitmix64 step on a Python int: (next state, output)."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x, z ^ (z >> 31)


def _rng_states(seed: int, n: int) -> np.ndarray:
    """xoshiro256** states, one stream per instrument, from (seed, instrument id)."""
    states = np.empty((n, 4), dtype=np.uint64)
    for i in range(n):
        # Mixing the id through splitmix first keeps instrument streams unrelated even for
        # neighbouring seeds, and SYN0's flow does not depend on how many instruments exist.
        x, key = _splitmix64(i)
        x = seed ^ key
        for j in range(4):
            x, states[i, j] = _splitmix64(x)
        if not states[i].any():  # the one state xoshiro cannot leave
            states[i, 0] = 1
    return states


# ---------------------------------------------------------------- random numbers (jitted)


@njit(cache=True, nogil=True)
def _next(st, i):
    """xoshiro256** (Blackman and Vigna): 64 random bits from stream i."""
    s0 = st[i, 0]
    s1 = st[i, 1]
    s2 = st[i, 2]
    s3 = st[i, 3]
    x = s1 * np.uint64(5)
    result = ((x << np.uint64(7)) | (x >> np.uint64(57))) * np.uint64(9)
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = (s3 << np.uint64(45)) | (s3 >> np.uint64(19))
    st[i, 0] = s0
    st[i, 1] = s1
    st[i, 2] = s2
    st[i, 3] = s3
    return result


@njit(cache=True, nogil=True)
def _uniform(st, i):
    """Uniform in [0, 1) with 53 random bits (exact conversion)."""
    return np.float64(_next(st, i) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, nogil=True)
def _randint(st, i, n):
    """Uniform integer in [0, n), n >= 1 (modulo bias below 2**-40 for our n)."""
    return np.int64(_next(st, i) % np.uint64(n))


@njit(cache=True, nogil=True)
def _ln(x):
    """Natural logarithm of x > 0 from + - * / only, so no platform libm is involved."""
    m, e = math.frexp(x)  # exact: x = m * 2**e, 0.5 <= m < 1
    if m < 0.7071067811865476:
        m *= 2.0
        e -= 1
    s = (m - 1.0) / (m + 1.0)  # |s| <= 0.172: the atanh series below is exact to ~1e-17
    z = s * s
    acc = 1.0 / 21.0
    acc = acc * z + 1.0 / 19.0
    acc = acc * z + 1.0 / 17.0
    acc = acc * z + 1.0 / 15.0
    acc = acc * z + 1.0 / 13.0
    acc = acc * z + 1.0 / 11.0
    acc = acc * z + 1.0 / 9.0
    acc = acc * z + 1.0 / 7.0
    acc = acc * z + 1.0 / 5.0
    acc = acc * z + 1.0 / 3.0
    acc = acc * z + 1.0
    return 2.0 * s * acc + e * 0.6931471805599453


@njit(cache=True, nogil=True)
def _expo(st, i):
    """Exponential with mean 1."""
    return -_ln(1.0 - _uniform(st, i))  # 1 - U lies in (0, 1]


@njit(cache=True, nogil=True)
def _wait_ns(st, i, rate):
    """Exponential wait of a Poisson process with `rate` a second, in whole ns >= 1."""
    # Capped at about three years so that a rare process cannot overflow the clock.
    return 1 + np.int64(min(_expo(st, i) / rate * 1e9, 1e17))


@njit(cache=True, nogil=True)
def _normal(st, i):
    """Standard normal by Marsaglia's polar method (log and sqrt only, no sin or cos)."""
    while True:
        u = 2.0 * _uniform(st, i) - 1.0
        v = 2.0 * _uniform(st, i) - 1.0
        s = u * u + v * v
        if 0.0 < s < 1.0:
            return u * math.sqrt(-2.0 * _ln(s) / s)


@njit(cache=True, nogil=True)
def _order_lots(st, i, pi):
    """Size of one limit order: exponential around the mean, round numbers favoured."""
    mean = pi[_P_MEAN]
    q = 1 + np.int64(_expo(st, i) * (mean - 1))
    rnd = pi[_P_ROUND]
    if rnd > 1 and _uniform(st, i) < _ROUND_PROB:
        q = max(rnd, (q + rnd // 2) // rnd * rnd)
    return q


# ---------------------------------------------------------------- book (jitted)


@njit(cache=True, nogil=True, inline="always")
def _better(s, a, b):
    """Is price a strictly better than b on side s?"""
    return a > b if s == _BID else a < b


@njit(cache=True, nogil=True, inline="always")
def _locate(px, nl, i, s, p):
    """Index where price p is or would be inserted on side s of instrument i."""
    k = 0
    n = nl[i, s]
    while k < n and _better(s, px[i, s, k], p):
        k += 1
    return k


@njit(cache=True, nogil=True, inline="always")
def _insert(px, sz, nl, i, s, k, p, q):
    n = nl[i, s]
    for j in range(n, k, -1):
        px[i, s, j] = px[i, s, j - 1]
        sz[i, s, j] = sz[i, s, j - 1]
    px[i, s, k] = p
    sz[i, s, k] = q
    nl[i, s] = n + 1


@njit(cache=True, nogil=True, inline="always")
def _remove(px, sz, nl, i, s, k):
    n = nl[i, s] - 1
    for j in range(k, n):
        px[i, s, j] = px[i, s, j + 1]
        sz[i, s, j] = sz[i, s, j + 1]
    nl[i, s] = n


@njit(cache=True, nogil=True, inline="always")
def _row(out, k, te, tl, inst, kind, side, price, size, flags):
    r = out[k]
    r.ts_exch = te
    r.ts_local = tl
    r.price = price
    r.size = size
    r.instrument = inst
    r.kind = kind
    r.side = side
    r.flags = flags


@njit(cache=True, nogil=True, inline="always")
def _side_code(s):
    return SIDE_BUY if s == _BID else SIDE_SELL


# ---------------------------------------------------------------- messages (jitted)


@njit(cache=True, nogil=True, inline="always")
def _finish(out, pos, te, tl, i, px, sz, quoted):
    """Close a message: a quote pair if the touch changed, else FLAG_LAST on its last row."""
    bp = px[i, _BID, 0]
    bs = sz[i, _BID, 0]
    ap = px[i, _ASK, 0]
    az = sz[i, _ASK, 0]
    if bp != quoted[i, 0] or bs != quoted[i, 1] or ap != quoted[i, 2] or az != quoted[i, 3]:
        _row(out, pos, te, tl, i, KIND_QUOTE, SIDE_BUY, bp, bs, 0)
        _row(out, pos + 1, te, tl, i, KIND_QUOTE, SIDE_SELL, ap, az, FLAG_LAST)
        quoted[i, 0] = bp
        quoted[i, 1] = bs
        quoted[i, 2] = ap
        quoted[i, 3] = az
        return pos + 2
    out[pos - 1].flags |= FLAG_LAST
    return pos


@njit(cache=True, nogil=True, inline="always")
def _add(out, pos, te, tl, i, s, p, q, px, sz, nl, lots):
    """Rest q lots at price p on side s; writes its delta row."""
    lots[i] += q
    k = _locate(px, nl, i, s, p)
    if k < nl[i, s] and px[i, s, k] == p:
        sz[i, s, k] += q
    elif nl[i, s] < _CAP:
        _insert(px, sz, nl, i, s, k, p, q)
    else:  # full side (never seen in practice): the order joins the deepest level
        k = nl[i, s] - 1
        sz[i, s, k] += q
    _row(out, pos, te, tl, i, KIND_BOOK_DELTA, _side_code(s), px[i, s, k], sz[i, s, k], 0)
    return pos + 1


@njit(cache=True, nogil=True, inline="always")
def _behind(out, pos, te, tl, i, st, pi, px, sz, nl, lots):
    """A one-row message: an ask resting behind the touch (fills the last rows exactly)."""
    if nl[i, _ASK] >= 2:
        p = px[i, _ASK, 1]
    else:
        p = px[i, _ASK, 0] + 1
    pos = _add(out, pos, te, tl, i, _ASK, p, _order_lots(st, i, pi), px, sz, nl, lots)
    out[pos - 1].flags |= FLAG_LAST  # behind the touch: the quote cannot have changed
    return pos


@njit(cache=True, nogil=True)
def _limit(out, pos, room, te, tl, i, lean, st, pi, px, sz, nl, lots, quoted):
    s = _BID if _uniform(st, i) < 0.5 else _ASK
    q = _order_lots(st, i, pi)
    bb = px[i, _BID, 0]
    ba = px[i, _ASK, 0]
    spread = ba - bb
    eager = lean if s == _BID else -lean  # > 0 when the fundamental favours this side
    if spread > 1 and _uniform(st, i) < _IMPROVE_PROB * (1.0 + eager):
        off = 1 + _randint(st, i, spread - 1)  # strictly inside: never crosses
        p = bb + off if s == _BID else ba - off
    else:
        if _uniform(st, i) < _FLAT_SHARE:
            depth = _randint(st, i, pi[_P_DEPTH] + 1)
        else:
            depth = 0
            while depth < pi[_P_DEPTH] and _uniform(st, i) >= _TOUCH_PROB:
                depth += 1
        if s == _BID:
            p = max(bb - depth, 1)
        else:
            p = ba + depth
    at_touch = not _better(s, px[i, s, 0], p)
    if (3 if at_touch else 1) > room:
        return _behind(out, pos, te, tl, i, st, pi, px, sz, nl, lots)
    pos = _add(out, pos, te, tl, i, s, p, q, px, sz, nl, lots)
    return _finish(out, pos, te, tl, i, px, sz, quoted)


@njit(cache=True, nogil=True)
def _market(out, pos, room, te, tl, i, lean, st, pi, px, sz, nl, lots, quoted):
    a = _BID if _uniform(st, i) < 0.5 + 0.45 * lean else _ASK  # aggressor: buy or sell
    o = _ASK if a == _BID else _BID  # the side it trades against
    if _uniform(st, i) < _WALK_PROB:
        want = np.int64(_order_lots(st, i, pi) * (1.5 + 3.0 * _expo(st, i)))
    else:
        want = 1 + np.int64(_expo(st, i) * (_SMALL_MARKET * pi[_P_MEAN]))
    # Plan: how many levels it trades at, leaving at least one lot on the side.
    max_levels = min(_MAX_WALK, (room - 2) // 2)
    n = nl[i, o]
    left = want
    levels = 0
    while left > 0 and levels < max_levels and levels < n:
        take = min(left, sz[i, o, levels])
        if levels == n - 1 and take == sz[i, o, levels]:
            take -= 1
        if take == 0:
            break
        left -= take
        levels += 1
    if levels == 0:
        return _behind(out, pos, te, tl, i, st, pi, px, sz, nl, lots)
    left = want
    for _ in range(levels):
        p = px[i, o, 0]
        take = min(left, sz[i, o, 0])
        if nl[i, o] == 1 and take == sz[i, o, 0]:
            take -= 1
        left -= take
        rest = sz[i, o, 0] - take
        lots[i] -= take
        _row(out, pos, te, tl, i, KIND_TRADE, _side_code(a), p, take, 0)
        _row(out, pos + 1, te, tl, i, KIND_BOOK_DELTA, _side_code(o), p, rest, 0)
        pos += 2
        if rest == 0:
            _remove(px, sz, nl, i, o, 0)
        else:
            sz[i, o, 0] = rest
    return _finish(out, pos, te, tl, i, px, sz, quoted)


@njit(cache=True, nogil=True)
def _cancel(out, pos, room, te, tl, i, st, pi, px, sz, nl, lots, quoted):
    depth = pi[_P_DEPTH]
    total = np.int64(0)
    for s in range(2):
        best = px[i, s, 0]
        for k in range(nl[i, s]):
            w = _FAR_WEIGHT if abs(px[i, s, k] - best) > depth else 1
            total += sz[i, s, k] * w
    r = _randint(st, i, total)
    s = 0
    k = 0
    for s in range(2):  # s and k are the result of the search
        best = px[i, s, 0]
        found = False
        for k in range(nl[i, s]):
            w = _FAR_WEIGHT if abs(px[i, s, k] - best) > depth else 1
            r -= sz[i, s, k] * w
            if r < 0:
                found = True
                break
        if found:
            break
    q = min(_order_lots(st, i, pi), sz[i, s, k])
    if nl[i, s] == 1 and q == sz[i, s, k]:
        q -= 1  # a side keeps at least one lot
    if q == 0 or (3 if k == 0 else 1) > room:
        return _behind(out, pos, te, tl, i, st, pi, px, sz, nl, lots)
    rest = sz[i, s, k] - q
    lots[i] -= q
    _row(out, pos, te, tl, i, KIND_BOOK_DELTA, _side_code(s), px[i, s, k], rest, 0)
    if rest == 0:
        _remove(px, sz, nl, i, s, k)
    else:
        sz[i, s, k] = rest
    return _finish(out, pos + 1, te, tl, i, px, sz, quoted)


@njit(cache=True, nogil=True)
def _total_rate(i, pi, pf, lots):
    """Messages a second: limit, market, and cancels in proportion to the resting lots."""
    return pf[_F_LIMIT] + pf[_F_MARKET] + pf[_F_CANCEL] * lots[i] / pi[_P_MEAN]


@njit(cache=True, nogil=True)
def _step(out, pos, te, tl, i, dt_ns, st, pi, pf, px, sz, nl, lots, quoted, fund, next_jump):
    """One venue message of instrument i at time te; returns the new output position."""
    f = fund[i]
    sigma = pf[_F_SIGMA]
    if sigma > 0.0:
        f += f * sigma * math.sqrt(dt_ns * 1e-9) * _normal(st, i)
    while next_jump[i] <= te:
        size = pf[_F_JUMP_SIZE] * (0.5 + _uniform(st, i))
        f += f * size if _uniform(st, i) < 0.5 else -f * size
        next_jump[i] += _wait_ns(st, i, pf[_F_JUMP_RATE])
    # The floor keeps every price positive however long the walk runs.
    fund[i] = max(f, np.float64(pi[_P_LEVELS] + pi[_P_DEPTH] + 1))
    mid = 0.5 * (px[i, _BID, 0] + px[i, _ASK, 0])
    lean = min(1.0, max(-1.0, (fund[i] - mid) / _BIAS_TICKS))

    room = out.shape[0] - pos
    rate_l = pf[_F_LIMIT]
    rate_m = pf[_F_MARKET]
    u = _uniform(st, i) * _total_rate(i, pi, pf, lots)
    if u < rate_l:
        return _limit(out, pos, room, te, tl, i, lean, st, pi, px, sz, nl, lots, quoted)
    if u < rate_l + rate_m:
        return _market(out, pos, room, te, tl, i, lean, st, pi, px, sz, nl, lots, quoted)
    return _cancel(out, pos, room, te, tl, i, st, pi, px, sz, nl, lots, quoted)


@njit(cache=True, nogil=True)
def _latency(st, i, pi):
    jit = pi[_P_JIT]
    return pi[_P_LAT] + _randint(st, i, 2 * jit + 1) - jit


@njit(cache=True, nogil=True)
def _sift_down(heap, tl, n, k):
    """Restore the min-heap of instrument ids ordered by (next ts_local, id) below k."""
    while True:
        c = 2 * k + 1
        if c >= n:
            return
        if c + 1 < n and (
            tl[heap[c + 1]] < tl[heap[c]]
            or (tl[heap[c + 1]] == tl[heap[c]] and heap[c + 1] < heap[c])
        ):
            c += 1
        a = heap[k]
        b = heap[c]
        if tl[b] < tl[a] or (tl[b] == tl[a] and b < a):
            heap[k] = b
            heap[c] = a
            k = c
        else:
            return


@njit(cache=True, nogil=True)
def _generate(out, start_ticks, st, pi, pf):
    """Fill `out` with the market; returns the counts of venue messages per instrument."""
    n_inst = start_ticks.shape[0]
    levels = pi[_P_LEVELS]
    t0 = pi[_P_START]
    px = np.zeros((n_inst, 2, _CAP), dtype=np.int64)
    sz = np.zeros((n_inst, 2, _CAP), dtype=np.int64)
    nl = np.zeros((n_inst, 2), dtype=np.int64)
    lots = np.zeros(n_inst, dtype=np.int64)  # resting lots, both sides: the cancel intensity
    quoted = np.zeros((n_inst, 4), dtype=np.int64)
    fund = np.zeros(n_inst, dtype=np.float64)
    next_jump = np.empty(n_inst, dtype=np.int64)
    te = np.empty(n_inst, dtype=np.int64)
    tl = np.empty(n_inst, dtype=np.int64)
    messages = np.zeros(n_inst, dtype=np.int64)

    # Initial books, all at the start time and before any flow, in instrument order; the
    # Python layer guarantees that they fit.
    pos = np.int64(0)
    tl0 = t0 + pi[_P_LAT]
    for i in range(n_inst):
        _row(out, pos, t0, tl0, i, KIND_BOOK_CLEAR, SIDE_NONE, 0, 0, FLAG_SNAPSHOT)
        pos += 1
        for s in range(2):
            for k in range(levels):
                p = start_ticks[i] - k if s == _BID else start_ticks[i] + 1 + k
                q = np.int64(0)
                for _ in range(1 + _randint(st, i, 2 + k // 3)):  # deeper levels hold more
                    q += _order_lots(st, i, pi)
                _insert(px, sz, nl, i, s, k, p, q)
                lots[i] += q
                _row(out, pos, t0, tl0, i, KIND_BOOK_SNAPSHOT, _side_code(s), p, q, FLAG_SNAPSHOT)
                pos += 1
        out[pos - 1].flags |= FLAG_LAST
        pos = _finish(out, pos, t0, tl0, i, px, sz, quoted)
        messages[i] = 2
        fund[i] = start_ticks[i] + 0.5
        jump_rate = pf[_F_JUMP_RATE]
        if jump_rate > 0.0:
            next_jump[i] = t0 + _wait_ns(st, i, jump_rate)
        else:
            next_jump[i] = np.iinfo(np.int64).max

    # Every instrument's next message time; a heap merges them by (ts_local, id).
    heap = np.arange(n_inst)
    last_te = np.empty(n_inst, dtype=np.int64)
    for i in range(n_inst):
        last_te[i] = t0
        te[i] = t0 + _wait_ns(st, i, _total_rate(i, pi, pf, lots))
        tl[i] = max(tl0, te[i] + _latency(st, i, pi))
    for k in range(n_inst // 2 - 1, -1, -1):
        _sift_down(heap, tl, n_inst, k)

    n_out = out.shape[0]
    while pos < n_out:
        i = heap[0]
        dt = te[i] - last_te[i]
        pos = _step(
            out, pos, te[i], tl[i], i, dt, st, pi, pf, px, sz, nl, lots, quoted, fund, next_jump
        )
        messages[i] += 1
        last_te[i] = te[i]
        te[i] += _wait_ns(st, i, _total_rate(i, pi, pf, lots))
        # The feed never delivers an instrument's messages out of order.
        tl[i] = max(tl[i], te[i] + _latency(st, i, pi))
        _sift_down(heap, tl, n_inst, 0)
    return messages


def generate(config: SyntheticConfig) -> EventStream:
    """Generate the synthetic market described by `config` (same config, same bytes).

    The stream's meta holds `source` ("synthetic"), `seed`, `counts` (rows per kind name,
    plus `messages`, the number of venue messages) and `config` (`SyntheticConfig.to_dict`).
    """
    if not isinstance(config, SyntheticConfig):
        raise UsageError(f"generate() needs a SyntheticConfig, got {type(config).__name__}")
    # Symbols are unique by construction; InstrumentRegistry.add would check each against
    # all the others, quadratic in the number of instruments.
    registry = InstrumentRegistry(config.instruments())
    start = np.array(config.start_ticks(), dtype=np.int64)
    mean = config.mean_order_lots
    pi = np.array(
        [
            config.book_levels,
            config.max_depth,
            mean,
            max(1, mean // 5),  # round sizes: a fifth of the mean order (0.1 by default)
            config.latency_ns,
            config.latency_jitter_ns,
            config.start_time_ns,
        ],
        dtype=np.int64,
    )
    pf = np.array(
        [
            float(config.limit_rate),
            float(config.market_rate),
            float(config.cancel_rate),
            float(config.volatility) / math.sqrt(SECONDS_PER_YEAR),  # per sqrt(second)
            float(config.jump_rate),
            float(config.jump_size),
        ],
        dtype=np.float64,
    )
    events = np.empty(config.n_events, dtype=EVENT_DTYPE)
    messages = _generate(events, start, _rng_states(config.seed, config.n_instruments), pi, pf)
    kinds = np.bincount(events["kind"], minlength=max(KIND_NAMES) + 1)
    counts = {name: int(kinds[code]) for code, name in sorted(KIND_NAMES.items())}
    counts["messages"] = int(messages.sum())
    meta = {
        "source": "synthetic",
        "seed": config.seed,
        "counts": counts,
        "config": config.to_dict(),
    }
    return EventStream(events=events, instruments=registry, meta=meta)


def default_market(n_events: int = 200_000, seed: int = 7) -> EventStream:
    """The app's embedded market: one instrument, SYN0 around 100.00, seeded."""
    return generate(SyntheticConfig(n_events=n_events, seed=seed))
