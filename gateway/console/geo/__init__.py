"""The map's boundary data: how it is made (:mod:`gateway.console.geo.build`) and where it
comes from (``SOURCES.md`` beside this file). The files themselves are served as static
files from ``gateway/console/static/geo/``; nothing here runs in the daemon."""
