"""WebSocket connections that hand each message over as soon as it is parsed.

`websockets` queues every parsed message for a reader task, which the event loop wakes on
its next turn: one more turn between the bytes arriving and the adapter seeing them (on
the tick-to-order path, benchmarks/bench_live.py). `DirectClientConnection` (the adapters)
and `DirectServerConnection` (the sandbox venue) call a sink with each complete text or
binary message from the protocol's own parsing callback instead. Pings, pongs and the
close handshake stay with `websockets`.

Until a sink is given, messages are queued as usual (a connection that never gets one is
an ordinary connection). Order is kept: if messages are already queued when the sink is
given, or a fragmented message comes (Binance sends none; `websockets` assembles it), every
message of that connection goes the queued way from then on, so none overtakes another.
A sink that raises is logged and the connection goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode

log = logging.getLogger(__name__)

Sink = Callable[[str | bytes], None]

_DATA = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)


class _Direct:
    """The delivery, for a websockets asyncio connection class (mixed in before it)."""

    _handshake_attr = "response"
    """The attribute that is set once the opening handshake's message has been parsed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sink: Sink | None = None
        self.direct = False
        """True while messages go to the sink; False: `recv` (a reader) has them all."""

    def deliver_to(self, sink: Sink) -> bool:
        """Hand every message to `sink` from now on; False (and nothing changes: read them
        with `recv`) when messages are queued already, which the sink must not overtake."""
        queued = getattr(getattr(getattr(self, "recv_messages", None), "frames", None), "queue", 1)
        if queued:  # not empty, or not inspectable in this websockets version
            return False
        self._sink, self.direct = sink, True
        return True

    def process_event(self, event: Any) -> None:
        parent: Any = super()
        if (
            not self.direct
            or getattr(self, self._handshake_attr, None) is None  # still the handshake
            or not isinstance(event, Frame)
            or event.opcode not in _DATA
        ):
            parent.process_event(event)
            return
        if not event.fin or event.opcode is Opcode.CONT:
            self.direct = False  # a fragment: websockets assembles, and keeps the order
            log.info("websocket: a fragmented message; delivery through recv from now on")
            parent.process_event(event)
            return
        try:
            data = event.data.decode() if event.opcode is Opcode.TEXT else bytes(event.data)
        except UnicodeDecodeError:  # websockets fails the connection, as it should
            self.direct = False
            parent.process_event(event)
            return
        self._hand(data)

    def _hand(self, data: str | bytes) -> None:
        assert self._sink is not None
        try:
            self._sink(data)
        except Exception:  # the protocol's callback must not raise: log, go on
            log.exception("websocket: the message sink raised")


class DirectClientConnection(_Direct, ClientConnection):
    """A `ClientConnection` (pass it as `connect(create_connection=...)`) whose messages go
    to the sink given with `deliver_to`, from the parser, not through `recv`."""


class DirectServerConnection(_Direct, ServerConnection):
    """The same for a server (`serve(create_connection=...)`)."""

    _handshake_attr = "request"
