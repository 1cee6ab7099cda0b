"""Binance USD-M futures' execution messages, to and from the venue-neutral `ExecEvent`s.

Pure functions (no I/O), the futures counterpart of `binance_exec_messages`, which they
reuse where the shapes agree:

- `futures_order_params`: an OrderRequest as `/fapi/v1/order` (or WebSocket API
  `order.place`) parameters: spot's, plus `reduceOnly=true` when asked; a post-only limit
  is `LIMIT` with `timeInForce=GTX` (futures have no LIMIT_MAKER).
- `order_update_events`: an `ORDER_TRADE_UPDATE` event's `o` object as candidate events.
  Its fields are executionReport's (s c S q p x X i l z L N n T t m), so it is translated
  and passed to `binance_exec_messages.report_events`; what differs: a futures CANCELED
  carries the order's own `c` (no cancel-request id, no `C`), `AMENDMENT` (order.modify,
  keeps the client id) maps to `amended`, `CALCULATED` (a liquidation fill) to a fill.
- `account_update`: an `ACCOUNT_UPDATE` event as an `AccountUpdate` (reason `m`, e.g.
  ORDER, FUNDING_FEE, DEPOSIT; balances `B`: asset, wallet balance, balance change;
  positions `P`: symbol, amount, entry price, position side).
- `positions_from_risk`: a `GET /fapi/v3/positionRisk` body as `Position`s.

Not verified against the official pages (not in our search corpus): field names were taken
from connector models of the v3 endpoint (positionAmt, entryPrice, positionSide).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from adapters.live.binance_exec_messages import dec, order_params, report_events
from adapters.live.exec_events import ExecEvent, OrderRequest
from adapters.live.ws_venue import ParseError

REDUCE_ONLY_REJECTED = -2022
"""Binance USD-M: 'ReduceOnly Order is rejected.'"""


@dataclass(frozen=True, slots=True)
class Position:
    """One futures position: signed quantity (short < 0) and average entry price."""

    symbol: str
    qty: Decimal
    entry_price: Decimal
    side: str = "BOTH"
    """`positionSide`: BOTH in one-way mode, LONG/SHORT in hedge mode."""


@dataclass(frozen=True, slots=True)
class Balance:
    """One asset of an ACCOUNT_UPDATE: wallet balance and the change this event made."""

    asset: str
    wallet: Decimal
    change: Decimal


@dataclass(frozen=True, slots=True)
class AccountUpdate:
    """An ACCOUNT_UPDATE: why (`reason`), the balances and positions it changed."""

    reason: str
    """`m`: ORDER, FUNDING_FEE, DEPOSIT, WITHDRAW, ADJUSTMENT, ..."""
    balances: tuple[Balance, ...]
    positions: tuple[Position, ...]
    venue_ts_ms: int | None = None
    recv_ts_ns: int = 0

    @property
    def funding_fee(self) -> bool:
        """A funding settlement (the balance change is the fee paid or received)."""
        return self.reason == "FUNDING_FEE"


def futures_order_params(req: OrderRequest) -> dict[str, Any]:
    """The new-order parameters of a new request, futures flavour (see the module doc)."""
    params = order_params(req)
    if params["type"] == "LIMIT_MAKER":
        params["type"] = "LIMIT"
        params["timeInForce"] = "GTX"
    if req.reduce_only:
        params["reduceOnly"] = "true"
    return params


_EXEC_TYPES = {"AMENDMENT": "REPLACED", "CALCULATED": "TRADE"}


def order_update_events(
    o: Mapping[str, Any], recv_ts_ns: int
) -> tuple[list[ExecEvent], str | None]:
    """The candidate events of one ORDER_TRADE_UPDATE `o` object, and its execution type
    when it is one we do not know (None otherwise).

    Raises:
        ParseError: an update of an unusable shape.
    """
    try:
        report = dict(o)
        report["x"] = _EXEC_TYPES.get(str(o["x"]), str(o["x"]))
        report.pop("C", None)  # futures: `c` is always the order's id
        if report["x"] == "TRADE":
            report.setdefault("n", "0")
            if o["x"] == "CALCULATED" and "t" not in report:
                report["t"] = f"liq-{o['i']}-{o['z']}"
    except (KeyError, TypeError) as exc:
        raise ParseError(f"ORDER_TRADE_UPDATE: {exc!r}") from None
    return report_events(report, recv_ts_ns)


def account_update(msg: Mapping[str, Any], recv_ts_ns: int) -> AccountUpdate:
    """An ACCOUNT_UPDATE event (the whole message, `a` holding the update).

    Raises:
        ParseError: an update of an unusable shape.
    """
    try:
        a = msg["a"]
        balances = tuple(
            Balance(str(b["a"]), dec(b["wb"]), dec(b.get("bc", "0"))) for b in a.get("B", ())
        )
        positions = tuple(
            Position(str(p["s"]), dec(p["pa"]), dec(p["ep"]), str(p.get("ps", "BOTH")))
            for p in a.get("P", ())
        )
        return AccountUpdate(
            str(a["m"]), balances, positions, msg.get("T") or msg.get("E"), recv_ts_ns
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ParseError(f"ACCOUNT_UPDATE: {exc!r}") from None


def positions_from_risk(body: Sequence[Mapping[str, Any]]) -> list[Position]:
    """Positions from GET /fapi/v3/positionRisk (v3 lists open positions only; flat
    entries, as v2 lists them, are dropped too).

    Raises:
        ParseError: a body of an unusable shape.
    """
    try:
        out = [
            Position(
                str(p["symbol"]),
                dec(p["positionAmt"]),
                dec(p["entryPrice"]),
                str(p.get("positionSide", "BOTH")),
            )
            for p in body
        ]
    except (KeyError, TypeError) as exc:
        raise ParseError(f"positionRisk: {exc!r}") from None
    return [p for p in out if p.qty != 0]
