"""The worked example of docs/adapters.md: a feed written from scratch (a spool folder)."""
