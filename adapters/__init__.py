"""Adapters: one package per external system, each a sans-IO ``codec`` plus an asyncio
``adapter`` that converts to and from the internal model; the floors they share beside them
(``ports``, ``modem``, ``feeds``).

:data:`BUILTIN_ADAPTERS` is the table of the adapters this distribution carries: the ``type``
of a ``[[source]]``/``[[sink]]`` -> the factory that builds it. The gateway finds it through the
``borderlink.adapters_tables`` entry point (``pyproject.toml``) and never imports an adapter
module by name; this module holds only the tables, so reading them imports nothing else.
"""

BUILTIN_ADAPTERS: dict[str, str] = {
    "mqtt": "adapters.mqtt.adapter:from_context",
    "naad": "adapters.naad.adapter:from_context",
    "ipaws": "adapters.ipaws.adapter:from_context",
    "nws": "adapters.nws.adapter:from_context",
    "atom": "adapters.atom.adapter:from_context",
    "kiss": "adapters.kiss.adapter:from_context",
    "afsk": "adapters.afsk.adapter:from_context",
    "tap": "adapters.pager.adapter:from_context",
    "textmodem": "adapters.textmodem.adapter:from_context",
    "endec": "adapters.eas.adapter:from_context",
    "demo": "adapters.demo.adapter:from_context",
    "file": "adapters.file.adapter:from_context",
}

#: Codecs the gateway's own pages use (the console's play button for a SAME header's audio).
BUILTIN_CODECS: dict[str, str] = {"same-audio": "adapters.eas.same_modem:header_wav"}
