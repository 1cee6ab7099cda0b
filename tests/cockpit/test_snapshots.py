"""Snapshot tests of the main layouts, each theme and the help screen.

Each app runs over a synchronous bridge stepped a fixed number of events (see conftest), so
the picture depends only on the data, the strategy and the code. Update after an intended
change with `pytest tests/cockpit/test_snapshots.py --snapshot-update`, and look at the
report before committing.
"""

from __future__ import annotations

import pytest

STEPS = 600
"""Events processed before the picture: the book, working orders, a fill and trades."""


def test_layout_80x24(snap_compare, make_app) -> None:
    assert snap_compare(make_app(steps=STEPS), terminal_size=(80, 24))


def test_layout_160x48(snap_compare, make_app) -> None:
    assert snap_compare(make_app(steps=STEPS), terminal_size=(160, 48))


def test_paused_at_first_event(snap_compare, make_app) -> None:
    assert snap_compare(make_app(steps=0), terminal_size=(80, 24))


@pytest.mark.parametrize("theme", ["cockpit-light", "cockpit-colorblind"])
@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
def test_themes(snap_compare, make_app, theme: str, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(steps=STEPS, theme=theme), terminal_size=size)


def test_help_screen(snap_compare, make_app) -> None:
    assert snap_compare(make_app(steps=STEPS), terminal_size=(80, 24), press=["question_mark"])


def test_positions_tab(snap_compare, make_app) -> None:
    assert snap_compare(make_app(steps=STEPS), terminal_size=(80, 24), press=["2"])
