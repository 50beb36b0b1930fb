"""geofuse: image fusion for remote sensing over chunked, georeferenced rasters, computed with torch.

Main entry points::

    import geofuse
    ms, pan = geofuse.open_raster("ms.tif"), geofuse.open_raster("pan.tif")
    fused = geofuse.pansharpen(ms, pan, method="mtf_glp_hpm", sensor="WV3")   # lazy
    geofuse.write_raster(fused, "fused.tif", progress=True)
    ms_lr, pan_lr = geofuse.degrade.wald(ms, pan, sensor="WV3")               # Wald protocol
    geofuse.evaluate(geofuse.pansharpen(ms_lr, pan_lr), reference=ms)         # tidy table: Q2n, Q, SAM, ERGAS, SCC, ...
"""

__version__ = "0.1.0"

import os as _os  # noqa: E402

# Cap GDAL's block cache before GDAL first reads its configuration (see geofuse.io.GDAL_CACHEMAX_DEFAULT_MB).
_os.environ.setdefault("GDAL_CACHEMAX", "256")

from . import degrade, registry, sensors  # noqa: E402
from .api import evaluate, fuse_hyperspectral, methods_table, pansharpen  # noqa: E402
from .errors import GeofuseError  # noqa: E402
from .io import open_raster, write_raster  # noqa: E402

__all__ = ["pansharpen", "fuse_hyperspectral", "evaluate", "methods_table", "degrade", "registry", "sensors",
           "open_raster", "write_raster", "GeofuseError", "__version__"]
