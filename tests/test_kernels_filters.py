"""Tests of geofuse.kernels.filters.

Reference values: ``../shared/reference/pansharpening/toolbox_building_blocks.npz``, outputs of the
reference MATLAB pansharpening toolbox (Vivone et al. 2021, doi:10.1109/MGRS.2020.3019315) run under
GNU Octave 7.3 on an IKONOS crop (see the README.md beside it): an independent implementation. Its
arrays are (rows, cols, bands); they are transposed to (bands, rows, cols) here. Tolerance: 1e-10
relative to the largest absolute reference value.

Property tests compare with numpy.pad and with direct (loop) formulations of the same operations.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from geofuse.errors import GeofuseError, ParameterError
from geofuse.kernels.filters import (
    PAD_MODES,
    atrous_halo,
    atrous_lowpass,
    correlate2d,
    correlate_separable,
    imresize_down,
    imresize_down_halo,
    imresize_down_weights,
    kernel_radius,
    lp_filter_gauss_kernel,
    mtf_kernel,
    mtf_kernels,
    pad,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
BLOCKS = SHARED / "reference" / "pansharpening" / "toolbox_building_blocks.npz"
RTOL = 1e-10

# SPEC section 1 (toolbox Tools/genMTF.m and Tools/MTF_PAN.m, 2021), typed here from the spec.
MS_GAINS = {
    "QB": [0.34, 0.32, 0.30, 0.22],
    "IKONOS": [0.26, 0.28, 0.29, 0.28],
    "GeoEye1": [0.23, 0.23, 0.23, 0.23],
    "WV4": [0.23, 0.23, 0.23, 0.23],
    "WV2": [0.35] * 7 + [0.27],
    "WV3": [0.325, 0.355, 0.360, 0.350, 0.365, 0.360, 0.335, 0.315],
    "none": [0.3] * 4,
}
PAN_GAINS = {"QB": 0.15, "IKONOS": 0.17, "GeoEye1": 0.16, "WV4": 0.16, "WV2": 0.11, "WV3": 0.14, "none": 0.15}

NUMPY_MODE = {"replicate": "edge", "symmetric": "symmetric", "reflect": "reflect", "circular": "wrap",
              "zeros": "constant"}


@pytest.fixture(scope="module")
def blocks():
    if not BLOCKS.is_file():
        pytest.skip("../shared/reference not found: reference tests need the shared data beside the checkout")
    with np.load(BLOCKS) as z:
        return {k: z[k] for k in z.files}


def rel_err(got, ref) -> float:
    got = got.detach().cpu().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    return float(np.abs(got - ref).max() / np.abs(ref).max())


def chw(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(2, 0, 1)) if a.ndim == 3 else a[None]


# ------------------------------------------------------------------------------------------------
# reference values (toolbox under Octave)
# ------------------------------------------------------------------------------------------------

@pytest.mark.shared
@pytest.mark.parametrize("sensor", list(MS_GAINS))
def test_genmtf_kernels_match_toolbox(blocks, sensor):
    ref = chw(blocks[f"genMTF_{sensor}"])
    got = mtf_kernels(MS_GAINS[sensor], 4)
    assert got.dtype == np.float64 and got.shape == ref.shape
    assert rel_err(got, ref) < RTOL


@pytest.mark.shared
@pytest.mark.parametrize("sensor", list(PAN_GAINS))
def test_mtf_pan_kernels_match_toolbox(blocks, sensor):
    ref = blocks[f"MTFPAN_{sensor}"]
    assert rel_err(mtf_kernel(PAN_GAINS[sensor], 4), ref) < RTOL


@pytest.mark.shared
def test_wald_ms_lr_matches_toolbox(blocks):
    # resize_images: MTF(I_MS,'IKONOS',4) (replicate) then imresize(.,1/4,'nearest') = 0-based 2,6,10,...
    ms = torch.from_numpy(chw(blocks["ms_in"]))
    got = correlate2d(ms, mtf_kernels(MS_GAINS["IKONOS"], 4), "replicate", stride=4, offset=(2, 2))
    assert rel_err(got, chw(blocks["wald_ms_lr"])) < RTOL


@pytest.mark.shared
def test_wald_pan_lr_matches_toolbox(blocks):
    pan = torch.from_numpy(chw(blocks["pan_in"]))
    got = imresize_down(pan, 4)
    assert rel_err(got[0], blocks["wald_pan_lr"]) < RTOL


@pytest.mark.shared
def test_lpfiltergauss_matches_toolbox(blocks):
    pan = torch.from_numpy(chw(blocks["pan_in"]))
    got = correlate2d(pan, lp_filter_gauss_kernel(4), "replicate")
    assert rel_err(got[0], blocks["lpfiltergauss_pan"]) < RTOL


@pytest.mark.shared
def test_reference_float32_close(blocks):
    ms = torch.from_numpy(chw(blocks["ms_in"])).float()
    got = correlate2d(ms, mtf_kernels(MS_GAINS["IKONOS"], 4), stride=4, offset=(2, 2))
    assert got.dtype == torch.float32
    assert rel_err(got.double(), chw(blocks["wald_ms_lr"])) < 1e-5
    pan = torch.from_numpy(chw(blocks["pan_in"])).float()
    assert rel_err(imresize_down(pan, 4)[0].double(), blocks["wald_pan_lr"]) < 1e-5


# ------------------------------------------------------------------------------------------------
# kernel design properties (SPEC section 2)
# ------------------------------------------------------------------------------------------------

def test_mtf_kernel_properties():
    h = mtf_kernel(0.3, 4)
    assert h.shape == (41, 41)
    np.testing.assert_allclose(h, h.T, atol=1e-15)
    np.testing.assert_allclose(h, h[::-1, ::-1], atol=1e-15)
    assert 0.998 < h.sum() < 0.999  # Kaiser window, not renormalised (SPEC section 2)
    # gain at f = 1/(2 ratio): GNyq ** ((N/(N-1))**2) for the (N-1) form, GNyq for the legacy N form
    for legacy, expo in ((False, (41 / 40) ** 2), (True, 1.0)):
        k = mtf_kernel(0.3, 4, legacy=legacy)
        x = np.arange(41) - 20
        resp = np.sum(k.sum(axis=0) * np.cos(2 * np.pi * x / 8))  # response along one axis
        assert abs(resp / k.sum() - 0.3 ** expo) < 0.01
    np.testing.assert_array_equal(lp_filter_gauss_kernel(4), mtf_kernel(0.3, 4, legacy=True))
    assert mtf_kernels([0.3, 0.2], 2, n=21).shape == (2, 21, 21)
    assert kernel_radius(h) == 20 and kernel_radius(np.zeros((3, 5, 7))) == 3


@pytest.mark.parametrize("bad", [dict(gnyq=0.0), dict(gnyq=1.0), dict(n=40), dict(ratio=0)])
def test_mtf_kernel_rejects_bad_parameters(bad):
    args = dict(gnyq=0.3, ratio=4, n=41) | bad
    with pytest.raises(ParameterError):
        mtf_kernel(**args)


# ------------------------------------------------------------------------------------------------
# pad
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", PAD_MODES)
@pytest.mark.parametrize("shape", [(1, 1), (1, 4), (2, 3), (5, 4), (7, 9)])
def test_pad_matches_numpy_small_and_oversized(mode, shape):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2,) + shape)
    h, w = shape
    for p in [(0, 0, 0, 0), (1, 2, 0, 3), (h, h, w, w), (h + 1, 2 * h + 3, 3 * w + 2, w - 1 + 5),
              (17, 0, 0, 23)]:
        got = pad(torch.from_numpy(x), *p, mode).numpy()
        ref = np.pad(x, ((0, 0), (p[0], p[1]), (p[2], p[3])), mode=NUMPY_MODE[mode])
        np.testing.assert_array_equal(got, ref, err_msg=f"{mode} {shape} {p}")


def test_pad_2d_and_errors():
    x = torch.arange(6.0).reshape(2, 3)
    assert pad(x, 1, 1, 1, 1, "replicate").shape == (4, 5)
    with pytest.raises(ParameterError):
        pad(x, 1, 1, 1, 1, "mirror")
    with pytest.raises(GeofuseError):
        pad(x, -1, 0, 0, 0, "zeros")


# ------------------------------------------------------------------------------------------------
# correlate2d / correlate_separable
# ------------------------------------------------------------------------------------------------

def _direct_correlate(x: np.ndarray, k: np.ndarray, mode: str) -> np.ndarray:
    """Loop-free but independent formulation: numpy.pad then explicit shifted sums."""
    kh, kw = k.shape[-2:]
    ry, rx = kh // 2, kw // 2
    c, h, w = x.shape
    kk = np.broadcast_to(k, (c, kh, kw)) if k.ndim == 2 else k
    xp = np.pad(x, ((0, 0), (ry, ry), (rx, rx)), mode=NUMPY_MODE[mode])
    out = np.zeros((kk.shape[0], h, w)) if c == 1 else np.zeros_like(x)
    for u in range(kh):
        for v in range(kw):
            out += kk[:, u, v][:, None, None] * xp[:, u:u + h, v:v + w]
    return out


@pytest.mark.parametrize("mode", PAD_MODES)
def test_correlate2d_matches_direct(mode):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 11, 8))
    for k in (rng.standard_normal((5, 3)), rng.standard_normal((3, 7, 5)), rng.standard_normal((3, 15, 15))):
        got = correlate2d(torch.from_numpy(x), k, mode)
        np.testing.assert_allclose(got.numpy(), _direct_correlate(x, k, mode), rtol=0, atol=1e-12)


def test_correlate2d_one_band_many_kernels():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 12, 10))
    k = mtf_kernels([0.2, 0.3, 0.4], 2, n=9)
    got = correlate2d(torch.from_numpy(x), torch.from_numpy(k))
    assert got.shape == (3, 12, 10)
    for b in range(3):
        np.testing.assert_allclose(got[b].numpy(), correlate2d(torch.from_numpy(x), k[b])[0].numpy(),
                                   rtol=0, atol=1e-13)
    with pytest.raises(ParameterError):
        correlate2d(torch.zeros(2, 5, 5, dtype=torch.float64), k)
    x2 = torch.from_numpy(rng.standard_normal((2, 9, 8)))
    torch.testing.assert_close(correlate2d(x2, k[:1]), correlate2d(x2, k[0]), rtol=0, atol=0)


@pytest.mark.parametrize("mode", PAD_MODES)
@pytest.mark.parametrize("shape", [(21, 17), (24, 24), (5, 6)])
def test_strided_correlate_equals_sampled_full(mode, shape):
    rng = np.random.default_rng(4)
    x = torch.from_numpy(rng.standard_normal((2,) + shape))
    k = torch.from_numpy(rng.standard_normal((2, 9, 7)))
    full = correlate2d(x, k, mode)
    for stride in (1, 2, 3, 4):
        for off in [(0, 0), (stride // 2, stride - 1), (stride - 1, 0)]:
            got = correlate2d(x, k, mode, stride=stride, offset=off)
            ref = full[:, off[0]::stride, off[1]::stride]
            assert got.shape == ref.shape
            torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", PAD_MODES)
def test_correlate_separable_equals_outer_product(mode):
    rng = np.random.default_rng(5)
    x = torch.from_numpy(rng.standard_normal((2, 13, 9)))
    kv, kh = rng.standard_normal(5), rng.standard_normal(3)
    got = correlate_separable(x, kv, kh, mode)
    torch.testing.assert_close(got, correlate2d(x, np.outer(kv, kh), mode), rtol=0, atol=1e-12)
    kv2, kh2 = rng.standard_normal((2, 7)), rng.standard_normal((2, 5))
    got = correlate_separable(x, kv2, kh2, mode)
    ref = correlate2d(x, np.einsum("ci,cj->cij", kv2, kh2), mode)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------------------
# imresize_down
# ------------------------------------------------------------------------------------------------

def _matlab_imresize_down_1d(x: np.ndarray, r: int) -> np.ndarray:
    """MATLAB imresize's documented contributions algorithm along axis 0, written out per pixel:
    u = k/scale + 0.5*(1 - 1/scale) (1-based), kernel scale*cubic(scale*t), width 4/scale,
    ceil(width)+2 taps from floor(u - width/2), weights normalised, indices mirrored."""
    n = x.shape[0]
    scale = 1.0 / r
    width = 4.0 / scale
    out = []
    for k in range(1, math.ceil(n * scale) + 1):
        u = k / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        idx = left + np.arange(math.ceil(width) + 2)
        t = scale * (u - idx)
        a = np.abs(t)
        wts = scale * np.where(a <= 1, 1.5 * a**3 - 2.5 * a**2 + 1,
                               np.where(a < 2, -0.5 * a**3 + 2.5 * a**2 - 4 * a + 2, 0.0))
        wts = wts / wts.sum()
        aux = np.concatenate([np.arange(1, n + 1), np.arange(n, 0, -1)])
        src = aux[np.mod(idx - 1, 2 * n)] - 1
        out.append(np.tensordot(wts, x[src], axes=(0, 0)))
    return np.stack(out)


@pytest.mark.parametrize("ratio", [2, 3, 4, 5])
@pytest.mark.parametrize("shape", [(20, 24), (23, 9), (3, 2)])
def test_imresize_down_matches_contributions_algorithm(ratio, shape):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2,) + shape)
    ref = _matlab_imresize_down_1d(_matlab_imresize_down_1d(x.transpose(1, 2, 0), ratio).transpose(1, 0, 2),
                                   ratio).transpose(2, 1, 0)
    got = imresize_down(torch.from_numpy(x), ratio)
    assert got.shape == (2, math.ceil(shape[0] / ratio), math.ceil(shape[1] / ratio))
    np.testing.assert_allclose(got.numpy(), ref, rtol=0, atol=1e-12)


def test_imresize_down_weights():
    w, d0 = imresize_down_weights(4)
    assert len(w) == 16 and d0 == -6 and abs(w.sum() - 1) < 1e-15
    np.testing.assert_allclose(w, w[::-1], atol=1e-17)
    assert imresize_down_halo(4) == 6
    assert imresize_down(torch.ones(1, 5, 5), 1).shape == (1, 5, 5)
    y = imresize_down(torch.full((1, 16, 12), 3.0, dtype=torch.float64), 4)
    torch.testing.assert_close(y, torch.full((1, 4, 3), 3.0, dtype=torch.float64))


# ------------------------------------------------------------------------------------------------
# atrous_lowpass
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", PAD_MODES)
def test_atrous_matches_dilated_kernel(mode):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 30, 27))
    b3 = np.array([1, 4, 6, 4, 1]) / 16
    ref = x
    for j in range(1, 4):
        kd = np.zeros(4 * 2 ** (j - 1) + 1)
        kd[:: 2 ** (j - 1)] = b3  # explicit zero-inserted kernel (test only)
        ref = _direct_correlate(ref, np.outer(kd, np.ones(1)), mode)
        ref = _direct_correlate(ref, np.outer(np.ones(1), kd), mode)
    got = atrous_lowpass(torch.from_numpy(x), 3, mode)
    np.testing.assert_allclose(got.numpy(), ref, rtol=0, atol=1e-12)
    assert atrous_halo(2) == 6 and atrous_halo(3) == 14
    torch.testing.assert_close(atrous_lowpass(torch.from_numpy(x), 0), torch.from_numpy(x))


# ------------------------------------------------------------------------------------------------
# dtypes, devices, chunk equivalence
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_filters_keep_dtype(dtype):
    x = torch.rand(3, 32, 28, dtype=torch.float64)
    k = mtf_kernels([0.3, 0.25, 0.2], 4, n=13)
    ops = {
        "correlate2d": lambda t: correlate2d(t, k),
        "strided": lambda t: correlate2d(t, torch.from_numpy(k), stride=4, offset=(2, 2)),
        "separable": lambda t: correlate_separable(t, np.array([1.0, 2, 1]) / 4, np.array([1.0, 2, 1]) / 4),
        "imresize": lambda t: imresize_down(t, 4),
        "atrous": lambda t: atrous_lowpass(t, 2),
        "pad": lambda t: pad(t, 3, 40, 2, 50, "symmetric"),
    }
    for name, op in ops.items():
        got = op(x.to(dtype))
        assert got.dtype == dtype, name
        torch.testing.assert_close(got.double(), op(x), rtol=0, atol=1e-5 if dtype == torch.float32 else 0,
                                   msg=name)


@pytest.mark.parametrize("mode", PAD_MODES)
def test_chunk_equivalence(mode):
    """Filtering a tile with enough context then cropping equals filtering the whole image."""
    rng = np.random.default_rng(8)
    H, W = 64, 56
    x = torch.from_numpy(rng.standard_normal((2, H, W)))
    y0, y1, x0, x1 = 16, 40, 12, 36  # tile, multiples of 4

    def tile(halo):
        a, b, c, d = max(y0 - halo, 0), min(y1 + halo, H), max(x0 - halo, 0), min(x1 + halo, W)
        return x[:, a:b, c:d], (y0 - a, x0 - c)

    k = torch.from_numpy(mtf_kernels([0.3, 0.2], 4, n=11))
    r = kernel_radius(k)
    t, (oy, ox) = tile(r)
    got = correlate2d(t, k, mode)[:, oy:oy + y1 - y0, ox:ox + x1 - x0]
    torch.testing.assert_close(got, correlate2d(x, k, mode)[:, y0:y1, x0:x1], rtol=0, atol=1e-13)

    # strided (decimating) correlation: the tile starts on the sampling lattice
    full = correlate2d(x, k, mode, stride=4, offset=(2, 2))
    t, (oy, ox) = tile(r)
    got = correlate2d(t, k, mode, stride=4, offset=(oy + 2, ox + 2))[:, : (y1 - y0) // 4, : (x1 - x0) // 4]
    torch.testing.assert_close(got, full[:, y0 // 4:y1 // 4, x0 // 4:x1 // 4], rtol=0, atol=1e-13)

    # imresize_down
    h = imresize_down_halo(4)
    h4 = -(-h // 4) * 4  # keep the tile start on the decimation lattice
    t, (oy, ox) = tile(h4)
    got = imresize_down(t, 4, mode)[:, oy // 4:oy // 4 + (y1 - y0) // 4, ox // 4:ox // 4 + (x1 - x0) // 4]
    torch.testing.assert_close(got, imresize_down(x, 4, mode)[:, y0 // 4:y1 // 4, x0 // 4:x1 // 4],
                               rtol=0, atol=1e-13)

    # atrous
    t, (oy, ox) = tile(atrous_halo(2))
    got = atrous_lowpass(t, 2, mode)[:, oy:oy + y1 - y0, ox:ox + x1 - x0]
    torch.testing.assert_close(got, atrous_lowpass(x, 2, mode)[:, y0:y1, x0:x1], rtol=0, atol=1e-13)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    x = torch.rand(4, 64, 64, dtype=torch.float64)
    k = mtf_kernels([0.3] * 4, 4)
    for op in (lambda t: correlate2d(t, k, stride=4, offset=(2, 2)), lambda t: imresize_down(t, 4),
               lambda t: atrous_lowpass(t, 2), lambda t: pad(t, 70, 3, 2, 90, "reflect")):
        got = op(x.cuda())
        assert got.is_cuda
        torch.testing.assert_close(got.cpu(), op(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape, phase, mode", [((1, 64, 80), (1.5, 1.5), "symmetric"), ((2, 44, 36), (2.0, 1.0), "symmetric"),
                                               ((1, 40, 48), (1.5, 0.5), "circular"), ((1, 8, 12), (1.5, 1.5), "symmetric")])
def test_undecimated_lowpass_decimated_equals_lowpass_then_pick(shape, phase, mode):
    """The decimated-only evaluation equals the undecimated low pass followed by the decimation."""
    import torch

    from geofuse.kernels.filters import undecimated_lowpass, undecimated_lowpass_decimated
    from geofuse.kernels.resample import decimate

    x = torch.from_numpy(np.random.default_rng(5).random(shape).astype(np.float32) * 1000)
    ref = decimate(undecimated_lowpass(x.double(), 2, mode), 4, phase)
    got = undecimated_lowpass_decimated(x, 2, 4, phase, mode)
    assert got.shape == ref.shape and got.dtype == torch.float32
    np.testing.assert_allclose(got.double().numpy(), ref.numpy(), rtol=1e-6, atol=0)


# --------------------------------------------------------------------------------------------------
# correlate2d_fft (checked against the direct correlate2d, an independent spatial-domain sum)


@pytest.mark.parametrize("mode", ["replicate", "symmetric", "circular"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_correlate2d_fft_equals_direct(mode, dtype):
    from geofuse.kernels.filters import correlate2d_fft

    g = torch.Generator().manual_seed(3)
    x = (1000 + 300 * torch.rand(2, 37, 53, generator=g, dtype=torch.float64))
    k = torch.rand(9, 13, generator=g, dtype=torch.float64)
    want = correlate2d(x, k, mode=mode)
    got = correlate2d_fft(x.to(dtype), k, mode=mode)
    assert got.dtype == dtype and got.shape == x.shape
    tol = 1e-10 if dtype == torch.float64 else 2e-7
    torch.testing.assert_close(got.double(), want, rtol=0, atol=tol * float(want.abs().max()))


def test_correlate2d_fft_lp_filter_gauss_kernel_on_a_large_tile():
    from geofuse.kernels.filters import correlate2d_fft

    x = torch.rand(1, 300, 290, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 2047
    k = lp_filter_gauss_kernel(4)
    torch.testing.assert_close(correlate2d_fft(x, k), correlate2d(x, k), rtol=0, atol=1e-9)


def test_correlate2d_fft_refuses_even_kernel():
    from geofuse.kernels.filters import correlate2d_fft

    with pytest.raises(ParameterError, match="odd size"):
        correlate2d_fft(torch.zeros(1, 8, 8), np.ones((4, 3)))
