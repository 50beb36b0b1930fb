"""Render a geofuse algorithm dialog in the QGIS GUI and save it as a PNG (the README's screenshot).

Run with Debian's python3 (it carries the qgis bindings) on a virtual screen::

    GEOFUSE_PYTHON=.venv/bin/python xvfb-run -a -s "-screen 0 1280x1100x24" \\
        /usr/bin/python3 qgis_plugin/docs/make_screenshot.py qgis_plugin/docs/dialog.png

Arguments: OUTPUT.png [ALGORITHM_ID] [MS.tif PAN.tif]. Without rasters, two small synthetic GeoTIFFs
are written with GDAL so that the layer boxes show something. The dialog is the real Processing
dialog (processing.gui.AlgorithmDialog) of the geofuse provider, with its "Advanced Parameters"
section expanded. ``--check-all`` instead builds the dialog of every geofuse algorithm (also with
``QT_QPA_PLATFORM=offscreen``; the plugin tests use it).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def _synthetic(d: Path) -> tuple[str, str]:
    import numpy as np
    from osgeo import gdal, osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    out = []
    for name, bands, size, px in (("ikonos_ms", 4, 64, 4.0), ("ikonos_pan", 1, 256, 1.0)):
        ds = gdal.GetDriverByName("GTiff").Create(str(d / f"{name}.tif"), size, size, bands, gdal.GDT_UInt16)
        ds.SetGeoTransform((500_000.0, px, 0, 4_000_000.0, 0, -px))
        ds.SetProjection(srs.ExportToWkt())
        for b in range(bands):
            ramp = np.add.outer(np.arange(size), np.arange(size)) * (8 // bands + 1) + 500 + 100 * b
            ds.GetRasterBand(b + 1).WriteArray(ramp.astype(np.uint16))
        ds = None
        out.append(str(d / f"{name}.tif"))
    return out[0], out[1]


def check_all_dialogs(app) -> int:
    """Build (and show) the Processing dialog of every geofuse algorithm; print one line each."""
    from processing.gui.AlgorithmDialog import AlgorithmDialog
    from qgis.core import QgsApplication

    failures = 0
    algs = QgsApplication.processingRegistry().providerById("geofuse").algorithms()
    for alg in algs:
        try:
            dlg = AlgorithmDialog(alg.create(), False, None)
            dlg.show()
            app.processEvents()
            n = len(alg.parameterDefinitions())
            dlg.close()
            print(f"ok {alg.id()} {n}")
        except Exception as exc:  # noqa: BLE001 - report every algorithm
            failures += 1
            print(f"FAILED {alg.id()} {type(exc).__name__}: {exc}")
    print(f"{len(algs) - failures}/{len(algs)} dialogs")
    return 1 if failures or not algs else 0


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else HERE / "dialog.png"
    alg_id = argv[1] if len(argv) > 1 else "geofuse:mtf_glp_hpm"
    from qgis.core import QgsApplication, QgsProject, QgsRasterLayer

    app = QgsApplication([], True)
    app.initQgis()
    sys.path.append(os.path.join(QgsApplication.pkgDataPath(), "python", "plugins"))
    from processing.core.Processing import Processing

    Processing.initialize()
    import geofuse_qgis

    plugin = geofuse_qgis.classFactory(None)
    plugin.initProcessing()
    if argv and argv[0] == "--check-all":
        rc = check_all_dialogs(app)
        plugin.unload()
        return rc
    tmp = Path(tempfile.mkdtemp(prefix="geofuse-shot-"))
    ms, pan = (argv[2], argv[3]) if len(argv) > 3 else _synthetic(tmp)
    ms_layer, pan_layer = QgsRasterLayer(ms, Path(ms).stem), QgsRasterLayer(pan, Path(pan).stem)
    QgsProject.instance().addMapLayers([ms_layer, pan_layer])


    from processing.gui.AlgorithmDialog import AlgorithmDialog

    alg = QgsApplication.processingRegistry().createAlgorithmById(alg_id)
    if alg is None:
        print(f"no algorithm {alg_id}: is the provider loaded (GEOFUSE_PYTHON)?", file=sys.stderr)
        return 1
    dlg = AlgorithmDialog(alg, False, None)
    dlg.setParameters({"MS": ms_layer.id(), "PAN": pan_layer.id(), "SENSOR": "IKONOS",
                       "OUTPUT": "/data/ikonos_fused.tif"})
    from qgis.PyQt.QtWidgets import QGroupBox

    for box in dlg.findChildren(QGroupBox, "grpAdvanced"):  # expand "Advanced Parameters"
        box.setProperty("collapsed", False)
    dlg.resize(900, 1060)
    dlg.show()
    for _ in range(20):
        app.processEvents()
    img = dlg.grab().toImage()
    try:  # a 64-colour palette keeps the PNG small (~60 kB)
        from PIL import Image
        from qgis.PyQt.QtCore import QBuffer, QIODevice

        buf = QBuffer()
        buf.open(QIODevice.WriteOnly)
        img.save(buf, "PNG")
        import io

        Image.open(io.BytesIO(bytes(buf.data()))).convert("RGB").quantize(colors=64).save(out, optimize=True)
    except ImportError:
        img.save(str(out), "PNG")
    print(out, img.width(), img.height(), out.stat().st_size)
    dlg.close()
    plugin.unload()
    app.exitQgis()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("QGIS_CUSTOM_CONFIG_PATH", tempfile.mkdtemp(prefix="geofuse-shot-profile-"))
    sys.exit(main(sys.argv[1:]))
