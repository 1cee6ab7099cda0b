"""`cockpit live`: run a strategy against a venue, headless, until Ctrl-C.

    cockpit sandbox --data ../shared/data/binance-ws/spot_btcusdt_20240808.gz &
    cockpit live --url ws://127.0.0.1:PORT --symbol BTCUSDT \
        --strategy tests/adapters/live/touch_strategy.py --param qty=100

`--venue` picks the API (binance-spot, the default, or binance-usdm: USD-M futures, whose
positions are read from the venue at the start and booked into the engine) and the URL the
world (adapters/live/session_env.py): loopback is the sandbox (`cockpit sandbox --venue`
the same), Binance's testnet is the testnet, Binance (or no --url) is the real venue,
which also needs `--confirm-live`. A status line is printed every `--status-every`
seconds. Ctrl-C (or SIGTERM, or `--duration`) halts the strategy, cancels every order the
session placed (and those of an earlier run found open at the start), waits for the
venue, then exits. With `--flatten-at-stop` it first closes the engine's positions (market
orders, reduce-only on USD-M) and waits for their fills (`--flatten-timeout`).

USD-M: the engine's position is compared with the venue's all along; a difference that
lasts longer than `--drift-grace` seconds is a POSITION DRIFT alert (status line, venue
bar, journal) and halts trading, except in the sandbox (`--halt-on-drift` /
`--no-halt-on-drift` decide).

Credentials come from `--key-file`, `COCKPIT_BINANCE_KEY_FILE` or `COCKPIT_BINANCE_API_KEY`
with `..._API_SECRET` / `..._PRIVATE_KEY_FILE` (adapters/live/secrets.py); they are never
printed or logged. Against the sandbox with none configured, the sandbox's own test key is
used, and the command says so.

Every order is journaled (fsync) before it is sent. At the start the journal is reconciled
with the venue; if the venue differs (an order the journal does not know, a state that
cannot follow from the journal), the differences are printed and the command stops unless
`--accept-reconcile` says they were read; with `--ui` the cockpit shows them instead, and
trading stays halted until they are acknowledged there (`y`).

With `--ui` the cockpit opens on the session (cockpit/live_bridge.py): the replay's panes,
plus a venue bar (environment banner, connections, unknown orders). Headless stays the
default: a run under a supervisor or in a script must not change behaviour because a
terminal happens to be attached. Quitting the cockpit, SIGTERM or SIGHUP stop the
session as Ctrl-C does headless.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from adapters.live import event_loop
from engine.errors import CockpitError, UsageError

VENUES = ("binance-spot", "binance-usdm")
"""`session_env.VENUES` (kept here so building the parser imports no adapter)."""


def add_parser(subparsers: Any) -> None:
    """Add the `live` subcommand."""
    p = subparsers.add_parser(
        "live",
        help="trade a strategy on the sandbox, the testnet or a real venue (headless, or --ui)",
        description=(
            "Run a strategy file live: market data and orders over WebSocket, every order "
            "journaled before it is sent, reconciled with the venue at the start. Ctrl-C "
            "cancels every order and exits."
        ),
    )
    p.add_argument(
        "--venue",
        choices=VENUES,
        default="binance-spot",
        help="venue API: binance-spot (default) or binance-usdm (USD-M futures)",
    )
    p.add_argument(
        "--url",
        help="venue: ws://127.0.0.1:PORT (the sandbox), Binance's spot or USD-M testnet, or "
        "Binance (the default; real money, needs --confirm-live)",
    )
    p.add_argument("--symbol", action="append", required=True, help="symbol (repeatable)")
    p.add_argument(
        "--strategy", required=True, metavar="STRATEGY.py", help="file with one Strategy"
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a strategy parameter (repeatable)",
    )
    p.add_argument("--params-file", metavar="FILE.json", help="parameters as JSON")
    p.add_argument(
        "--journal",
        metavar="FILE",
        help="order journal (default: orders-<venue>-<environment>.journal here)",
    )
    p.add_argument("--key-file", metavar="FILE", help="API key file (owner-only, chmod 600)")
    p.add_argument("--prefix", default="ck", help="client order id prefix (default ck)")
    p.add_argument(
        "--risk", metavar="SPEC", help="pre-trade limits, as for backtest (max_position=...)"
    )
    p.add_argument("--fees", metavar="SPEC", help="fee rates for the PnL, maker=...,taker=...")
    p.add_argument("--status-every", type=float, default=5.0, help="seconds between status lines")
    p.add_argument(
        "--duration", type=float, default=None, help="stop after this many seconds (as Ctrl-C)"
    )
    p.add_argument(
        "--accept-reconcile",
        action="store_true",
        help="trade even though the start-up reconciliation found differences (printed)",
    )
    p.add_argument(
        "--confirm-live", action="store_true", help="yes, trade on the real venue (real money)"
    )
    p.add_argument(
        "--busy-poll",
        action="store_true",
        help="keep polling the sockets instead of sleeping between messages: a core at 100%%, "
        "a faster answer to each tick",
    )
    p.add_argument(
        "--flatten-at-stop",
        action="store_true",
        help="at the stop, close the engine's positions first (market orders; reduce-only "
        "on USD-M) and wait for the fills",
    )
    p.add_argument(
        "--flatten-timeout",
        type=float,
        default=10.0,
        help="seconds to wait for the flatten's fills at the stop (default 10)",
    )
    p.add_argument(
        "--drift-grace",
        type=float,
        default=2.0,
        help="USD-M: seconds the engine's position may differ from the venue's before it is "
        "an alert (default 2)",
    )
    p.add_argument(
        "--halt-on-drift",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="USD-M: a position drift alert halts trading (default: yes, except in the sandbox)",
    )
    p.add_argument("--verbose", action="store_true", help="log connection events to stderr")
    p.add_argument(
        "--ui",
        action="store_true",
        help="open the cockpit (ladder, orders, venue status) on the session instead of "
        "printing status lines; logs go to JOURNAL.log",
    )
    p.add_argument("--theme", default="dark", help="with --ui: dark, light or colorblind")


def _config(args: argparse.Namespace):
    from cockpit.cli_backtest import config_from
    from engine.config import EngineConfig

    ns = argparse.Namespace(
        latency=None,
        fees=args.fees,
        queue_model=None,
        equity_interval=None,
        risk=args.risk,
        risk_rule=None,
        risk_rule_params=None,
    )
    cfg: EngineConfig = config_from(ns)
    return cfg


def _credentials(args: argparse.Namespace, environment: str):
    """(API key, signer, a line saying which key is used, the Credentials or None)."""
    from adapters.live.secrets import env_names, load_credentials, mask_key
    from adapters.live.session_env import SANDBOX_API_KEY, SANDBOX_API_SECRET
    from adapters.live.signing import HmacSha256Signer, signer_for

    configured = args.key_file is not None or any(
        os.environ.get(name, "").strip() for name in env_names("binance").values()
    )
    if environment == "sandbox" and not configured:
        return (
            SANDBOX_API_KEY,
            HmacSha256Signer(SANDBOX_API_SECRET),
            "no API key configured: using the sandbox's own test key",
            None,
        )
    creds = load_credentials("binance", key_file=args.key_file)
    note = f"API key {mask_key(creds.api_key)} ({creds.kind}, from {creds.source})"
    return creds.api_key, signer_for(creds), note, creds


def _logging(verbose: bool, creds: Any, path: Path | None = None) -> logging.Handler:
    """Log to stderr, or to `path` (the TUI owns the terminal), secrets redacted."""
    from adapters.live.secrets import RedactingFilter

    handler: logging.Handler = (
        logging.StreamHandler(sys.stderr) if path is None else logging.FileHandler(path)
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(creds))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("websockets").setLevel(logging.WARNING)  # frames at DEBUG
    return handler


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run `cockpit live`; returns the exit code.

    Raises:
        UsageError, StrategyError, CockpitError: bad input or a venue that did not answer.
    """
    from adapters.live.session_env import endpoints_for
    from cockpit.cli_backtest import instances_from
    from engine.strategy import load_strategy_class

    out = out or sys.stdout
    if not str(args.strategy).endswith(".py"):
        raise UsageError(f"{args.strategy}: a strategy is a Python file (.py)")
    if args.status_every <= 0:
        raise UsageError("--status-every must be positive")
    if args.duration is not None and args.duration <= 0:
        raise UsageError("--duration must be positive")
    if args.flatten_timeout <= 0 or args.drift_grace <= 0:
        raise UsageError("--flatten-timeout and --drift-grace must be positive")
    endpoints = endpoints_for(args.url, args.venue)
    if endpoints.environment == "live" and not args.confirm_live:
        raise UsageError(
            "this trades on the real Binance with real money: add --confirm-live (or give "
            "--url ws://127.0.0.1:PORT for the sandbox, or the testnet's URL)"
        )
    symbols = [s.upper() for s in args.symbol]
    cls = load_strategy_class(args.strategy)
    instances = instances_from(args, cls)
    config = _config(args)
    api_key, signer, key_note, creds = _credentials(args, endpoints.environment)
    journal = Path(args.journal or f"orders-{args.venue}-{endpoints.environment}.journal")
    ui = bool(getattr(args, "ui", False))
    guard = _stop_guard() if ui else None  # from here on a signal is a clean stop
    handler = _logging(
        args.verbose, creds, journal.with_name(journal.name + ".log") if ui else None
    )
    try:
        out.write(
            f"cockpit live: {endpoints.environment.upper()} {args.venue} {', '.join(symbols)}\n"
            f"  market data {endpoints.md_ws}  orders {endpoints.ws_api}"
            + (f"  user data {endpoints.user_ws}" if endpoints.user_ws else "")
            + "\n"
            f"  {key_note}\n  journal {journal}\n"
            f"  strategy {cls.__name__} x {len(instances)}\n"
        )
        out.flush()
        session = _session(
            args, endpoints, symbols, api_key, signer, cls, instances, config, journal
        )
        if ui:
            assert guard is not None
            return _run_ui(args, session, out, guard)
        return event_loop.run(_run(args, session, out))
    finally:
        logging.getLogger().removeHandler(handler)
        if guard is not None:
            guard.restore()


def _session(
    args: argparse.Namespace,
    endpoints: Any,
    symbols: list[str],
    api_key: str,
    signer: Any,
    cls: type,
    instances: list[dict[str, Any]],
    config: Any,
    journal: Path,
) -> Any:
    """The LiveSession the arguments describe (not started)."""
    from adapters.live.session import LiveSession, SessionOptions

    return LiveSession.for_venue(
        endpoints,
        symbols,
        api_key=api_key,
        signer=signer,
        strategy_cls=cls,
        instances=instances,
        config=config,
        journal_path=journal,
        options=SessionOptions(
            session_prefix=args.prefix,
            busy_poll=args.busy_poll,
            flatten_at_stop=args.flatten_at_stop,
            flatten_timeout=args.flatten_timeout,
            drift_grace=args.drift_grace,
            halt_on_drift=args.halt_on_drift,
        ),
    )


async def _start(args: argparse.Namespace, session: Any, out: TextIO, *, ui: bool = False) -> None:
    """Start the session and settle the reconciliation (print it; trade only if accepted).

    With `ui`, a diff not accepted on the command line leaves the session halted: the
    cockpit shows it and only its `y` lets the strategies trade.

    Raises:
        CockpitError: the venue differs from the journal and --accept-reconcile is absent
            (the session is stopped).
    """
    await session.start()
    report = session.reconcile_report
    if report is not None and report.lines():
        out.write("reconciliation with the venue:\n")
        for line in report.lines():
            out.write(f"  {line}\n")
    if session.futures:
        held = ", ".join(
            f"{sym} {qty.normalize():+f}" for sym, (qty, _) in session.venue_positions().items()
        )
        out.write(f"the venue's positions: {held or 'flat'} (booked into the engine)\n")
    elif report is not None and report.journal_positions:
        held = ", ".join(f"{sym} {qty.normalize():+f}" for sym, qty in report.journal_positions)
        out.write(
            f"the journal's fills add up to {held}; the engine starts flat (it does not "
            "load positions from an earlier run)\n"
        )
    if report is not None and report.halts:
        if ui and not args.accept_reconcile:
            out.write("  trading halted: acknowledge the differences in the cockpit\n")
            return
        if not args.accept_reconcile:
            await session.stop()
            raise CockpitError(
                "the venue differs from the order journal (listed above); trading was not "
                "started. Check them, then rerun with --accept-reconcile"
            )
        session.acknowledge_reconcile()
        out.write("  accepted (--accept-reconcile): trading\n")


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
"""Under --ui these stop the session as `q` does (Ctrl-C in the terminal is a key)."""


def _stop_guard() -> Any:
    """Process-level handlers for STOP_SIGNALS until the session has stopped (--ui)."""
    from cockpit.live_signals import StopGuard

    return StopGuard(STOP_SIGNALS).install()


def _run_ui(args: argparse.Namespace, session: Any, out: TextIO, guard: Any) -> int:
    """The cockpit on a live session: the session on its own loop thread, the app here.

    Quitting the app, --duration, SIGTERM, SIGHUP or SIGINT stop the session: halt, cancel
    everything, wait. A signal during the start-up (connecting, reconciling) cancels the
    start instead: nothing was traded, the session closes as a failed start does
    (cockpit/live_signals.py). A second signal while the stop runs is ignored (as
    headless), and a terminal gone with SIGHUP does not keep the cancels from being sent.
    """
    from cockpit.app import CockpitApp
    from cockpit.bindings import load_keymap
    from cockpit.live_bridge import LiveBridge, SessionThread

    with guard:  # installed by run() before the first line was printed
        runner = SessionThread()
        try:
            started = guard.run(runner, _start(args, session, out, ui=True))
        except BaseException:
            runner.run(session.stop())  # a no-op when the start closed it already
            runner.close()
            raise
        if not started:
            runner.run(session.stop())
            runner.close()
            assert guard.received is not None
            _say(out, f"{guard.received.name} during the start-up: stopped, nothing traded\n")
            return 0
        _say(out, "")
        timer: threading.Timer | None = None
        try:
            bridge = LiveBridge(session, runner)
            app = CockpitApp(
                bridge,
                theme=args.theme,
                keymap=load_keymap(None),
                stop_signals=STOP_SIGNALS,
                stop_pending=guard.pending,
            )
            if args.duration is not None:  # as if the user quit
                timer = threading.Timer(args.duration, lambda: app.call_from_thread(app.exit, 0))
                timer.daemon = True
                timer.start()
            if guard.received is None:
                app.run()
        finally:
            previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in STOP_SIGNALS}
            try:
                if timer is not None:
                    timer.cancel()
                _say(out, _stopping(args))
                runner.run(session.stop())
                runner.close()
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
        return _final(session, out)


def _say(out: TextIO, text: str) -> None:
    """Write to the terminal, which may be gone (SIGHUP): the stop must go on regardless."""
    try:
        out.write(text)
        out.flush()
    except OSError:
        pass


def _stopping(args: argparse.Namespace) -> str:
    if args.flatten_at_stop:
        return (
            "stopping: closing the positions, halting the strategy and cancelling every order...\n"
        )
    return "stopping: halting the strategy and cancelling every order...\n"


def _final(session: Any, out: TextIO) -> int:
    status = session.status()
    _say(out, status.line() + "\n")
    if session.options.flatten_at_stop:
        mine = [f"{s}={q.normalize():f}" for s, q in session.engine_positions().items() if q]
        venue = [f"{s}={q.normalize():f}" for s, (q, _) in session.venue_positions().items() if q]
        if mine or venue:
            _say(
                out,
                f"WARNING: not flat after --flatten-at-stop (engine {' '.join(mine) or 'flat'}, "
                f"venue {' '.join(venue) or 'flat'}); check the venue\n",
            )
    if status.working or status.inherited:
        _say(
            out,
            f"WARNING: {status.working + len(status.inherited)} order(s) not confirmed "
            "canceled; check the venue\n",
        )
    return 0


async def _run(args: argparse.Namespace, session: Any, out: TextIO) -> int:
    """Headless: start, a status line every --status-every s, stop on SIGINT / SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await _start(args, session, out)
    t_end = None if args.duration is None else time.monotonic() + args.duration
    try:
        while not stop.is_set():
            wait = args.status_every
            if t_end is not None:
                wait = min(wait, max(t_end - time.monotonic(), 0.0))
            try:
                await asyncio.wait_for(stop.wait(), wait)
            except TimeoutError:
                pass
            out.write(session.status().line() + "\n")
            out.flush()
            if t_end is not None and time.monotonic() >= t_end:
                break
    finally:
        _say(out, _stopping(args))
        await session.stop()
    return _final(session, out)
