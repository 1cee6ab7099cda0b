"""The cockpit application: composition of the bridge, the key table, themes and screens.

The engine runs in a Textual thread worker (`EngineBridge.serve`); this app only reads the
bridge's newest snapshot on a timer and hands it to the panes. Actions live in
cockpit/actions.py, keys in cockpit/bindings.py, panes in cockpit/widgets/.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
from collections.abc import Callable
from typing import ClassVar

from textual.app import App
from textual.binding import Binding

from cockpit.actions import ActionsMixin
from cockpit.bindings import BINDINGS, applies
from cockpit.bridge import EngineBridge
from cockpit.commands import CockpitCommands
from cockpit.optimizer_job import JobState, OptimizerJob
from cockpit.screens.error import ErrorScreen
from cockpit.screens.main import MainScreen
from cockpit.widgets.ladder import LadderState
from themes import DEFAULT_THEME, THEMES, VARIABLE_DEFAULTS, resolve

POLL_HZ = 30.0
"""Snapshot reads per second (the design asks for 10 to 30)."""
SWITCH_INTERVAL = 0.001
"""Seconds a thread waiting for the GIL waits at most (Python's default is 0.005)."""
OPTIMIZER_WATCH_SECONDS = 0.25
"""How often the app looks whether the optimization has ended (to say so once)."""
FOLLOW_UP_POLL = 0.015
"""Seconds after a request when the app looks again: the engine thread answers between
chunks (about 10 ms apart), so the effect of a key shows before the next timer tick."""


class CockpitApp(ActionsMixin, App[int]):
    """Panes over an engine thread; see the module docstring."""

    TITLE = "cockpit"
    CSS_PATH = "app.tcss"
    BINDINGS: ClassVar[list[Binding]] = BINDINGS
    COMMANDS = App.COMMANDS | {CockpitCommands}

    def __init__(
        self,
        bridge: EngineBridge,
        *,
        theme: str = DEFAULT_THEME,
        keymap: dict[str, str] | None = None,
        poll_hz: float = POLL_HZ,
        clock: Callable[[], float] | None = None,
        stop_signals: tuple[signal.Signals, ...] = (),
        stop_pending: Callable[[], signal.Signals | None] | None = None,
    ) -> None:
        super().__init__()
        self.stop_signals = stop_signals
        """Signals that quit the app as `q` does (`cockpit live --ui`: SIGTERM, SIGHUP)."""
        self.stop_pending = stop_pending
        """A stop signal that arrived before the app's own handlers were installed (while
        Textual started): the app leaves at once on mount (`cockpit live --ui`)."""
        self._signal_handlers: dict[signal.Signals, object] = {}
        self.stopped_by: signal.Signals | None = None
        """The signal that quit the app, if one did."""
        self.bridge = bridge
        self.bridge_clock = clock or bridge.clock
        self.keymap_overrides: dict[str, str] = dict(keymap or {})
        self.initial_theme = resolve(theme)
        self.poll_hz = poll_hz
        self.ladder_state = LadderState()
        self.orders_filter = "all"
        self.current_tab = "orders"
        self.main_screen = MainScreen(id="main")
        self._last_seq = -1
        self._msg_seen = 0
        self._failure_shown = False
        self._reconcile_shown = False
        self.frames = 0
        """Snapshots drawn so far (the UI benchmark counts them)."""
        self.optimizer_job: OptimizerJob | None = None
        """The newest optimization started from the palette (the optimizer pane follows it)."""
        self.optimizer_state_seen: JobState = "idle"
        for t in THEMES:
            self.register_theme(t)
        self.theme = self.initial_theme  # before the first frame: no repaint in another theme

    def get_theme_variable_defaults(self) -> dict[str, str]:
        """The cockpit's variables ($bid, $ask, ...) for any theme that lacks them."""
        return dict(VARIABLE_DEFAULTS)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Leave out the keys that do not apply to this session (the replay keys when
        live): not in the footer, and the key does nothing."""
        if not applies(action, self.bridge.live):
            return False
        return super().check_action(action, parameters)

    def get_default_screen(self) -> MainScreen:
        """The panes."""
        return self.main_screen

    def on_mount(self) -> None:
        """Themes, keymap, the engine worker and the poll timer."""
        if self.keymap_overrides:
            self.set_keymap(self.keymap_overrides)
        if self.bridge.threaded:
            # The engine thread needs the GIL for a moment between chunks; by default a
            # thread waits up to 5 ms for it while the UI thread runs Python.
            sys.setswitchinterval(SWITCH_INTERVAL)
            self.run_worker(self.bridge.serve, thread=True, name="engine", exit_on_error=False)
        loop = asyncio.get_running_loop()
        for sig in self.stop_signals:  # on the app's loop: the handler runs between callbacks
            self._signal_handlers[sig] = signal.getsignal(sig)
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        pending = self.stop_pending() if self.stop_pending is not None else None
        if pending is not None:  # checked after the handlers: no signal falls between
            self.call_after_refresh(self._on_stop_signal, pending)  # once the screen is up
        self.set_interval(1 / self.poll_hz, self.poll)
        self.set_interval(OPTIMIZER_WATCH_SECONDS, self.watch_optimizer)
        self.call_after_refresh(self.poll)
        # Everything allocated so far (numba, numpy, Textual, the engine) lives as long as
        # the app: keep it out of the collector's full passes, which otherwise stall frames.
        gc.freeze()

    def on_unmount(self) -> None:
        """Let the engine thread finish its chunk and leave (threads cannot be killed); an
        optimization stops after its evaluations in flight (they hold up the exit)."""
        if self.optimizer_job is not None:
            self.optimizer_job.cancel()
        self.bridge.stop()
        loop = asyncio.get_running_loop()
        for sig, previous in self._signal_handlers.items():
            # Back to the handler from before the app (asyncio's removal would restore the
            # default, which kills the process: a signal during the stop must not).
            loop.remove_signal_handler(sig)
            if previous is not None:
                signal.signal(sig, previous)  # type: ignore[arg-type]
        self._signal_handlers.clear()

    def _on_stop_signal(self, sig: signal.Signals) -> None:
        """A stop signal: leave as `q` does (whoever runs the app stops what it drives)."""
        if self.stopped_by is None:
            self.stopped_by = sig
            self.bridge.stop()
            self.exit(0)

    def poll(self) -> None:
        """Draw the newest snapshot if there is one; tell the user what is new."""
        snap = self.bridge.snapshot
        if snap.seq != self._last_seq:
            self._last_seq = snap.seq
            self.main_screen.show(snap)
            self.frames += 1
        else:
            self.main_screen.tick()
        for msg in snap.messages:
            if msg.seq > self._msg_seen:
                self._msg_seen = msg.seq
                self.notify(msg.text, severity=msg.severity, timeout=4)
        venue = snap.venue
        if venue is not None and venue.reconcile_pending and not self._reconcile_shown:
            self._reconcile_shown = True  # once by itself; Ctrl+R shows it again
            self.show_reconcile(venue.reconcile_pending)
        if snap.failure is not None and not self._failure_shown:
            self._failure_shown = True
            self.push_screen(ErrorScreen(snap.failure))

    def poll_soon(self) -> None:
        """Poll now and again shortly (the engine thread applies requests between chunks)."""
        self.poll()
        if self.bridge.threaded:
            self.set_timer(FOLLOW_UP_POLL, self.poll)

    def force_redraw(self) -> None:
        """Draw the current snapshot again (after the panes were recreated)."""
        self._last_seq = -1
        self.call_after_refresh(self.poll)

    async def action_quit(self) -> None:
        """Stop the engine thread, then leave."""
        self.bridge.stop()
        self.exit(0)
