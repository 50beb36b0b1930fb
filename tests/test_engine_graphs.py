"""Engine graphs under awkward chunkings: merged chunks, single-block axes, mixed block counts.

Regression: a zero-depth overlap after a chunk merge made dask's task fusion fail with "Cannot fuse
tasks with multiple outputs" (found by the demo's author with a Wald pair built on larger chunks).
"""

from __future__ import annotations

import numpy as np
import pytest

import geofuse

from .conftest import synthetic_pair


@pytest.mark.parametrize("in_chunks, wald_chunks, fuse_chunks", [
    (64, 1024, None), (64, 512, 96), (32, 128, 1024), (48, 4096, (64, 4096)), (128, 256, (4096, 64)),
])
def test_wald_then_fuse_under_any_chunking(in_chunks, wald_chunks, fuse_chunks):
    ms, pan = synthetic_pair((48, 64), 4, dtype=np.uint16, seed=5, chunks=in_chunks)
    ms_lr, pan_lr = geofuse.degrade.wald(ms, pan, "IKONOS", chunks=wald_chunks)
    ref = None
    for m in [s.name for s in geofuse.registry.available("pansharpening")]:
        out = geofuse.pansharpen(ms_lr, pan_lr, m, sensor="IKONOS", chunks=fuse_chunks).values
        whole = geofuse.pansharpen(ms_lr.compute(), pan_lr.compute(), m, sensor="IKONOS", chunks=4096).values
        np.testing.assert_array_equal(out, whole)
        ref = out
    assert ref is not None and ref.shape == (4, 48, 64)
