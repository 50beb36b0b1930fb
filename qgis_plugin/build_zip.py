"""Build the installable plugin zip: ``python qgis_plugin/build_zip.py [DIST_DIR]`` (``make qgis-plugin``).

The zip holds one top-level folder, ``geofuse_qgis/`` (the plugin id), as QGIS's "Install from ZIP"
expects; caches and test artefacts are left out. Prints the path of the zip.
"""

from __future__ import annotations

import re
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLUGIN = HERE / "geofuse_qgis"
SKIP_DIRS = {"__pycache__", ".pytest_cache"}
SKIP_SUFFIXES = {".pyc", ".pyo"}


def build(dist: Path) -> Path:
    meta = (PLUGIN / "metadata.txt").read_text(encoding="utf-8")
    version = re.search(r"^version=(.+)$", meta, flags=re.M).group(1).strip()
    for key in ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email", "repository",
                "tracker"):
        if not re.search(rf"^{key}=.+$", meta, flags=re.M):
            raise SystemExit(f"metadata.txt lacks the mandatory field {key!r}")
    dist.mkdir(parents=True, exist_ok=True)
    out = dist / f"geofuse_qgis-{version}.zip"
    tmp = out.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(PLUGIN.rglob("*")):
            rel = p.relative_to(PLUGIN)
            if p.is_dir() or SKIP_DIRS & set(rel.parts) or p.suffix in SKIP_SUFFIXES:
                continue
            zf.write(p, str(Path("geofuse_qgis") / rel))
    tmp.replace(out)
    return out


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent / "dist"))
