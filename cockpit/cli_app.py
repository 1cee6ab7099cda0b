"""`cockpit` (no arguments) and `cockpit replay FILE...`: build an engine, open the app.

cockpit/cli.py wires these in: `add_parser(subparsers)` adds `replay`, `add_app_options`
adds the app's options to a parser (the top-level one, for plain `cockpit`), and
`run_default` / `run_replay` return the exit code. The engine (and the strategy's
compilation) is built before the app takes the terminal, so a bad file or a strategy numba
cannot compile is a one-line error with exit code 2 like every other CLI error.

Until cli.py wires them, `python -m cockpit.cli_app [replay FILE...]` runs the same code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from engine.errors import CockpitError, UsageError

EXAMPLES: Final = Path(__file__).resolve().parents[1] / "examples"
DEFAULT_STRATEGY: Final = EXAMPLES / "market_maker.py"


def _speed(text: str) -> float | None:
    if text.lower() in ("max", "fast", "asap"):
        return None
    try:
        value = float(text.lower().lstrip("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: use a number like 10 or x0.5, or max"
        ) from None
    if not 0.01 <= value <= 100_000:
        raise argparse.ArgumentTypeError(f"{text!r}: speed must be between 0.01 and 100000")
    return value


def _param(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: use --param name=value")
    return key.strip(), value.strip()


def add_app_options(p: argparse.ArgumentParser, *, strategy_default: str | None = None) -> None:
    """The options every app-opening command takes."""
    from themes import ALIASES, THEME_NAMES

    p.add_argument(
        "--strategy",
        metavar="S.py",
        default=strategy_default,
        help="strategy file (one Strategy subclass)",
    )
    p.add_argument(
        "--param",
        action="append",
        type=_param,
        default=[],
        metavar="K=V",
        help="strategy parameter (repeatable)",
    )
    p.add_argument(
        "--theme",
        default="cockpit-dark",
        choices=sorted({*THEME_NAMES, *ALIASES}),
        metavar="NAME",
        help=f"colour theme: {', '.join(THEME_NAMES)} (or dark, light, colorblind)",
    )
    p.add_argument(
        "--speed",
        type=_speed,
        default=1.0,
        metavar="X",
        help="replay speed: a multiple of event time (0.1 .. 1000) or max (default 1)",
    )
    p.add_argument("--no-mouse", action="store_true", help="do not capture the mouse")
    p.add_argument("--keymap", metavar="FILE", help="keymap TOML (default ~/.config/cockpit/)")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `replay FILE...` to a subparsers object; returns the new parser."""
    p = subparsers.add_parser(
        "replay",
        help="open recorded data in the cockpit (native, Parquet, CSV, Tardis, Binance)",
        description="Replay recorded market data in the cockpit, paused at the first event.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="data files (any supported format)")
    add_app_options(p)
    return p


def _strategy(args: argparse.Namespace, default: Path | None) -> tuple[type | None, list]:
    from engine.strategy import load_strategy_class

    path = getattr(args, "strategy", None) or (str(default) if default else None)
    params = dict(getattr(args, "param", []) or [])
    if path is None:
        if params:
            raise UsageError("--param needs --strategy")
        return None, []
    cls = load_strategy_class(path)
    return cls, [params]


def _open(stream, args: argparse.Namespace, default_strategy: Path | None) -> int:
    """Build the engine and the bridge, run the app, return its exit code."""
    from cockpit.bindings import load_keymap
    from engine.runner import Engine

    keymap = load_keymap(getattr(args, "keymap", None))
    cls, instances = _strategy(args, default_strategy)
    print("cockpit: compiling the strategy and the engine loop…", file=sys.stderr, flush=True)
    engine = Engine(stream, cls, instances)
    return run_app(engine, args, keymap)


def run_app(engine, args: argparse.Namespace, keymap: dict[str, str]) -> int:
    """Open the app over an engine (paused at its first event)."""
    from cockpit.app import CockpitApp
    from cockpit.bridge import EngineBridge

    bridge = EngineBridge(engine, speed=getattr(args, "speed", 1.0))
    app = CockpitApp(bridge, theme=getattr(args, "theme", "cockpit-dark"), keymap=keymap)
    try:
        code = app.run(mouse=not getattr(args, "no_mouse", False))
    finally:
        bridge.stop()
    return int(code or 0)


def run_default(args: argparse.Namespace) -> int:
    """`cockpit`: the synthetic market with the example market maker, paused."""
    from engine.synthetic import default_market

    default = DEFAULT_STRATEGY if DEFAULT_STRATEGY.is_file() else None
    return _open(default_market(), args, default)


def run_replay(args: argparse.Namespace) -> int:
    """`cockpit replay FILE...`: recorded data, with a strategy if one is given."""
    from adapters.formats import load

    return _open(load(args.files), args, None)


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point until cockpit/cli.py wires the commands in."""
    p = argparse.ArgumentParser(prog="cockpit", description="Terminal trading cockpit.")
    add_app_options(p)
    sub = p.add_subparsers(dest="command")
    add_parser(sub)
    args = p.parse_args(argv)
    try:
        if args.command == "replay":
            return run_replay(args)
        return run_default(args)
    except CockpitError as exc:
        print(f"cockpit: {exc.title.lower()}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
