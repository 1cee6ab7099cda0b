"""Shared fixtures: where the recorded real-venue data lives, and what to do without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or a skip with the reason (a failure in CI, where it must exist)."""
    if SHARED_DATA.is_dir():
        return SHARED_DATA
    msg = f"recorded market data not found at {SHARED_DATA} (../shared beside the checkout)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg + "; CI=true requires it")
    pytest.skip(msg)
