"""Risk rules for the tests (in a file: numba caches compiled functions by file)."""

from __future__ import annotations


def deny_big_sells(strat, inst, side, price, qty, position, mid_x2, now, params):
    """Deny sells above params[0] lots with code 5; allow everything else."""
    if side == -1 and qty > params[0]:
        return 5
    return 0


def deny_far_from_mid(strat, inst, side, price, qty, position, mid_x2, now, params):
    """Deny limit orders more than params[0] ticks from the mid with code 9."""
    if price > 0 and mid_x2 > 0 and abs(2 * price - mid_x2) > 2 * params[0]:
        return 9
    return 0


def wrong_arity(strat, inst, side):
    """Takes three arguments: refused with a message saying what is expected."""
    return 0


def not_numba(strat, inst, side, price, qty, position, mid_x2, now, params):
    """numba cannot compile it (a string plus an integer)."""
    return len("abc" + qty)
