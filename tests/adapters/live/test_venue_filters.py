"""Symbol filters from a realistic exchangeInfo document, checked before an order is sent."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from adapters.live.exec_events import OrderRequest
from adapters.live.venue_filters import VenueFilters, filters_from_exchange_info
from engine.errors import DataError

# The shape of GET /api/v3/exchangeInfo?symbol=BTCUSDT (values as Binance publishes them,
# filters in Binance's order, including ones the local check leaves to the venue).
EXCHANGE_INFO = {
    "timezone": "UTC",
    "serverTime": 1723161254206,
    "rateLimits": [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
        {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
        {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
    ],
    "exchangeFilters": [],
    "symbols": [
        {
            "symbol": "BTCUSDT",
            "status": "TRADING",
            "baseAsset": "BTC",
            "baseAssetPrecision": 8,
            "quoteAsset": "USDT",
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": [
                "LIMIT",
                "LIMIT_MAKER",
                "MARKET",
                "STOP_LOSS",
                "STOP_LOSS_LIMIT",
                "TAKE_PROFIT",
                "TAKE_PROFIT_LIMIT",
            ],
            "icebergAllowed": True,
            "ocoAllowed": True,
            "otoAllowed": True,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": True,
            "cancelReplaceAllowed": True,
            "allowAmend": False,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": True,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": "0.01000000",
                    "maxPrice": "1000000.00000000",
                    "tickSize": "0.01000000",
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": "0.00001000",
                    "maxQty": "9000.00000000",
                    "stepSize": "0.00001000",
                },
                {"filterType": "ICEBERG_PARTS", "limit": 10},
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": "0.00000000",
                    "maxQty": "83.51426011",
                    "stepSize": "0.00000000",
                },
                {
                    "filterType": "TRAILING_DELTA",
                    "minTrailingAboveDelta": 10,
                    "maxTrailingAboveDelta": 2000,
                    "minTrailingBelowDelta": 10,
                    "maxTrailingBelowDelta": 2000,
                },
                {
                    "filterType": "PERCENT_PRICE_BY_SIDE",
                    "bidMultiplierUp": "5",
                    "bidMultiplierDown": "0.2",
                    "askMultiplierUp": "5",
                    "askMultiplierDown": "0.2",
                    "avgPriceMins": 5,
                },
                {
                    "filterType": "NOTIONAL",
                    "minNotional": "5.00000000",
                    "applyMinToMarket": True,
                    "maxNotional": "9000000.00000000",
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                },
                {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
            ],
            "permissions": [],
            "permissionSets": [["SPOT", "MARGIN"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        },
        {
            "symbol": "BNBBTC",
            "status": "BREAK",
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": "0.00000100",
                    "maxPrice": "100000.00000000",
                    "tickSize": "0.00000100",
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": "0.00100000",
                    "maxQty": "100000.00000000",
                    "stepSize": "0.00100000",
                },
                {
                    "filterType": "MIN_NOTIONAL",
                    "minNotional": "0.00010000",
                    "applyToMarket": True,
                    "avgPriceMins": 5,
                },
            ],
        },
    ],
}


@pytest.fixture
def btc() -> VenueFilters:
    return VenueFilters.from_exchange_info(EXCHANGE_INFO, "BTCUSDT")


def limit(price: str, qty: str, **kw) -> OrderRequest:
    return OrderRequest("new", "t-1", "BTCUSDT", side="buy", price=D(price), qty=D(qty), **kw)


def test_reads_the_filters(btc: VenueFilters) -> None:
    assert btc.tick_size == D("0.01") and btc.min_price == D("0.01")
    assert btc.lot.step_size == D("0.00001") and btc.lot.max_qty == D("9000")
    assert btc.market_lot is not None and btc.market_lot.max_qty == D("83.51426011")
    assert btc.min_notional == D("5") and btc.max_notional == D("9000000")
    assert btc.min_notional_market and not btc.max_notional_market
    assert "LIMIT_MAKER" in btc.order_types


def test_a_valid_order_passes(btc: VenueFilters) -> None:
    assert btc.check(limit("61837.63", "0.001")) is None
    assert btc.check(limit("61837.60", "0.00100", post_only=True)) is None


@pytest.mark.parametrize(
    ("price", "qty", "why"),
    [
        ("61837.635", "0.001", "Filter failure: PRICE_FILTER"),  # off tick
        ("0.001", "10", "Filter failure: PRICE_FILTER"),  # below minPrice
        ("1000000.01", "0.001", "Filter failure: PRICE_FILTER"),  # above maxPrice
        ("61837.63", "0.000001", "Filter failure: LOT_SIZE"),  # below minQty and off step
        ("61837.63", "0.001001", "Filter failure: LOT_SIZE"),  # off step
        ("1.00", "9000.00001", "Filter failure: LOT_SIZE"),  # above maxQty
        ("61837.63", "0.00005", "Filter failure: NOTIONAL"),  # 3.09 < 5
        ("1000000.00", "9.5", "Filter failure: NOTIONAL"),  # 9.5M > 9M
    ],
)
def test_refusals_name_the_filter(btc: VenueFilters, price: str, qty: str, why: str) -> None:
    assert btc.check(limit(price, qty)) == why


def test_market_orders(btc: VenueFilters) -> None:
    market = OrderRequest("new", "m-1", "BTCUSDT", side="sell", type="market", qty=D("84"))
    assert btc.check(market) == "Filter failure: MARKET_LOT_SIZE"
    small = OrderRequest("new", "m-2", "BTCUSDT", side="sell", type="market", qty=D("0.00001"))
    assert btc.check(small) is None  # no reference price: notional left to the venue
    assert btc.check(small, ref_price=D("60000")) == "Filter failure: NOTIONAL"
    big = OrderRequest("new", "m-3", "BTCUSDT", side="sell", type="market", qty=D("80"))
    assert btc.check(big, ref_price=D("200000")) is None  # applyMaxToMarket is false


def test_cancels_pass_and_other_symbols_are_named(btc: VenueFilters) -> None:
    assert btc.check(OrderRequest("cancel", "c-1", "BTCUSDT", orig_client_id="t-1")) is None
    other = OrderRequest("new", "t-2", "ETHUSDT", side="buy", price=D("1"), qty=D("1"))
    assert "ETHUSDT" in (btc.check(other) or "")


def test_the_older_min_notional_and_a_closed_market() -> None:
    bnb = VenueFilters.from_exchange_info(EXCHANGE_INFO, "BNBBTC")
    assert bnb.min_notional == D("0.0001") and bnb.min_notional_market
    req = OrderRequest("new", "b-1", "BNBBTC", side="buy", price=D("0.01"), qty=D("1"))
    assert bnb.check(req) == "Market is closed."


def test_all_symbols_and_bad_documents() -> None:
    assert set(filters_from_exchange_info(EXCHANGE_INFO)) == {"BTCUSDT", "BNBBTC"}
    with pytest.raises(DataError, match="does not list ETHUSDT"):
        VenueFilters.from_exchange_info(EXCHANGE_INFO, "ETHUSDT")
    no_lot = {"symbols": [{"symbol": "X", "filters": [{"filterType": "PRICE_FILTER"}]}]}
    with pytest.raises(DataError, match="no PRICE_FILTER or LOT_SIZE"):
        VenueFilters.from_exchange_info(no_lot, "X")
    bad = {
        "symbols": [
            {
                "symbol": "X",
                "filters": [
                    {"filterType": "PRICE_FILTER", "tickSize": "abc"},
                    {"filterType": "LOT_SIZE", "stepSize": "1"},
                ],
            }
        ]
    }
    with pytest.raises(DataError, match="tickSize"):
        VenueFilters.from_exchange_info(bad, "X")
    with pytest.raises(DataError, match="unexpected exchangeInfo shape"):
        VenueFilters.from_exchange_info({"symbols": 5}, "X")
