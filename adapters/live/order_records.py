"""The records of the order journal: what we asked, what the venue said, what happened.

Four kinds, each a frozen dataclass that validates its fields on construction:

- `Intent`: a request we are about to send (new order, cancel, amend), journaled and synced
  before it is sent. Every request has its own client id; a cancel or amend names its
  target in `orig_client_id`.
- `Reply`: the venue's direct answer to one request (ack or reject), by the request's
  client id, with the venue's order id, error code and message.
- `Event`: an execution report about an order (new, trade, canceled, expired, rejected,
  amended); a trade carries the venue's trade id, so a report delivered twice (REST and
  WebSocket, or after a reconnect) is counted once.
- `Marker`: anything else worth finding after a crash (session start, reconciliation done).

Prices and quantities are the decimal text sent to or received from the venue (exact,
never a float); times are local wall-clock ns. On disk a record is a compact JSON object with
its kind in `"k"` and None fields left out (`to_json_obj` / `from_json_obj`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import ClassVar, Final, Literal

from engine.errors import DataError

CLIENT_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,36}")
"""Binance's rule for newClientOrderId / origClientOrderId: ^[a-zA-Z0-9-_]{1,36}$."""

_DECIMAL: Final = re.compile(r"\d+(\.\d+)?")

ACTIONS: Final = ("new", "cancel", "amend")
SIDES: Final = ("buy", "sell")
ORDER_TYPES: Final = ("limit", "market")
TIFS: Final = ("GTC", "IOC", "FOK")
REPLY_STATUSES: Final = ("ack", "reject")
EXEC_TYPES: Final = ("new", "trade", "canceled", "expired", "rejected", "amended")


def _bad(kind: str, name: str, what: str) -> DataError:
    return DataError(what, field=f"{kind}.{name}")


def _check_id(kind: str, name: str, value: object) -> None:
    if not isinstance(value, str) or not CLIENT_ID_RE.fullmatch(value):
        raise _bad(kind, name, f"{value!r} is not a client order id (1-36 of A-Z a-z 0-9 - _)")


def _check_decimal(kind: str, name: str, value: object, *, positive: bool = True) -> None:
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        raise _bad(kind, name, f"{value!r} is not a decimal string such as '0.001'")
    if positive and not value.strip("0."):
        raise _bad(kind, name, f"{value!r} must be more than zero")


def _check_choice(kind: str, name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise _bad(kind, name, f"{value!r} is not one of {', '.join(choices)}")


def _check_int(kind: str, name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _bad(kind, name, f"{value!r} is not an integer")


def _check_str(kind: str, name: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise _bad(kind, name, f"{value!r} is not a non-empty string")


@dataclass(frozen=True, slots=True)
class Intent:
    """A request to the venue, journaled before it is sent.

    `new` needs instrument, side, qty, order_type (price for a limit order, tif optional);
    `cancel` needs instrument and orig_client_id; `amend` needs instrument, orig_client_id and
    the new qty (and price if it changes).
    """

    KIND: ClassVar[str] = "intent"
    action: Literal["new", "cancel", "amend"]
    client_id: str
    """This request's own id (for `new`, the order's id)."""
    instrument: str
    """The venue's symbol, e.g. BTCUSDT."""
    ts_ns: int
    side: Literal["buy", "sell"] | None = None
    price: str | None = None
    qty: str | None = None
    order_type: Literal["limit", "market"] | None = None
    tif: Literal["GTC", "IOC", "FOK"] | None = None
    post_only: bool = False
    reduce_only: bool = False
    orig_client_id: str | None = None
    """The order a cancel or amend is about."""

    def __post_init__(self) -> None:
        k = self.KIND
        _check_choice(k, "action", self.action, ACTIONS)
        _check_id(k, "client_id", self.client_id)
        _check_str(k, "instrument", self.instrument)
        _check_int(k, "ts_ns", self.ts_ns)
        if self.action == "new":
            _check_choice(k, "side", self.side, SIDES)
            _check_choice(k, "order_type", self.order_type, ORDER_TYPES)
            _check_decimal(k, "qty", self.qty)
            if self.order_type == "limit":
                _check_decimal(k, "price", self.price)
            elif self.price is not None:
                raise _bad(k, "price", "a market order has no price")
            if self.tif is not None:
                _check_choice(k, "tif", self.tif, TIFS)
            if self.orig_client_id is not None:
                raise _bad(k, "orig_client_id", "a new order has no target order")
            return
        _check_id(k, "orig_client_id", self.orig_client_id)
        if self.action == "cancel":
            for name in ("side", "price", "qty", "order_type", "tif"):
                if getattr(self, name) is not None:
                    raise _bad(k, name, "a cancel carries only the target order")
            return
        _check_decimal(k, "qty", self.qty)
        if self.price is not None:
            _check_decimal(k, "price", self.price)


@dataclass(frozen=True, slots=True)
class Reply:
    """The venue's answer to one request, by the request's client id."""

    KIND: ClassVar[str] = "reply"
    client_id: str
    status: Literal["ack", "reject"]
    ts_ns: int
    venue_order_id: str | None = None
    code: int | None = None
    """The venue's error code of a reject (Binance: -2010, -2011, ...)."""
    message: str = ""

    def __post_init__(self) -> None:
        k = self.KIND
        _check_id(k, "client_id", self.client_id)
        _check_choice(k, "status", self.status, REPLY_STATUSES)
        _check_int(k, "ts_ns", self.ts_ns)
        if self.venue_order_id is not None:
            _check_str(k, "venue_order_id", self.venue_order_id)
        if self.code is not None:
            _check_int(k, "code", self.code)
        if not isinstance(self.message, str):
            raise _bad(k, "message", f"{self.message!r} is not a string")


@dataclass(frozen=True, slots=True)
class Event:
    """An execution report about an order (Binance: executionReport / ORDER_TRADE_UPDATE)."""

    KIND: ClassVar[str] = "event"
    client_id: str
    """The order's client id (for an amended order, the id it was placed with)."""
    exec_type: Literal["new", "trade", "canceled", "expired", "rejected", "amended"]
    ts_ns: int
    venue_order_id: str | None = None
    trade_id: str | None = None
    """The venue's trade id: one fill, however many times it is reported."""
    last_qty: str | None = None
    last_price: str | None = None

    def __post_init__(self) -> None:
        k = self.KIND
        _check_id(k, "client_id", self.client_id)
        _check_choice(k, "exec_type", self.exec_type, EXEC_TYPES)
        _check_int(k, "ts_ns", self.ts_ns)
        if self.venue_order_id is not None:
            _check_str(k, "venue_order_id", self.venue_order_id)
        if self.exec_type == "trade":
            _check_str(k, "trade_id", self.trade_id)
            _check_decimal(k, "last_qty", self.last_qty)
            _check_decimal(k, "last_price", self.last_price)
        elif (self.trade_id, self.last_qty, self.last_price) != (None, None, None):
            raise _bad(k, "trade_id", f"only a trade carries a fill, not {self.exec_type!r}")


@dataclass(frozen=True, slots=True)
class Marker:
    """A named point in the journal (session start, reconciliation done, ...)."""

    KIND: ClassVar[str] = "marker"
    name: str
    ts_ns: int
    data: dict[str, str | int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        k = self.KIND
        _check_str(k, "name", self.name)
        _check_int(k, "ts_ns", self.ts_ns)
        if not isinstance(self.data, dict):
            raise _bad(k, "data", "must be an object")
        for key, value in self.data.items():
            if not isinstance(key, str) or not isinstance(value, str | int):
                raise _bad(k, "data", f"entry {key!r}: keys are strings, values str or int")


Record = Intent | Reply | Event | Marker
RECORD_TYPES: Final = {cls.KIND: cls for cls in (Intent, Reply, Event, Marker)}


def to_json_obj(record: Record) -> dict[str, object]:
    """The record as a JSON object: `"k"` is its kind, None and default-False fields left out."""
    out: dict[str, object] = {"k": record.KIND}
    for f in fields(record):
        value = getattr(record, f.name)
        if value is None or value is False or (f.name == "data" and not value):
            continue
        if f.name == "message" and value == "":
            continue
        out[f.name] = value
    return out


def from_json_obj(obj: object) -> Record:
    """The record a JSON object describes.

    Raises:
        DataError: not an object, an unknown kind or field, or an invalid value (by field).
    """
    if not isinstance(obj, dict):
        raise DataError(f"a record must be a JSON object, not {type(obj).__name__}")
    kind = obj.get("k")
    cls = RECORD_TYPES.get(kind)  # type: ignore[arg-type]
    if cls is None:
        raise DataError(f"unknown record kind {kind!r}", field="k")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(obj) - names - {"k"})
    if unknown:
        raise DataError(f"unknown field(s) {', '.join(unknown)} in a {kind} record", field=kind)
    args = {name: value for name, value in obj.items() if name != "k"}
    try:
        return cls(**args)
    except TypeError as exc:  # a required field is missing
        raise DataError(f"{kind} record: {exc}", field=kind) from None
