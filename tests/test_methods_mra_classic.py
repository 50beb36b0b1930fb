"""The 2015 toolbox (v1.3) MRA methods (HPF, SFIM, Indusion, ATWT) and C-GSA.

Reference values (provenance): ``../shared/reference/pansharpening/IKONOS_RR_outputs.npz`` holds the
outputs of the reference MATLAB toolbox of Vivone et al. run under GNU Octave 7.3 on an IKONOS crop
(v1.3, "A Critical Comparison Among Pansharpening Algorithms", IEEE TGRS 2015,
doi:10.1109/TGRS.2014.2361734, for the ``*_v1_3`` arrays; the 2021 distribution, doi:10.1109/MGRS.2020.3019315,
for ``C_GSA``), and ``IKONOS_metrics.csv`` the toolbox's quality indexes of those outputs. C-GSA uses
MATLAB's randomly seeded ``kmeans``, so it is compared on the indexes (Q2n, SAM, ERGAS within 1%), not on
pixels. The tests read the files in place and skip when ``../shared`` is absent.
"""

from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest
import torch
from affine import Affine

from geofuse.api import evaluate, pansharpen
from geofuse.grid import lowres_transform
from geofuse.kernels import mra_classic as K
from geofuse.kernels import segment
from geofuse.methods import c_gsa as c_gsa_method
from geofuse.raster import make_raster

from .conftest import UTM, shared_path, synthetic_pair

REL_RMSE = 1e-4
PAN_T = Affine(1.0, 0.0, 500_000.0, 0.0, -1.0, 4_000_256.0)


@pytest.fixture(scope="module")
def ikonos():
    with np.load(shared_path("reference", "pansharpening", "IKONOS_RR_outputs.npz")) as d:
        ref = {k: d[k] for k in ("I_MS_LR", "I_PAN", "I_GT", "HPF_v1_3", "SFIM_v1_3", "Indusion_v1_3",
                                 "ATWT_v1_3", "C_GSA")}
    pan = make_raster(ref["I_PAN"][None], PAN_T, UTM, band=["pan"])
    ms = make_raster(np.ascontiguousarray(ref["I_MS_LR"].transpose(2, 0, 1)), lowres_transform(PAN_T, 4, (2, 2)),
                     UTM, band=["blue", "green", "red", "nir"])
    gt = make_raster(np.ascontiguousarray(ref["I_GT"].transpose(2, 0, 1)), PAN_T, UTM,
                     band=["blue", "green", "red", "nir"])
    return ms, pan, gt, ref


def _rel_rmse(got: np.ndarray, ref_hwc: np.ndarray) -> float:
    ref = ref_hwc.transpose(2, 0, 1).astype(np.float64)
    return float(np.sqrt(np.mean((got.astype(np.float64) - ref) ** 2)) / (ref.max() - ref.min()))


@pytest.mark.shared
@pytest.mark.parametrize("method, key", [("hpf", "HPF_v1_3"), ("sfim", "SFIM_v1_3"), ("atwt", "ATWT_v1_3"),
                                         ("indusion", "Indusion_v1_3")])
def test_matches_toolbox_v13(ikonos, method, key):
    ms, pan, _, ref = ikonos
    out = pansharpen(ms, pan, method, sensor="IKONOS", compat="toolbox")
    assert out.dtype == np.float32 and out.shape == (4, 256, 256)
    err = _rel_rmse(out.values, ref[key])
    assert err <= REL_RMSE, f"{method} vs toolbox {key}: relative RMSE {err:.3g}"


@pytest.mark.shared
def test_c_gsa_matches_toolbox_indexes(ikonos):
    ms, pan, gt, ref = ikonos
    with open(shared_path("reference", "pansharpening", "IKONOS_metrics.csv")) as f:
        row = next(r for r in csv.DictReader(f) if r["stage"] == "RR" and r["method"] == "C-GSA")
    out = pansharpen(ms, pan, "c_gsa", sensor="IKONOS", compat="toolbox")
    table = evaluate(out, reference=gt, ratio=4, compat="toolbox", dim_cut=21)
    got = dict(zip(table["metric"], table["value"]))
    for metric, col in (("Q2n", "Q2n"), ("SAM", "SAM_deg"), ("ERGAS", "ERGAS")):
        want = float(row[col])
        assert abs(got[metric] - want) <= 0.01 * abs(want), (metric, got[metric], want)
    # the pixels are close too (the segmentations differ only on a few boundary pixels)
    assert _rel_rmse(out.values, ref["C_GSA"]) < 2e-3


@pytest.mark.shared
def test_indusion_default_mode_is_phase_correct(ikonos):
    """Default mode reduces the PAN at the grid's phase (the toolbox's deg9tap keeps r k + 1 while the MS
    sits on r k + 2): on the IKONOS pair this improves every index a little."""
    ms, pan, gt, _ = ikonos
    scores = {}
    for compat in ("toolbox", "default"):
        out = pansharpen(ms, pan, "indusion", sensor="IKONOS", compat=compat)
        t = evaluate(out, reference=gt, ratio=4, compat="toolbox", dim_cut=21)
        scores[compat] = dict(zip(t["metric"], t["value"]))
    assert scores["default"]["Q2n"] > scores["toolbox"]["Q2n"]
    assert scores["default"]["ERGAS"] < scores["toolbox"]["ERGAS"]
    assert scores["default"]["SAM"] < scores["toolbox"]["SAM"]


# -------------------------------------------------------------------------------------------------- kernels


def test_box_size():
    assert [K.box_size(r) for r in (2, 3, 4, 5, 8)] == [3, 3, 5, 5, 9]


def _naive_upsampling7tap(x: np.ndarray, ratio: int) -> np.ndarray:
    """Literal stage-wise zero insertion (odd positions first, even afterwards) + circular 7-tap filter
    along both axes, on a (H, W) array."""
    base = K.CDF7_SYNTHESIS
    first = True
    for _ in range(int(np.log2(ratio))):
        h, w = x.shape
        z = np.zeros((2 * h, 2 * w))
        if first:
            z[1::2, 1::2] = x
            first = False
        else:
            z[0::2, 0::2] = x
        for axis in (0, 1):
            z = sum(base[u] * np.roll(z, 3 - u, axis=axis) for u in range(7))
        x = z
    return x


@pytest.mark.parametrize("ratio", [2, 4, 8])
def test_upsampling7tap_equals_stagewise_cascade(ratio):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 9, 7))
    got = K.upsampling7tap(torch.from_numpy(x), ratio, (ratio // 2, ratio // 2), mode="circular").numpy()
    for b in range(2):
        np.testing.assert_allclose(got[b], _naive_upsampling7tap(x[b], ratio), rtol=0, atol=1e-12)


@pytest.mark.parametrize("phase", [2.0, 1.5])
def test_upsampling7tap_keeps_constants_and_ramps(phase):
    """Unit DC gain, and (symmetric filters) a linear ramp of the LR samples is interpolated linearly at
    the grid phase: LR sample k holds the value at HR position 4k + phase."""
    k = torch.arange(12, dtype=torch.float64)
    x = (k[None, :, None] + 0 * k[None, None, :]).expand(1, 12, 12).contiguous()
    up = K.upsampling7tap(x, 4, (phase, phase), mode="symmetric")[0, 16:-16, 8]
    i = torch.arange(16, 32, dtype=torch.float64)
    torch.testing.assert_close(up, (i - phase) / 4, rtol=0, atol=1e-9)
    ones = K.upsampling7tap(torch.ones(1, 5, 6, dtype=torch.float64), 4, (phase, phase), mode="symmetric")
    torch.testing.assert_close(ones, torch.ones_like(ones), rtol=0, atol=1e-10)  # 12-decimal taps


def test_deg9tap_phase_and_equivalent_filter():
    """The toolbox's reduction keeps HR position r k + 1 (a ramp maps to r k + 1), and away from the
    borders it equals one correlation with the folded cascade filter."""
    H = 64
    ramp = torch.arange(H, dtype=torch.float64)[None, :, None].expand(1, H, H).contiguous()
    red = K.deg9tap(ramp, 4)[0, 4:-4, 5]
    torch.testing.assert_close(red, 4 * torch.arange(4, H // 4 - 4, dtype=torch.float64) + 1, rtol=0, atol=1e-9)
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.standard_normal((1, H, H)))
    h = K.deg9tap_filter(4)
    assert len(h) == 25 and abs(h.sum() - 1) < 1e-9
    from geofuse.kernels.filters import correlate_separable

    full = correlate_separable(x, h, h, mode="replicate")[:, 1::4, 1::4]
    torch.testing.assert_close(K.deg9tap(x, 4)[:, 4:-4, 4:-4], full[:, 4:-4, 4:-4], rtol=0, atol=1e-12)


def test_kmeans_is_seeded_and_finds_separated_clusters():
    rng = np.random.default_rng(2)
    centres = np.array([[0.0, 0.0], [5.0, 5.0], [0.0, 8.0]])
    x = np.concatenate([c + 0.3 * rng.standard_normal((200, 2)) for c in centres])
    xt = torch.from_numpy(x)
    c1 = segment.kmeans_fit(xt, 3, seed=7)
    torch.testing.assert_close(c1, segment.kmeans_fit(xt, 3, seed=7), rtol=0, atol=0)
    found = c1.numpy()[np.argsort(c1.numpy()[:, 0] * 10 + c1.numpy()[:, 1])]
    want = centres[np.argsort(centres[:, 0] * 10 + centres[:, 1])]
    np.testing.assert_allclose(found, want, atol=0.1)
    img = xt.t().reshape(2, 30, 20)
    lab = segment.assign_segments(img, c1)
    np.testing.assert_array_equal(lab.reshape(-1).numpy(), torch.cdist(xt, c1).argmin(1).numpy())


def test_c_gsa_segment_gains_match_numpy():
    """Per-segment gains from chunk summaries merged exactly == cov(I, MS_b) / var(I) per segment."""
    rng = np.random.default_rng(3)
    k, C, H, W = 3, 2, 20, 24
    lab = rng.integers(0, k, (H, W))
    inten = rng.standard_normal((H, W))
    ms = np.stack([2.0 * inten + (lab + 1) * rng.standard_normal((H, W)) for _ in range(C)])
    x = np.concatenate([lab[None].astype(float), inten[None], ms])
    parts = np.concatenate([c_gsa_method._grouped_block(x[:, :, s], k=k) for s in (slice(0, 7), slice(7, None))],
                           axis=2)
    gains = c_gsa_method._merge_gains(parts, k, 1 + C)
    for s in range(k):
        sel = lab == s
        for b in range(C):
            c = np.cov(inten[sel], ms[b][sel])
            assert abs(gains[s, b] - c[0, 1] / c[0, 0]) < 1e-12


def test_c_gsa_parameters_and_one_segment():
    """One segment gives the global GS injection; the seed changes nothing on well-separated data."""
    ms, pan = synthetic_pair((17, 19), 4, dtype=np.float32, seed=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = pansharpen(ms, pan, "c_gsa", n_segments=1).values
        assert np.isfinite(one).all()
        a = pansharpen(ms, pan, "c_gsa", seed=3).values
        b = pansharpen(ms, pan, "c_gsa", seed=3).values
    np.testing.assert_array_equal(a, b)


_RATIO_CASES = ([(m, 2, (37, 29)) for m in ("hpf", "sfim", "atwt", "indusion", "c_gsa")]
                + [("indusion", 8, (29, 27)), ("atwt", 8, (29, 27))])


@pytest.mark.parametrize("method, ratio, shape", _RATIO_CASES)
def test_other_ratios_chunked_equals_whole(method, ratio, shape):
    """Ratios 2 and 8 (three octaves of the 9/7 pyramid) with the shortest engine interpolator (bicubic),
    which leaves the 7-tap cascade the least engine halo: the method's own halo must cover it."""
    ms, pan = synthetic_pair(shape, ratio, dtype=np.float32, seed=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chunked = pansharpen(ms, pan, method, chunks=(7 * ratio + 3, 9 * ratio + 1), interpolation="bicubic")
        assert max(chunked.data.numblocks[1:]) > 1
        whole = pansharpen(ms, pan, method, chunks=4096, interpolation="bicubic")
    np.testing.assert_array_equal(chunked.values, whole.values)
