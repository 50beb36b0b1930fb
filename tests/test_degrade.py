"""Wald-protocol degradation and interpolation (geofuse.degrade): reference values, chunking, laziness,
georeferencing.

Reference values (provenance): ``../shared/reference/pansharpening/toolbox_building_blocks.npz`` holds
outputs of the reference MATLAB pansharpening toolbox of Vivone et al. (2021 distribution, mirrored in
liangjiandeng/DLPan-Toolbox @ a34f884af88967580e3ef4f61a89e12fdfe4cda5) run under GNU Octave 7.3 and
cross-checked against independent NumPy code (see the README.md beside the file), on an IKONOS crop
``ms_in`` (64 x 64 x 4) / ``pan_in`` (256 x 256):

* ``wald_ms_lr`` (16 x 16 x 4): ``MTF(ms_in, 'IKONOS', 4)`` then ``imresize(., 1/4, 'nearest')``;
* ``wald_pan_lr`` (64 x 64): ``imresize(pan_in, 1/4)`` (bicubic, antialiasing);
* ``interp23tap_x4`` (256 x 256 x 4): ``interp23tap(ms_in, 4)`` (circular borders).

The file is read in place (nothing copied into the repository); the reference tests skip when
``../shared`` is absent. Everything else runs on small synthetic rasters (``conftest.synthetic_pair``).
"""

from __future__ import annotations

import json
import warnings

import dask
import dask.array as da
import numpy as np
import pytest
from affine import Affine
from numpy.testing import assert_array_equal

from geofuse import degrade
from geofuse.api import pansharpen
from geofuse.errors import GeofuseError, ParameterError
from geofuse.grid import fit_grids, lowres_transform
from geofuse.raster import make_raster

from .conftest import PAN_TRANSFORM, UTM, shared_path, synthetic_pair

#: Relative tolerance (max abs error / max abs reference) in float64 work precision.
RTOL64 = 1e-10
#: The same in the default float32 work precision.
RTOL32 = 1e-5

MS_T = Affine(4.0, 0.0, 0.0, 0.0, -4.0, 256.0)
PAN_T = Affine(1.0, 0.0, 0.0, 0.0, -1.0, 256.0)


def rel_err(got, ref) -> float:
    return float(np.abs(np.asarray(got, np.float64) - ref).max() / np.abs(ref).max())


class _RaisingScheduler:
    """Fails on any compute (xarray's ``raise_if_dask_computes``)."""

    def __call__(self, dsk, keys, **kwargs):
        raise RuntimeError("geofuse.degrade computed something while building a lazy result")


@pytest.fixture(scope="module")
def blocks():
    path = shared_path("reference", "pansharpening", "toolbox_building_blocks.npz")
    with np.load(path) as d:
        ref = {k: d[k] for k in ("ms_in", "pan_in", "wald_ms_lr", "wald_pan_lr", "interp23tap_x4")}
    ms = make_raster(np.ascontiguousarray(ref["ms_in"].transpose(2, 0, 1)), MS_T, UTM)
    pan = make_raster(ref["pan_in"][None], PAN_T, UTM)
    return ms, pan, ref


def bands_first(a: np.ndarray) -> np.ndarray:
    return a.transpose(2, 0, 1) if a.ndim == 3 else a[None]


# --------------------------------------------------------------------------------------------------
# reference values


@pytest.mark.shared
def test_degrade_ms_matches_toolbox(blocks):
    ms, _, ref = blocks
    out = degrade.degrade_ms(ms, 4, "IKONOS", chunks=24, work="float64")
    assert out.dtype == np.float64 and out.shape == (4, 16, 16)
    assert rel_err(out.values, bands_first(ref["wald_ms_lr"])) <= RTOL64


@pytest.mark.shared
def test_degrade_pan_matches_toolbox(blocks):
    _, pan, ref = blocks
    out = degrade.degrade_pan(pan, 4, chunks=24, work="float64")
    assert out.dtype == np.float64 and out.shape == (1, 64, 64)
    assert rel_err(out.values, bands_first(ref["wald_pan_lr"])) <= RTOL64


@pytest.mark.shared
def test_interpolate_matches_toolbox(blocks):
    ms, _, ref = blocks
    out = degrade.interpolate(ms, 4, phase="toolbox", border="circular", chunks=64, work="float64")
    assert out.shape == (4, 256, 256)
    assert rel_err(out.values, bands_first(ref["interp23tap_x4"])) <= RTOL64
    # the output grid is the one whose toolbox decimation gives the input grid back
    assert lowres_transform(out.rio.transform(), 4, (2, 2)) == MS_T


@pytest.mark.shared
def test_circular_border_refuses_tiles(blocks):
    """Circular padding wraps around the image: tiles smaller than the image are refused."""
    ms, _, _ = blocks
    with pytest.raises(ParameterError, match="whole image in one chunk"):
        degrade.interpolate(ms, 4, phase="toolbox", border="circular", chunks=24)


@pytest.mark.shared
def test_wald_matches_toolbox_float32(blocks):
    ms, pan, ref = blocks
    ms_lr, pan_lr = degrade.wald(ms, pan, "IKONOS", chunks=64)
    assert ms_lr.dtype == np.float32 and pan_lr.dtype == np.float32
    assert rel_err(ms_lr.values, bands_first(ref["wald_ms_lr"])) <= RTOL32
    assert rel_err(pan_lr.values, bands_first(ref["wald_pan_lr"])) <= RTOL32


# --------------------------------------------------------------------------------------------------
# georeferencing


@pytest.mark.shared
def test_wald_georeferencing_and_phase(blocks):
    ms, pan, _ = blocks
    ms_lr, pan_lr = degrade.wald(ms, pan, "IKONOS", chunks=64)
    # degraded MS pixel k sits on input MS pixel 4k+2 (the toolbox's 'nearest' decimation)
    assert ms_lr.rio.transform() == lowres_transform(MS_T, 4, (2, 2))
    assert ms_lr.rio.transform() == Affine(16.0, 0.0, 2.0, 0.0, -16.0, 254.0)
    # the bicubic PAN is corner aligned: same origin, 4x pixels
    assert pan_lr.rio.transform() == lowres_transform(PAN_T, 4, (1.5, 1.5)) == Affine(4, 0, 0, 0, -4, 256)
    assert ms_lr.rio.crs == pan_lr.rio.crs == ms.rio.crs
    grid = fit_grids(pan_lr, ms_lr)
    assert grid.ratio == 4 and grid.phase == (2.0, 2.0) and not grid.partial
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fused = pansharpen(ms_lr, pan_lr, method="exp")
    assert json.loads(fused.attrs["geofuse_phase"]) == [2.0, 2.0]
    assert fused.rio.transform() == pan_lr.rio.transform() and fused.shape == (4, 64, 64)


def test_degrade_georeferencing_synthetic():
    ms, pan = synthetic_pair((32, 40), 4, dtype=np.uint16, seed=7)
    ms_lr = degrade.degrade_ms(ms, 4, "IKONOS", chunks=12)
    pan_lr = degrade.degrade_pan(pan, 4, chunks=48)
    pan_mtf = degrade.degrade_pan(pan, 4, pan_filter="mtf", sensor="IKONOS", chunks=48)
    assert ms_lr.shape == (4, 8, 10) and pan_lr.shape == (1, 32, 40) and pan_mtf.shape == (1, 32, 40)
    assert ms_lr.rio.transform() == lowres_transform(ms.rio.transform(), 4, (2, 2))
    assert pan_lr.rio.transform() == lowres_transform(PAN_TRANSFORM, 4, (1.5, 1.5))
    assert pan_mtf.rio.transform() == lowres_transform(PAN_TRANSFORM, 4, (1.5, 1.5))  # stays on the MS grid
    assert_array_equal(ms_lr["band"].values, ms["band"].values)
    for x in (ms_lr, pan_lr, pan_mtf):
        assert x.rio.crs == ms.rio.crs
        t = x.rio.transform()  # x/y coordinates are pixel centres of the transform
        np.testing.assert_allclose(x["x"].values, t.c + t.a * (np.arange(x.sizes["x"]) + 0.5))
        np.testing.assert_allclose(x["y"].values, t.f + t.e * (np.arange(x.sizes["y"]) + 0.5))
    up = degrade.interpolate(ms, 4, phase="corner", chunks=16)
    assert up.shape == (4, 128, 160)
    assert up.rio.transform() == PAN_TRANSFORM  # corner-aligned upsampling lands on the PAN grid


# --------------------------------------------------------------------------------------------------
# chunked == whole image, laziness


@pytest.fixture(scope="module")
def synth():
    return synthetic_pair((36, 44), 4, dtype=np.float32, seed=8)


@pytest.mark.parametrize("work", ["float32", "float64"])
def test_chunked_equals_whole(synth, work):
    ms, pan = synth
    kw = {"work": work}
    pairs = [
        (degrade.degrade_ms(ms, 4, "IKONOS", chunks=12, **kw), degrade.degrade_ms(ms, 4, "IKONOS", chunks=4096, **kw)),
        (degrade.degrade_pan(pan, 4, chunks=52, **kw), degrade.degrade_pan(pan, 4, chunks=4096, **kw)),
        (degrade.degrade_pan(pan, 4, pan_filter="mtf", sensor="IKONOS", chunks=44, **kw),
         degrade.degrade_pan(pan, 4, pan_filter="mtf", sensor="IKONOS", chunks=4096, **kw)),
        (degrade.interpolate(ms, 4, chunks=13, **kw), degrade.interpolate(ms, 4, chunks=4096, **kw)),
        (degrade.interpolate(ms, 4, phase="toolbox", kind="lanczos3", chunks=11, **kw),
         degrade.interpolate(ms, 4, phase="toolbox", kind="lanczos3", chunks=4096, **kw)),
        (degrade.interpolate(ms, 3, kind="bicubic", chunks=9, **kw),
         degrade.interpolate(ms, 3, kind="bicubic", chunks=4096, **kw)),
    ]
    for chunked, whole in pairs:
        assert max(chunked.data.numblocks[1:]) > 1 and whole.data.numblocks == (1, 1, 1)
        if work == "float32":
            assert_array_equal(chunked.values, whole.values)
        else:
            # torch's float64 CPU conv2d goes through a GEMM whose summation order depends on the tile
            # width (float32 uses oneDNN, which does not), so float64 tiles agree to the last ulp only
            np.testing.assert_allclose(chunked.values, whole.values, rtol=1e-13, atol=0)


def test_wald_chunked_equals_whole(synth):
    ms, pan = synth
    a_ms, a_pan = degrade.wald(ms, pan, "IKONOS", chunks=52)
    b_ms, b_pan = degrade.wald(ms, pan, "IKONOS", chunks=4096)
    assert a_pan.data.numblocks[1] > 1
    assert_array_equal(a_ms.values, b_ms.values)
    assert_array_equal(a_pan.values, b_pan.values)


def test_lazy(synth):
    ms, pan = synth
    with dask.config.set(scheduler=_RaisingScheduler()):
        outs = [*degrade.wald(ms, pan, "IKONOS", chunks=52),
                degrade.degrade_ms(ms, 4, "IKONOS", chunks=12),
                degrade.degrade_pan(pan, 4, pan_filter="mtf", sensor="IKONOS", chunks=44),
                degrade.interpolate(ms, 4, chunks=13)]
    for o in outs:
        assert isinstance(o.data, da.Array)
    assert np.isfinite(outs[0].values).all()


def test_bad_ratio_and_options(synth):
    ms, pan = synth
    for bad in (1, 2.5, "4"):
        with pytest.raises(ParameterError, match="integer >= 2"):
            degrade.degrade_ms(ms, bad, "IKONOS")
    with pytest.raises(GeofuseError, match="Unknown PAN degradation"):
        degrade.degrade_pan(pan, 4, pan_filter="gauss")
    with pytest.raises(ValueError, match="Unknown interpolator"):
        degrade.interpolate(ms, 4, kind="nearest")
