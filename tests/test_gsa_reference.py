"""GSA against the reference toolbox, and the undecimated wavelet low pass it (and AWLP) relies on.

Reference values: ``../shared/reference/pansharpening/IKONOS_RR_outputs.npz``, outputs of the reference
MATLAB pansharpening toolbox (Vivone et al. 2021, doi:10.1109/MGRS.2020.3019315) run under GNU Octave 7.3
(see the README.md beside it). Arrays are (rows, cols, bands). The reference tests are skipped when
``../shared`` is absent; the property tests (kernel, borders, locality, chunking) always run.
"""

from __future__ import annotations

from math import comb
from pathlib import Path

import numpy as np
import pytest
import torch
from affine import Affine

from geofuse.api import pansharpen
from geofuse.grid import lowres_transform
from geofuse.kernels.filters import undecimated_lowpass, undecimated_lowpass_halo
from geofuse.raster import make_raster

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
OUTPUTS = SHARED / "reference" / "pansharpening" / "IKONOS_RR_outputs.npz"
CRS = "EPSG:32633"
B3 = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


@pytest.fixture(scope="module")
def ref():
    if not OUTPUTS.is_file():
        pytest.skip(f"{OUTPUTS} not found: the reference tests need ../shared (reference toolbox outputs) "
                    "beside the checkout")
    with np.load(OUTPUTS) as z:
        return {k: z[k] for k in z.files}


def _rasters(pan: np.ndarray, ms_lr: np.ndarray):
    """PAN (H, W) and MS_LR (h, w, B) as georeferenced rasters, the MS grid with the toolbox phase 2."""
    pt = Affine(1, 0, 0, 0, -1, pan.shape[0])
    p = make_raster(np.asarray(pan, np.float32)[None], pt, CRS)
    m = make_raster(np.ascontiguousarray(np.asarray(ms_lr, np.float32).transpose(2, 0, 1)),
                    lowres_transform(pt, 4, (2, 2)), CRS)
    return m, p


# ------------------------------------------------------------------------------------------------
# an independent, literal formulation of ndwt2_working + indwt2_working with zero details (numpy)
# ------------------------------------------------------------------------------------------------

def _full_conv(x: np.ndarray, axis: int) -> np.ndarray:
    """Full 1-D convolution with B3 along ``axis`` (zero outside), length n + 4."""
    x = np.moveaxis(x, axis, -1)
    out = np.apply_along_axis(lambda v: np.convolve(v, B3, mode="full"), -1, x)
    return np.moveaxis(out, -1, axis)


def _literal_lowpass(x: np.ndarray, levels: int) -> np.ndarray:
    """Decompose: half-sample mirror by 4, full convolution, keep the n + 4 central samples, per axis and
    level (sqrt(2) filters: gain 2 per level); reconstruct: full convolution per axis, divide by 4,
    centred crop to the previous level's size."""
    a, sizes = np.asarray(x, np.float64), []
    for _ in range(levels):
        sizes.append(a.shape)
        for ax in (0, 1):
            n = a.shape[ax]
            e = np.pad(a, [(4, 4) if i == ax else (0, 0) for i in range(2)], mode="symmetric")
            c = np.sqrt(2.0) * _full_conv(e, ax)  # length n + 12
            a = np.take(c, np.arange(4, 4 + n + 4), axis=ax)
    for s in reversed(sizes):
        for ax in (0, 1):
            a = np.sqrt(2.0) * _full_conv(a, ax)
        a = a / 4.0
        f = [(a.shape[i] - s[i]) // 2 for i in range(2)]
        a = a[f[0]:f[0] + s[0], f[1]:f[1] + s[1]]
    return a


# ------------------------------------------------------------------------------------------------
# properties of undecimated_lowpass
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("levels", [1, 2, 3])
@pytest.mark.parametrize("shape", [(40, 40), (37, 52)])
def test_undecimated_lowpass_matches_literal_formulation(levels, shape):
    rng = np.random.default_rng(levels)
    x = rng.normal(size=shape)
    got = undecimated_lowpass(torch.tensor(x)[None], levels)[0].numpy()
    np.testing.assert_allclose(got, _literal_lowpass(x, levels), rtol=0, atol=1e-12)


@pytest.mark.parametrize("levels", [1, 2, 3])
def test_undecimated_lowpass_interior_kernel_is_binomial(levels):
    n = 8 * levels + 1 + 2 * undecimated_lowpass_halo(levels)
    imp = torch.zeros(1, n, n, dtype=torch.float64)
    imp[0, n // 2, n // 2] = 1.0
    k = undecimated_lowpass(imp, levels)[0].numpy()
    m = 8 * levels
    prof = np.array([comb(m, j) for j in range(m + 1)], dtype=np.float64) / 2.0 ** m
    r = 4 * levels
    c = n // 2
    np.testing.assert_allclose(k[c - r:c + r + 1, c - r:c + r + 1], np.outer(prof, prof), atol=1e-15)
    assert abs(k.sum() - 1.0) < 1e-12
    assert undecimated_lowpass_halo(levels) == r


def test_undecimated_lowpass_constant_and_identity():
    x = torch.full((2, 19, 23), 3.25, dtype=torch.float64)
    torch.testing.assert_close(undecimated_lowpass(x, 2), x, rtol=0, atol=1e-12)
    y = torch.randn(1, 9, 11, dtype=torch.float64)
    assert torch.equal(undecimated_lowpass(y, 0), y)
    assert undecimated_lowpass(y.float(), 2).dtype == torch.float32


def test_undecimated_lowpass_borders_differ_from_single_extension():
    """The toolbox re-extends its grown approximation at each level: not a mirror-padded 17-tap filter."""
    from geofuse.kernels.filters import correlate_separable

    x = torch.randn(1, 48, 48, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    prof = np.array([comb(16, j) for j in range(17)], dtype=np.float64) / 2.0 ** 16
    plain = correlate_separable(x, prof, prof, mode="symmetric")
    got = undecimated_lowpass(x, 2)
    h = undecimated_lowpass_halo(2)
    torch.testing.assert_close(got[:, h:-h, h:-h], plain[:, h:-h, h:-h], rtol=0, atol=1e-12)
    assert (got - plain).abs().max() > 1e-3


def test_undecimated_lowpass_is_local_with_halo():
    levels, h = 2, undecimated_lowpass_halo(2)
    x = torch.randn(2, 70, 90, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    whole = undecimated_lowpass(x, levels)
    for (y0, y1), (x0, x1) in [((0, 30), (0, 40)), ((30, 70), (40, 90)), ((20, 45), (25, 60))]:
        ty0, ty1, tx0, tx1 = max(y0 - h, 0), min(y1 + h, 70), max(x0 - h, 0), min(x1 + h, 90)
        tile = undecimated_lowpass(x[:, ty0:ty1, tx0:tx1], levels)
        torch.testing.assert_close(tile[:, y0 - ty0:y1 - ty0, x0 - tx0:x1 - tx0], whole[:, y0:y1, x0:x1],
                                   rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------------------
# reference toolbox outputs
# ------------------------------------------------------------------------------------------------

@pytest.mark.shared
def test_gsa_matches_toolbox(ref):
    ms, pan = _rasters(ref["I_PAN"], ref["I_MS_LR"])
    out = pansharpen(ms, pan, "gsa", sensor="IKONOS", compat="toolbox", chunks=4096)
    got = np.asarray(out.values, np.float64)
    want = ref["GSA"].transpose(2, 0, 1).astype(np.float64)
    rel = np.sqrt(np.mean((got - want) ** 2)) / (want.max() - want.min())
    assert rel <= 1e-4, rel  # measured 1.8e-8 (float32 rounding)


@pytest.mark.shared
def test_undecimated_lowpass_matches_awlp_lowpass(ref):
    """AWLP: (F_b - MS_b) / (MS_b / mean(MS)) = PAN_eq_b - LP(PAN_eq_b) = a_b (PAN - LP(PAN)) for a
    per-band scale a_b (the equalisation gain), whatever the equalisation's exact statistics."""
    pan = ref["I_PAN"].astype(np.float64)
    ms = ref["I_MS"].astype(np.float64)
    ratio = ms / (ms.mean(axis=2, keepdims=True) + np.finfo(np.float64).eps)
    detail = (ref["AWLP"].astype(np.float64) - ms) / ratio
    dp = pan - undecimated_lowpass(torch.tensor(pan)[None], 2)[0].numpy()
    for b in range(ms.shape[2]):
        a = float((detail[..., b] * dp).sum() / (dp * dp).sum())
        res = detail[..., b] - a * dp
        assert np.sqrt(np.mean(res ** 2)) / np.sqrt(np.mean(detail[..., b] ** 2)) < 1e-5  # measured < 4e-7


# ------------------------------------------------------------------------------------------------
# chunking
# ------------------------------------------------------------------------------------------------

def test_gsa_chunked_equals_whole():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:256, 0:256] / 256.0
    base = 300 + 200 * np.sin(6 * xx) * np.cos(5 * yy)
    pan = base + 20 * rng.normal(size=(256, 256))
    ms_lr = np.stack([(0.3 + 0.2 * b) * base[2::4, 2::4] + 5 * rng.normal(size=(64, 64)) for b in range(4)],
                     axis=-1)
    ms, p = _rasters(pan, ms_lr)
    whole = pansharpen(ms, p, "gsa", sensor="IKONOS", compat="default", chunks=4096).values
    chunked = pansharpen(ms, p, "gsa", sensor="IKONOS", compat="default", chunks=(72, 100)).values
    assert whole.shape == (4, 256, 256)
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-3)
