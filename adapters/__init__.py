"""Adapters: everything that speaks an outside format or protocol, converted into engine events."""
