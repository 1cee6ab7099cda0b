"""What the user types: keymap files, order tickets, jump times, command-line options."""

from __future__ import annotations

import argparse
from decimal import Decimal
from pathlib import Path

import pytest

from cockpit.bindings import BY_ID, TABLE, load_keymap
from cockpit.cli_app import add_app_options, add_parser
from cockpit.commands import palette_entries
from cockpit.screens.jump import parse_time
from cockpit.screens.order import OrderTicket, parse_ticket
from engine.errors import UsageError
from engine.events import SIDE_BUY
from engine.instruments import Instrument

INST = Instrument("SYN0", "synthetic", Decimal("0.01"), Decimal("0.001"))
T0 = 1_704_067_200_000_000_000  # 2024-01-01T00:00:00Z


def test_table_ids_are_unique_and_safety_keys_are_ctrl_priority() -> None:
    ids = [e.binding.id for e in TABLE]
    assert len(ids) == len(set(ids)) and all(ids)
    for e in TABLE:
        keys = e.binding.key.split(",")
        assert any(not k.startswith("f") or not k[1:].isdigit() for k in keys)  # no F-key only
        if e.confirm:
            assert e.binding.priority and all(k.startswith("ctrl+") for k in keys)


def test_keymap_file(tmp_path) -> None:
    f = tmp_path / "keymap.toml"
    f.write_text('[keys]\nflatten = "ctrl+l"\nstep = "period,s"\n')
    assert load_keymap(f) == {"flatten": "ctrl+l", "step": "period,s"}
    f.write_text('stepp = "j"\n')
    with pytest.raises(UsageError, match="unknown binding id 'stepp'"):
        load_keymap(f)
    f.write_text("step = 3\n")
    with pytest.raises(UsageError, match="non-empty string"):
        load_keymap(f)
    f.write_text("step = [\n")
    with pytest.raises(UsageError, match="unreadable keymap"):
        load_keymap(f)
    with pytest.raises(UsageError, match="no such keymap file"):
        load_keymap(tmp_path / "missing.toml")


def test_default_keymap_is_optional(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert load_keymap(None) == {}
    (tmp_path / "cockpit").mkdir()
    (tmp_path / "cockpit" / "keymap.toml").write_text('kill = "ctrl+z"\n')
    assert load_keymap(None) == {"kill": "ctrl+z"}


def test_order_ticket() -> None:
    assert parse_ticket(INST, SIDE_BUY, "100.05", "0.5") == OrderTicket(SIDE_BUY, 10005, 500)
    assert parse_ticket(INST, SIDE_BUY, "market", "1") == OrderTicket(SIDE_BUY, None, 1000)
    assert "tick size" in parse_ticket(INST, SIDE_BUY, "100.005", "1")
    assert "not a number" in parse_ticket(INST, SIDE_BUY, "abc", "1")
    assert "positive" in parse_ticket(INST, SIDE_BUY, "100", "0")
    assert "lot size" in parse_ticket(INST, SIDE_BUY, "100", "0.0001")


def test_jump_times() -> None:
    now = T0 + 5_000_000_000
    assert parse_time("+30s", now, T0) == now + 30_000_000_000
    assert parse_time("+250ms", now, T0) == now + 250_000_000
    assert parse_time("+2m", 0, T0) == T0 + 120_000_000_000  # before the first event
    assert parse_time("00:10", now, T0) == T0 + 600_000_000_000
    assert parse_time("00:00:01.5", now, T0) == T0 + 1_500_000_000
    assert parse_time("2024-01-01T00:00:02", now, T0) == T0 + 2_000_000_000
    assert parse_time(str(T0 + 7), now, T0) == T0 + 7
    assert isinstance(parse_time("soon", now, T0), str)


def test_palette_offers_every_action() -> None:
    class FakeApp:
        keymap_overrides: dict = {}

        def get_key_display(self, b):
            return b.key

    entries = list(palette_entries(FakeApp()))
    actions = {action for _, action, _ in entries}
    assert {e.binding.action for e in TABLE} <= actions
    assert "set_theme('cockpit-colorblind')" in actions


def test_command_line() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command")
    add_parser(sub)
    args = p.parse_args(
        ["replay", "a.evt", "b.parquet", "--speed", "x10", "--theme", "light", "--param", "k=3"]
    )
    assert args.files == ["a.evt", "b.parquet"] and args.speed == 10.0
    assert args.theme == "light" and args.param == [("k", "3")]
    top = argparse.ArgumentParser()
    add_app_options(top)
    assert top.parse_args(["--speed", "max", "--no-mouse"]).speed is None
    with pytest.raises(SystemExit):
        top.parse_args(["--speed", "0"])
    assert "flatten" in BY_ID


def test_run_replay_and_default_open_the_app(tmp_path, monkeypatch, market) -> None:
    from cockpit import cli_app
    from cockpit.app import CockpitApp
    from engine.data.io import save_events

    seen = {}

    def fake_run(self, mouse=True):
        seen["mouse"] = mouse
        seen["events"] = len(self.bridge.engine.events)
        seen["strategy"] = self.bridge.engine.strategy_cls.__name__
        seen["theme"] = self.initial_theme
        return 0

    monkeypatch.setattr(CockpitApp, "run", fake_run)
    path = tmp_path / "m.evt"
    save_events(market, str(path))
    quoter = str(Path(__file__).with_name("quoting.py"))
    argv = ["replay", str(path), "--strategy", quoter, "--no-mouse", "--theme", "cb"]
    assert cli_app.main(argv) == 0
    assert seen == {
        "mouse": False,
        "events": len(market),
        "strategy": "Quoter",
        "theme": "cockpit-colorblind",
    }
    assert cli_app.main(["replay", str(tmp_path / "missing.evt")]) == 2
    assert cli_app.main([]) == 0  # the synthetic market with the example market maker
    assert seen["events"] == 200_000 and seen["mouse"] is True
