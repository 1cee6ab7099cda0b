"""The `cockpit` command: the app by default, and headless subcommands.

Errors the project raises on purpose (engine.errors.CockpitError) become a short message and
exit code 2; anything else is a bug, reported in one paragraph (the traceback only with
COCKPIT_DEBUG=1) with exit code 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

from engine.errors import CockpitError, UsageError

EXIT_USAGE = 2
EXIT_BUG = 1


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so every usage error takes one path."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # One line, like every other error: the usage block can span five lines.
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not a decimal number") from None
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The full command-line grammar."""
    p = _Parser(prog="cockpit", description="Terminal trading cockpit and headless engine.")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    data = sub.add_parser("data", help="inspect, convert and generate market data files")
    dsub = data.add_subparsers(dest="data_command", parser_class=_Parser)

    def add_load_options(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--tick-size", type=_decimal, help="override the inferred tick size")
        sp.add_argument("--lot-size", type=_decimal, help="override the inferred lot size")
        sp.add_argument("--symbol", help="symbol for --tick-size/--lot-size (default: the file's)")
        sp.add_argument(
            "--repair",
            choices=["sort"],
            help="repair instead of failing: 'sort' stable-sorts rows whose time goes backwards "
            "(the count is reported)",
        )
        sp.add_argument(
            "--strict",
            action="store_true",
            help="fail at the first sequence gap instead of resyncing and counting it",
        )

    ins = dsub.add_parser("inspect", help="kinds, counts, time span, instruments, book sanity")
    ins.add_argument("files", nargs="+", help="data files (any supported format)")
    ins.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ins.add_argument("--no-book", action="store_true", help="skip the book replay")
    add_load_options(ins)

    conv = dsub.add_parser("convert", help="convert between formats (.evt native, .parquet, .csv)")
    conv.add_argument("inputs", nargs="+", metavar="IN", help="input files (any supported format)")
    conv.add_argument("output", metavar="OUT", help="output file (.evt, .parquet or .csv)")
    conv.add_argument("--format", choices=["native", "parquet", "csv"], help="output format")
    add_load_options(conv)

    gen = dsub.add_parser("generate", help="write the seeded synthetic market")
    gen.add_argument("output", metavar="OUT", help="output file (.evt, .parquet or .csv)")
    gen.add_argument("--events", type=_positive_int, default=1_000_000, help="number of events")
    gen.add_argument("--seed", type=int, default=7, help="random seed (same seed, same bytes)")
    gen.add_argument("--instruments", type=_positive_int, default=1, help="instruments")
    gen.add_argument("--format", choices=["native", "parquet", "csv"], help="output format")

    from cockpit import cli_app, cli_backtest, cli_bench, cli_live, cli_optimize, cli_sandbox

    # `cockpit` alone opens the app: it takes the app's options (--theme, --speed, ...).
    cli_app.add_app_options(p)
    cli_app.add_parser(sub)
    cli_backtest.add_parser(sub)
    cli_bench.add_parser(sub)
    cli_optimize.add_parser(sub)
    cli_sandbox.add_parser(sub)
    cli_live.add_parser(sub)
    return p


def _instrument_override(args: argparse.Namespace, files: Sequence[str]):
    if args.tick_size is None and args.lot_size is None:
        return None
    if args.tick_size is None or args.lot_size is None:
        raise UsageError("--tick-size and --lot-size go together")
    from adapters.formats import load
    from engine.instruments import Instrument

    if args.symbol:
        venue, _, symbol = args.symbol.rpartition(":")
    else:
        probe = load(files, repair=args.repair, strict=args.strict)
        if len(probe.instruments) != 1:
            raise UsageError("the files hold several instruments: name one with --symbol VENUE:SYM")
        venue, symbol = probe.instruments[0].venue, probe.instruments[0].symbol
    return Instrument(symbol, venue or "unknown", args.tick_size, args.lot_size)


def _load(args: argparse.Namespace, files: Sequence[str]):
    from adapters.formats import load

    inst = _instrument_override(args, files)
    return load(files, instrument=inst, repair=args.repair, strict=args.strict)


def _print_summary(summary: dict, out) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out, highlight=False)
    console.print(f"[bold]{summary['events']:,} events[/] ({summary['bytes']:,} bytes in memory)")
    if "time_span" in summary:
        span = summary["time_span"]
        console.print(
            f"time {span['first']} .. {span['last']} ({span['seconds']:,} s, "
            f"{'monotone' if span['monotone'] else 'NOT MONOTONE'}); feed latency median "
            f"{summary['feed_latency_us']['median']:,} us"
        )
    kinds = Table("kind", "count", title="kinds", title_justify="left")
    for k, c in summary["kinds"].items():
        kinds.add_row(k, f"{c:,}")
    console.print(kinds)
    inst = Table(
        "id", "venue", "symbol", "tick", "lot", "events", title="instruments", title_justify="left"
    )
    for i in summary["instruments"]:
        inst.add_row(
            str(i["id"]), i["venue"], i["symbol"], i["tick_size"], i["lot_size"], f"{i['events']:,}"
        )
    console.print(inst)
    if "book" in summary:
        book = Table(
            "instrument",
            "messages",
            "crossed",
            "best bid",
            "best ask",
            "levels b/a",
            "dropped",
            title="book sanity (replayed)",
            title_justify="left",
        )
        for b in summary["book"]:
            book.add_row(
                b["instrument"],
                f"{b['book_messages']:,}",
                str(b["crossed_messages"]),
                str(b["final_best_bid"]),
                str(b["final_best_ask"]),
                f"{b['final_bid_levels']}/{b['final_ask_levels']}",
                str(b["levels_dropped_capacity"]),
            )
        console.print(book)
    if "meta" in summary:
        console.print("[bold]source report[/]")
        console.print_json(json.dumps(summary["meta"], default=str))


def cmd_data(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """`cockpit data ...`."""
    from engine.data.io import save_events
    from engine.data.summary import summarize

    if args.data_command == "inspect":
        stream = _load(args, args.files)
        summary = summarize(stream, with_book=not args.no_book)
        if args.json:
            print(json.dumps(summary, indent=1, default=str))
        else:
            _print_summary(summary, sys.stdout)
        return 0
    if args.data_command == "convert":
        from engine.data.io import format_for_output

        format_for_output(args.output, args.format)  # fail on a bad suffix before loading
        t0 = time.perf_counter()
        stream = _load(args, args.inputs)
        t1 = time.perf_counter()
        fmt = save_events(stream, args.output, args.format)
        t2 = time.perf_counter()
        print(
            f"{len(stream):,} events from {len(args.inputs)} file(s) -> {args.output} ({fmt}); "
            f"read {t1 - t0:.2f} s, write {t2 - t1:.2f} s"
        )
        repairs = stream.meta.get("repairs")
        if repairs:
            print(f"repairs: {json.dumps(repairs)}")
        return 0
    if args.data_command == "generate":
        from engine.data.io import format_for_output
        from engine.synthetic import SyntheticConfig, generate

        format_for_output(args.output, args.format)
        stream = generate(
            SyntheticConfig(n_events=args.events, seed=args.seed, n_instruments=args.instruments)
        )
        fmt = save_events(stream, args.output, args.format)
        print(f"{len(stream):,} synthetic events (seed {args.seed}) -> {args.output} ({fmt})")
        return 0
    parser.parse_args(["data", "--help"])
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `cockpit` console script."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            from cockpit.cli_app import run_default

            return run_default(args)
        if args.command == "replay":
            from cockpit.cli_app import run_replay

            return run_replay(args)
        if args.command == "backtest":
            from cockpit.cli_backtest import run

            return run(args)
        if args.command == "optimize":
            from cockpit.cli_optimize import run

            return run(args)
        if args.command == "bench":
            from cockpit.cli_bench import run

            return run(args)
        if args.command == "sandbox":
            from cockpit.cli_sandbox import run

            return run(args)
        if args.command == "live":
            from cockpit.cli_live import run

            return run(args)
        if args.command == "data":
            if args.data_command is None:
                raise UsageError("cockpit data: choose inspect, convert or generate")
            return cmd_data(args, parser)
        raise UsageError(f"unknown command {args.command!r}")
    except CockpitError as exc:
        print(f"cockpit: {exc.title.lower()}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("cockpit: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so in one paragraph instead of a raw traceback
        if os.environ.get("COCKPIT_DEBUG") == "1":
            raise
        print(
            f"cockpit: internal error: {type(exc).__name__}: {exc}\n"
            "This is a bug; rerun with COCKPIT_DEBUG=1 for the traceback and report it.",
            file=sys.stderr,
        )
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
