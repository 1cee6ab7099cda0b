"""Risk and surveillance alerts with their reason codes, newest first (Line API)."""

from __future__ import annotations

from collections.abc import Hashable
from typing import ClassVar

from rich.segment import Segment

from cockpit import fmt
from cockpit.snapshot import Snapshot
from cockpit.widgets.lines import LineList
from engine.codes import ALERT_NAMES, REASON_NAMES, SEV_CRITICAL, SEV_WARNING, SEVERITY_NAMES
from engine.state import AL_CODE, AL_INST, AL_OID, AL_REASON, AL_SEV, AL_STRAT, AL_TS, AL_VALUE

_SEVERITY_CLASS = {SEV_WARNING: "alerts--warning", SEV_CRITICAL: "alerts--critical"}


class AlertsLog(LineList):
    """One alert a line: time, severity, alert, reason, and what it was about."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "alerts--time",
        "alerts--info",
        "alerts--warning",
        "alerts--critical",
        "alerts--detail",
    }
    DEFAULT_CSS = """
    AlertsLog > .alerts--time { color: $text-muted; }
    AlertsLog > .alerts--info { color: $alert-info; }
    AlertsLog > .alerts--warning { color: $alert-warning; text-style: bold; }
    AlertsLog > .alerts--critical { color: $alert-critical; text-style: bold reverse; }
    AlertsLog > .alerts--detail { color: $text-muted; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self._snap: Snapshot | None = None

    def show(self, snap: Snapshot) -> None:
        """Draw a new snapshot."""
        old = self._snap
        self._snap = snap
        if old is None or old.alerts_total != snap.alerts_total:
            self.rows_changed()

    def row_count(self) -> int:
        """Alerts kept in the snapshot."""
        return len(self._snap.alerts) if self._snap is not None else 0

    def _row(self, i: int) -> tuple[int, ...]:
        a = self._snap.alerts
        return tuple(int(x) for x in a[len(a) - 1 - i])

    def row_key(self, i: int) -> Hashable:
        """The alert's fields."""
        return self._row(i)

    def empty_text(self) -> str:
        """Before the first alert."""
        return " no alerts"

    def row_segments(self, i: int, width: int) -> list[Segment]:
        """'12:00:01.250 CRIT kill_switch     reason=kill_switch'."""
        a = self._row(i)
        sev = a[AL_SEV]
        sev_style = self.style(_SEVERITY_CLASS.get(sev, "alerts--info"))
        sev_text = SEVERITY_NAMES.get(sev, str(sev))[:4].upper()
        name = ALERT_NAMES.get(a[AL_CODE], str(a[AL_CODE]))
        detail = [f"reason={REASON_NAMES.get(a[AL_REASON], a[AL_REASON])}"]
        if a[AL_OID] >= 0:
            detail.append(f"order={a[AL_OID]}")
        if a[AL_STRAT] >= 0:
            detail.append(f"strategy={a[AL_STRAT]}")
        if a[AL_INST] >= 0 and self._snap is not None and a[AL_INST] < len(self._snap.instruments):
            detail.append(self._snap.instruments[a[AL_INST]].symbol)
        if a[AL_VALUE]:
            detail.append(f"value={a[AL_VALUE]}")
        return [
            Segment(f" {fmt.clock_time(a[AL_TS])} ", self.style("alerts--time")),
            Segment(f"{sev_text:<4}", sev_style),
            Segment(
                f" {name:<16} ", sev_style if sev == SEV_CRITICAL else self.style("alerts--info")
            ),
            Segment(" ".join(detail), self.style("alerts--detail")),
        ]
