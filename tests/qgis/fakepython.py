"""Write a fake interpreter: worker jobs go to fake_child.py, everything else to a real Python."""

import os
import stat
from pathlib import Path

HERE = Path(__file__).resolve().parent


def make_fake_python(directory, real_python: str) -> str:
    """An executable that acts as ``real_python`` except for ``-m geofuse.qgis_worker fuse|simulate|evaluate``.

    The probe and ``describe`` reach the real geofuse (so the provider sees the real registry); jobs run
    :mod:`fake_child` (its behaviour set by ``GEOFUSE_FAKE_MODE``).
    """
    path = Path(directory) / "fakepython"
    path.write_text(f"""#!/bin/sh
for a in "$@"; do
  case "$a" in
    fuse|simulate|evaluate) exec "{real_python}" "{HERE / 'fake_child.py'}" "$@" ;;
  esac
done
exec "{real_python}" "$@"
""")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return os.fspath(path)
