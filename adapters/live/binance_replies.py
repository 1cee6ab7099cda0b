"""BinanceSpotExec's replies: the event that answers each request, and the unknown ones.

`ReplySettling` is a mixin of `binance_spot_exec.BinanceSpotExec` (not used alone; the
tracker, `filters`, `_late` and the counters are the client's). From a WS-API reply it
makes the event that answers the request (ack, reject, canceled, cancel_rejected, amended,
amend_rejected, or the cancels of a cancelAll) and offers it to the `OrderTracker`, which
drops what an execution report already said. Error codes -1006/-1007, a 5xx status, a
timeout or a connection lost after sending give an `unknown` event, remembered by reply id
so that a late reply settles it (`_on_late_reply`) and handed to binance_resolution's
timed status query. A request the symbol's filters refuse is rejected here, unsent
(`_refused_locally`, code -1013).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Final

from adapters.live.binance_exec_messages import canceled_event, is_unknown_error, str_or_none
from adapters.live.correlation import Outcome, Reply
from adapters.live.exec_events import ExecEvent, OrderRequest
from adapters.live.secrets import redact
from adapters.live.ws_types import ParseError

log = logging.getLogger("adapters.live.binance_spot_exec")  # the client's one logger

_LATE_KEPT: Final = 1024
"""Requests reported UNKNOWN remembered to settle them with a late reply."""


class ReplySettling:
    """Requests' answers from replies, UNKNOWN when nobody knows (a BinanceSpotExec part)."""

    def _refused_locally(self, req: OrderRequest) -> ExecEvent | None:
        """A reject made here when the symbol's filters refuse the order (nothing sent)."""
        if not self.check_filters:
            return None
        filt = self.filters.get(req.symbol)
        if filt is None:
            return None
        why = filt.check(req)
        if why is None:
            return None
        self.filter_rejects += 1
        kind = "reject" if req.kind == "new" else "amend_rejected"
        ev = replace(
            self._template(req, kind),
            code=-1013,
            message=why,
            reason="refused locally (symbol filters)",
        )
        return self._offer_first(ev)

    def _settle(self, req: OrderRequest, reply: Reply) -> ExecEvent:
        """The event that answers a request, from its reply (also a late one)."""
        if self._outcome_unknown(reply):
            return self._unknown(req, reply)
        if reply.ok:
            result = reply.result
            try:
                if req.kind == "new":
                    r = result if isinstance(result, dict) else {}
                    return self._offer_first(self._ack_from(req, r, "order.place"))
                if req.kind == "cancel":
                    return self._offer_first(canceled_event(result, self._now_ns()))
                if req.kind == "amend":
                    return self._settle_amend(req, result if isinstance(result, dict) else {})
                if isinstance(result, list):
                    events = self._settle_cancel_all(req, result)
                    return events[0] if events else self._template(req, "canceled")
            except ParseError as exc:
                self._bad_frame(f"{req.kind} reply ({exc})", result)
                return self._unknown(req, reply, "unreadable reply")
        err = reply.error if isinstance(reply.error, dict) else {}
        self._on_rate_limit(err)
        data = err.get("data")
        if req.kind == "amend" and isinstance(data, dict) and "cancelResult" in data:
            return self._settle_cancel_replace(req, data, err.get("code"), err.get("msg"))
        code, msg = self._code_msg(reply)
        kind = {"new": "reject", "amend": "amend_rejected"}.get(req.kind, "cancel_rejected")
        return self._offer_first(replace(self._template(req, kind), code=code, message=msg))

    def _ack_from(self, req: OrderRequest, r: Mapping[str, Any], how: str) -> ExecEvent:
        return replace(
            self._template(req, "ack"),
            orig_client_id=None,
            venue_order_id=str_or_none(r.get("orderId")),
            venue_ts_ms=r.get("transactTime"),
            reason=how,
        )

    def _settle_amend(self, req: OrderRequest, r: Mapping[str, Any]) -> ExecEvent:
        """The outcome of a successful amend reply (spot: order.cancelReplace's)."""
        return self._settle_cancel_replace(req, r, None, None)

    def _settle_cancel_replace(
        self, req: OrderRequest, data: Mapping[str, Any], code: Any, msg: Any
    ) -> ExecEvent:
        """The outcome of order.cancelReplace: the old order's cancel, the new order."""
        cancel = data.get("cancelResponse")
        new = data.get("newOrderResponse")
        if data.get("cancelResult") == "SUCCESS" and isinstance(cancel, dict):
            try:
                self.tracker.offer(canceled_event(cancel, self._now_ns()))
            except ParseError as exc:
                self._bad_frame(f"cancelReplace cancelResponse ({exc})", cancel)
        if data.get("newOrderResult") == "SUCCESS" and isinstance(new, dict):
            self.tracker.offer(self._ack_from(req, new, "order.cancelReplace"))
            return self._known_outcome(req) or self._template(req, "amended")
        sub = new if isinstance(new, dict) and "code" in new else cancel
        if isinstance(sub, dict) and "code" in sub:
            code, msg = sub.get("code"), sub.get("msg")
        return self._offer_first(
            replace(
                self._template(req, "amend_rejected"),
                code=code if isinstance(code, int) else None,
                message=redact(str(msg or "")),
            )
        )

    def _settle_cancel_all(self, req: OrderRequest, items: list) -> list[ExecEvent]:
        """A `canceled` per order the venue canceled (returned also when a report already
        delivered it)."""
        out: list[ExecEvent] = []
        for item in items:
            try:
                out.append(self._offer_first(canceled_event(item, self._now_ns())))
            except ParseError as exc:
                self._bad_frame(f"openOrders.cancelAll item ({exc})", item)
        self.tracker.settle(req.client_id, "canceled")
        return out

    def _template(self, req: OrderRequest, kind: str) -> ExecEvent:
        return ExecEvent(
            kind,  # type: ignore[arg-type]
            req.client_id,
            symbol=req.symbol,
            orig_client_id=req.orig_client_id,
            side=req.side,
            price=req.price,
            qty=req.qty,
            recv_ts_ns=self._now_ns(),
        )

    def _offer_first(self, ev: ExecEvent) -> ExecEvent:
        """Offer `ev`; return it (also when an earlier report already told the fact)."""
        out = self.tracker.offer(ev)
        for e in out:
            if e.kind == ev.kind and e.client_id == ev.client_id:
                return e
        return ev

    def _unknown(self, req: OrderRequest, reply: Reply, why: str | None = None) -> ExecEvent:
        """Report that nobody knows what a request did; settle it later (never resend)."""
        why = why or self._why_unknown(reply)
        err = reply.error if isinstance(reply.error, dict) else {}
        code = err.get("code")
        template = replace(
            self._template(req, "unknown"),
            reason=why,
            code=code if isinstance(code, int) else None,
        )
        if reply.outcome is Outcome.UNKNOWN:
            self._late[reply.id] = req
            while len(self._late) > _LATE_KEPT:
                self._late.pop(next(iter(self._late)))
        ev = self.tracker.unknown(template)
        if ev is None:
            return self._known_outcome(req) or template
        log.warning("%s: request %s: outcome unknown (%s)", self.venue, req.client_id, why)
        self._schedule_resolve(req.client_id, self.resolve_after)
        return ev

    def _known_outcome(self, req: OrderRequest) -> ExecEvent | None:
        """What the tracker already knows about a request settled by a report."""
        record = self.tracker.request(req.client_id)
        if record is not None and record.in_place and record.result:
            kind = "amended" if record.result == "amended" else "amend_rejected"
            return replace(self._template(req, kind), reason="already reported")
        order = self.tracker.order(req.client_id)
        if order is None or req.kind not in ("new", "amend"):
            return None
        kind = (
            "reject" if order.ended == "reject" else ("amended" if req.kind == "amend" else "ack")
        )
        return replace(
            self._template(req, kind),
            venue_order_id=order.venue_order_id,
            reason="already reported",
        )

    def _outcome_unknown(self, reply: Reply) -> bool:
        if reply.outcome is Outcome.UNKNOWN:
            return True
        if reply.outcome is Outcome.ERROR:
            err = reply.error if isinstance(reply.error, dict) else {}
            return is_unknown_error(err)
        return False

    @staticmethod
    def _why_unknown(reply: Reply) -> str:
        if reply.outcome is Outcome.UNKNOWN:
            return reply.reason or "no reply"
        err = reply.error if isinstance(reply.error, dict) else {}
        return f"status {err.get('status')} code {err.get('code')}: {redact(str(err.get('msg')))}"

    @staticmethod
    def _code_msg(reply: Reply) -> tuple[int | None, str]:
        if reply.outcome is Outcome.NOT_SENT:
            return None, f"not sent: {reply.reason}"
        err = reply.error if isinstance(reply.error, dict) else {}
        code = err.get("code")
        return (code if isinstance(code, int) else None), redact(str(err.get("msg") or ""))

    def _on_late_reply(self, reply: Reply) -> None:
        """A reply after its request was reported UNKNOWN: it settles the request."""
        req = self._late.pop(reply.id, None)
        if req is None:
            return
        record = self.tracker.request(req.client_id)
        if record is not None and record.settled:
            return
        if not self._outcome_unknown(reply):
            self._settle(req, reply)
