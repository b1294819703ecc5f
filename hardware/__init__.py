"""Simulators of everything the gateway plugs into, built on the device side of our codecs."""
