"""The modem floor: FSK modulation and demodulation and HDLC framing, shared by the AFSK
(AX.25), SAME (EAS), POCSAG adapters and the ENDEC simulator."""
