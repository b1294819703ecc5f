"""Translations: pure functions from an alert to what a sink carries (no I/O)."""
