"""``Prepared.ms_moments``: the interpolated MS's mean and covariance computed from the low-resolution
tiles (Gram matrices of the interpolator), checked against the direct route, an independent
computation: upsample every tile with the engine's interpolator and reduce the HR values
(``stats.moments([prep.ms])``), in float64 work mode so that both are exact to round-off."""

from __future__ import annotations

import warnings

import dask
import numpy as np
import pytest

from geofuse import engine, sensors, stats
from geofuse.grid import fit_grids

from .conftest import synthetic_pair


def _prep(lr_shape, ratio, *, compat="default", chunks=None, work="float64", nodata=False, as_float=False):
    ms, pan = synthetic_pair(lr_shape, ratio, dtype=np.uint16, seed=3)
    if as_float:  # the same values as float32 (which gets a validity mask: NaN would be nodata)
        ms, pan = ms.astype(np.float32), pan.astype(np.float32)
    if nodata:
        v = ms.values.copy()
        v[:, :3, :5] = 0
        ms = ms.copy(data=v).rio.write_nodata(0, encoded=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return engine.prepare(ms, pan, fit_grids(pan, ms), halo_hr=0, compat=compat,
                              sensor=sensors.get("IKONOS", 4), chunks=chunks, work=work)


def _both(prep):
    direct, fast = stats.moments([prep.ms], prep.valid_hr), prep.ms_moments
    return dask.compute((direct.n, direct.mean, direct.cov), (fast.n, fast.mean, fast.cov))


@pytest.mark.parametrize("lr_shape, ratio, compat, chunks", [
    ((33, 41), 4, "default", (36, 52)),   # several blocks, interp23tap at the corner phase
    ((33, 41), 4, "default", 4096),       # one block: every side an image border
    ((30, 26), 3, "default", (27, 33)),   # ratio 3: the lanczos3 fallback
    ((32, 32), 4, "toolbox", None),       # the toolbox's circular borders (one block)
    ((17, 70), 2, "default", (12, 40)),   # ratio 2, thin blocks
])
def test_equals_upsampling_then_reducing(lr_shape, ratio, compat, chunks):
    (n0, m0, c0), (n1, m1, c1) = _both(_prep(lr_shape, ratio, compat=compat, chunks=chunks))
    assert n0 == n1
    np.testing.assert_allclose(m1, m0, rtol=1e-13)
    np.testing.assert_allclose(c1, c0, rtol=1e-11, atol=1e-11 * np.abs(c0).max())


def test_float32_work_mode_within_float32_round_off():
    (_, m0, c0), (_, m1, c1) = _both(_prep((33, 41), 4, chunks=(36, 52), work="float32"))
    np.testing.assert_allclose(m1, m0, rtol=1e-6)
    np.testing.assert_allclose(c1, c0, rtol=1e-5)


def test_nodata_blocks_take_the_masked_route():
    prep = _prep((33, 41), 4, chunks=(36, 52), nodata=True, work="float32")
    assert prep.valid_hr is not None
    (n0, m0, c0), (n1, m1, c1) = _both(prep)
    assert n0 == n1 < 33 * 41 * 16
    np.testing.assert_allclose(m1, m0, rtol=1e-6)
    np.testing.assert_allclose(c1, c0, rtol=1e-5)
    _, (_, m2, c2) = _both(_prep((33, 41), 4, chunks=4096, nodata=True, work="float32"))
    np.testing.assert_allclose(m1, m2, rtol=1e-13)  # nodata in some blocks or in the only one: same values
    np.testing.assert_allclose(c1, c2, rtol=1e-11)


def test_an_all_valid_mask_gives_the_unmasked_statistics():
    """A float image without NaN has a (all-True) validity mask; its statistics must be those of the same
    values as integers (no mask), bit for bit, or the two outputs round differently."""
    a = _prep((33, 41), 4, chunks=(36, 52), work="float32")
    b = _prep((33, 41), 4, chunks=(36, 52), work="float32", as_float=True)
    assert a.valid_hr is None and b.valid_hr is not None
    ma, mb = dask.compute((a.ms_moments.mean, a.ms_moments.cov), (b.ms_moments.mean, b.ms_moments.cov))
    np.testing.assert_array_equal(ma[0], mb[0])
    np.testing.assert_array_equal(ma[1], mb[1])


def test_no_tile_is_upsampled(monkeypatch):
    """The fast route runs no engine block task (no HR tile is formed); the direct route runs one per
    block: the counter can tell them apart."""
    calls = []
    orig = engine._run_block
    monkeypatch.setattr(engine, "_run_block", lambda *a, **k: calls.append(1) or orig(*a, **k))
    prep = _prep((33, 41), 4, chunks=(36, 52))
    dask.compute(prep.ms_moments.cov, scheduler="synchronous")
    assert calls == []
    dask.compute(stats.moments([prep.ms]).cov, scheduler="synchronous")
    assert len(calls) == prep.ms_lr.numblocks[1] * prep.ms_lr.numblocks[2]
