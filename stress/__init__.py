"""Stress-test and profile asyncio streaming systems."""

__version__ = "0.1.0"
