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


def test_block_origin_locates_every_tile():
    """``Block.origin`` is the LR index of the tile's first sample (halo included): a probe method that
    writes each pixel's global row/column reproduces the index grid under any chunking."""
    import torch

    from geofuse import registry
    from geofuse.registry import MethodSpec

    def probe(block, est, params):
        H, W = block.pan.shape[-2:]
        oy, ox = block.origin
        yy = (torch.arange(H, dtype=torch.float32)[:, None] + block.ratio * oy).expand(H, W)
        xx = (torch.arange(W, dtype=torch.float32)[None, :] + block.ratio * ox).expand(H, W)
        return torch.stack([yy, xx, yy, xx])

    ms, pan = synthetic_pair((33, 41), 4, dtype=np.float32, seed=1)
    registry._REGISTRY["origin_probe"] = MethodSpec(
        name="origin_probe", title="probe", family="test", scenario="test", inputs=("ms", "pan"), parameters=(),
        references=(), summary="", apply=probe, halo=lambda p, r: 30)
    try:
        for chunks in [(36, 52), (64, 4096), 4096]:
            out = geofuse.pansharpen(ms, pan, "origin_probe", chunks=chunks).values
            H, W = out.shape[1:]
            np.testing.assert_array_equal(out[0], np.broadcast_to(np.arange(H)[:, None], (H, W)))
            np.testing.assert_array_equal(out[1], np.broadcast_to(np.arange(W)[None, :], (H, W)))
    finally:
        del registry._REGISTRY["origin_probe"]
