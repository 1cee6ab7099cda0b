"""Shared by the live-session tests: a sandbox that checks the journal, a session factory."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from adapters.live.order_journal import replay as replay_journal
from adapters.live.order_records import Intent
from adapters.live.sandbox_auth import SandboxAccount
from adapters.live.sandbox_exec import SandboxVenue
from adapters.live.sandbox_futures_exec import SandboxFuturesVenue
from adapters.live.sandbox_replay import Replay
from adapters.live.session import LiveSession, SessionOptions
from adapters.live.session_env import endpoints_for
from adapters.live.signing import HmacSha256Signer
from adapters.live.ws_venue import WsConfig
from engine.book import book_snapshot
from engine.config import EngineConfig
from engine.state import PI_POS
from engine.strategy import load_strategy_class
from tests.adapters.live.helpers import eventually
from tests.adapters.live.leaks import API_KEY, API_SECRET

SYMBOL = "BTCUSDT"
STRATEGY = Path(__file__).with_name("touch_strategy.py")


def touch_trader() -> type:
    """The shared test strategy (tests/adapters/live/touch_strategy.py)."""
    return load_strategy_class(str(STRATEGY))


class CheckedVenue(SandboxVenue):
    """The sandbox, noting for every order.place its client id and whether the session's
    journal already held the order's intent when the request arrived."""

    def __init__(self, replay: Replay, **kw: Any) -> None:
        kw.setdefault("account", SandboxAccount(API_KEY, secret=API_SECRET))
        super().__init__(replay, **kw)
        self.journal_path: Path | None = None
        self.placed: list[str] = []
        self.journaled_first: list[bool] = []

    def _place_checked(self, session: Any, p: dict, frames: list[dict]) -> Any:
        cid = str(p.get("newClientOrderId"))
        self.placed.append(cid)
        if self.journal_path is not None:
            records = replay_journal(self.journal_path).records
            self.journaled_first.append(
                any(isinstance(r, Intent) and r.client_id == cid for r in records)
            )
        return SandboxVenue._place(self, session, p, frames)

    _METHODS = {**SandboxVenue._METHODS, "order.place": _place_checked}

    def place_counts(self) -> Counter[str]:
        """order.place requests per client id."""
        return Counter(self.placed)


def futures_session_for(
    sb: SandboxFuturesVenue,
    journal: Path,
    params: dict[str, Any],
    *,
    prefix: str = "t",
    timeout: float = 2.0,
    **options: Any,
) -> LiveSession:
    """A LiveSession on USD-M futures trading the shared strategy against the futures
    sandbox (`sb` built with the test account); `options`: more SessionOptions."""
    return LiveSession.for_venue(
        endpoints_for(sb.ws_url, "binance-usdm"),
        [SYMBOL],
        api_key=API_KEY,
        signer=HmacSha256Signer(API_SECRET),
        md_config=WsConfig(backoff_initial=0.05, backoff_cap=0.1, seed=3),
        exec_config=WsConfig(
            request_timeout=timeout, backoff_initial=0.05, backoff_cap=0.1, seed=7
        ),
        resolve_after=0.2,
        strategy_cls=touch_trader(),
        instances=[params],
        journal_path=journal,
        options=SessionOptions(
            session_prefix=prefix, cancel_timeout=2.0, ready_timeout=10.0, **options
        ),
    )


def session_for(
    sb: CheckedVenue,
    journal: Path,
    params: dict[str, Any],
    *,
    timeout: float = 2.0,
    prefix: str = "t",
    config: EngineConfig | None = None,
    resolve_after: float = 0.2,
    **options: Any,
) -> LiveSession:
    """A LiveSession trading the shared strategy against the sandbox; `options`: more
    SessionOptions."""
    sb.journal_path = journal
    return LiveSession.binance_spot(
        endpoints_for(sb.ws_url),
        [SYMBOL],
        api_key=API_KEY,
        signer=HmacSha256Signer(API_SECRET),
        md_config=WsConfig(backoff_initial=0.05, backoff_cap=0.1, seed=3),
        exec_config=WsConfig(
            request_timeout=timeout, backoff_initial=0.05, backoff_cap=0.1, seed=7
        ),
        resolve_after=resolve_after,
        strategy_cls=touch_trader(),
        instances=[params],
        config=config,
        journal_path=journal,
        options=SessionOptions(
            session_prefix=prefix, cancel_timeout=2.0, ready_timeout=10.0, **options
        ),
    )


async def done(session: LiveSession, timeout: float = 10.0) -> None:
    """Until the strategy finished its round trips and nothing is in flight."""
    eng = session.engine
    assert eng is not None

    def finished() -> bool:
        return (
            int(eng.rows[0]["phase"]) == 4
            and not session.working_orders()
            and session.orders is not None
            and not session.orders.unknown
        )

    await eventually(finished, timeout, "the strategy's round trips")


def position(session: LiveSession) -> int:
    """The session's net position in lots (every portfolio row)."""
    assert session.engine is not None
    return int(session.engine.state.pi[:, 0, PI_POS].sum())


def sandbox_position(sb: SandboxVenue) -> int:
    """The sandbox account's net position in lots (its engine trades on the manual row)."""
    return int(sb.matcher.engine.state.pi[:, 0, PI_POS].sum())


def top_of_book(book: Any, inst: int, depth: int = 10) -> tuple[list, list]:
    """Best `depth` (price, size) levels a side, best first."""
    snap = book_snapshot(book, inst, depth)
    return snap["bids"], snap["asks"]


def sandbox_top(sb: SandboxVenue, depth: int = 10) -> tuple[list, list]:
    """The sandbox's book, best `depth` levels a side in ticks and lots, best first."""
    _, inst = sb.matcher.insts[SYMBOL]
    book = sb.book(SYMBOL)
    bids = sorted(book.bids, reverse=True)[:depth]
    asks = sorted(book.asks)[:depth]

    def lv(side: dict, prices: list) -> list:
        return [(inst.price_to_ticks(p), inst.size_to_lots(side[p][1])) for p in prices]

    return lv(book.bids, bids), lv(book.asks, asks)


def warm_up_engine() -> None:
    """Compile what a session and the sandbox run (the shared strategy's live loop, the
    sandbox's strategy-less engine) before any test starts the clock: on a cold numba cache
    that takes minutes, and a session compiling while the sandbox replays in real time
    would miss the market it is tested against."""
    from decimal import Decimal

    import numpy as np

    from engine.data.stream import EventStream
    from engine.events import EVENT_DTYPE, FLAG_LAST, KIND_BOOK_DELTA, SIDE_SELL
    from engine.instruments import Instrument, InstrumentRegistry
    from engine.live import LiveEngine
    from engine.runner import Engine

    reg = InstrumentRegistry([Instrument(SYMBOL, "binance", Decimal("0.01"), Decimal("0.00001"))])
    rows = np.zeros(2, EVENT_DTYPE)
    rows["ts_local"] = rows["ts_exch"] = [1, 2]
    rows["kind"], rows["side"], rows["price"], rows["flags"] = (
        KIND_BOOK_DELTA,
        SIDE_SELL,
        10**9,
        FLAG_LAST,
    )
    live = LiveEngine(reg, touch_trader(), [{}])
    live.push_events(rows)
    live.step_until(3)
    live.finish()
    plain = Engine(EventStream(rows, reg))
    plain.run()
    plain.finish()
