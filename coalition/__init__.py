"""Coalition: a coalition rewards network for small businesses."""

__version__ = "0.1.0"
