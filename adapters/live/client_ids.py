"""Deterministic client order ids: a session prefix and a counter, never reused.

An id is `<prefix>-<n>` with n = 1, 2, 3, ... in decimal: it fits Binance's
newClientOrderId rule (`^[a-zA-Z0-9-_]{1,36}$`), sorts by n within a prefix, and a request
can be traced from the cockpit to the venue's order history by it. The prefix has no `-`,
so the counter is always the text after the last `-`.

Ids are never reused: after a restart the allocator resumes after the highest counter of
its prefix found in the journal (`ClientIdAllocator.resume`). An id is journaled before it
is sent, so an id allocated but lost in a crash was never sent, and handing it out again is
harmless. Ids of other prefixes (another strategy, orders placed by hand) are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from adapters.live.order_records import Event, Intent, Record, Reply
from engine.errors import UsageError

PREFIX_RE: Final = re.compile(r"[A-Za-z0-9_]{1,20}")
MAX_ID_LENGTH: Final = 36


class ClientIdAllocator:
    """Hands out `<prefix>-1`, `<prefix>-2`, ... starting after `last`.

    Args:
        session_prefix: 1 to 20 of A-Z a-z 0-9 _ (no `-`: it separates the counter).
        last: the highest counter already used (0 for a fresh journal).
    """

    def __init__(self, session_prefix: str, last: int = 0) -> None:
        if not isinstance(session_prefix, str) or not PREFIX_RE.fullmatch(session_prefix):
            raise UsageError(
                f"client id prefix {session_prefix!r}: expected 1 to 20 of A-Z a-z 0-9 _"
            )
        if last < 0:
            raise UsageError(f"client id counter {last}: must not be negative")
        self.prefix = session_prefix
        self._last = last
        self._max = 10 ** (MAX_ID_LENGTH - len(session_prefix) - 1) - 1
        self._pattern = re.compile(re.escape(session_prefix) + r"-([1-9][0-9]*)")

    @classmethod
    def resume(cls, session_prefix: str, records: Iterable[Record]) -> ClientIdAllocator:
        """An allocator continuing after every id of its prefix in `records` (a replay)."""
        allocator = cls(session_prefix)
        for r in records:
            if isinstance(r, Intent | Reply | Event):
                allocator.observe([r.client_id])
            if isinstance(r, Intent) and r.orig_client_id is not None:
                allocator.observe([r.orig_client_id])
        return allocator

    @property
    def last(self) -> int:
        """The highest counter handed out or observed."""
        return self._last

    def counter_of(self, client_id: str) -> int | None:
        """The counter of an id of this prefix, None for any other id."""
        m = self._pattern.fullmatch(client_id)
        return int(m[1]) if m else None

    def observe(self, client_ids: Iterable[str]) -> None:
        """Never hand out these ids (nor any lower counter) again."""
        for client_id in client_ids:
            n = self.counter_of(client_id)
            if n is not None and n > self._last:
                self._last = n

    def next(self) -> str:
        """A new id.

        Raises:
            UsageError: the counter no longer fits in 36 characters (choose a new prefix).
        """
        if self._last >= self._max:
            raise UsageError(
                f"client ids of prefix {self.prefix!r} are exhausted at {self._last} "
                f"(an id has at most {MAX_ID_LENGTH} characters); start a new prefix"
            )
        self._last += 1
        return f"{self.prefix}-{self._last}"
