"""geofuse QGIS plugin: a Processing provider whose algorithms are generated from geofuse's registry.

Loading stays light: nothing from geofuse (numpy 2, torch, rasterio wheels) is imported into QGIS, and
nothing heavy from QGIS is imported until ``initProcessing`` registers the provider.
"""


def classFactory(iface):  # noqa: N802 - QGIS's plugin entry point
    """QGIS calls this to create the plugin (``iface`` is None in qgis_process)."""
    from .plugin import GeofusePlugin

    return GeofusePlugin(iface)
