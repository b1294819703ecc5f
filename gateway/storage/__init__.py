"""Storage backends of the ledger (see :mod:`gateway.ledger` for the interface)."""
