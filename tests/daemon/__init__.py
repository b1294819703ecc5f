"""Daemon tests: configuration, routing, the pipeline over real Mosquitto, HTTP API."""
