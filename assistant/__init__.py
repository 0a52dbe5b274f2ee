"""Samverkansassistenten: cited answers about municipalities' collaboration with social enterprises."""

__version__ = "0.1.0"
