"""Verdicts of a venue's book sequence rule on one incremental update.

Shared by the offline loaders of recorded data (`binance_ws`, `bybit_history`) and the live
book sequencer (`adapters.live.book_sync`), so a recording and a live feed are judged by the
same rule functions, which return one of these codes and, for a gap, why.
"""

from __future__ import annotations

from typing import Final

DIFF_STALE: Final = 0
"""The book already holds it (it ends at or before the snapshot): drop it."""
DIFF_APPLY: Final = 1
"""It continues the book: apply it."""
DIFF_GAP: Final = 2
"""It does not continue the book: updates were missed, the book must be rebuilt."""
