"""Writing a WebSocket frame from synchronous code, when nothing has to wait.

`websockets`' `send` is a coroutine: called from the live loop's stepping cycle it needs a
task, and a task starts on the event loop's next turn (about 25 us on the tick-to-order
path: benchmarks/bench_live.py). When the connection is open and its socket's write buffer
is empty, `send` would not wait anyway: it hands the frame to the protocol and writes the
protocol's bytes to the transport. `write_now` does exactly that, at once; `can_write_now`
says False whenever `send` might have waited (a buffer not yet drained, a closing
connection, or a websockets version without these parts), and the caller then takes the
coroutine.
"""

from __future__ import annotations

from typing import Any

from websockets.protocol import State as WsState


def can_write_now(ws: Any) -> bool:
    """Whether `write_now` may be used on this connection at this moment."""
    protocol = getattr(ws, "protocol", None)
    transport = getattr(ws, "transport", None)
    if protocol is None or transport is None or not hasattr(ws, "send_data"):
        return False
    if protocol.state is not WsState.OPEN or transport.is_closing():
        return False
    return not transport.get_write_buffer_size()  # else flow control might make send wait


def write_now(ws: Any, data: bytes) -> None:
    """Write `data` (UTF-8 JSON) as one text frame now (after `can_write_now` said yes)."""
    ws.protocol.send_text(data)
    ws.send_data()
