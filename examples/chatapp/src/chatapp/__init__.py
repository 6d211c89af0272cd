"""A small chat front end: a model backend streams tokens to a UI through a bounded channel."""

__version__ = "1.0.0"
