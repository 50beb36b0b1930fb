"""geofuse: image fusion for remote sensing over chunked, georeferenced rasters, computed with torch."""

__version__ = "0.1.0"
