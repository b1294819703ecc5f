"""The CAP library: model, hardened parsing, validation, profiles, code tables and signatures.

Pure Python on top of lxml and the standard library; never imports asyncio.
"""
