"""borderlink: the cross-border emergency-alert and radio message gateway daemon."""

__version__ = "0.1.0"
