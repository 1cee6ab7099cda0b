"""What each key does: the app's action methods, kept apart so app.py stays composition.

Every action either sends a request to the engine thread (through the bridge, never
touching the engine) or changes the view. After a request the app polls at once, so a key's
effect is on screen with the next frame rather than the next timer tick.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from textual.binding import Binding
from textual.widgets import TabbedContent

from cockpit.bindings import first_key
from cockpit.optimizer_job import (
    OptimizerJob,
    app_workers,
    default_options,
    params_text,
    summary,
    tunable_params,
)
from cockpit.screens.confirm import ConfirmScreen
from cockpit.screens.help import HelpScreen
from cockpit.screens.jump import JumpScreen
from cockpit.screens.optimize import OptimizeScreen
from cockpit.screens.order import OrderScreen, OrderTicket
from cockpit.screens.reconcile import ReconcileScreen
from cockpit.widgets.ladder import Ladder
from cockpit.widgets.orders import FILTERS, OrdersTable
from engine.book import NO_PRICE
from engine.codes import BREAK_ALERT, BREAK_FILL, BREAK_TRADE
from engine.commands import (
    CMD_CANCEL_ALL,
    CMD_FLATTEN,
    CMD_HALT,
    CMD_MANUAL_LIMIT,
    CMD_MANUAL_MARKET,
    CMD_RESUME,
    Command,
)
from engine.events import SIDE_BUY, SIDE_SELL
from themes import THEME_NAMES

if TYPE_CHECKING:
    from cockpit.app import CockpitApp

_BREAKS = {"fill": BREAK_FILL, "alert": BREAK_ALERT, "trade": BREAK_TRADE}

_SAFETY = {
    "flatten": (
        "Flatten all positions?",
        "Cancels every working order, then closes every position with market orders. "
        "Pressing it again never sends a second, offsetting order.",
        CMD_FLATTEN,
    ),
    "cancel_all": (
        "Cancel all orders?",
        "Sends a cancel for every working order of every strategy and of manual trading.",
        CMD_CANCEL_ALL,
    ),
    "kill": (
        "Kill switch: halt trading?",
        "Halts trading (every new order is denied with reason kill_switch) and cancels every "
        "working order. Positions stay open: flatten separately. Resume with Ctrl+R.",
        CMD_HALT,
    ),
    "resume": (
        "Resume trading?",
        "Lifts the kill switch: strategies and manual orders may trade again.",
        CMD_RESUME,
    ),
}


class ActionsMixin:
    """Action methods of CockpitApp (one per entry of cockpit.bindings.TABLE)."""

    # ---- replay

    def action_toggle_play(self: CockpitApp) -> None:
        """Play or pause."""
        self.bridge.toggle()
        self.poll_soon()

    def action_step(self: CockpitApp) -> None:
        """Process exactly one event."""
        self.bridge.step(1)
        self.poll_soon()

    def action_step_to(self: CockpitApp, what: str) -> None:
        """Run to the next fill, alert or trade, then pause."""
        self.bridge.step_until(_BREAKS[what])
        self.poll_soon()

    def action_faster(self: CockpitApp) -> None:
        """Next replay speed up."""
        self.bridge.faster()
        self.poll_soon()

    def action_slower(self: CockpitApp) -> None:
        """Next replay speed down."""
        self.bridge.slower()
        self.poll_soon()

    def action_max_speed(self: CockpitApp) -> None:
        """As fast as possible."""
        self.bridge.set_speed(None)
        self.poll_soon()

    def action_jump(self: CockpitApp) -> None:
        """Ask for a time, then run forward to it."""
        s = self.bridge.snapshot.status

        def done(ts: int | None) -> None:
            if ts is not None:
                self.bridge.jump_to(ts)
                self.poll_soon()

        self.push_screen(JumpScreen(s.now_ns, s.first_ts, s.last_ts), done)

    # ---- trading

    def _confirm(self: CockpitApp, action: str, then: Callable[[], None]) -> None:
        """Ask once; a second press while the dialog is open does nothing."""
        for screen in self.screen_stack:
            if isinstance(screen, ConfirmScreen) and screen.action_name == action:
                return
        title, body, _ = _SAFETY[action]

        def done(ok: bool | None) -> None:
            if ok:
                then()
                self.poll_soon()

        self.push_screen(ConfirmScreen(action, title, body), done)

    def _safety(self: CockpitApp, action: str) -> None:
        cmd = _SAFETY[action][2]
        self._confirm(action, lambda: self.bridge.send(Command(cmd)))

    def action_flatten(self: CockpitApp) -> None:
        """Cancel everything and close every position (asks first)."""
        self._safety("flatten")

    def action_cancel_all(self: CockpitApp) -> None:
        """Cancel every working order (asks first)."""
        self._safety("cancel_all")

    def action_kill(self: CockpitApp) -> None:
        """Halt trading and cancel every order (asks first)."""
        self._safety("kill")

    def action_resume(self: CockpitApp) -> None:
        """Lift the kill switch (asks first). While a live session's start-up
        reconciliation is unacknowledged, show its diff instead: only `y` there resumes."""
        venue = self.bridge.snapshot.venue
        if venue is not None and venue.reconcile_pending:
            self.show_reconcile(venue.reconcile_pending)
            return
        self._safety("resume")

    def show_reconcile(self: CockpitApp, lines: tuple[str, ...]) -> None:
        """The reconciliation diff (once on screen at a time); `y` acknowledges it."""
        if any(isinstance(s, ReconcileScreen) for s in self.screen_stack):
            return

        def done(ok: bool | None) -> None:
            if ok:
                self.bridge.acknowledge_reconcile()
                self.poll_soon()
            else:
                self.notify(
                    "trading stays halted until the reconciliation is acknowledged "
                    f"({self.key_label('resume')} shows it again)",
                    severity="warning",
                    timeout=6,
                )

        self.push_screen(ReconcileScreen(lines), done)

    def action_reconcile(self: CockpitApp) -> None:
        """Ask the venue now about the orders whose outcome is unknown (a live session)."""
        self.bridge.reconcile_unknown()
        self.poll_soon()

    def action_manual(self: CockpitApp, side_name: str) -> None:
        """Ask for a price and size, then send a manual order."""
        snap = self.bridge.snapshot
        inst = snap.instrument
        if inst is None:
            self.notify("no instrument to trade", severity="warning")
            return
        side = SIDE_BUY if side_name == "buy" else SIDE_SELL
        book = snap.book
        touch = book.best_bid if side == SIDE_BUY else book.best_ask
        price = inst.format_price(touch) if touch != NO_PRICE else ""
        size = inst.format_size(1)

        def done(ticket: OrderTicket | None) -> None:
            if ticket is None:
                return
            if ticket.price_ticks is None:
                cmd = Command(CMD_MANUAL_MARKET, book.inst, ticket.side, 0, ticket.qty_lots)
            else:
                cmd = Command(
                    CMD_MANUAL_LIMIT, book.inst, ticket.side, ticket.price_ticks, ticket.qty_lots
                )
            self.bridge.send(cmd)
            self.poll_soon()

        self.push_screen(OrderScreen(inst, side, side_name, price, size), done)

    # ---- optimizer

    def key_label(self: CockpitApp, ident: str) -> str:
        """How the first key of a binding id shows (after the user's keymap), for hints."""
        return self.get_key_display(Binding(first_key(ident, self.keymap_overrides), ""))

    def refused_live(self: CockpitApp, what: str) -> bool:
        """Say that `what` is not for a live session, if this is one (the key table hides
        these keys live; this catches a call that gets past it)."""
        if not self.bridge.live:
            return False
        self.notify(
            f"{what}: not on a live session (the optimizer searches recorded data: "
            "`cockpit optimize`, or the cockpit on a replay)",
            severity="warning",
        )
        return True

    def action_optimize(self: CockpitApp) -> None:
        """Ask for search options, then optimize the running strategy over the app's data."""
        if self.refused_live("optimization"):
            return
        job = self.optimizer_job
        if job is not None and job.running:
            p = job.snapshot.progress
            where = f" ({p.evaluations:,}/{p.budget:,} evaluations)" if p else ""
            self.notify(
                f"an optimization is already running{where}: one at a time; "
                f"{self.key_label('optimize_cancel')} cancels it",
                severity="warning",
            )
            return
        eng = self.bridge.engine
        cls = eng.strategy_cls
        params = dict(getattr(cls, "params", {}) or {})
        if not tunable_params(cls):
            self.notify(
                "nothing to optimize: the app runs no strategy with numeric parameters "
                "(open it with --strategy FILE)",
                severity="warning",
            )
            return
        rows = eng.rows
        current = {k: rows[k][0].item() for k in params if rows.dtype[k].shape == ()}
        workers = app_workers()
        title = (
            f"Optimize {cls.__name__} over the app's data ({len(eng.events):,} events), "
            f"{workers} thread{'s' if workers > 1 else ''}"
        )
        hint = "parameters now: " + "  ".join(
            f"{k}={v!r}" if isinstance(v, float) else f"{k}={str(v).lower()}"
            for k, v in current.items()
        )

        def build(text: str) -> OptimizerJob:
            return OptimizerJob.from_text(eng.stream, cls, text, workers=workers)

        def done(new: OptimizerJob | None) -> None:
            if new is None:
                return
            if self.optimizer_job is not None and self.optimizer_job.running:
                self.notify("an optimization is already running: one at a time", severity="warning")
                return
            self.optimizer_job = new
            self.optimizer_state_seen = "running"
            new.start()
            cfg = new.config
            self.notify(
                f"optimization started: {cfg.budget:,} evaluations at most; "
                f"{self.key_label('optimize_cancel')} cancels"
            )
            self.action_show_pane("optimizer")

        self.push_screen(OptimizeScreen(title, hint, default_options(cls, current), build), done)

    def action_optimize_cancel(self: CockpitApp) -> None:
        """Stop the optimization after the evaluations in flight."""
        job = self.optimizer_job
        if job is None or not job.running:
            self.notify("no optimization is running", severity="warning")
            return
        job.cancel()
        self.notify("cancelling the optimization: it stops after the evaluations in flight")

    def action_optimize_load(self: CockpitApp) -> None:
        """Write the best parameters found into the running strategy (every instance)."""
        if self.refused_live("loading optimized parameters"):
            return
        job = self.optimizer_job
        if job is None:
            self.notify(
                f"no optimization to load from: {self.key_label('optimize')} starts one",
                severity="warning",
            )
            return
        p = job.snapshot.progress
        if p is None or p.best_score is None:
            self.notify("the optimization has no best parameters yet", severity="warning")
            return
        if job.running:
            self.notify(
                f"loading the best so far (generation {p.generation}/{p.generations}): "
                f"{params_text(p.best_params)}; the optimization goes on"
            )
        self.bridge.load_params(job.best_params)
        self.poll_soon()

    def watch_optimizer(self: CockpitApp) -> None:
        """Say once when the optimization has ended, and how (timer)."""
        job = self.optimizer_job
        if job is None:
            return
        state = job.snapshot.state
        if state == self.optimizer_state_seen:
            return
        self.optimizer_state_seen = state
        if state == "failed":
            self.notify(summary(job), severity="error", timeout=8)
        elif state in ("done", "cancelled"):
            text = summary(job)
            if job.snapshot.progress is not None and job.snapshot.progress.best_score is not None:
                text += f"; {self.key_label('optimize_load')} loads them into the strategy"
            self.notify(text, severity="information", timeout=6)

    # ---- view

    def _ladder(self: CockpitApp) -> Ladder | None:
        found = self.main_screen.query(Ladder)
        return found.first() if found else None

    def action_recentre(self: CockpitApp) -> None:
        """Put the mid back in the middle of the ladder."""
        ladder = self._ladder()
        if ladder is not None:
            ladder.recentre()

    def action_regroup(self: CockpitApp, delta: int) -> None:
        """Coarser or finer tick grouping on the ladder."""
        ladder = self._ladder()
        if ladder is not None:
            ladder.regroup(delta)

    def action_next_instrument(self: CockpitApp) -> None:
        """Show the next instrument in the ladder, tape and chart."""
        snap = self.bridge.snapshot
        n = max(1, len(snap.instruments))
        self.ladder_state.centre = None
        self.bridge.select_instrument((snap.book.inst + 1) % n)
        self.poll_soon()

    def action_filter_orders(self: CockpitApp) -> None:
        """Cycle the orders pane's state filter."""
        i = FILTERS.index(self.orders_filter)
        self.orders_filter = FILTERS[(i + 1) % len(FILTERS)]
        for table in self.main_screen.query(OrdersTable):
            table.set_filter(self.orders_filter)

    def action_maximise(self: CockpitApp) -> None:
        """Maximise the focused pane (or restore it)."""
        screen = self.screen
        if screen.maximized is not None:
            screen.minimize()
            return
        target = screen.focused
        while target is not None and not target.has_class("pane"):
            target = target.parent if hasattr(target, "has_class") else None
        if target is None:
            target = self._ladder()
        if target is not None:
            screen.maximize(target, container=False)

    def action_show_pane(self: CockpitApp, name: str) -> None:
        """Bring a pane forward and focus it."""
        if self.screen.maximized is not None:
            self.screen.minimize()
        self.main_screen.show_pane(name)

    def action_next_theme(self: CockpitApp) -> None:
        """Cycle through the cockpit's themes."""
        names = THEME_NAMES
        i = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(i + 1) % len(names)]

    def action_set_theme(self: CockpitApp, name: str) -> None:
        """Switch to a theme by name (the palette's theme entries)."""
        self.theme = name

    def action_help(self: CockpitApp) -> None:
        """The key table."""
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.keymap_overrides))

    def current_tab_widget(self: CockpitApp) -> TabbedContent | None:
        """The tabs of the narrow layout, if shown."""
        found = self.main_screen.query(TabbedContent)
        return found.first() if found else None
