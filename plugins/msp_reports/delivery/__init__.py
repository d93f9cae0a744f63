"""Delivery channels, each behind the same small interface, and the ledger that makes them
exactly-once: :mod:`.ledger` decides whether to send; a channel only knows how."""
