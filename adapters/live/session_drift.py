"""Position drift: the engine's position against the venue's, watched while the session runs.

On USD-M futures the venue reports its position (ACCOUNT_UPDATE, kept in
`BinanceFuturesExec.positions`); the engine keeps its own from the fills it was told about.
The two are equal whenever the session has heard everything, but they move at different
moments: a fill's ORDER_TRADE_UPDATE and the ACCOUNT_UPDATE that moves the position arrive
in either order, and the engine books a fill at its next step. So a difference is only an
alert once it has lasted `grace` seconds (`SessionOptions.drift_grace`): then something
changed the position behind the session's back (another program on the account, a
liquidation, an ADL, a lost fill), and the engine trades on a position it does not have.

`DriftMonitor.observe` is pure bookkeeping (times in, verdicts out); the session calls it on a
timer and decides what an alert does (journal marker, status, optional halt). Before a
difference becomes an alert the session reads the venue's positions again over REST
(positionRisk): a position kept from ACCOUNT_UPDATEs can be stale (updates missed while the
user stream reconnected), and an alert may halt trading.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from adapters.live.order_records import Marker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PositionDrift:
    """A symbol whose engine position has differed from the venue's for too long."""

    symbol: str
    engine: Decimal
    """The engine's net position (all rows), base quantity."""
    venue: Decimal
    """The venue's position, base quantity."""
    seconds: float
    """How long they have differed."""

    def text(self) -> str:
        """`BTCUSDT engine 0.001 venue 0 (3.2s)`."""
        e, v = format(self.engine.normalize(), "f"), format(self.venue.normalize(), "f")
        return f"{self.symbol} engine {e} venue {v} ({self.seconds:.1f}s)"


class DriftMonitor:
    """Per symbol: since when the engine and the venue differ, and whether that is an alert.

    Args:
        grace_ns: how long a difference may last before it is one (fills and position
            updates arrive in some order).
    """

    def __init__(self, grace_ns: int) -> None:
        self.grace_ns = int(grace_ns)
        self._since: dict[str, int] = {}
        self._alarmed: dict[str, PositionDrift] = {}

    def observe(
        self,
        engine: Mapping[str, Decimal],
        venue: Mapping[str, Decimal],
        now_ns: int,
    ) -> tuple[list[PositionDrift], list[str]]:
        """Compare once; returns (symbols that became alerts now, symbols whose alert ended).

        Args:
            engine: the engine's net position per symbol traded here.
            venue: the venue's position per symbol (a symbol absent is flat).
            now_ns: the time of this comparison.
        """
        raised: list[PositionDrift] = []
        cleared: list[str] = []
        for sym, mine in engine.items():
            theirs = venue.get(sym, Decimal(0))
            if mine == theirs:
                self._since.pop(sym, None)
                if self._alarmed.pop(sym, None) is not None:
                    cleared.append(sym)
                continue
            since = self._since.setdefault(sym, now_ns)
            if now_ns - since < self.grace_ns:
                continue
            drift = PositionDrift(sym, mine, theirs, (now_ns - since) / 1e9)
            if sym not in self._alarmed:
                raised.append(drift)
            self._alarmed[sym] = drift
        return raised, cleared

    def overdue(self, now_ns: int) -> list[str]:
        """Symbols whose difference (as of the last `observe`) has lasted the grace period
        and is not an alert yet: the next `observe` raises them unless it has ended."""
        return [
            sym
            for sym, since in self._since.items()
            if now_ns - since >= self.grace_ns and sym not in self._alarmed
        ]

    def alerts(self) -> tuple[PositionDrift, ...]:
        """The current alerts (as of the last `observe`)."""
        return tuple(self._alarmed[s] for s in sorted(self._alarmed))


def drift_markers(
    raised: list[PositionDrift], cleared: list[str], halted: bool, now_ns: int
) -> list[Marker]:
    """Log an `observe` verdict and return its journal markers: `position_drift` (symbol,
    engine, venue, halted) per new alert, `position_drift_ended` (symbol) per ended one."""
    out = []
    for d in raised:
        log.error("live session: POSITION DRIFT %s%s", d.text(), "; halted" if halted else "")
        data: dict[str, str | int] = {
            "symbol": d.symbol,
            "engine": format(d.engine.normalize(), "f"),
            "venue": format(d.venue.normalize(), "f"),
            "halted": int(halted),
        }
        out.append(Marker("position_drift", now_ns, data))
    for sym in cleared:
        log.warning("live session: %s: the engine's position equals the venue's again", sym)
        out.append(Marker("position_drift_ended", now_ns, {"symbol": sym}))
    return out
