"""Digests of change events and the channels that deliver them."""
