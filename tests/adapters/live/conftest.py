"""Every live-trading test is followed by a scan of its files and logs for the test secrets.

The issue asks for it ("a test scans every log and journal for them"): after each test,
every file the test wrote under its `tmp_path` (journals included) and every log record it
emitted (captured at DEBUG) is searched for the API key, the secret and the private key, raw
and percent-encoded; a hit fails the test at teardown. Files a test writes *to hold* a
secret (a key file) are registered through `secret_file` and skipped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.adapters.live.leaks import files_under, scan_files, scan_log_records


@pytest.fixture
def secret_files() -> set[Path]:
    """Paths that hold a secret on purpose (skipped by the leak scan)."""
    return set()


@pytest.fixture
def secret_file(tmp_path: Path, secret_files: set[Path]) -> Callable[..., Path]:
    """Write a file meant to hold a secret: `secret_file(name, content, mode=0o600)`."""

    def write(name: str, content: str | bytes, mode: int = 0o600) -> Path:
        path = tmp_path / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        os.chmod(path, mode)
        secret_files.add(path)
        return path

    return write


@pytest.fixture(autouse=True)
def no_secret_leaks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, secret_files: set[Path]
) -> Iterator[None]:
    """Fail the test if a file it wrote or a record it logged holds a test secret.

    Every test gets its `tmp_path` through this fixture, so the directory outlives the test
    and is scanned after it.
    """
    caplog.set_level(logging.DEBUG)
    yield
    leaks = scan_log_records([*caplog.get_records("setup"), *caplog.get_records("call")])
    leaks += scan_files(p for p in files_under(tmp_path) if p not in secret_files)
    if leaks:
        pytest.fail("test secrets leaked:\n" + "\n".join(leaks), pytrace=False)


@pytest.fixture
def quiet_sandbox_headers() -> Iterator[None]:
    """The sandbox's websockets server logs request headers at DEBUG, and USD-M's
    positionRisk carries the API key in one (X-MBX-APIKEY): raised to INFO for the futures
    tests that use it (the client's own logs carry no key, and the leak scan still covers
    them)."""
    logger = logging.getLogger("websockets.server")
    old = logger.level
    logger.setLevel(logging.INFO)
    yield
    logger.setLevel(old)


@pytest.fixture(scope="session")
def warm_engine() -> None:
    """The engine compiled for the session tests (see session_helpers.warm_up_engine)."""
    from tests.adapters.live.session_helpers import warm_up_engine

    warm_up_engine()
