"""Manual order entry: a limit order at a price, or a market order."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from engine.errors import DataError
from engine.instruments import Instrument


@dataclass(frozen=True)
class OrderTicket:
    """What the user entered, in engine units."""

    side: int
    """SIDE_BUY or SIDE_SELL."""
    price_ticks: int | None
    """None for a market order."""
    qty_lots: int


def parse_ticket(inst: Instrument, side: int, price_text: str, size_text: str) -> OrderTicket | str:
    """The ticket, or a message saying what is wrong with the input."""
    try:
        size = Decimal(size_text.strip())
    except InvalidOperation:
        return f"size {size_text!r} is not a number"
    try:
        lots = inst.size_to_lots(size)
    except DataError as exc:
        return exc.reason
    if lots <= 0:
        return "size must be positive"
    text = price_text.strip().lower()
    if text in ("m", "mkt", "market"):
        return OrderTicket(side, None, lots)
    try:
        ticks = inst.price_to_ticks(Decimal(text))
    except (InvalidOperation, ValueError):
        return f"price {price_text!r} is not a number (or 'market')"
    except DataError as exc:
        return exc.reason
    if ticks <= 0:
        return "price must be positive"
    return OrderTicket(side, ticks, lots)


class OrderScreen(ModalScreen[OrderTicket | None]):
    """Price and size inputs; Enter sends, Esc cancels."""

    DEFAULT_CSS = """
    OrderScreen { align: center middle; background: $background 60%; }
    OrderScreen > Vertical {
        width: 56; max-width: 95%; height: auto; border: thick $primary;
        background: $panel; padding: 0 1;
    }
    OrderScreen .order--title { text-style: bold; width: 1fr; }
    OrderScreen .order--buy { color: $bid; }
    OrderScreen .order--sell { color: $ask; }
    OrderScreen Horizontal { height: auto; }
    OrderScreen Horizontal > Label { width: 8; padding: 1 0; }
    OrderScreen Input { width: 1fr; }
    OrderScreen .order--error { color: $error; width: 1fr; }
    OrderScreen .order--keys { color: $text-muted; width: 1fr; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="order_cancel")]

    def __init__(self, inst: Instrument, side: int, side_name: str, price: str, size: str) -> None:
        super().__init__()
        self.inst = inst
        self.side = side
        self.side_name = side_name
        self.default_price = price
        self.default_size = size

    def compose(self) -> ComposeResult:
        """Title, price, size, messages."""
        with Vertical():
            yield Label(
                f"{self.side_name.upper()} {self.inst.symbol} (manual, GTC limit)",
                classes=f"order--title order--{self.side_name}",
            )
            with Horizontal():
                yield Label("price")
                yield Input(self.default_price, id="price", placeholder="price or 'market'")
            with Horizontal():
                yield Label("size")
                yield Input(self.default_size, id="size", placeholder="size")
            yield Label("", id="error", classes="order--error")
            yield Label("Enter sends · Esc cancels", classes="order--keys")

    def on_mount(self) -> None:
        """Start in the price box."""
        self.query_one("#price", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in either box: validate and send."""
        price = self.query_one("#price", Input).value
        size = self.query_one("#size", Input).value
        ticket = parse_ticket(self.inst, self.side, price, size)
        if isinstance(ticket, str):
            self.query_one("#error", Label).update(ticket)
            return
        self.dismiss(ticket)

    def action_cancel(self) -> None:
        """Send nothing."""
        self.dismiss(None)
