"""Hedge strategies behind one small protocol, registered by name.

The hedge engine (strategies `static`, `dynamic_band`, `funding_rotation`) is not part of this release:
configs may declare `[[hedges]]`, and the bot validates them, but it does not trade them yet. Starting
the bot with hedges configured logs a warning saying so.
"""
