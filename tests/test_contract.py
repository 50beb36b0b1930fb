"""The operator contract (DESIGN.md), checked for EVERY registered pansharpening method.

The methods come from ``geofuse.registry.available("pansharpening")`` at collection time, so a method
registered later is covered without touching this file. On small seeded synthetic pairs (see
``conftest.synthetic_pair``; odd sizes, ratio 4, corner-aligned, uint16) each method must give:

* chunked == whole image (bit-identical for ``spec.exact_chunking``) with odd chunk sizes;
* the input dtype (uint16 -> uint16, float32 -> float32) and an honoured ``dtype=``;
* laziness: building the result (estimate reductions included) computes nothing
  (xarray's ``raise_if_dask_computes`` pattern: a scheduler that raises);
* nodata kept: the output nodata mask is exactly PAN-nodata OR (MS-nodata upsampled), valid pixels are
  finite and plausible, and excluding nodata from the statistics only nudges far-away pixels;
* the PAN's CRS / transform / coordinates, the MS's band coordinate, the PAN's shape;
* ratio 3 (lanczos3 fallback) and toolbox-phase (half-pixel) pairs.
"""

from __future__ import annotations

import json
import warnings

import dask
import dask.array as da
import numpy as np
import pytest
from dask.callbacks import Callback
from numpy.testing import assert_array_equal

from geofuse import registry
from geofuse.api import pansharpen

from .conftest import synthetic_pair

METHODS = [s.name for s in registry.available("pansharpening")]

#: Odd HR chunk sizes (the engine rounds them to a multiple of the ratio and to at least the halo).
ODD_CHUNKS = (36, 52)
WHOLE = 4096
LR_SHAPE = (33, 41)  # PAN 132 x 164: at least two blocks per axis even for the largest halo


def fuse(ms, pan, method, **kw):
    """``pansharpen`` with the generic-sensor warning silenced (the synthetic data has no sensor)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pansharpen(ms, pan, method, **kw)


class _RaisingScheduler:
    """A dask scheduler that fails on any compute (xarray's ``raise_if_dask_computes``)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, dsk, keys, **kwargs):
        self.calls += 1
        raise RuntimeError("geofuse computed something while building a lazy result")


class _TaskCounter(Callback):
    """Counts every task executed by a local dask scheduler."""

    def __init__(self):
        super().__init__()
        self.tasks = 0

    def _pretask(self, key, dsk, state):
        self.tasks += 1


@pytest.fixture(scope="module")
def pair():
    return synthetic_pair(LR_SHAPE, 4, dtype=np.uint16, seed=1)


@pytest.fixture(scope="module")
def pair_float():
    return synthetic_pair(LR_SHAPE, 4, dtype=np.float32, seed=1)


def _assert_no_block_runs_twice(monkeypatch, method, build):
    """Every per-block task of the graph (estimate and apply) runs once. ``dask.delayed`` gives each
    dask-array argument a private copy of its upstream graph, so a solver fed two arrays with a shared
    upstream had that whole pass (reads, upsampling, filters) computed twice. Deliberate re-reads
    (another ``tile_map`` call) are other tasks and are not counted together."""
    from collections import Counter

    from geofuse import engine

    runs = Counter()
    orig = engine._run_block

    def counting(task, pan, ms_lr, est, block_info=None):
        loc = tuple(block_info[None]["chunk-location"]) if block_info else None
        runs[(id(task), getattr(task.fn, "__qualname__", "?"), loc)] += 1
        return orig(task, pan, ms_lr, est, block_info)

    monkeypatch.setattr(engine, "_run_block", counting)
    with dask.config.set(scheduler="synchronous"):
        build().values
    twice = sorted((name, loc, n) for (_, name, loc), n in runs.items() if n > 1)
    assert runs and not twice, f"{method}: block tasks computed more than once: {twice[:5]}"


@pytest.mark.parametrize("method", METHODS)
class TestContract:
    """One contract, parametrised over the whole registry."""

    def test_chunked_equals_whole(self, method, pair):
        ms, pan = pair
        spec = registry.get(method)
        chunked = fuse(ms, pan, method, chunks=ODD_CHUNKS)
        whole = fuse(ms, pan, method, chunks=WHOLE)
        assert whole.data.numblocks == (1, 1, 1)
        ny, nx = chunked.data.numblocks[1:]
        assert ny > 1 and nx > 1, f"{method}: odd chunks gave only {chunked.data.numblocks} blocks"
        a, b = chunked.values, whole.values
        if spec.exact_chunking:
            assert_array_equal(a, b, err_msg=f"{method}: chunked != whole image")
        else:  # pragma: no cover - no such method yet; iterative methods state their seam bound
            np.testing.assert_allclose(a.astype(float), b.astype(float), rtol=0, atol=1.0)

    def test_chunked_equals_whole_float(self, method, pair_float):
        ms, pan = pair_float
        if not registry.get(method).exact_chunking:  # pragma: no cover
            pytest.skip("not an exact-chunking method")
        assert_array_equal(fuse(ms, pan, method, chunks=(44, 60)).values,
                           fuse(ms, pan, method, chunks=WHOLE).values)

    def test_dtype_kept_and_override(self, method, pair, pair_float):
        ms, pan = pair
        out = fuse(ms, pan, method)
        assert out.dtype == np.uint16
        as_float = fuse(ms, pan, method, dtype="float32")
        assert as_float.dtype == np.float32
        # the integer output is the float output rounded and clipped (documented cast)
        expect = np.clip(np.round(as_float.values), 0, np.iinfo(np.uint16).max).astype(np.uint16)
        assert_array_equal(out.values, expect)
        assert fuse(ms, pan, method, dtype=np.int16).dtype == np.int16

        msf, panf = pair_float
        outf = fuse(msf, panf, method)
        assert outf.dtype == np.float32
        assert fuse(msf, panf, method, dtype="uint16").dtype == np.uint16
        assert np.isfinite(outf.values).all()

    def test_no_block_task_runs_twice(self, method, pair, monkeypatch):
        ms, pan = pair
        _assert_no_block_runs_twice(monkeypatch, method, lambda: fuse(ms, pan, method, chunks=ODD_CHUNKS))

    @pytest.mark.parametrize("with_nodata", [False, True], ids=["plain", "nodata"])
    def test_lazy(self, method, pair, with_nodata):
        ms, pan = pair
        if with_nodata:  # masks, nodata fill values and masked statistics must stay lazy as well
            ms, pan = ms.rio.write_nodata(0, encoded=False), pan.rio.write_nodata(0, encoded=False)
        sched = _RaisingScheduler()
        with dask.config.set(scheduler=sched), _TaskCounter() as counter:
            out = fuse(ms, pan, method, chunks=ODD_CHUNKS)
            out = out.rio.write_nodata(out.rio.nodata)  # metadata access stays lazy too
        assert sched.calls == 0 and counter.tasks == 0
        assert isinstance(out.data, da.Array)
        # the estimate's reductions are in the graph, not precomputed: computing runs tasks
        with _TaskCounter() as counter:
            out.compute(scheduler="sync")
        assert counter.tasks > 0

    def test_nodata_kept(self, method, pair):
        ms, pan = pair
        r = 4
        msv, panv = ms.values.copy(), pan.values.copy()
        msv[:, 10, 20] = 0  # one all-nodata LR pixel
        panv[0, :20, :23] = 0  # a nodata corner in the PAN (not a multiple of the ratio)
        ms_nd = ms.copy(data=da.from_array(msv, chunks=(4, 16, 16))).rio.write_nodata(0, encoded=False)
        pan_nd = pan.copy(data=da.from_array(panv, chunks=(1, 64, 64))).rio.write_nodata(0, encoded=False)
        out = fuse(ms_nd, pan_nd, method, chunks=ODD_CHUNKS)
        assert out.rio.nodata == 0
        got = out.values
        expected_mask = np.zeros(got.shape[1:], bool)
        expected_mask[:20, :23] = True
        expected_mask[10 * r:11 * r, 20 * r:21 * r] = True
        assert_array_equal((got == 0).all(axis=0), expected_mask)
        assert_array_equal((got == 0).any(axis=0), expected_mask)  # no valid pixel became nodata
        valid = got[:, ~expected_mask].astype(np.float64)
        lo, hi = float(ms.min()), float(ms.max())
        assert valid.min() >= 0.5 * lo and valid.max() <= 2.0 * hi, (valid.min(), valid.max())

        # far from the nodata areas the result barely changes: nodata never entered the statistics
        # (zeros in the means/covariances would shift every pixel by several percent)
        clean = fuse(ms, pan, method, chunks=ODD_CHUNKS).values.astype(np.float64)
        far = np.zeros_like(expected_mask)
        far[90:, :60] = True
        rel = np.abs(got[:, far] - clean[:, far]) / clean[:, far]
        assert rel.max() < 0.02 and np.median(rel) < 0.005, (rel.max(), np.median(rel))

    def test_nan_nodata_float(self, method, pair_float):
        ms, pan = pair_float
        msv, panv = ms.values.copy(), pan.values.copy()
        msv[:, 3, 7] = np.nan
        panv[0, -9:, -14:] = np.nan
        ms_nd = ms.copy(data=da.from_array(msv, chunks=(4, 16, 16)))
        pan_nd = pan.copy(data=da.from_array(panv, chunks=(1, 64, 64)))
        got = fuse(ms_nd, pan_nd, method, chunks=ODD_CHUNKS).values
        mask = np.zeros(got.shape[1:], bool)
        mask[-9:, -14:] = True
        mask[12:16, 28:32] = True
        assert_array_equal(np.isnan(got).all(axis=0), mask)
        assert np.isfinite(got[:, ~mask]).all()

    def test_georeferencing_kept(self, method, pair):
        ms, pan = pair
        out = fuse(ms, pan, method, chunks=ODD_CHUNKS)
        assert out.dims == ("band", "y", "x")
        assert out.shape == (ms.sizes["band"],) + pan.shape[1:]
        assert out.rio.crs == pan.rio.crs == ms.rio.crs
        assert out.rio.transform() == pan.rio.transform()
        assert_array_equal(out["band"].values, ms["band"].values)
        np.testing.assert_allclose(out["x"].values, pan["x"].values, rtol=0, atol=1e-6)
        np.testing.assert_allclose(out["y"].values, pan["y"].values, rtol=0, atol=1e-6)
        assert out.attrs["geofuse_method"] == method
        assert json.loads(out.attrs["geofuse_phase"]) == [1.5, 1.5]

    def test_ratio3_pair(self, method):
        ms, pan = synthetic_pair((31, 35), 3, dtype=np.uint16, seed=3)
        out = fuse(ms, pan, method, chunks=(33, 45))
        assert out.attrs["geofuse_interpolation"] == "lanczos3"  # interp23tap needs a power of two
        assert out.attrs["geofuse_ratio"] == 3
        assert out.shape == (4, 93, 105) and out.dtype == np.uint16
        assert out.rio.transform() == pan.rio.transform()
        got = out.values
        assert got.min() > 0 and got.max() < 2 * float(ms.max())
        if registry.get(method).exact_chunking:
            assert_array_equal(got, fuse(ms, pan, method, chunks=WHOLE).values)

    def test_toolbox_phase_pair(self, method):
        ms, pan = synthetic_pair((35, 29), 4, dtype=np.float32, seed=4, phase="toolbox")
        out = fuse(ms, pan, method, chunks=(44, 36))
        assert json.loads(out.attrs["geofuse_phase"]) == [2.0, 2.0]
        assert out.attrs["geofuse_interpolation"] == "interp23tap"
        assert out.shape == (4, 140, 116) and out.rio.transform() == pan.rio.transform()
        got = out.values
        assert np.isfinite(got).all()
        if registry.get(method).exact_chunking:
            assert_array_equal(got, fuse(ms, pan, method, chunks=WHOLE).values)


@pytest.mark.parametrize("lr_shape, ratio, phase", [((33, 41), 4, "toolbox"), ((31, 35), 3, "corner")])
def test_exp_interpolates_through_the_ms_samples(lr_shape, ratio, phase):
    """Phase check: interp23tap / lanczos3 are interpolating, so EXP reproduces MS pixel k exactly at the
    HR pixel holding its centre (4k+2 on a toolbox pair, 3k+1 on a corner-aligned ratio-3 pair)."""
    ms, pan = synthetic_pair(lr_shape, ratio, dtype=np.float32, seed=5, phase=phase)
    out = fuse(ms, pan, "exp", chunks=(44, 52)).values
    p = ratio // 2
    np.testing.assert_allclose(out[:, p::ratio, p::ratio], ms.values, rtol=1e-6, atol=1e-3)


# --------------------------------------------------------------------------------------------------
# Hyperspectral methods (scenario "hyperspectral", inputs ("hs", "msi")): the same contract, on a
# seeded synthetic HS + MSI pair.

HS_METHODS = [s.name for s in registry.available("hyperspectral")]
HS_BANDS, MSI_BANDS = 12, 3


def synthetic_hs_pair(lr_shape=(33, 41), ratio: int = 4, *, bands: int = HS_BANDS, msi_bands: int = MSI_BANDS,
                      dtype=np.uint16, seed: int = 0, chunks: int | None = 64):
    """A georeferenced ``(hs, msi)`` pair (dask-backed) made by a committed generator with a local RNG.

    A high-resolution cube is a mix of three smooth random abundance fields with three smooth random
    spectra (``bands`` samples from 400 to 1000 nm) plus a little texture, in 11-bit-like DN; the HS is
    its ``ratio`` x ``ratio`` block mean (corner-aligned grids), the MSI its projection through a random
    non-negative (msi_bands, bands) response with rows summing to one. Returns the pair and the response.
    """
    from .conftest import PAN_TRANSFORM, UTM, _smooth_field
    from geofuse.grid import lowres_transform
    from geofuse.raster import make_raster

    rng = np.random.default_rng(seed)
    h, w = lr_shape
    H, W = ratio * h, ratio * w
    ab = np.stack([_smooth_field(rng, (H, W), s) for s in (24, 12, 6)]) + 0.05
    ab /= ab.sum(0, keepdims=True)
    wl = np.linspace(400, 1000, bands)
    spectra = np.stack([0.2 + 0.6 * _smooth_field(rng, (1, bands), 4)[0] for _ in range(3)])  # (3, B)
    cube = 150 + 1700 * np.einsum("eb,ehw->bhw", spectra, ab) + 20 * _smooth_field(rng, (H, W), 2)[None]
    R = rng.uniform(0, 1, (msi_bands, bands)) ** 3
    R /= R.sum(1, keepdims=True)
    msi = np.einsum("kb,bhw->khw", R, cube)
    hs = cube.reshape(bands, h, ratio, w, ratio).mean(axis=(2, 4))
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        hs, msi = np.rint(hs), np.rint(msi)
    p = (ratio - 1) / 2
    hs_da = make_raster(hs.astype(dtype), lowres_transform(PAN_TRANSFORM, ratio, (p, p)), UTM,
                        band=[f"h{i}" for i in range(1, bands + 1)]).assign_coords(wavelength=("band", wl))
    msi_da = make_raster(msi.astype(dtype), PAN_TRANSFORM, UTM, band=[f"m{i}" for i in range(1, msi_bands + 1)])
    if chunks is not None:
        hs_da = hs_da.chunk({"band": -1, "y": max(1, chunks // ratio), "x": max(1, chunks // ratio)})
        msi_da = msi_da.chunk({"band": -1, "y": chunks, "x": chunks})
    return hs_da, msi_da, R


def fuse_hs(hs, msi, method, **kw):
    from geofuse.api import fuse_hyperspectral

    return fuse_hyperspectral(hs, msi, method, **kw)


@pytest.fixture(scope="module")
def hs_pair():
    return synthetic_hs_pair(LR_SHAPE, 4, dtype=np.uint16, seed=1)[:2]


@pytest.fixture(scope="module")
def hs_pair_float():
    return synthetic_hs_pair(LR_SHAPE, 4, dtype=np.float32, seed=1)[:2]


def _assert_seams(spec, a, b):
    """Bit-identical for exact methods, else within the method's stated seam bound."""
    if spec.exact_chunking:
        assert_array_equal(a, b, err_msg=f"{spec.name}: chunked != whole image")
    else:
        a, b = a.astype(np.float64), b.astype(np.float64)
        span = float(b.max() - b.min()) or 1.0
        worst = float(np.abs(a - b).max()) / span
        assert worst <= spec.seam_tolerance, f"{spec.name}: seam {worst:.3g} > stated {spec.seam_tolerance}"


@pytest.mark.parametrize("method", HS_METHODS)
class TestContractHyperspectral:
    """The operator contract for every hyperspectral method."""

    def test_no_block_task_runs_twice(self, method, hs_pair, monkeypatch):
        hs, msi = hs_pair
        _assert_no_block_runs_twice(monkeypatch, method, lambda: fuse_hs(hs, msi, method, chunks=ODD_CHUNKS))

    def test_chunked_equals_whole(self, method, hs_pair):
        hs, msi = hs_pair
        spec = registry.get(method)
        chunked = fuse_hs(hs, msi, method, chunks=ODD_CHUNKS)
        whole = fuse_hs(hs, msi, method, chunks=WHOLE)
        assert whole.data.numblocks == (1, 1, 1)
        ny, nx = chunked.data.numblocks[1:]
        assert ny > 1 and nx > 1, f"{method}: odd chunks gave only {chunked.data.numblocks} blocks"
        _assert_seams(spec, chunked.values, whole.values)

    def test_chunked_equals_whole_float(self, method, hs_pair_float):
        hs, msi = hs_pair_float
        _assert_seams(registry.get(method), fuse_hs(hs, msi, method, chunks=(44, 60)).values,
                      fuse_hs(hs, msi, method, chunks=WHOLE).values)

    def test_dtype_kept_and_override(self, method, hs_pair, hs_pair_float):
        hs, msi = hs_pair
        out = fuse_hs(hs, msi, method)
        assert out.dtype == np.uint16
        as_float = fuse_hs(hs, msi, method, dtype="float32")
        assert as_float.dtype == np.float32
        expect = np.clip(np.round(as_float.values), 0, np.iinfo(np.uint16).max).astype(np.uint16)
        assert_array_equal(out.values, expect)
        hsf, msif = hs_pair_float
        outf = fuse_hs(hsf, msif, method)
        assert outf.dtype == np.float32 and np.isfinite(outf.values).all()

    def test_lazy(self, method, hs_pair):
        hs, msi = hs_pair
        hs, msi = hs.rio.write_nodata(0, encoded=False), msi.rio.write_nodata(0, encoded=False)
        sched = _RaisingScheduler()
        with dask.config.set(scheduler=sched), _TaskCounter() as counter:
            out = fuse_hs(hs, msi, method, chunks=ODD_CHUNKS)
        assert sched.calls == 0 and counter.tasks == 0
        assert isinstance(out.data, da.Array)
        with _TaskCounter() as counter:
            out.compute(scheduler="sync")
        assert counter.tasks > 0

    def test_nodata_kept(self, method, hs_pair):
        hs, msi = hs_pair
        r = 4
        hv, mv = hs.values.copy(), msi.values.copy()
        hv[:, 10, 20] = 0
        mv[:, :20, :23] = 0
        hs_nd = hs.copy(data=da.from_array(hv, chunks=(HS_BANDS, 16, 16))).rio.write_nodata(0, encoded=False)
        msi_nd = msi.copy(data=da.from_array(mv, chunks=(MSI_BANDS, 64, 64))).rio.write_nodata(0, encoded=False)
        got = fuse_hs(hs_nd, msi_nd, method, chunks=ODD_CHUNKS).values
        mask = np.zeros(got.shape[1:], bool)
        mask[:20, :23] = True
        mask[10 * r:11 * r, 20 * r:21 * r] = True
        assert_array_equal((got == 0).all(axis=0), mask)
        assert_array_equal((got == 0).any(axis=0), mask)
        clean = fuse_hs(hs, msi, method, chunks=ODD_CHUNKS).values.astype(np.float64)
        far = np.zeros_like(mask)
        far[90:, :60] = True
        rel = np.abs(got[:, far] - clean[:, far]) / clean[:, far]
        assert rel.max() < 0.05 and np.median(rel) < 0.01, (rel.max(), np.median(rel))

    def test_georeferencing_kept(self, method, hs_pair):
        hs, msi = hs_pair
        out = fuse_hs(hs, msi, method, chunks=ODD_CHUNKS)
        assert out.shape == (HS_BANDS,) + msi.shape[1:]
        assert out.rio.crs == msi.rio.crs and out.rio.transform() == msi.rio.transform()
        assert_array_equal(out["band"].values, hs["band"].values)
        assert_array_equal(out["wavelength"].values, hs["wavelength"].values)
        assert out.attrs["geofuse_method"] == method
        assert json.loads(out.attrs["geofuse_phase"]) == [1.5, 1.5]

    def test_pan_as_one_band_msi_and_ratio3(self, method):
        hs, msi, _ = synthetic_hs_pair((31, 35), 3, msi_bands=1, dtype=np.float32, seed=3)
        spec = registry.get(method)
        out = fuse_hs(hs, msi, method, chunks=(33, 45))
        assert out.shape == (HS_BANDS, 93, 105) and out.attrs["geofuse_ratio"] == 3
        got = out.values
        assert np.isfinite(got).all()
        _assert_seams(spec, got, fuse_hs(hs, msi, method, chunks=WHOLE).values)
