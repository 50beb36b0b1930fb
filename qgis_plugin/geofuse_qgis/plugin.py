"""The plugin object: registers the geofuse Processing provider, nothing else."""

from __future__ import annotations


class GeofusePlugin:
    def __init__(self, iface=None):
        self.iface = iface
        self.provider = None

    def initProcessing(self):  # noqa: N802 - QGIS API
        """Register the provider (called by QGIS and qgis_process for hasProcessingProvider=yes)."""
        if self.provider is not None:
            return
        from qgis.core import QgsApplication

        from .provider import GeofuseProvider

        self.provider = GeofuseProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):  # noqa: N802 - QGIS API
        self.initProcessing()

    def unload(self):
        if self.provider is not None:
            from qgis.core import QgsApplication

            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
