"""Venue-neutral execution: the requests we send and the events a venue client reports.

An execution client (Binance spot, the sandbox venue...) takes `OrderRequest`s and reports
what happened as `ExecEvent`s, one kind per fact, the same whatever the venue. The engine
glue consumes these; it never sees a venue's message format.

Requests (`OrderRequest.kind`):

- `new`: a new order; `client_id` is the order's id.
- `cancel`: cancel the order `orig_client_id`; `client_id` is the cancel request's own id.
- `amend`: replace the order `orig_client_id` by a new one with this request's price and
  quantity; `client_id` is the new order's id (a venue that amends in place keeps reporting
  under it).
- `cancel_all`: cancel every open order of `symbol`; `client_id` names the request.

Events (`ExecEvent.kind`) and whose `client_id` they carry:

- `ack`: the order `client_id` is working at the venue (`venue_order_id`, price, qty). Every
  order the venue accepted gets exactly one, before its fills, even when the venue's own
  acknowledgement was lost or came late (a fill or a cancel proves acceptance).
- `reject`: the new order `client_id` was refused (`code`, `message`); nothing happened.
- `fill`: a trade of the order `client_id`: `price`/`qty` of this trade, `cum_qty` so far,
  `trade_id` (each reported once), `liquidity`, `fee` in `fee_asset`.
- `canceled`, `expired`: the order `client_id` ended with its remainder removed (`reason`:
  the venue's status, e.g. EXPIRED_IN_MATCH for self-trade prevention). Reported once.
- `cancel_rejected`: the cancel request `client_id` (for `orig_client_id`) failed.
- `amended`: the amend request succeeded: `client_id` is the order now working,
  `orig_client_id` the one it replaced.
- `amend_rejected`: the amend request `client_id` (for `orig_client_id`) failed.
- `unknown`: no answer to the request `client_id` (timeout, connection lost, or a venue
  error that says the outcome is unknown). It is never resent; it is resolved later.
- `resolved`: the request `client_id` that was `unknown` is settled; `reason` says how (the
  venue's status). The events of the true state follow it (ack, fills, canceled...).

Prices and quantities are `Decimal` (exact, never float); `venue_ts_ms` is the venue's time
of the fact, `recv_ts_ns` our wall clock when it arrived.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Literal

from engine.errors import UsageError

EVENT_KINDS: Final = (
    "ack",
    "reject",
    "fill",
    "canceled",
    "cancel_rejected",
    "expired",
    "amended",
    "amend_rejected",
    "unknown",
    "resolved",
)
TERMINAL_KINDS: Final = frozenset({"reject", "canceled", "expired"})
"""Events after which an order is no longer working (a late fill may still follow)."""
REQUEST_KINDS: Final = ("new", "cancel", "amend", "cancel_all")
SIDES: Final = ("buy", "sell")
ORDER_TYPES: Final = ("limit", "market")
TIFS: Final = ("GTC", "IOC", "FOK")
LIQUIDITY: Final = ("maker", "taker")

CLIENT_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,36}")
"""Binance's rule, which the other venues' rules include: ^[a-zA-Z0-9-_]{1,36}$."""

EventKind = Literal[
    "ack",
    "reject",
    "fill",
    "canceled",
    "cancel_rejected",
    "expired",
    "amended",
    "amend_rejected",
    "unknown",
    "resolved",
]


def _positive(name: str, value: Decimal | None, *, required: bool) -> None:
    if value is None:
        if required:
            raise UsageError(f"order request: {name} is required")
        return
    if not isinstance(value, Decimal):
        raise UsageError(f"order request: {name} must be a Decimal, got {type(value).__name__}")
    if not value.is_finite() or value <= 0:
        raise UsageError(f"order request: {name} must be a positive number, got {value}")


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """One request to a venue (see the module docstring for the kinds).

    Raises:
        UsageError: a field missing or out of place for the kind, naming it.
    """

    kind: Literal["new", "cancel", "amend", "cancel_all"]
    client_id: str
    symbol: str
    orig_client_id: str | None = None
    side: Literal["buy", "sell"] | None = None
    type: Literal["limit", "market"] = "limit"
    tif: Literal["GTC", "IOC", "FOK"] = "GTC"
    post_only: bool = False
    """A limit order that must not take liquidity (Binance LIMIT_MAKER); GTC only."""
    price: Decimal | None = None
    qty: Decimal | None = None
    reduce_only: bool = False
    """Futures: the order may only reduce the position (Binance `reduceOnly`); spot ignores it."""

    def __post_init__(self) -> None:
        if self.kind not in REQUEST_KINDS:
            raise UsageError(f"order request kind {self.kind!r}: one of {', '.join(REQUEST_KINDS)}")
        if not isinstance(self.client_id, str) or not CLIENT_ID_RE.fullmatch(self.client_id):
            raise UsageError(f"order request client_id {self.client_id!r}: 1-36 of A-Z a-z 0-9 - _")
        if not isinstance(self.symbol, str) or not self.symbol:
            raise UsageError("order request: symbol is required")
        if self.kind in ("cancel", "amend"):
            oid = self.orig_client_id
            if not isinstance(oid, str) or not CLIENT_ID_RE.fullmatch(oid):
                raise UsageError(f"{self.kind} request: orig_client_id {oid!r} is not a client id")
        elif self.orig_client_id is not None:
            raise UsageError(f"{self.kind} request: orig_client_id is only for cancel and amend")
        if not isinstance(self.reduce_only, bool):
            raise UsageError(f"{self.kind} request: reduce_only must be a bool")
        if self.kind in ("cancel", "cancel_all"):
            if self.reduce_only:
                raise UsageError(f"{self.kind} request: reduce_only is for new and amend")
            if self.side is not None or self.price is not None or self.qty is not None:
                raise UsageError(f"{self.kind} request: carries no side, price or quantity")
            return
        if self.side not in SIDES:
            raise UsageError(f"{self.kind} request: side {self.side!r} is not buy or sell")
        if self.type not in ORDER_TYPES:
            raise UsageError(f"{self.kind} request: type {self.type!r} is not limit or market")
        if self.tif not in TIFS:
            raise UsageError(f"{self.kind} request: tif {self.tif!r} is not GTC, IOC or FOK")
        _positive("qty", self.qty, required=True)
        if self.type == "limit":
            _positive("price", self.price, required=True)
        elif self.price is not None:
            raise UsageError(f"{self.kind} request: a market order has no price")
        if self.post_only and (self.type != "limit" or self.tif != "GTC"):
            raise UsageError(f"{self.kind} request: post_only needs a GTC limit order")


@dataclass(frozen=True, slots=True)
class ExecEvent:
    """One execution fact reported by a venue client (see the module docstring)."""

    kind: EventKind
    client_id: str
    """The order's id, or the request's id for request outcomes (see the kinds)."""
    symbol: str = ""
    venue_order_id: str | None = None
    orig_client_id: str | None = None
    """The order a cancel, amend or its outcome is about."""
    side: Literal["buy", "sell"] | None = None
    price: Decimal | None = None
    """Order price (ack, amended) or this trade's price (fill)."""
    qty: Decimal | None = None
    """Order quantity (ack, amended) or this trade's quantity (fill)."""
    cum_qty: Decimal | None = None
    """Filled so far, as the venue says (fill, resolved, terminal events)."""
    trade_id: str | None = None
    liquidity: Literal["maker", "taker"] | None = None
    fee: Decimal | None = None
    fee_asset: str | None = None
    reason: str = ""
    """The venue's status or why (EXPIRED_IN_MATCH, 'timeout', 'executionReport NEW'...)."""
    code: int | None = None
    """The venue's error code (reject, cancel_rejected, amend_rejected, unknown)."""
    message: str = ""
    venue_ts_ms: int | None = None
    recv_ts_ns: int = 0

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise UsageError(f"exec event kind {self.kind!r}: one of {', '.join(EVENT_KINDS)}")

    @property
    def terminal(self) -> bool:
        """The order `client_id` is no longer working after this event."""
        return self.kind in TERMINAL_KINDS
