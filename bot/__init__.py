"""marginbot: automated treasury sweep and hedge execution bot for crypto derivatives desks."""

__version__ = "0.1.0"
