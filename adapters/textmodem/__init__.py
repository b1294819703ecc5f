"""Data radios and text modems that speak a line-oriented, AT-like dialect described in config."""
