"""BinanceSpotExec's resolution of UNKNOWN outcomes and reconciliation after a reconnection.

`UnknownResolution` is a mixin of `binance_spot_exec.BinanceSpotExec` (not used alone). A
request whose outcome is unknown is settled by the first proof: a report about the order
or a late reply (binance_replies), or, after `resolve_after` seconds (at once after a
reconnection, or on `resolve_now`), a query: `order.status` of the order(s) concerned plus
`myTrades` for fills we did not hear of. The tracker then emits `resolved` (reason: the
venue's status) and the facts that bring the order there; a placement the venue does not
know (-2013) resolves as a reject. A failed query is retried with a doubling delay (at most
30 s) while a connection is up. After a reconnection every open, acknowledged order is
queried the same way (`_reconcile_open`).
"""

from __future__ import annotations

import logging
from decimal import Decimal

from adapters.live.binance_exec_messages import OrderStatus, status_facts, trade_fills
from adapters.live.correlation import Outcome
from adapters.live.exec_events import ExecEvent
from adapters.live.exec_tracker import TrackedRequest
from adapters.live.ws_types import ParseError

log = logging.getLogger("adapters.live.binance_spot_exec")  # the client's one logger


class QueryFailed(Exception):
    """A status query got no usable answer (timeout, no connection, an error)."""


class UnknownResolution:
    """Unknown requests settled by status queries; open orders re-checked (a client part)."""

    def _schedule_resolve(self, client_id: str, delay: float) -> None:
        if client_id in self._resolving:
            return
        self._resolving.add(client_id)
        self._spawn(self._resolve_later(client_id, delay), f"resolve:{client_id}")

    def resolve_now(self, client_id: str) -> bool:
        """Query the venue now about an unknown request (a user's "reconcile now") rather
        than after `resolve_after`; False when it is not unknown or no connection is up."""
        req = self.tracker.request(client_id)
        if req is None or req.settled or not req.unknown or self._active is None:
            return False
        self._spawn(self._resolve_at_once(req), f"resolve-now:{client_id}")
        return True

    async def _resolve_at_once(self, req: TrackedRequest) -> None:
        try:
            await self._resolve_once(req)  # the tracker settles a request once: a race with
            self.resolutions += 1  # the timed resolution yields one `resolved`
        except QueryFailed as exc:
            log.warning("%s: resolving %s now failed (%s)", self.venue, req.client_id, exc)

    async def _resolve_later(self, client_id: str, delay: float) -> None:
        """Query the venue until the request `client_id` is settled."""
        try:
            wait = delay
            while not self._closing:
                if wait > 0:
                    await self._sleep(wait)
                req = self.tracker.request(client_id)
                if req is None or req.settled:
                    return
                if self._active is None:
                    return  # on_subscribed schedules it again after the reconnection
                try:
                    await self._resolve_once(req)
                    self.resolutions += 1
                    return
                except QueryFailed as exc:
                    wait = min(max(wait * 2, self.resolve_after, 0.05), 30.0)
                    log.warning(
                        "%s: resolving %s failed (%s); again in %.2f s",
                        self.venue,
                        client_id,
                        exc,
                        wait,
                    )
        finally:
            self._resolving.discard(client_id)

    async def _resolve_once(self, req: TrackedRequest) -> None:
        sym = req.symbol
        if req.kind == "new":
            st = await self._query_status(sym, req.client_id)
            facts = await self._facts(req.client_id, st)
            self.tracker.resolve(req.client_id, st.status if st else "not found", facts)
            return
        if req.kind == "cancel":
            assert req.target is not None
            st = await self._query_status(sym, req.target)
            facts = await self._facts(req.target, st) if st is not None else []
            if st is not None and st.status == "CANCELED":
                self.tracker.resolve(req.client_id, "CANCELED", facts)
                return
            why = f"order is {st.status}" if st is not None else "Order does not exist."
            facts.append(
                ExecEvent(
                    "cancel_rejected",
                    req.client_id,
                    symbol=sym,
                    orig_client_id=req.target,
                    code=None if st is not None else -2013,
                    message=why,
                    recv_ts_ns=self._now_ns(),
                )
            )
            self.tracker.resolve(req.client_id, st.status if st else "not found", facts)
            return
        if req.kind == "amend":
            assert req.target is not None
            old = await self._query_status(sym, req.target)
            new = await self._query_status(sym, req.client_id)
            facts = await self._facts(req.target, old) if old is not None else []
            if new is not None:
                facts += await self._facts(req.client_id, new)
                self.tracker.resolve(req.client_id, new.status, facts)
                return
            facts.append(
                ExecEvent(
                    "amend_rejected",
                    req.client_id,
                    symbol=sym,
                    orig_client_id=req.target,
                    code=-2013,
                    message="the new order does not exist",
                    recv_ts_ns=self._now_ns(),
                )
            )
            self.tracker.resolve(req.client_id, "not placed", facts)
            return
        facts = []
        for order in self.tracker.open_orders(sym):
            facts += await self._facts(
                order.client_id, await self._query_status(sym, order.client_id)
            )
        self.tracker.resolve(req.client_id, "queried open orders", facts)

    async def _reconcile_open(self) -> None:
        """After a reconnection: what happened to our open orders while we were away."""
        for order in self.tracker.open_orders():
            if order.orphan or not order.acked:
                continue  # unknown placements are resolved on their own
            try:
                st = await self._query_status(order.symbol, order.client_id)
                for ev in await self._facts(order.client_id, st):
                    self.tracker.offer(ev)
            except QueryFailed as exc:
                log.warning("%s: reconcile %s: %s", self.venue, order.client_id, exc)
                return

    async def _facts(self, client_id: str, st: OrderStatus | None) -> list[ExecEvent]:
        """The events that bring an order to the venue's status `st` (fills from myTrades
        when the venue has more executed than we heard of)."""
        fills: list[ExecEvent] = []
        tracked = self.tracker.order(client_id)
        known = tracked.cum_qty if tracked is not None else Decimal(0)
        if st is not None and st.executed_qty > known:
            fills = await self._trades(client_id, st)
        return status_facts(client_id, st, fills, self._now_ns())

    async def _trades(self, client_id: str, st: OrderStatus) -> list[ExecEvent]:
        """Fill events of an order from myTrades (none if the query fails: logged)."""
        params = {"symbol": st.symbol, "orderId": int(st.venue_order_id)}
        reply = await self._call("myTrades", params)
        if reply.ok and isinstance(reply.result, list):
            try:
                return trade_fills(reply.result, client_id, st, self._now_ns())
            except ParseError as exc:
                self._bad_frame(f"myTrades result ({exc})", reply.result)
        log.warning(
            "%s: myTrades for %s failed; %s executed, fills not itemised",
            self.venue,
            client_id,
            st.executed_qty,
        )
        return []

    async def _query_status(self, symbol: str, client_id: str) -> OrderStatus | None:
        reply = await self._call("order.status", {"symbol": symbol, "origClientOrderId": client_id})
        if reply.ok and isinstance(reply.result, dict):
            try:
                return OrderStatus.from_result(reply.result)
            except ParseError as exc:
                raise QueryFailed(str(exc)) from None
        err = reply.error if isinstance(reply.error, dict) else {}
        if reply.outcome is Outcome.ERROR and err.get("code") == -2013:
            return None
        if reply.outcome is Outcome.ERROR:
            self._on_rate_limit(err)
        raise QueryFailed(
            self._why_unknown(reply) if reply.outcome is not Outcome.NOT_SENT else "not connected"
        )
