"""`cockpit sandbox` and `cockpit live` (cockpit/cli_sandbox.py, cockpit/cli_live.py).

The end-to-end test runs `cockpit sandbox` in a subprocess (loopback, an OS-chosen port)
and `cockpit live` in this process against it for a few seconds; the rest are usage errors,
which must exit 2 before any connection is made.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.live.order_journal import replay as replay_journal
from adapters.live.order_state import rebuild
from adapters.live.session_env import SANDBOX_API_SECRET
from cockpit.cli import main
from tests.adapters.live.leaks import scan_files

ROOT = Path(__file__).resolve().parents[2]
STRATEGY = str(ROOT / "tests" / "adapters" / "live" / "touch_strategy.py")
BTC = "binance-ws/spot_btcusdt_20240808.gz"
NO_KEYS = ("COCKPIT_BINANCE_KEY_FILE", "COCKPIT_BINANCE_API_KEY", "COCKPIT_BINANCE_API_SECRET")


@pytest.fixture
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*NO_KEYS, "COCKPIT_BINANCE_PRIVATE_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)


def start_sandbox(data: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "cockpit", "sandbox", "--data", str(data), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # "sandbox venue at ws://127.0.0.1:PORT (...)"
    if not first.startswith("sandbox venue at "):
        proc.kill()
        raise AssertionError(f"sandbox did not start: {first!r} {proc.stderr.read()!r}")
    return proc, first.split()[3]


def test_live_trades_the_sandbox_and_cancels_at_the_end(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_keys: None
) -> None:
    from tests.adapters.live.session_helpers import warm_up_engine

    warm_up_engine()  # compiled before the clock runs (the sandbox loads it from the cache)
    proc, url = start_sandbox(
        shared_data / BTC, "--speed", "5", "--max-messages", "1500", "--port", "0"
    )
    journal = tmp_path / "live.journal"
    try:
        code = main(
            [
                "live",
                "--url", url,
                "--symbol", "BTCUSDT",
                "--strategy", STRATEGY,
                "--param", "qty=100",
                "--param", "at=3",
                "--param", "sell=0",
                "--journal", str(journal),
                "--duration", "3",
                "--status-every", "1",
            ]
        )  # fmt: skip
    finally:
        proc.send_signal(signal.SIGINT)
        sandbox_out, sandbox_err = proc.communicate(timeout=30)
    out = capsys.readouterr()
    assert code == 0, out.err
    text = out.out
    assert "cockpit live: SANDBOX binance-spot BTCUSDT" in text
    assert "using the sandbox's own test key" in text
    assert text.count("[sandbox] md ") >= 3  # the status lines
    assert "stopping: halting the strategy and cancelling every order" in text
    assert "fills 1" in text.splitlines()[-1] and "pos BTCUSDT=100" in text.splitlines()[-1]
    assert SANDBOX_API_SECRET not in text + out.err  # the sandbox prints it; live never
    assert proc.returncode == 0 and "1 orders received" in sandbox_out
    orders = rebuild(replay_journal(journal).records).orders
    assert [o.status for o in orders.values()] == ["filled"]
    assert scan_files([journal]) == []


def test_the_real_venue_needs_confirm_live(
    capsys: pytest.CaptureFixture[str], no_keys: None
) -> None:
    code = main(["live", "--symbol", "BTCUSDT", "--strategy", STRATEGY])
    assert code == 2
    assert "--confirm-live" in capsys.readouterr().err


def test_the_real_venue_without_credentials_stops_before_connecting(
    capsys: pytest.CaptureFixture[str], no_keys: None
) -> None:
    code = main(["live", "--symbol", "BTCUSDT", "--strategy", STRATEGY, "--confirm-live"])
    assert code == 2
    assert "no credentials for binance" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["live", "--url", "http://127.0.0.1:1", "--symbol", "X", "--strategy", STRATEGY],
         "expected ws://"),
        (["live", "--url", "wss://example.com", "--symbol", "X", "--strategy", STRATEGY],
         "not the sandbox"),
        (["live", "--url", "ws://127.0.0.1", "--symbol", "X", "--strategy", STRATEGY],
         "has a port"),
        (["live", "--url", "ws://127.0.0.1:1", "--symbol", "X", "--strategy", "s.txt"],
         "a strategy is a Python file"),
        (["live", "--url", "ws://127.0.0.1:1", "--strategy", STRATEGY], "--symbol"),
        (["live", "--venue", "binance-usdm", "--url", "wss://stream.testnet.binance.vision",
          "--symbol", "X", "--strategy", STRATEGY], "Binance USD-M's testnet"),
        (["live", "--venue", "bybit", "--url", "ws://127.0.0.1:1", "--symbol", "X",
          "--strategy", STRATEGY], "invalid choice"),
        (["live", "--url", "ws://127.0.0.1:1", "--symbol", "X", "--strategy", STRATEGY,
          "--drift-grace", "0"], "must be positive"),
        (["live", "--url", "ws://127.0.0.1:1", "--symbol", "X", "--strategy", STRATEGY,
          "--flatten-at-stop", "--flatten-timeout", "-1"], "must be positive"),
        (["sandbox", "--data", "/nonexistent.gz"], "no such data file"),
        (["sandbox", "--data", "x.gz", "--faults", "bogus=1"], "unknown fault 'bogus'"),
        (["sandbox", "--data", "x.gz", "--speed", "-1"], "must not be negative"),
    ],
)  # fmt: skip
def test_usage_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], no_keys: None
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_venue_that_does_not_answer_is_a_message_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_keys: None
) -> None:
    argv = ["live", "--url", "ws://127.0.0.1:1", "--symbol", "BTCUSDT", "--strategy", STRATEGY]
    assert main([*argv, "--journal", str(tmp_path / "j")]) == 2
    assert "cannot reach the venue at http://127.0.0.1:1" in capsys.readouterr().err


def start_in_pty(argv: list[str], cwd: Path) -> tuple[subprocess.Popen, int]:
    """A command in a 120x40 pseudo-terminal (the cockpit needs one); returns the master."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="120", LINES="40", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, start_new_session=True
    )
    os.close(slave)
    return proc, master


def read_until(master: int, proc: subprocess.Popen, cond, timeout: float) -> bytes:
    """Everything the terminal showed until `cond(seen)` or the process ended."""
    import select
    import time

    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not cond(seen):
        ready, _, _ = select.select([master], [], [], 0.05)
        if ready:
            try:
                seen += os.read(master, 65536)
            except OSError:  # the terminal's other end closed: the process is gone
                break
        elif proc.poll() is not None:
            break
    return seen


def resting_buy_in_the_cockpit(
    shared_data: Path, tmp_path: Path
) -> tuple[subprocess.Popen, subprocess.Popen, int, Path]:
    """`cockpit sandbox` and, in a pseudo-terminal, `cockpit live --ui` on it whose strategy
    places one GTC buy far below the market (it rests): (sandbox, live, pty master, journal).
    """
    from tests.adapters.live.session_helpers import warm_up_engine

    warm_up_engine()
    sandbox, url = start_sandbox(shared_data / BTC, "--speed", "1", "--port", "0")
    journal = tmp_path / "live.journal"
    live, master = start_in_pty(
        [
            sys.executable, "-m", "cockpit", "live", "--ui",
            "--url", url, "--symbol", "BTCUSDT", "--strategy", STRATEGY,
            "--param", "qty=100", "--param", "at=3", "--param", "sell=0",
            "--param", "slip=-20000", "--param", "tif=0",
            "--journal", str(journal), "--prefix", "t",
        ],
        tmp_path,
    )  # fmt: skip
    return sandbox, live, master, journal


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_stops_the_cockpit_on_a_live_session_and_cancels_at_the_venue(
    shared_data: Path, tmp_path: Path, no_keys: None, sig: signal.Signals
) -> None:
    # `cockpit live --ui` in a pseudo-terminal against `cockpit sandbox`: a GTC buy far
    # below the market rests at the venue; the signal must cancel it before the exit.
    import time

    sandbox, live, master, journal = resting_buy_in_the_cockpit(shared_data, tmp_path)
    try:

        def resting() -> bool:
            if not journal.exists():
                return False
            orders = rebuild(replay_journal(journal).records).orders
            return "t-1" in orders and orders["t-1"].status == "accepted"

        deadline = time.monotonic() + 60
        seen = b""
        while not resting():
            assert time.monotonic() < deadline and live.poll() is None, seen[-2000:]
            seen += read_until(master, live, lambda _: False, 0.2)
        assert b"SANDBOX" in seen  # the cockpit is on screen (the venue bar's banner)
        live.send_signal(sig)
        if sig == signal.SIGHUP:
            os.close(master)  # the terminal is gone, as when a window is closed
        else:
            seen = read_until(master, live, lambda _: False, 30)  # to the exit
        code = live.wait(timeout=30)
    finally:
        if live.poll() is None:
            live.kill()
        if sig != signal.SIGHUP:
            os.close(master)
        sandbox.send_signal(signal.SIGINT)
        sandbox.communicate(timeout=30)
    assert code == 0
    if sig != signal.SIGHUP:
        assert b"stopping: halting the strategy and cancelling every order" in seen
    orders = rebuild(replay_journal(journal).records).orders
    assert [(cid, o.status) for cid, o in orders.items()] == [("t-1", "canceled")]


def usdm_live(
    shared_data: Path, tmp_path: Path, params: list[str], flags: list[str]
) -> tuple[subprocess.Popen, subprocess.Popen, Path]:
    """`cockpit sandbox --venue binance-usdm` and headless `cockpit live` on it, both
    subprocesses: (sandbox, live, journal)."""
    from tests.adapters.live.session_helpers import warm_up_engine

    warm_up_engine()
    sandbox, url = start_sandbox(
        shared_data / BTC, "--venue", "binance-usdm", "--speed", "2", "--port", "0"
    )
    journal = tmp_path / "live.journal"
    argv = [
        sys.executable, "-m", "cockpit", "live", "--venue", "binance-usdm",
        "--url", url, "--symbol", "BTCUSDT", "--strategy", STRATEGY,
        *[a for p in params for a in ("--param", p)],
        "--journal", str(journal), "--prefix", "t", "--status-every", "0.5", *flags,
    ]  # fmt: skip
    live = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        cwd=ROOT,
    )
    return sandbox, live, journal


def until_journaled(journal: Path, live: subprocess.Popen, statuses: list[str]) -> None:
    """Wait (60 s at most, while `live` runs) for the journal's orders to be in `statuses`."""
    import time

    def reached() -> bool:
        if not journal.exists():
            return False
        orders = rebuild(replay_journal(journal).records).orders
        return [o.status for o in orders.values()] == statuses

    deadline = time.monotonic() + 60
    while not reached():
        assert time.monotonic() < deadline and live.poll() is None, live.stderr
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("sig", "params", "journal_after"),
    [
        # A round trip (buy, then sell what was bought): the venue ends flat.
        (signal.SIGINT, ["qty=100", "at=3"], ["filled", "filled"]),
        # A GTC buy far below the market rests: the signal cancels it at the venue.
        (signal.SIGTERM, ["qty=100", "at=3", "sell=0", "slip=-20000", "tif=0"], ["accepted"]),
    ],
)
def test_live_usdm_headless_stops_on_a_signal_with_the_venue_flat(
    shared_data: Path,
    tmp_path: Path,
    no_keys: None,
    sig: signal.Signals,
    params: list[str],
    journal_after: list[str],
) -> None:
    # `cockpit live --venue binance-usdm` and `cockpit sandbox --venue binance-usdm`, both
    # subprocesses: the signal goes to the live process as a supervisor would send it.
    sandbox, live, journal = usdm_live(shared_data, tmp_path, params, [])
    try:
        until_journaled(journal, live, journal_after)
        live.send_signal(sig)
        out, err = live.communicate(timeout=30)
    finally:
        if live.poll() is None:
            live.kill()
        sandbox.send_signal(signal.SIGINT)
        sandbox_out, _ = sandbox.communicate(timeout=30)
    assert live.returncode == 0, err
    assert "cockpit live: SANDBOX binance-usdm BTCUSDT" in out
    assert "the venue's positions: flat (booked into the engine)" in out
    assert "stopping: halting the strategy and cancelling every order" in out
    last = out.splitlines()[-1]
    assert "working 0" in last and "pos BTCUSDT=0" in last and "venue pos BTCUSDT=0" in last
    assert "Traceback" not in err
    assert sandbox.returncode == 0 and "0 open, positions flat" in sandbox_out
    orders = rebuild(replay_journal(journal).records).orders
    assert all(o.status in ("filled", "canceled") for o in orders.values())
    assert scan_files([journal]) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_during_the_start_up_stops_cleanly(
    tmp_path: Path, no_keys: None, sig: signal.Signals
) -> None:
    # A "venue" that accepts connections and never answers: `cockpit live --ui` is held in
    # its start-up (loading the instruments), before the cockpit runs its own handlers.
    # The signal must stop it cleanly (exit 0, a message, the journal closed), not kill it
    # (SIGTERM, SIGHUP) or raise KeyboardInterrupt (SIGINT).
    import socket

    from adapters.live.order_journal import OrderJournal

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    journal = tmp_path / "live.journal"
    live, master = start_in_pty(
        [
            sys.executable, "-m", "cockpit", "live", "--ui",
            "--url", f"ws://127.0.0.1:{port}", "--symbol", "BTCUSDT", "--strategy", STRATEGY,
            "--journal", str(journal), "--prefix", "t",
        ],
        tmp_path,
    )  # fmt: skip
    conn = None
    try:
        server.settimeout(60)
        conn, _ = server.accept()  # the start-up asks for the instruments: no answer
        seen = read_until(master, live, lambda s: b"journal " in s, 10)
        live.send_signal(sig)
        seen += read_until(master, live, lambda s: b"nothing traded" in s, 30)
        conn.close()  # the blocking HTTP request ends now instead of at its 10 s timeout
        seen += read_until(master, live, lambda _: False, 30)
        code = live.wait(timeout=30)
    finally:
        if live.poll() is None:
            live.kill()
        if conn is not None:
            conn.close()
        server.close()
        os.close(master)
    text = seen.decode(errors="replace")
    assert code == 0, text
    assert f"{sig.name} during the start-up: stopped, nothing traded" in text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text
    with OrderJournal.open(journal) as j:  # opens: not left locked
        assert j.recovered.records == [] and j.recovered.discarded_bytes == 0


@pytest.mark.parametrize("delay", [0.0, 0.5, 1.5])
def test_a_signal_as_the_session_starts_against_the_sandbox_stops_cleanly(
    shared_data: Path, tmp_path: Path, no_keys: None, delay: float
) -> None:
    # SIGTERM `delay` s after `cockpit live --ui` has said what it starts: the start-up is
    # cut short somewhere (before the journal, connecting, reconciling) or, on a fast
    # machine, the strategy already trades. Either way: exit 0 and nothing left open.
    import time

    sandbox, live, master, journal = resting_buy_in_the_cockpit(shared_data, tmp_path)
    try:
        seen = read_until(master, live, lambda s: b"strategy " in s, 60)
        assert b"strategy " in seen, seen[-2000:]
        time.sleep(delay)
        live.send_signal(signal.SIGTERM)
        seen += read_until(master, live, lambda _: False, 30)
        code = live.wait(timeout=30)
    finally:
        if live.poll() is None:
            live.kill()
        os.close(master)
        sandbox.send_signal(signal.SIGINT)
        sandbox_out, _ = sandbox.communicate(timeout=30)
    text = seen.decode(errors="replace")
    assert code == 0, text[-2000:]
    assert "Traceback" not in text
    if "SIGTERM during the start-up: stopped, nothing traded" in text:
        if journal.exists():  # (the signal may come before the journal is opened)
            assert rebuild(replay_journal(journal).records).orders == {}
    else:
        assert "stopping: halting the strategy and cancelling every order" in text
        orders = rebuild(replay_journal(journal).records).orders
        assert all(o.status in ("canceled", "filled") for o in orders.values()), orders


def test_live_usdm_flatten_at_stop_closes_the_position_before_exiting(
    shared_data: Path, tmp_path: Path, no_keys: None
) -> None:
    # Both subprocesses: the strategy buys and holds; SIGINT with --flatten-at-stop sends a
    # reduce-only market sell, waits for its fill, and the last line shows both flat.
    import time

    params = ["qty=100", "at=3", "sell=0"]
    flags = ["--flatten-at-stop", "--drift-grace", "1"]
    sandbox, live, journal = usdm_live(shared_data, tmp_path, params, flags)
    try:
        until_journaled(journal, live, ["filled"])
        time.sleep(1.0)  # a status line or two with the position held
        live.send_signal(signal.SIGINT)
        out, err = live.communicate(timeout=30)
    finally:
        if live.poll() is None:
            live.kill()
        sandbox.send_signal(signal.SIGINT)
        sandbox_out, _ = sandbox.communicate(timeout=30)
    assert live.returncode == 0, err
    # Held meanwhile (this replay's lot is 0.000001 BTC: 100 lots = 0.0001).
    assert "pos BTCUSDT=100 " in out and "venue pos BTCUSDT=0.0001" in out
    assert "DRIFT" not in out
    assert "stopping: closing the positions, halting the strategy" in out
    last = out.splitlines()[-1]
    assert "working 0" in last and "pos BTCUSDT=0 " in last and "venue pos BTCUSDT=0" in last
    assert "WARNING" not in out and "Traceback" not in err
    assert sandbox.returncode == 0 and "0 open, positions flat" in sandbox_out
    orders = rebuild(replay_journal(journal).records).orders
    assert [(o.side, o.status) for o in orders.values()] == [("buy", "filled"), ("sell", "filled")]


def test_live_spot_flatten_at_stop_sells_what_was_bought(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_keys: None
) -> None:
    from tests.adapters.live.session_helpers import warm_up_engine

    warm_up_engine()
    proc, url = start_sandbox(
        shared_data / BTC, "--speed", "5", "--max-messages", "1500", "--port", "0"
    )
    journal = tmp_path / "live.journal"
    try:
        code = main(
            [
                "live", "--url", url, "--symbol", "BTCUSDT", "--strategy", STRATEGY,
                "--param", "qty=100", "--param", "at=3", "--param", "sell=0",
                "--journal", str(journal), "--duration", "3", "--status-every", "1",
                "--flatten-at-stop",
            ]
        )  # fmt: skip
    finally:
        proc.send_signal(signal.SIGINT)
        sandbox_out, _ = proc.communicate(timeout=30)
    out = capsys.readouterr()
    assert code == 0, out.err
    last = out.out.splitlines()[-1]
    assert "fills 2" in last and "pos BTCUSDT=0 " in last and "working 0" in last
    assert "WARNING" not in out.out
    assert proc.returncode == 0 and "2 orders received" in sandbox_out
    orders = rebuild(replay_journal(journal).records).orders
    assert [(o.side, o.status) for o in orders.values()] == [("buy", "filled"), ("sell", "filled")]


@pytest.mark.parametrize(
    ("flags", "url", "halts"),
    [
        ([], "ws://127.0.0.1:1", False),  # the sandbox: an alert, no halt
        ([], "wss://fstream.binancefuture.com", True),  # the testnet (and live): halt
        (["--halt-on-drift"], "ws://127.0.0.1:1", True),
        (["--no-halt-on-drift"], "wss://fstream.binancefuture.com", False),
    ],
)
def test_the_stop_and_drift_options_reach_the_session(
    flags: list[str], url: str, halts: bool
) -> None:
    from adapters.live.session_env import endpoints_for
    from cockpit.cli import build_parser
    from cockpit.cli_live import _session

    argv = ["live", "--venue", "binance-usdm", "--url", url, "--symbol", "BTCUSDT"]
    argv += ["--strategy", STRATEGY, "--flatten-at-stop", "--drift-grace", "0.5", *flags]
    args = build_parser().parse_args(argv)
    endpoints = endpoints_for(args.url, args.venue)
    session = _session(args, endpoints, ["BTCUSDT"], "k", None, object, [{}], None, Path("j"))
    opts = session.options
    assert (opts.flatten_at_stop, opts.flatten_timeout, opts.drift_grace) == (True, 10.0, 0.5)
    assert session.halts_on_drift is halts


@pytest.mark.parametrize(("flags", "busy"), [([], False), (["--busy-poll"], True)])
def test_busy_poll_reaches_the_session(flags: list[str], busy: bool) -> None:
    from adapters.live.session_env import endpoints_for
    from cockpit.cli import build_parser
    from cockpit.cli_live import _session

    argv = ["live", "--url", "ws://127.0.0.1:1", "--symbol", "BTCUSDT", "--strategy", STRATEGY]
    args = build_parser().parse_args([*argv, *flags])
    endpoints = endpoints_for(args.url, args.venue)
    session = _session(args, endpoints, ["BTCUSDT"], "k", None, object, [{}], None, Path("j"))
    assert session.options.busy_poll is busy
