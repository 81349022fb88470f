"""The pure core: standard library and decimal only; no I/O, no ccxt, sqlalchemy or apprise."""
