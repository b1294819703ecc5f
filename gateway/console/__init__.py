"""The EOC console's security layer: named accounts, signed sessions and login lockout."""
