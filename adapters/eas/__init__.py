"""EAS: the SAME modem, the ENDEC serial codec and the ENDEC adapter."""
