"""A live session: one venue's market data and execution wired to the engine, on asyncio.

    session = LiveSession.for_venue(endpoints_for("ws://127.0.0.1:8765", "binance-usdm"),
                                    ["BTCUSDT"], api_key=key, signer=signer,
                                    strategy_cls=MyStrategy, journal_path="orders.journal")
    await session.start()          # journal, instruments, engine, reconciliation, feeds
    print(session.status().line())
    await session.stop()           # halt, cancel every order, wait for the venue, close
    # stop(flatten=True) (or SessionOptions(flatten_at_stop=True)) first closes the positions

The flow (one event loop, one thread):

- Market data: the client's rows (stamped with the local clock on arrival) are appended to
  `LiveEngine.push_events`; each book's sync state goes to `set_in_sync`. A change of state
  is applied in band: the engine first processes every row received before it, so the rows
  before a gap are traded under "in sync" and the rows of a new snapshot are the first the
  strategy sees with orders allowed again.
- Stepping: a task runs `step_until(time.time_ns())` after every batch of messages or
  execution events, and on a timer (at the engine's next scheduled event, timers included,
  at most `step_interval` apart).
- After each step, `take_outbox()` -> `LiveOrders.prepare` (client ids, Decimals, the
  venue's filters: a refused order becomes an engine reject) -> the step's intents in ONE
  `OrderJournal.append_batch` (fsync) -> only then are they handed to the execution client.
  If the journal fails, nothing is sent, the orders are rejected in the engine and trading
  is halted.
- Execution events -> `LiveOrders.on_exec` (engine reports) and the journal (replies and
  events, appended unsynced before the next intents; a crash loses at most those, and the
  venue is asked again at the restart).
- Start and restart: `session_reconcile.reconcile` compares the journal (empty or not)
  with the venue before the market data starts; a mismatch or an order the journal does not
  know halts trading (`CMD_HALT`) until `acknowledge_reconcile()` (`CMD_RESUME`). Client
  ids continue after the highest in the journal. Positions (`session_positions`): spot
  carries what the journal's fills left open; USD-M books the venue's (positionRisk, read
  first), and a difference from the journal is one more mismatch.
- USD-M (`session_venues`): books and quotes on the `/public` route, trades on `/market`
  (a second market data client, `status().more_market_data`), amends as `order.modify` in
  place, funding fees journaled (`funding_fee` markers) and summed in `status().funding`.
  The engine's position is compared with the venue's on a timer (`check_drift`): a
  difference lasting `options.drift_grace` is an alert (`status().drift`, a
  `position_drift` marker) and halts trading unless `options.halt_on_drift` says not.
- Orders an earlier run left open (inherited) are cancelled at the stop; their fills until
  then are booked into the engine's manual row (`session_inherited.book_inherited_fill`).

`status()` is a snapshot for a UI; `timings` holds the hot path's section times.

The class is assembled from one part per concern, each a mixin in its own module sharing
the state `LiveSession.__init__` creates (none is used alone); every part logs under this
module's name:

- `session_lifecycle.SessionLifecycle`: `start` (set-up), `stop`, `flatten_positions`,
  `cancel_inherited`, `abort`, closing.
- `session_stepping.SessionStepping`: the stepping task and timer, `_cycle`, `_dispatch`
  (journal, then send), `_send`, failures (`_fail`), journaling the venue's answers.
- `session_market.MarketDataIntake`: `_on_md_rows`, book sync in band, `in_sync`, mids.
- `session_execution.ExecutionHandling`: execution events (inherited orders too), the
  reconciliation at start, `venue_positions`, funding fees, position drift (`check_drift`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from adapters.live.binance_futures_exec import BinanceFuturesExec
from adapters.live.binance_spot_exec import BinanceSpotExec
from adapters.live.binance_spot_md import BinanceSpotMarketData
from adapters.live.client_ids import ClientIdAllocator
from adapters.live.order_journal import OrderJournal
from adapters.live.order_records import Marker, Record
from adapters.live.session_drift import DriftMonitor
from adapters.live.session_env import Endpoints, Environment
from adapters.live.session_execution import ExecutionHandling
from adapters.live.session_lifecycle import SessionLifecycle
from adapters.live.session_market import MarketDataIntake
from adapters.live.session_orders import LiveOrders
from adapters.live.session_reconcile import ReconcileReport
from adapters.live.session_status import SessionStatus, Timings, build_status
from adapters.live.session_stepping import SessionStepping
from adapters.live.session_venues import binance_spot_clients, binance_usdm_clients
from engine.commands import CMD_RESUME, Command
from engine.config import EngineConfig
from engine.errors import UsageError
from engine.live import LiveEngine
from engine.state import PI_POS

BookListener = Callable[[str, bool], object]
_CLIENT_ARGS = ("api_key", "signer", "md_config", "exec_config", "resolve_after")
"""`for_venue` arguments that go to the venue clients (`session_venues`)."""


@dataclass(frozen=True)
class SessionOptions:
    """How a session behaves; the defaults suit a real venue."""

    session_prefix: str = "ck"
    """Client ids are `<prefix>-<n>` (1-20 of A-Z a-z 0-9 _)."""
    step_interval: float = 0.005
    """Longest time between two engine steps when nothing arrives, seconds."""
    busy_poll: bool = False
    """Keep the event loop polling its sockets instead of sleeping in the kernel between
    messages: a core at 100%, for the wake-up of an idle process (~50-80 us on a virtual
    machine) off every tick's path. For a trading server with a core to spare."""
    step_on_data: bool = True
    """Step the engine in the callback that delivers market data (the strategy answers a
    tick at once); False: on the stepping task's next turn, like every other wake-up."""
    ready_timeout: float = 15.0
    """Seconds to wait for the execution connection at start."""
    cancel_timeout: float = 5.0
    """Seconds `stop()` waits for the venue to confirm the cancels."""
    engine_capacity: int = 1 << 20
    """Rows the engine buffers between steps."""
    flatten_at_stop: bool = False
    """`stop()` first closes the engine's positions (CMD_FLATTEN: market orders, reduce-only
    on futures) and waits for their fills, then cancels and closes."""
    flatten_timeout: float = 10.0
    """Seconds `stop()` waits for the flatten's fills (then it stops regardless)."""
    drift_grace: float = 2.0
    """USD-M: seconds the engine's position may differ from the venue's before that is an
    alert (a fill and the position update arrive in some order)."""
    halt_on_drift: bool | None = None
    """USD-M: a position drift alert also halts trading. None: yes, except in the sandbox
    (whose faults and test hooks move positions on purpose)."""


class LiveSession(SessionLifecycle, SessionStepping, MarketDataIntake, ExecutionHandling):
    """One venue end to end (see the module docstring).

    Args:
        market_data: the market data client (its `on_events` is taken over).
        execution: the execution client (its `on_exec` is taken over).
        extra_market_data: more market data clients whose rows go to the engine too (USD-M's
            `/market` route: trades); same symbols, so the same instrument ids.
        strategy_cls, instances: the strategy and its instances' parameters.
        config: the engine configuration (`live` is forced on).
        journal_path: the order journal (created, or replayed and reconciled).
        environment: sandbox, testnet or live (shown, and written in the journal).
        options: timing and naming (SessionOptions()).
    """

    def __init__(
        self,
        market_data: BinanceSpotMarketData,
        execution: BinanceSpotExec,
        *,
        extra_market_data: Sequence[BinanceSpotMarketData] = (),
        strategy_cls: type | None = None,
        instances: list[dict[str, Any]] | None = None,
        config: EngineConfig | None = None,
        journal_path: str | Path,
        environment: Environment = "sandbox",
        options: SessionOptions | None = None,
    ) -> None:
        self.md = market_data
        self.md_extra = list(extra_market_data)
        self.execution = execution
        self.strategy_cls = strategy_cls
        self.instances = instances
        self.config = config
        self.journal_path = Path(journal_path)
        self.environment = environment
        self.options = options or SessionOptions()
        ClientIdAllocator(self.options.session_prefix)  # validates the prefix now
        self.symbols = list(market_data.symbols)
        self.timings = Timings()
        self.book_listeners: list[BookListener] = []
        """Called with (symbol, in_sync) when a book's sync state changes (in band)."""
        self.engine: LiveEngine | None = None
        self.orders: LiveOrders | None = None
        self.journal: OrderJournal | None = None
        self.reconcile_report: ReconcileReport | None = None
        """The last reconciliation (None when the journal was new)."""
        self.inherited: dict[str, tuple[str, str]] = {}
        """Open orders of an earlier run: venue client id -> (journal client id, symbol)."""
        self.funding: dict[str, Decimal] = {}
        """USD-M funding fees received (+) or paid (-) this session, per asset."""
        self.drift = DriftMonitor(int(self.options.drift_grace * 1e9))
        """USD-M: the engine's position against the venue's (`check_drift`)."""
        self.error = ""
        self._journal_failed = False
        self._inherited_cancels: dict[str, str] = {}
        """Cancel requests of inherited orders: cancel client id -> venue client id."""
        self._inherited_qty: dict[str, Decimal | None] = {}
        """Inherited orders' quantities (venue client id -> qty): filled -> no longer open."""
        self._reconcile_pending: ReconcileReport | None = None
        self._records: list[Record] = []
        self._books: dict[str, int] = {}
        self._in_sync: dict[int, bool] = {}
        self._wake = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._stepper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_now = 0
        self._pushed_at = 0
        self._pushed_ts = 0
        self._step_failed = False
        self._started = False
        self._running = False
        self._closed = False

    @classmethod
    def for_venue(cls, endpoints: Endpoints, symbols: Sequence[str], **kwargs: Any) -> LiveSession:
        """A session on the venue `endpoints` name (`session_env.endpoints_for(url, venue)`):
        Binance spot or USD-M futures, their testnets, or the sandbox.

        Args:
            endpoints: where to connect, and which venue API.
            symbols: e.g. ["BTCUSDT"] (instrument ids follow this order).
            **kwargs: the clients' (`session_venues`: api_key and signer, the account;
                md_config, exec_config, connection timings; resolve_after, seconds before
                an UNKNOWN request is settled by a status query) and LiveSession's
                (strategy_cls, instances, config, journal_path, options).
        """
        usdm = endpoints.venue == "binance-usdm"
        return cls._build(
            binance_usdm_clients if usdm else binance_spot_clients, endpoints, symbols, **kwargs
        )

    @classmethod
    def binance_spot(
        cls, endpoints: Endpoints, symbols: Sequence[str], **kwargs: Any
    ) -> LiveSession:
        """A session on Binance spot, its testnet or the sandbox (arguments: `for_venue`)."""
        return cls._build(binance_spot_clients, endpoints, symbols, **kwargs)

    @classmethod
    def binance_usdm(
        cls, endpoints: Endpoints, symbols: Sequence[str], **kwargs: Any
    ) -> LiveSession:
        """A session on Binance USD-M futures, its testnet or the futures sandbox
        (arguments: `for_venue`)."""
        return cls._build(binance_usdm_clients, endpoints, symbols, **kwargs)

    @classmethod
    def _build(
        cls,
        make: Callable[..., tuple[Any, Any]],
        endpoints: Endpoints,
        symbols: Sequence[str],
        **kwargs: Any,
    ) -> LiveSession:
        client_kw = {k: kwargs.pop(k) for k in _CLIENT_ARGS if k in kwargs}
        md, ex, *extra = make(endpoints, symbols, **client_kw)
        env = endpoints.environment
        return cls(md, ex, extra_market_data=extra, environment=env, **kwargs)

    @property
    def futures(self) -> bool:
        """The venue holds positions (USD-M): they are read at start and booked."""
        return isinstance(self.execution, BinanceFuturesExec)

    async def __aenter__(self) -> LiveSession:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- commands --------------------------------------------------------------------------

    def acknowledge_reconcile(self) -> bool:
        """The user has seen the reconciliation diff: resume trading (CMD_RESUME).

        Returns False when there was nothing to acknowledge.
        """
        report = self._reconcile_pending
        if report is None or self.engine is None or self.journal is None:
            return False
        self._reconcile_pending = None
        self.engine.command(Command(CMD_RESUME))
        self.journal.append(
            Marker("reconcile_acknowledged", time.time_ns(), {"items": len(report.diff)})
        )
        self._wake.set()
        return True

    def command(self, cmd: Command) -> int:
        """Apply an engine command now (manual orders, cancel all, flatten...) and send
        what it asks for."""
        if self.engine is None:
            raise UsageError("the live session is not started")
        out = self.engine.command(cmd)
        self._wake.set()
        return out

    def resolve_unknown(self) -> int:
        """Ask the venue now about every request whose outcome is unknown (the user's
        "reconcile now"), instead of waiting for `resolve_after`; returns how many queries
        were started. The answers arrive as ordinary execution events (`resolved`, then the
        true state). Call it on the session's event loop."""
        if self.orders is None:
            return 0
        return sum(self.execution.resolve_now(cid) for cid in list(self.orders.unknown))

    def working_orders(self) -> list[str]:
        """Client ids of the engine's orders not known to have ended."""
        return [] if self.orders is None else [o.venue_cid for o in self.orders.working()]

    def engine_positions(self) -> dict[str, Decimal]:
        """The engine's net position per symbol (all rows), base quantity."""
        if self.engine is None:
            return {}
        pi, insts = self.engine.state.pi, self.md.instruments
        return {
            sym: insts[iid].lots_to_size(int(pi[:, iid, PI_POS].sum()))
            for sym, iid in self._books.items()
        }

    # -- status ------------------------------------------------------------------------------

    def status(self) -> SessionStatus:
        """A snapshot for a UI or a status line."""
        return build_status(self)
