"""Sub-commands of ``borderlink``: one module each, with ``register(subparsers)``.

A module's ``register`` adds its parser and sets ``handler`` (a function of the parsed
arguments returning the exit code) with ``parser.set_defaults(handler=...)``.
"""
