"""The venue bar of a live session: environment banner, connections, unknown orders.

Line 1: the environment (SANDBOX / TESTNET / LIVE, each in its own theme colour), then per
connection (market data, USD-M's trades connection, execution) its state, the age of its
last message, reconnects and gaps, the execution clock offset, and the rate budget most
spent. Line 2: books that are resyncing, a USD-M position drift (the engine's position has
differed from the venue's for longer than the grace period: critical), orders whose outcome
is unknown (with the key that asks the venue now), a reconciliation awaiting
acknowledgement (with the key that shows it), the order counts, the orders an earlier run
left open (inherited: cancelled at the stop) by client id, and why the session stopped
trading if it did.

Hidden in a replay (its snapshots carry no `venue`), so replay screens do not change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Final

from rich.text import Text
from textual.widget import Widget

from cockpit.bindings import first_key
from cockpit.snapshot import Snapshot

if TYPE_CHECKING:
    from adapters.live.session_status import ConnectionStatus, SessionStatus

LINK_UP: Final = "subscribed"
"""The connection state shown as healthy (ws_venue.State; others are shown as a warning)."""
UNKNOWN_SHOWN: Final = 3
"""Unknown orders named on the line; the rest are counted."""
INHERITED_SHOWN: Final = 3
"""Inherited orders (left open by an earlier run) named on the line; the rest counted."""


class VenueBar(Widget):
    """Two lines about the venue; shown once a snapshot carries a SessionStatus."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "venue--sandbox",
        "venue--testnet",
        "venue--live",
        "venue--up",
        "venue--down",
        "venue--dim",
        "venue--alert",
    }
    DEFAULT_CSS = """
    VenueBar { height: 2; background: $panel; color: $foreground; display: none; }
    VenueBar.-live { display: block; }
    VenueBar > .venue--sandbox { background: $env-sandbox; color: $text; text-style: bold; }
    VenueBar > .venue--testnet { background: $env-testnet; color: $text; text-style: bold; }
    VenueBar > .venue--live { background: $env-live; color: $text; text-style: bold; }
    VenueBar > .venue--up { color: $success; }
    VenueBar > .venue--down { color: $warning; text-style: bold; }
    VenueBar > .venue--dim { color: $text-muted; }
    VenueBar > .venue--alert { background: $error; color: $text; text-style: bold; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.status: SessionStatus | None = None

    def show(self, snap: Snapshot) -> None:
        """Draw a new snapshot's venue status (nothing in a replay)."""
        if snap.venue is None:
            return
        self.status = snap.venue
        self.add_class("-live")
        self.refresh()

    def render(self) -> Text:
        """The two lines."""
        st = self.status
        if st is None:
            return Text("")
        style = self.get_component_rich_style
        env = st.environment if st.environment in ("sandbox", "testnet", "live") else "live"
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(f" {st.environment.upper()} ", style(f"venue--{env}"))
        self._connection(t, "md", st.market_data)
        for more in st.more_market_data:
            self._connection(t, more.name, more)
        self._connection(t, "exec", st.execution)
        ex = st.execution
        if ex.clock_offset_ms is not None:
            unc = "" if ex.clock_uncertainty_ms is None else f"±{ex.clock_uncertainty_ms:.1f}"
            t.append(f" │ clock {ex.clock_offset_ms:+.1f}{unc}ms", style("venue--dim"))
        budget = [b for c in (st.market_data, ex) for b in c.rate_budget if b.capacity]
        if budget:
            worst = max(budget, key=lambda b: b.used / b.capacity)
            t.append(f" │ rate {worst.name} {worst.used}/{worst.capacity}", style("venue--dim"))
        for c in (st.market_data, ex):
            if c.paused_for > 0:
                t.append(f" │ PAUSED BY VENUE {c.paused_for:.0f}s", style("venue--alert"))
        t.append("\n")
        t.append(" ")
        resyncing = [s for s, ok in st.books_in_sync if not ok]
        if resyncing:
            t.append(f" RESYNCING {' '.join(resyncing)} ", style("venue--down"))
            t.append(" ")
        if st.drift:
            what = ", ".join(d.text() for d in st.drift)
            halted = " (halted)" if st.trading == "halted" else ""
            t.append(f" POSITION DRIFT {what}{halted} ", style("venue--alert"))
            t.append(" ")
        if st.unknown:
            names = ", ".join(
                f"{u.client_id} {u.kind} {u.age:.0f}s" for u in st.unknown[:UNKNOWN_SHOWN]
            )
            more = len(st.unknown) - UNKNOWN_SHOWN
            if more > 0:
                names += f" +{more}"
            t.append(f" UNKNOWN {len(st.unknown)}: {names} ", style("venue--alert"))
            key = first_key("reconcile", self.app.keymap_overrides)
            t.append(f" {key}: reconcile now ", style("venue--dim"))
        if st.reconcile_pending:
            t.append(" RECONCILE: the venue differs from the journal ", style("venue--alert"))
            key = first_key("resume", self.app.keymap_overrides)
            t.append(f" {key}: show ", style("venue--dim"))
        t.append(
            f"orders {st.orders} acked {st.acked} fills {st.fills} "
            f"rej {st.rejected + st.refused_locally} working {st.working}",
            style("venue--dim"),
        )
        if st.venue_positions:  # USD-M: the venue's own position, beside the engine's
            held = " ".join(f"{sym}={qty}" for sym, qty in st.venue_positions)
            t.append(f" │ venue pos {held}", style("venue--dim"))
        if st.funding:
            paid = " ".join(f"{asset}={amount}" for asset, amount in st.funding)
            t.append(f" funding {paid}", style("venue--dim"))
        if st.inherited:
            names = ", ".join(st.inherited[:INHERITED_SHOWN])
            more = len(st.inherited) - INHERITED_SHOWN
            if more > 0:
                names += f" +{more}"
            t.append(f" inherited {len(st.inherited)}: {names}", style("venue--down"))
        if st.error:
            t.append(f" ERROR {st.error}", style("venue--alert"))
        return t

    def _connection(self, t: Text, label: str, c: ConnectionStatus) -> None:
        style = self.get_component_rich_style
        state = str(c.state).lower()
        up = state == LINK_UP
        t.append(f" │ {label} ")
        t.append(state.upper(), style("venue--up" if up else "venue--down"))
        age = "-" if c.last_message_age is None else f"{c.last_message_age:.1f}s"
        t.append(f" age {age} reconn {c.reconnects}", style("venue--dim"))
        if c.gaps:
            t.append(f" gaps {c.gaps}", style("venue--dim"))
