"""End to end: the real cockpit in a tmux pseudo-terminal, driven by keys, read off the screen.

Starts `python -m cockpit.cli_app` (what `cockpit` runs: the synthetic market with the
example market maker, paused at the first event) at 100x30 with --no-mouse, inside tmux's
256-colour terminal, so it also covers the terminal driver, the engine worker thread and the
exit path that Pilot tests do not.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]


class Tmux:
    """One detached tmux session running a command."""

    def __init__(self, command: str, width: int = 100, height: int = 30) -> None:
        self.name = f"cockpit-e2e-{uuid.uuid4().hex[:8]}"
        size = ["-x", str(width), "-y", str(height)]
        shell = f"cd {ROOT} && {command}; echo EXIT=$?; sleep 30"
        args = ["tmux", "new-session", "-d", "-s", self.name, *size, shell]
        # A tmux server that is shutting down (its last session just ended) refuses new
        # sessions for a moment: try again rather than fail.
        for attempt in range(5):
            if subprocess.run(args, capture_output=True).returncode == 0:
                break
            time.sleep(0.5 * (attempt + 1))
        else:
            pytest.fail("tmux would not start a session")

    def screen(self) -> str:
        """The visible text of the pane."""
        out = subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True
        )
        return out.stdout

    def keys(self, *keys: str) -> None:
        """Send keys (tmux key names: Space, Escape, C-k ...)."""
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        """Wait until the screen shows text; fail with the screen if it does not."""
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        pytest.fail(f"{text!r} did not appear within {timeout} s; the screen was:\n{screen}")

    def wait_gone(self, text: str, timeout: float = 10.0) -> None:
        """Wait until the screen no longer shows text."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text not in self.screen():
                return
            time.sleep(0.1)
        pytest.fail(f"{text!r} still on screen after {timeout} s:\n{self.screen()}")

    def close(self) -> None:
        """End the session (and whatever still runs in it)."""
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


def test_cockpit_in_a_real_terminal() -> None:
    tm = Tmux(f"{sys.executable} -m cockpit.cli_app --no-mouse")
    try:
        # The first start may compile the engine loop and strategy (cached afterwards).
        screen = tm.wait_for("PAUSED", timeout=300)
        assert "0/200,000" in screen
        time.sleep(1.0)  # keys typed while the app sets up the terminal can be lost
        tm.keys("s")
        tm.wait_for("1/200,000")
        tm.keys("Space")
        tm.wait_for("PLAYING")
        tm.keys("Space")
        tm.wait_for("PAUSED")
        tm.keys("C-k")
        tm.wait_for("Kill switch: halt trading?")
        tm.keys("y")
        tm.wait_for("HALTED")
        tm.keys("?")
        tm.wait_for("cockpit keys")
        tm.keys("Escape")
        tm.wait_gone("cockpit keys")  # Esc then q at once would read as Alt+q
        tm.keys("q")
        tm.wait_for("EXIT=0", timeout=20)
    finally:
        tm.close()
