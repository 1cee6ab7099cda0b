"""A symbol's order rules from Binance's exchangeInfo, checked before a byte is sent.

Binance refuses an order that breaks a symbol filter (`-1013 Filter failure: PRICE_FILTER`);
checking the same rules locally turns that round trip into an immediate reject and keeps
malformed orders out of the order-rate budget. The rules (Binance's filters.md):

- PRICE_FILTER: `price >= minPrice`, `price <= maxPrice`, `price % tickSize == 0`; each rule
  is off when its value is 0. Limit orders only (a market order has no price).
- LOT_SIZE: `quantity >= minQty`, `quantity <= maxQty`, `quantity % stepSize == 0` (since
  2023 the step counts from zero, not from minQty). MARKET_LOT_SIZE adds the same rules for
  market orders (a stepSize of 0 there means none).
- NOTIONAL: `minNotional <= price * quantity <= maxNotional`; for market orders only with
  `applyMinToMarket` / `applyMaxToMarket`, against a reference price (Binance uses its
  average price over `avgPriceMins`; the caller passes one, e.g. the mid). The older
  MIN_NOTIONAL filter (`minNotional`, `applyToMarket`) is read the same way.

Percent-price and order-count filters need the venue's state and are left to the venue.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from adapters.live.exec_events import OrderRequest
from engine.errors import DataError


def _dec(filt: Mapping[str, Any], name: str, default: str = "0") -> Decimal:
    try:
        value = Decimal(str(filt.get(name, default)))
    except InvalidOperation:
        raise DataError(
            f"{filt.get('filterType')}: {name} {filt.get(name)!r} is not a number",
            field=name,
        ) from None
    if not value.is_finite() or value < 0:
        raise DataError(f"{filt.get('filterType')}: {name} {value} is out of range", field=name)
    return value


@dataclass(frozen=True)
class LotRule:
    """minQty, maxQty and stepSize of LOT_SIZE or MARKET_LOT_SIZE (0 switches a rule off)."""

    min_qty: Decimal
    max_qty: Decimal
    step_size: Decimal

    def violated(self, qty: Decimal) -> bool:
        """True when `qty` breaks one of the rules."""
        if self.min_qty and qty < self.min_qty:
            return True
        if self.max_qty and qty > self.max_qty:
            return True
        return bool(self.step_size) and qty % self.step_size != 0


@dataclass(frozen=True)
class VenueFilters:
    """The filters of one symbol; `check` says why an order would be refused."""

    symbol: str
    status: str
    tick_size: Decimal
    min_price: Decimal
    max_price: Decimal
    lot: LotRule
    market_lot: LotRule | None
    min_notional: Decimal | None
    max_notional: Decimal | None
    min_notional_market: bool
    max_notional_market: bool
    order_types: frozenset[str]
    """exchangeInfo's orderTypes (empty: not listed, nothing checked)."""

    @classmethod
    def from_exchange_info(cls, doc: Mapping[str, Any], symbol: str) -> VenueFilters:
        """The filters of `symbol` in an exchangeInfo document (REST body or WS-API result).

        Raises:
            DataError: the symbol is not listed, has no PRICE_FILTER or LOT_SIZE, or a
                filter value is not a non-negative number.
        """
        try:
            entry = next(s for s in doc["symbols"] if s.get("symbol") == symbol)
            filters = {f["filterType"]: f for f in entry.get("filters", ())}
        except StopIteration:
            raise DataError(f"exchangeInfo does not list {symbol}", field="symbols") from None
        except (KeyError, TypeError, AttributeError) as exc:
            raise DataError(f"unexpected exchangeInfo shape: {exc!r}", field="symbols") from None
        if "PRICE_FILTER" not in filters or "LOT_SIZE" not in filters:
            raise DataError(f"{symbol}: no PRICE_FILTER or LOT_SIZE filter", field="filters")
        price = filters["PRICE_FILTER"]
        lot = filters["LOT_SIZE"]
        market = filters.get("MARKET_LOT_SIZE")
        min_notional = max_notional = None
        min_market = max_market = False
        if "NOTIONAL" in filters:
            f = filters["NOTIONAL"]
            min_notional = _dec(f, "minNotional")
            max_notional = _dec(f, "maxNotional") or None
            min_market = bool(f.get("applyMinToMarket", False))
            max_market = bool(f.get("applyMaxToMarket", False))
        elif "MIN_NOTIONAL" in filters:
            f = filters["MIN_NOTIONAL"]
            min_notional = _dec(f, "minNotional")
            min_market = bool(f.get("applyToMarket", False))
        return cls(
            symbol=symbol,
            status=str(entry.get("status", "")),
            tick_size=_dec(price, "tickSize"),
            min_price=_dec(price, "minPrice"),
            max_price=_dec(price, "maxPrice"),
            lot=LotRule(_dec(lot, "minQty"), _dec(lot, "maxQty"), _dec(lot, "stepSize")),
            market_lot=None
            if market is None
            else LotRule(_dec(market, "minQty"), _dec(market, "maxQty"), _dec(market, "stepSize")),
            min_notional=min_notional or None,
            max_notional=max_notional,
            min_notional_market=min_market,
            max_notional_market=max_market,
            order_types=frozenset(str(t) for t in entry.get("orderTypes", ())),
        )

    def check(self, req: OrderRequest, ref_price: Decimal | None = None) -> str | None:
        """Why the venue would refuse `req`, as its message (None when it passes).

        Cancels pass (they carry no price or quantity). `ref_price` stands in for the
        price of a market order in the notional rule (skipped without it).
        """
        if req.kind in ("cancel", "cancel_all"):
            return None
        if req.symbol != self.symbol:
            return f"filters of {self.symbol} asked about {req.symbol}"
        if self.status and self.status != "TRADING":
            return "Market is closed."
        otype = "LIMIT_MAKER" if req.post_only else req.type.upper()
        if self.order_types and otype not in self.order_types:
            return "Unsupported order combination"
        qty = req.qty
        assert qty is not None  # OrderRequest guarantees it for new and amend
        price = req.price
        if req.type == "limit":
            assert price is not None
            if self.min_price and price < self.min_price:
                return "Filter failure: PRICE_FILTER"
            if self.max_price and price > self.max_price:
                return "Filter failure: PRICE_FILTER"
            if self.tick_size and price % self.tick_size != 0:
                return "Filter failure: PRICE_FILTER"
        if self.lot.violated(qty):
            return "Filter failure: LOT_SIZE"
        market = req.type == "market"
        if market and self.market_lot is not None and self.market_lot.violated(qty):
            return "Filter failure: MARKET_LOT_SIZE"
        ref = ref_price if market else price
        if ref is None:
            return None
        notional = ref * qty
        if self.min_notional and (not market or self.min_notional_market):
            if notional < self.min_notional:
                return "Filter failure: NOTIONAL"
        if self.max_notional and (not market or self.max_notional_market):
            if notional > self.max_notional:
                return "Filter failure: NOTIONAL"
        return None


def filters_from_exchange_info(doc: Mapping[str, Any]) -> dict[str, VenueFilters]:
    """The filters of every symbol an exchangeInfo document lists, by symbol.

    Raises:
        DataError: as `VenueFilters.from_exchange_info`.
    """
    try:
        names = [str(s["symbol"]) for s in doc["symbols"]]
    except (KeyError, TypeError) as exc:
        raise DataError(f"unexpected exchangeInfo shape: {exc!r}", field="symbols") from None
    return {name: VenueFilters.from_exchange_info(doc, name) for name in names}
