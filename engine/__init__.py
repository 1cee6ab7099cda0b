"""The pure engine: events, data, book, OMS, venue simulation, risk, portfolio, loop.

Importing it never loads a UI or network library (tested in tests/test_layering.py).
"""
