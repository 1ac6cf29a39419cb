"""Fixtures for the safety tests: the pretend internet of tests/fakeweb.py."""

from tests.fakeweb import fakeweb  # noqa: F401 - makes the fixture available here
