"""BinanceSpotExec's user data stream: subscription, execution reports, event delivery.

`UserDataStream` is a mixin of `binance_spot_exec.BinanceSpotExec` (not used alone). The
stream shares the WS-API connection with the requests. HMAC keys subscribe with
`userDataStream.subscribe.signature`; Ed25519 keys log the session on (`session.logon`)
and `userDataStream.subscribe`, as Binance documents (logon is Ed25519-only); both are
re-done on every (re)connection. `executionReport`s become `ExecEvent`s
(`binance_exec_messages.report_events`) offered to the tracker, whose output is delivered
to `on_exec` (or `exec_queue`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final

from adapters.live.binance_exec_messages import report_events
from adapters.live.exec_events import ExecEvent
from adapters.live.secrets import redact
from adapters.live.signing import Ed25519Signer
from adapters.live.ws_types import ParseError

log = logging.getLogger("adapters.live.binance_spot_exec")  # the client's one logger

_QUIET_EVENTS: Final = frozenset(
    {"outboundAccountPosition", "balanceUpdate", "listStatus", "externalLockUpdate"}
)
"""User data events that carry nothing for order execution (not counted as unknown)."""


class UserDataStream:
    """The user data stream's subscription and reports (a BinanceSpotExec part)."""

    def subscribe_requests(self) -> list[dict]:
        if not self.user_stream:
            return []
        if isinstance(self.signer, Ed25519Signer):
            logon = self.sign_request({"method": "session.logon", "params": {}})
            return [logon, {"method": "userDataStream.subscribe"}]
        return [self.sign_request({"method": "userDataStream.subscribe.signature", "params": {}})]

    def parse(self, msg: Any, ts_local: int) -> Sequence[Any]:
        if not isinstance(msg, dict):
            raise ParseError(f"expected a JSON object, got {type(msg).__name__}")
        if "event" not in msg:
            if "error" in msg:
                self.venue_errors += 1
                log.warning("%s: venue error: %s", self.venue, redact(str(msg.get("error"))))
                return ()
            self.note_unknown("(no event) " + ",".join(sorted(msg)[:4]))
            return ()
        event = msg["event"]
        if not isinstance(event, dict):
            raise ParseError("event is not an object")
        kind = event.get("e")
        self.stream_events += 1
        if kind == "executionReport":
            events, unknown = report_events(event, ts_local)
            if unknown is not None:
                self.note_unknown(f"executionReport x={unknown}")
            for ev in events:
                self.tracker.offer(ev)
        elif kind == "eventStreamTerminated":
            log.warning("%s: the user data stream was terminated by the venue", self.venue)
        elif kind not in _QUIET_EVENTS:
            self.note_unknown(str(kind))
        return ()

    def _deliver(self, ev: ExecEvent) -> None:
        if self.on_exec is None:
            self.exec_queue.put_nowait(ev)
            return
        try:
            self.on_exec(ev)
        except Exception:
            self.exec_sink_errors += 1
            log.exception("%s: the exec event sink raised", self.venue)
