"""The map's boundary files as the console serves them: read once from the package,
gzip-compressed once, each URL carrying the file's digest so that a browser may keep it.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
from dataclasses import dataclass
from importlib import resources

__all__ = ["GEO_FILES", "GeoFile", "geo_file", "geo_urls"]

GEO_FILES = ("base.geojson", "us-counties.geojson", "ca-divisions.geojson")


@dataclass(frozen=True, slots=True)
class GeoFile:
    """A boundary file as served: its bytes, gzip-compressed once, and a digest for its URL."""

    raw: bytes
    gzipped: bytes
    digest: str

    @property
    def etag(self) -> str:
        return f'"{self.digest}"'


@functools.cache
def geo_file(name: str) -> GeoFile:
    raw = resources.files("gateway.console.geo").joinpath(name).read_bytes()
    digest = hashlib.sha256(raw).hexdigest()[:16]
    return GeoFile(raw, gzip.compress(raw, compresslevel=9, mtime=0), digest)


def geo_urls() -> dict[str, str]:
    """The page's URLs of the boundary files, each with its digest (long-cached)."""
    return {
        name.split(".")[0].replace("-", "_"): f"/map/geo/{name}?v={geo_file(name).digest}"
        for name in GEO_FILES
    }
