"""`cockpit bench` (cockpit/cli_bench.py): reports are well formed; no time is asserted."""

from __future__ import annotations

import argparse
import json

import pytest

from cockpit import cli_bench
from engine.errors import UsageError


def _args(*scenarios: str, events: int | None = 20_000, repeats: int = 1) -> argparse.Namespace:
    return argparse.Namespace(scenario=list(scenarios), events=events, repeats=repeats, json=True)


def test_book_and_market_maker_reports(capsys):
    assert cli_bench.run(_args("book", "mm")) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["machine"]) >= {"cpu", "cores", "load_avg_1m"}
    book, mm = report["results"]
    assert (book["scenario"], book["events"], book["orders"]) == ("book", 20_000, 0)
    assert mm["scenario"] == "mm" and mm["orders"] > 0 and mm["fills"] > 0
    for r in (book, mm):
        assert r["deterministic"] is True and r["events_per_s"] > 0


@pytest.mark.slow
def test_app_start_reports_the_first_frame(capsys):
    assert cli_bench.run(_args("app", events=None)) == 0
    r = json.loads(capsys.readouterr().out)["results"][0]
    assert r["scenario"] == "app" and len(r["runs_s"]) == 1
    assert 0 < r["first_frame_s"] == r["runs_s"][0]


def test_bad_arguments():
    with pytest.raises(UsageError, match="--repeats must be at least 1"):
        cli_bench.run(_args("book", repeats=0))
    with pytest.raises(UsageError, match="--events must be at least 1000"):
        cli_bench.run(_args("book", events=10))
