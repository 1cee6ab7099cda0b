"""The cockpit's Textual themes: dark, light and a colour-blind-safe one.

Every colour of the cockpit lives here. Widgets never name a colour: they style component
classes with the theme variables below (`$bid`, `$ask`, `$own-order`, `$gain`, `$loss`,
`$alert-info`, `$alert-warning`, `$alert-critical`; `$env-sandbox`, `$env-testnet`, `$env-live`
behind a live session's environment banner), which each theme sets and
`VARIABLE_DEFAULTS` backs up, so Textual's own themes (offered by its palette) still work.

The colour-blind-safe theme uses the Okabe-Ito palette (Okabe and Ito, "Color Universal
Design", 2008): bids blue, asks orange, gains blue, losses vermilion, never red against
green. Bids and asks also differ by place (asks above the price axis and in the right-hand
column, bids below and left), so no theme relies on colour alone.
"""

from __future__ import annotations

from typing import Final

from textual.theme import Theme

VARIABLE_DEFAULTS: Final[dict[str, str]] = {
    "bid": "#3fb950",
    "ask": "#f85149",
    "own-order": "#e3b341",
    "gain": "#3fb950",
    "loss": "#f85149",
    "alert-info": "#58a6ff",
    "alert-warning": "#d29922",
    "alert-critical": "#ff5f5f",
    "env-sandbox": "#3b6e99",
    "env-testnet": "#9a6700",
    "env-live": "#b62324",
}
"""Fallbacks for themes that do not set the cockpit's variables (Textual's built-ins)."""

DARK: Final = Theme(
    name="cockpit-dark",
    primary="#4fa3e0",
    secondary="#3b6e99",
    accent="#e3b341",
    warning="#d29922",
    error="#ff5f5f",
    success="#3fb950",
    foreground="#d8dee9",
    background="#0d1117",
    surface="#161b22",
    panel="#1f2630",
    dark=True,
    variables={**VARIABLE_DEFAULTS, "footer-key-foreground": "#e3b341"},
)

LIGHT: Final = Theme(
    name="cockpit-light",
    primary="#0969da",
    secondary="#54aeff",
    accent="#9a6700",
    warning="#9a6700",
    error="#cf222e",
    success="#1a7f37",
    foreground="#1f2328",
    background="#f6f8fa",
    surface="#ffffff",
    panel="#eaeef2",
    dark=False,
    variables={
        "bid": "#1a7f37",
        "ask": "#cf222e",
        "own-order": "#8250df",
        "gain": "#1a7f37",
        "loss": "#cf222e",
        "alert-info": "#0969da",
        "alert-warning": "#9a6700",
        "alert-critical": "#cf222e",
        "env-sandbox": "#0969da",
        "env-testnet": "#9a6700",
        "env-live": "#a40e26",
        "footer-key-foreground": "#0969da",
    },
)

COLOUR_BLIND: Final = Theme(
    name="cockpit-colorblind",
    primary="#56b4e9",
    secondary="#0072b2",
    accent="#f0e442",
    warning="#e69f00",
    error="#d55e00",
    success="#56b4e9",
    foreground="#e6e6e6",
    background="#101010",
    surface="#181818",
    panel="#242424",
    dark=True,
    variables={
        "bid": "#56b4e9",
        "ask": "#e69f00",
        "own-order": "#f0e442",
        "gain": "#56b4e9",
        "loss": "#d55e00",
        "alert-info": "#56b4e9",
        "alert-warning": "#f0e442",
        "alert-critical": "#d55e00",
        "env-sandbox": "#0072b2",
        "env-testnet": "#cc79a7",
        "env-live": "#d55e00",
        "footer-key-foreground": "#f0e442",
    },
)

THEMES: Final[tuple[Theme, ...]] = (DARK, LIGHT, COLOUR_BLIND)
"""The cockpit's themes, in the order the theme key cycles through them."""

THEME_NAMES: Final[tuple[str, ...]] = tuple(t.name for t in THEMES)
DEFAULT_THEME: Final = DARK.name

ALIASES: Final[dict[str, str]] = {
    "dark": DARK.name,
    "light": LIGHT.name,
    "colorblind": COLOUR_BLIND.name,
    "colourblind": COLOUR_BLIND.name,
    "cb": COLOUR_BLIND.name,
}
"""Short names accepted by `--theme`."""


def resolve(name: str) -> str:
    """The full theme name for a name or alias (KeyError when unknown)."""
    if name in THEME_NAMES:
        return name
    return ALIASES[name]
