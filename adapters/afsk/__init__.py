"""Sound-card packet modem: Bell 202 AFSK1200, HDLC framing, PTT keying."""
