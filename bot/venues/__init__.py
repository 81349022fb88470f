"""Venue adapters behind one protocol: the built-in paper venue now, ccxt exchanges through the same ports."""
