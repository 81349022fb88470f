"""Scenario replay: the same bot, a simulated clock, a seeded paper market."""
