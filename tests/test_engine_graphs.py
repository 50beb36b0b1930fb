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


@pytest.mark.parametrize("chunks, dy, dx", [
    ((3, (30, 40, 30), (50, 50, 30)), 5, 7), ((2, (64,), (20, 20, 20, 17)), 0, 9), ((1, (10, 12, 10), (33,)), 10, 0),
])
def test_halo_blocks_equal_dask_overlap(chunks, dy, dx):
    """The engine's one-task-per-block halo gives exactly dask's ``overlap(boundary='none')`` blocks,
    with far fewer tasks."""
    import dask.array as da

    from geofuse.engine import _overlap

    shape = tuple(sum(c) if isinstance(c, tuple) else c for c in chunks)
    x = da.from_array(np.random.default_rng(0).random(shape).astype(np.float32), chunks=chunks)
    got = _overlap(x, dy, dx)
    ref = da.overlap.overlap(x, depth={0: 0, 1: dy, 2: dx}, boundary="none")
    assert got.chunks == ref.chunks
    for idx in np.ndindex(*got.numblocks):
        np.testing.assert_array_equal(got.blocks[idx].compute(), ref.blocks[idx].compute())
    assert len(dict(got.__dask_graph__())) <= len(dict(ref.__dask_graph__()))


def test_block_moments_match_numpy():
    """stats.moments (slab-wise float64 sums, several arrays, a mask, odd chunks) against numpy's
    mean / cov on the stacked float64 pixels."""
    import dask.array as da

    from geofuse import stats

    rng = np.random.default_rng(1)
    x = (rng.random((4, 90, 130)) * 1000 + 5000).astype(np.float32)
    p = (x.mean(0, keepdims=True) + rng.random((1, 90, 130))).astype(np.float32)
    keep = rng.random((90, 130)) > 0.3
    for valid in (None, keep):
        m = stats.moments([da.from_array(x, chunks=(4, 41, 57)), da.from_array(p, chunks=(1, 41, 57))],
                          None if valid is None else da.from_array(valid, chunks=(30, 30)))
        ref = np.concatenate([x, p]).reshape(5, -1).astype(np.float64)
        if valid is not None:
            ref = ref[:, valid.ravel()]
        assert float(m.n.compute()) == ref.shape[1]
        np.testing.assert_allclose(m.mean.compute(), ref.mean(axis=1), rtol=1e-13)
        np.testing.assert_allclose(m.cov.compute(), np.cov(ref), rtol=1e-10)
