"""The boundary data: how it is made (:mod:`gateway.console.geo.build`) and where it comes
from (``SOURCES.md`` beside this file). The console's map serves the files
(:mod:`gateway.console.mapdata`); routes that measure distance to the border read them
(:mod:`gateway.places`, :mod:`gateway.border`); the border crosswalk is made from them
(:mod:`gateway.console.geo.crosswalk`). The build scripts never run in the daemon."""
