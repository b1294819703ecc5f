"""KISS TNC interface: the KISS codec, AX.25 UI frames, APRS messages and bulletins.

Layers, each usable on its own: :mod:`adapters.kiss.kiss` (KISS framing, sans-IO),
:mod:`adapters.kiss.ax25` (AX.25 UI frames without flags or FCS, as KISS carries them),
:mod:`adapters.kiss.aprs` (APRS 1.0.1 messages, acknowledgements, bulletins) and
:mod:`adapters.kiss.adapter` (the asyncio source/sink on a serial, TCP or pty port).
"""
