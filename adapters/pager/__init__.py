"""Paging: TAP (Telocator Alphanumeric Protocol) to paging terminals, and POCSAG baseband.

:mod:`adapters.pager.tap` is the sans-IO TAP codec (both the sender and the terminal side),
:mod:`adapters.pager.adapter` the asyncio sink that turns alerts and incidents into pages;
:mod:`adapters.pager.pocsag` encodes POCSAG for a transmitter driven from audio.
"""
