"""IPAWS-OPEN public feeds (``eas``, ``nwem``, ``PublicWEA``, ``public``, ``public_non_eas``)."""
