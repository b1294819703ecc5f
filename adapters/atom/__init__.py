"""A source that reads a partner's Atom feed of CAP alerts (a gateway's, a MASAS-style hub)."""
