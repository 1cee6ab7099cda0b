"""Request/response correlation by id over a WebSocket, where silence is not an answer.

A request sent on a socket may be carried out by the venue even when its reply never comes
(the reply was lost with the connection, or is merely slow). For market data that is a
nuisance; for an order it decides whether money moved. So a request whose reply does not
arrive in time resolves as `Outcome.UNKNOWN`, never as a failure, and is never resent here:
the caller reconciles (for an order: query it by client id) before doing anything else. A
reply that turns up after its timeout is counted in `late_replies` and handed to an
optional callback, because it settles an UNKNOWN.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

_REMEMBERED_EXPIRED = 1024
"""Ids of timed-out requests kept to recognise their late replies."""


class Outcome(enum.Enum):
    """What is known about a request's effect at the venue."""

    OK = "ok"
    """The venue replied with a result."""
    ERROR = "error"
    """The venue replied with an error: the request was refused."""
    UNKNOWN = "unknown"
    """Sent, but no reply (timeout or connection lost): it may or may not have taken effect."""
    NOT_SENT = "not_sent"
    """Never written to a socket (no connection): it certainly did not take effect."""


@dataclass(frozen=True)
class Reply:
    """The resolution of one request."""

    id: Any
    outcome: Outcome
    result: Any = None
    error: Any = None
    reason: str = ""
    """Why the outcome is UNKNOWN or NOT_SENT (timeout, connection lost...)."""

    @property
    def ok(self) -> bool:
        """The venue replied with a result."""
        return self.outcome is Outcome.OK


class PendingRequests:
    """Requests in flight by id, each with the connection it went out on.

    Args:
        on_late_reply: called with a Reply that arrived after its request timed out.
    """

    def __init__(self, on_late_reply: Callable[[Reply], None] | None = None) -> None:
        self._next = 1
        self._pending: dict[Any, tuple[asyncio.Future[Reply], int]] = {}
        self._expired: OrderedDict[Any, None] = OrderedDict()
        self._on_late_reply = on_late_reply
        self.timed_out = 0
        self.late_replies = 0
        self.unmatched_replies = 0
        self.abandoned = 0

    def __len__(self) -> int:
        return len(self._pending)

    def next_id(self) -> int:
        """A fresh request id (1, 2, 3... for the life of the venue object)."""
        rid = self._next
        self._next += 1
        return rid

    def register(self, req_id: Any, connection: int) -> asyncio.Future[Reply]:
        """Expect a reply to `req_id`, sent on connection number `connection`."""
        fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = (fut, connection)
        return fut

    def resolve(self, reply: Reply) -> bool:
        """Hand a reply to its waiter; False when nobody waits for it (late or unknown id)."""
        entry = self._pending.pop(reply.id, None)
        if entry is not None:
            fut = entry[0]
            if not fut.done():
                fut.set_result(reply)
            return True
        if reply.id in self._expired:
            self.late_replies += 1
            log.warning("late reply to request %r (already reported UNKNOWN)", reply.id)
            if self._on_late_reply is not None:
                self._on_late_reply(reply)
        else:
            self.unmatched_replies += 1
            log.warning("reply to unknown request id %r", reply.id)
        return False

    async def wait(self, req_id: Any, fut: asyncio.Future[Reply], timeout: float) -> Reply:
        """The reply, or Outcome.UNKNOWN after `timeout` seconds (the request is not resent)."""
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            self._pending.pop(req_id, None)
            self._expire(req_id)
            self.timed_out += 1
            log.warning("request %r: no reply in %.1f s, outcome UNKNOWN", req_id, timeout)
            return Reply(req_id, Outcome.UNKNOWN, reason=f"no reply in {timeout:g} s")

    def discard(self, req_id: Any, outcome: Outcome, reason: str) -> Reply:
        """Resolve a request that could not complete (e.g. its send failed) as `outcome`."""
        entry = self._pending.pop(req_id, None)
        reply = Reply(req_id, outcome, reason=reason)
        if entry is not None and not entry[0].done():
            entry[0].set_result(reply)
        if outcome is Outcome.UNKNOWN:
            self._expire(req_id)
        return reply

    def abandon(self, connection: int, reason: str) -> int:
        """Resolve every request sent on a lost connection as UNKNOWN; returns how many."""
        lost = [rid for rid, (_, conn) in self._pending.items() if conn == connection]
        for rid in lost:
            self.discard(rid, Outcome.UNKNOWN, reason)
        self.abandoned += len(lost)
        return len(lost)

    def _expire(self, req_id: Any) -> None:
        self._expired[req_id] = None
        while len(self._expired) > _REMEMBERED_EXPIRED:
            self._expired.popitem(last=False)
