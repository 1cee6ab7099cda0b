"""What a live session shows: snapshots for a UI or a status line, and its section timings.

`SessionStatus` is a frozen snapshot (plain values, safe to hand to another thread): the
connections (`ConnectionStatus`: state, last message age, reconnects, clock offset, rate
budget; USD-M has a second market data connection, for trades), the environment, the
trading state, the orders whose outcome is unknown, position drift alerts, counts.
`Timings` keeps the last samples of each timed section of the session's hot path
(perf_counter_ns), for benchmarks/bench_live.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Final

import numpy as np

from adapters.live.clock_offset import ClockOffset
from adapters.live.rate_limit import RateLimiter
from adapters.live.session_drift import PositionDrift
from adapters.live.ws_venue import WsVenue
from engine.codes import TRADING_STATE_NAMES
from engine.state import CK_TRADING_STATE, PF_FEES, PF_REALIZED, PI_POS

if TYPE_CHECKING:
    from adapters.live.session import LiveSession


@dataclass(frozen=True)
class RateBudget:
    """One rate limit: weight spent in its window and its capacity."""

    name: str
    used: int
    capacity: int


@dataclass(frozen=True)
class ConnectionStatus:
    """One venue connection (market data or execution)."""

    name: str
    state: str
    last_message_age: float | None
    """Seconds since its last frame (None before the first)."""
    reconnects: int
    messages: int
    gaps: int
    resyncs: int
    clock_offset_ms: float | None
    """Venue clock minus ours (execution only, once measured)."""
    clock_uncertainty_ms: float | None
    rate_budget: tuple[RateBudget, ...]
    paused_for: float
    """Seconds left of a pause the venue ordered (429/418), 0 when none."""


@dataclass(frozen=True)
class UnknownOrder:
    """A request whose outcome is unknown (shown until the venue settles it)."""

    client_id: str
    kind: str
    symbol: str
    age: float
    reason: str


@dataclass(frozen=True)
class SessionStatus:
    """A snapshot of a live session."""

    environment: str
    """sandbox, testnet or live (from the URL)."""
    running: bool
    market_data: ConnectionStatus
    execution: ConnectionStatus
    trading: str
    """The engine's trading state: active, reduce_only or halted."""
    reconcile_pending: tuple[str, ...]
    """Lines of a reconciliation diff the user has not acknowledged (trading is halted)."""
    books_in_sync: tuple[tuple[str, bool], ...]
    unknown: tuple[UnknownOrder, ...]
    inherited: tuple[str, ...]
    """Client ids of orders from an earlier run still open at the venue (not in the engine)."""
    working: int
    """Engine orders not known to have ended."""
    sent: int
    orders: int
    acked: int
    fills: int
    rejected: int
    refused_locally: int
    canceled: int
    positions: tuple[tuple[str, int], ...]
    """Net position in lots per symbol (all strategy rows and manual trading)."""
    realized: tuple[tuple[str, float], ...]
    """Realized PnL net of fees per symbol, quote currency (all rows)."""
    journal_bytes: int
    error: str
    """Why the session stopped trading on its own (a journal failure...), '' if it did not."""
    venue_positions: tuple[tuple[str, str], ...] = ()
    """USD-M: the venue's position per symbol (decimal text), as last read or updated."""
    funding: tuple[tuple[str, str], ...] = ()
    """USD-M: funding fees received (+) or paid (-) this session per asset (decimal text);
    journaled as `funding_fee` markers, not part of `realized`."""
    more_market_data: tuple[ConnectionStatus, ...] = ()
    """More market data connections (USD-M: `trades`, the `/market` route's aggTrades)."""
    drift: tuple[PositionDrift, ...] = ()
    """USD-M: symbols whose engine position has differed from the venue's for longer than
    the grace period (an alert; trading is halted too when `halts_on_drift`)."""

    def line(self) -> str:
        """One status line for a terminal."""
        md, ex = self.market_data, self.execution
        age = _age(md)
        clock = "-" if ex.clock_offset_ms is None else f"{ex.clock_offset_ms:+.1f}ms"
        pos = " ".join(f"{s}={p}" for s, p in self.positions)
        pnl = " ".join(f"{s}={v:+.4g}" for s, v in self.realized)
        sync = "".join("Y" if ok else "n" for _, ok in self.books_in_sync)
        more = "".join(
            f" | {c.name} {c.state} (age {_age(c)}, reconn {c.reconnects})"
            for c in self.more_market_data
        )
        text = (
            f"[{self.environment}] md {md.state} (age {age}, gaps {md.gaps}, reconn "
            f"{md.reconnects}, sync {sync}){more} | exec {ex.state} (clock {clock}, reconn "
            f"{ex.reconnects}) | {self.trading} | orders {self.orders} acked {self.acked} "
            f"fills {self.fills} rej {self.rejected + self.refused_locally} working "
            f"{self.working} unknown {len(self.unknown)} | pos {pos} | realized {pnl}"
        )
        if self.venue_positions:
            text += " | venue pos " + " ".join(f"{s}={q}" for s, q in self.venue_positions)
        if self.funding:
            text += " | funding " + " ".join(f"{a}={v}" for a, v in self.funding)
        if self.inherited:
            text += f" | inherited {len(self.inherited)}"
        if self.reconcile_pending:
            text += " | RECONCILE: acknowledge to trade"
        if self.drift:
            text += " | POSITION DRIFT " + ", ".join(d.text() for d in self.drift)
        if self.error:
            text += f" | ERROR {self.error}"
        return text


def _age(c: ConnectionStatus) -> str:
    return "-" if c.last_message_age is None else f"{c.last_message_age:.1f}s"


def rate_budget(limiter: RateLimiter) -> tuple[RateBudget, ...]:
    """Each limit of a limiter with what is spent of it."""
    seen: set[str] = set()
    out = []
    for limit in limiter.limits:
        if limit.kind in seen:
            continue  # used() reports the tightest window of a kind
        seen.add(limit.kind)
        tightest = min(
            (lim for lim in limiter.limits if lim.kind == limit.kind), key=lambda x: x.capacity
        )
        out.append(RateBudget(tightest.name, limiter.used(limit.kind), tightest.capacity))
    return tuple(out)


def connection_status(
    name: str,
    venue: WsVenue,
    *,
    clock: ClockOffset | None = None,
    limiter: RateLimiter | None = None,
) -> ConnectionStatus:
    """The status of one connection (its WsVenue counters plus clock and rate budget)."""
    st = venue.status()
    offset = uncertainty = None
    if clock is not None and clock.best is not None:
        offset = clock.offset_ns / 1e6
        uncertainty = clock.uncertainty_ns / 1e6
    return ConnectionStatus(
        name=name,
        state=str(st.state),
        last_message_age=st.last_message_age,
        reconnects=st.reconnects,
        messages=st.messages,
        gaps=st.gaps,
        resyncs=st.resyncs,
        clock_offset_ms=offset,
        clock_uncertainty_ms=uncertainty,
        rate_budget=rate_budget(limiter) if limiter is not None else (),
        paused_for=limiter.paused_for() if limiter is not None else 0.0,
    )


def build_status(session: LiveSession) -> SessionStatus:
    """The `SessionStatus` of a session now (`LiveSession.status()`; on its event loop)."""
    engine, orders = session.engine, session.orders
    books = session._books
    now = time.time_ns()
    md = connection_status("market data", session.md, limiter=session.md.rest.limiter)
    ex_client = session.execution
    ex = connection_status("execution", ex_client, clock=ex_client.clock, limiter=ex_client.limiter)
    trading = "not started"
    positions: tuple[tuple[str, int], ...] = ()
    realized: tuple[tuple[str, float], ...] = ()
    if engine is not None:
        trading = TRADING_STATE_NAMES.get(int(engine.state.ctl[CK_TRADING_STATE]), "?")
        pi, pf = engine.state.pi, engine.state.pf
        positions = tuple((s, int(pi[:, i, PI_POS].sum())) for s, i in books.items())
        realized = tuple(
            (s, float(pf[:, i, PF_REALIZED].sum() - pf[:, i, PF_FEES].sum()))
            for s, i in books.items()
        )
    counts = orders.counts if orders is not None else None
    unknown: tuple[UnknownOrder, ...] = ()
    if orders is not None:
        unknown = tuple(
            UnknownOrder(u.client_id, u.kind, u.symbol, (now - u.since_ns) / 1e9, u.reason)
            for u in orders.unknown.values()
        )
    pending = session._reconcile_pending
    venue = session.venue_positions()
    return SessionStatus(
        environment=session.environment,
        running=session._running,
        market_data=md,
        execution=ex,
        trading=trading,
        reconcile_pending=tuple(pending.lines()) if pending is not None else (),
        books_in_sync=tuple((s, session._in_sync.get(i, False)) for s, i in books.items()),
        unknown=unknown,
        inherited=tuple(session.inherited),
        working=len(session.working_orders()),
        sent=counts.sent if counts else 0,
        orders=counts.orders if counts else 0,
        acked=counts.acked if counts else 0,
        fills=counts.fills if counts else 0,
        rejected=counts.rejected if counts else 0,
        refused_locally=counts.refused_locally if counts else 0,
        canceled=counts.canceled if counts else 0,
        positions=positions,
        realized=realized,
        journal_bytes=session.journal.size if session.journal is not None else 0,
        error=session.error,
        venue_positions=tuple(
            (s, format(venue.get(s, (Decimal(0), 0))[0].normalize(), "f")) for s in books
        )
        if session.futures
        else (),
        funding=tuple((a, format(v.normalize(), "f")) for a, v in sorted(session.funding.items())),
        more_market_data=tuple(
            connection_status("trades" if getattr(c, "route", "") == "market" else "md+", c)
            for c in session.md_extra
        ),
        drift=session.drift.alerts(),
    )


SECTIONS: Final = ("decode", "wake", "engine", "encode", "journal", "send")
"""Timed sections of the hot path, in order (see `LiveSession`):

- decode: a market data frame's arrival (its `ts_local`) to its rows reaching the session;
- wake: rows pushed to the stepping cycle starting (the loop's scheduling);
- engine: step_until and take_outbox, in cycles that took market data (plus the journal
  flush of pending venue facts, usually nothing);
- encode: outbox rows to venue requests (client ids, decimals, filter checks);
- journal: the intents' append_batch with fsync;
- send: handing the requests to the venue client (tasks created; the signing and the
  socket write happen in those tasks and are not in this figure).
"""


class Timings:
    """The last `size` samples (ns) of each section, in a ring per section."""

    def __init__(self, size: int = 1 << 16) -> None:
        self.size = size
        self._data = {name: np.zeros(size, np.int64) for name in SECTIONS}
        self._n = dict.fromkeys(SECTIONS, 0)

    def add(self, section: str, ns: int) -> None:
        """Record one sample."""
        n = self._n[section]
        self._data[section][n % self.size] = ns
        self._n[section] = n + 1

    def samples(self, section: str) -> np.ndarray:
        """The samples kept, oldest first."""
        n = self._n[section]
        data = self._data[section]
        if n <= self.size:
            return data[:n].copy()
        k = n % self.size
        return np.concatenate([data[k:], data[:k]])

    def count(self, section: str) -> int:
        """Samples recorded (also those dropped from the ring)."""
        return self._n[section]

    def clear(self) -> None:
        """Forget every sample."""
        for name in SECTIONS:
            self._n[name] = 0
