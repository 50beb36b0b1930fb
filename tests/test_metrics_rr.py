"""Reduced-resolution indexes Q, SCC, PSNR, RMSE, CC, SSIM (and the whole RR table): faithfulness,
laziness over unaligned chunks, and properties.

Reference values (provenance):

* ``../shared/reference/pansharpening/toolbox_building_blocks.npz`` (``Q_32``, ``SCC`` on the
  ``metric_GT``/``metric_F`` pair) and the RR rows of ``IKONOS_metrics.csv`` (``Q``, ``SCC`` of every
  fused image of ``IKONOS_RR_outputs.npz``, border cut 21): outputs of the reference MATLAB toolbox
  (``Q.m``/``img_qi.m``, ``SCC.m``, ``indexes_evaluation.m``) run under GNU Octave 7.3 (see the
  README.md beside them). Read in place, skipped when absent.
* SSIM and PSNR: scikit-image (``skimage.metrics``), an independent implementation; the Sobel
  gradients: ``scipy.ndimage.sobel``; CC: ``numpy.corrcoef``.
"""

from __future__ import annotations

import csv
import math

import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import geofuse
from geofuse import metrics
from geofuse.errors import ParameterError
from geofuse.metrics import ergas, sam
from geofuse.metrics.evaluate import REDUCED, reduced_resolution
from geofuse.metrics.rr import cc, psnr, q_index, rmse, scc, ssim

from .conftest import shared_path

RTOL_REF = 1e-4


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def _bands_first(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a).transpose(2, 0, 1)).astype(np.float64)


def _pair(seed: int = 0, shape=(4, 70, 90)):
    rng = np.random.default_rng(seed)
    ref = rng.uniform(100, 2000, size=shape)
    ref = ndi.uniform_filter(ref, size=(1, 5, 5))          # some spatial structure
    fused = ref * rng.uniform(0.95, 1.05, size=shape) + rng.normal(0, 15, size=shape)
    return fused, ref


# --------------------------------------------------------------------------------------------------
# toolbox values
# --------------------------------------------------------------------------------------------------

@pytest.mark.shared
def test_building_blocks_q_and_scc():
    with np.load(shared_path("reference", "pansharpening", "toolbox_building_blocks.npz")) as d:
        gt, fu = _bands_first(d["metric_GT"]), _bands_first(d["metric_F"])
        want_q, want_scc = float(d["Q_32"].squeeze()), float(d["SCC"].squeeze())
    # measured: both ~1e-15 relative (same sums, same order of magnitude of rounding)
    assert _rel(q_index(fu, gt), want_q) < 1e-9
    assert _rel(scc(fu, gt), want_scc) < 1e-9
    # and lazily on chunks that align with nothing (odd sizes, band split)
    f, g = da.from_array(fu, chunks=(3, 37, 53)), da.from_array(gt, chunks=(3, 37, 53))
    assert _rel(float(q_index(f, g).compute()), want_q) < 1e-9
    assert _rel(float(scc(f, g).compute()), want_scc) < 1e-9


def _csv_name(array_name: str) -> str:
    special = {"BDSD_S_128": "BDSD(S=128)", "BDSD_global": "BDSD(global)"}
    if array_name in special:
        return special[array_name]
    if array_name.endswith("_v1_3"):
        return array_name[: -len("_v1_3")].replace("_", "-") + "(v1.3)"
    return array_name.replace("_", "-")


@pytest.mark.shared
def test_ikonos_rr_q_and_scc_match_toolbox_table():
    """Every fused image of IKONOS_RR_outputs.npz: Q and SCC (cut 21) vs the RR rows of IKONOS_metrics.csv."""
    with open(shared_path("reference", "pansharpening", "IKONOS_metrics.csv"), newline="") as fh:
        rows = {r["method"]: r for r in csv.DictReader(fh) if r["stage"] == "RR"}
    with np.load(shared_path("reference", "pansharpening", "IKONOS_RR_outputs.npz")) as e:
        gt = _bands_first(e["I_GT"])
        names = [k for k in e.files if k not in {"I_GT", "I_MS", "I_MS_LR", "I_PAN"}]
        fused = {k: _bands_first(e[k]) for k in names}
    assert len(names) >= 20
    worst = {"Q": 0.0, "SCC": 0.0}
    for name in names:
        tab = reduced_resolution(fused[name], gt, 4, metrics=("Q", "SCC", "Q2n"), compat="toolbox", dim_cut=21)
        got = tab[tab.band == "all"].set_index("metric")["value"]
        for metric in ("Q", "SCC"):
            err = _rel(got[metric], float(rows[_csv_name(name)][metric]))
            worst[metric] = max(worst[metric], err)
            assert err < RTOL_REF, (name, metric, got[metric], rows[_csv_name(name)][metric])
    # the CSV has 6 decimals: ~1e-6 relative is the best possible agreement
    assert max(worst.values()) < 5e-6, worst


# --------------------------------------------------------------------------------------------------
# independent implementations
# --------------------------------------------------------------------------------------------------

def test_ssim_and_psnr_match_scikit_image():
    skm = pytest.importorskip("skimage.metrics")
    fused, ref = _pair(1, (3, 61, 47))
    per = ssim(fused, ref, per_band=True)
    want = [skm.structural_similarity(fused[b], ref[b], gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False, data_range=ref[b].max() - ref[b].min())
            for b in range(3)]
    np.testing.assert_allclose(per[:3], want, rtol=1e-10)
    assert per[3] == pytest.approx(np.mean(want), rel=1e-12)
    assert ssim(fused, ref, data_range=2047.0) == pytest.approx(np.mean(
        [skm.structural_similarity(fused[b], ref[b], gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                   data_range=2047.0) for b in range(3)]), rel=1e-10)
    p = psnr(fused, ref, per_band=True)
    want_p = [skm.peak_signal_noise_ratio(ref[b], fused[b], data_range=ref[b].max()) for b in range(3)]
    np.testing.assert_allclose(p[:3], want_p, rtol=1e-12)
    r = rmse(fused, ref, per_band=True)
    np.testing.assert_allclose(r[:3], [math.sqrt(skm.mean_squared_error(ref[b], fused[b])) for b in range(3)],
                               rtol=1e-12)
    assert r[3] == pytest.approx(math.sqrt(skm.mean_squared_error(ref, fused)), rel=1e-12)


def test_cc_matches_numpy_corrcoef():
    fused, ref = _pair(2, (4, 30, 41))
    per = cc(fused, ref, per_band=True)
    want = [np.corrcoef(fused[b].ravel(), ref[b].ravel())[0, 1] for b in range(4)]
    np.testing.assert_allclose(per[:4], want, rtol=1e-12)
    assert per[4] == pytest.approx(np.mean(want), rel=1e-12)


def test_scc_matches_scipy_sobel():
    fused, ref = _pair(3, (2, 40, 33))

    def mag(x, interior=True):
        x = x[1:-1, 1:-1] if interior else x
        return np.hypot(ndi.sobel(x, axis=0, mode="constant"), ndi.sobel(x, axis=1, mode="constant"))

    gf = np.stack([mag(b) for b in fused])
    gg = np.stack([mag(b) for b in ref])
    want = (gf * gg).sum() / np.sqrt((gf ** 2).sum()) / np.sqrt((gg ** 2).sum())
    assert scc(fused, ref) == pytest.approx(want, rel=1e-12)
    per = scc(fused, ref, per_band=True)
    assert per[0] == pytest.approx((gf[0] * gg[0]).sum() / np.sqrt((gf[0] ** 2).sum() * (gg[0] ** 2).sum()), rel=1e-12)
    # v1.3: one Sobel direction (rows), whole image, no magnitude
    v1 = np.stack([ndi.sobel(b, axis=0, mode="constant") for b in fused])
    v2 = np.stack([ndi.sobel(b, axis=0, mode="constant") for b in ref])
    want13 = (v1 * v2).sum() / np.sqrt((v1 ** 2).sum()) / np.sqrt((v2 ** 2).sum())
    assert scc(fused, ref, variant="v1.3") == pytest.approx(want13, rel=1e-12)
    with pytest.raises(ParameterError, match="variant"):
        scc(fused, ref, variant="2015")


def test_q_is_mean_of_sliding_uiqi():
    """Q against a direct loop over every 8x8 window with np.cov (Wang & Bovik's formula)."""
    fused, ref = _pair(4, (2, 14, 12))
    vals = []
    for b in range(2):
        qs = []
        for i in range(14 - 8 + 1):
            for j in range(12 - 8 + 1):
                x, y = ref[b, i:i + 8, j:j + 8].ravel(), fused[b, i:i + 8, j:j + 8].ravel()
                c = np.cov(x, y)
                qs.append(4 * c[0, 1] * x.mean() * y.mean() / ((c[0, 0] + c[1, 1]) * (x.mean() ** 2 + y.mean() ** 2)))
        vals.append(np.mean(qs))
    np.testing.assert_allclose(q_index(fused, ref, block=8, per_band=True), vals + [np.mean(vals)], rtol=1e-10)


# --------------------------------------------------------------------------------------------------
# tables, laziness
# --------------------------------------------------------------------------------------------------

def test_table_per_band_rows_and_order():
    fused, ref = _pair(5, (3, 40, 40))
    tab = reduced_resolution(fused, ref, 4, metrics=REDUCED)
    assert list(dict.fromkeys(tab.metric)) == list(REDUCED)
    for m in REDUCED:
        bands = list(tab.loc[tab.metric == m, "band"])
        assert bands == (["1", "2", "3", "all"] if metrics.get(m).per_band else ["all"]), (m, bands)
    # the "all" row is last per metric, so dict(zip(metric, value)) gives the global values
    got = dict(zip(tab.metric, tab.value))
    assert got["Q"] == pytest.approx(q_index(fused, ref)) and got["SSIM"] == pytest.approx(ssim(fused, ref))


@pytest.mark.parametrize("chunks", [(4, 37, 53), (1, 70, 90), (2, 13, 90), (4, 70, 9), (4, 32, 32)])
def test_every_rr_metric_chunked_equals_unchunked(chunks):
    fused, ref = _pair(6, (4, 70, 90))
    whole = reduced_resolution(fused, ref, 4, metrics=REDUCED, compat="toolbox")
    lazy = reduced_resolution(da.from_array(fused, chunks=chunks), da.from_array(ref, chunks=chunks), 4,
                              metrics=REDUCED, compat="toolbox")
    np.testing.assert_allclose(lazy.value.to_numpy(), whole.value.to_numpy(), rtol=1e-11)
    assert list(lazy.metric) == list(whole.metric) and list(lazy.band) == list(whole.band)


def test_rr_metrics_are_lazy():
    fused, ref = _pair(7, (4, 70, 90))
    f, g = da.from_array(fused, chunks=(4, 33, 41)), da.from_array(ref, chunks=(4, 33, 41))
    for fn in (q_index, scc, psnr, rmse, cc, ssim):
        v = fn(f, g)
        assert isinstance(v, da.Array) and v.shape == ()
        pb = fn(f, g, per_band=True)
        assert isinstance(pb, da.Array) and pb.shape == (5,)
        np.testing.assert_allclose(pb.compute(), fn(fused, ref, per_band=True), rtol=1e-11)


def test_window_larger_than_image_is_an_error():
    x = np.ones((1, 20, 40))
    with pytest.raises(ParameterError, match="Q window"):
        q_index(x, x)
    with pytest.raises(ParameterError, match="SSIM window"):
        ssim(x[:, :8], x[:, :8])


# --------------------------------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------------------------------

_shapes = st.tuples(st.integers(1, 4), st.integers(32, 40), st.integers(32, 40))


def _structured(x: np.ndarray) -> np.ndarray:
    """Add a gentle ramp so no band is constant (CC/SCC of a constant band are undefined)."""
    r, c = np.indices(x.shape[1:])
    return x + (r + 2 * c)[None] * 3.0


@settings(max_examples=15, deadline=None)
@given(hnp.arrays(np.float64, _shapes, elements=st.floats(1.0, 5000.0)), st.sampled_from(["default", "toolbox"]))
def test_every_rr_metric_of_an_image_with_itself_is_ideal(x, compat):
    x = _structured(x)
    tab = reduced_resolution(x, x.copy(), 4, metrics=REDUCED, compat=compat)
    for m, v in zip(tab.metric, tab.value):
        ideal = metrics.get(m).ideal
        if math.isinf(ideal):
            assert v == ideal, m
        else:
            assert v == pytest.approx(ideal, abs=1e-9), m


@settings(max_examples=15, deadline=None)
@given(hnp.arrays(np.float64, st.tuples(st.integers(2, 5), st.integers(1, 20), st.integers(1, 20)),
                  elements=st.floats(1.0, 5000.0)), st.data())
def test_sam_invariant_to_per_pixel_positive_scaling_chunked(x, data):
    ref = x[::-1].copy()
    scale = data.draw(hnp.arrays(np.float64, x.shape[1:], elements=st.floats(0.01, 100.0)))
    ch = data.draw(st.tuples(st.integers(1, x.shape[0]), st.integers(1, x.shape[1]), st.integers(1, x.shape[2])))
    got = float(sam(da.from_array(x * scale, chunks=ch), da.from_array(ref, chunks=ch)).compute())
    assert got == pytest.approx(sam(x, ref), rel=1e-9, abs=1e-9)


@settings(max_examples=15, deadline=None)
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(2, 20), st.integers(2, 20)),
                  elements=st.floats(100.0, 5000.0)),
       st.floats(0.1, 10.0), st.sampled_from([2, 3, 4, 8]))
def test_ergas_scaling(ref, k, ratio):
    """ERGAS (documented formula) is linear in the error magnitude and proportional to 1/ratio, and
    invariant to a common scaling of both images."""
    rng = np.random.default_rng(0)
    err = rng.normal(0, 10, size=ref.shape)
    base = ergas(ref + err, ref, ratio)
    assume(base > 0)
    assert ergas(ref + k * err, ref, ratio) == pytest.approx(k * base, rel=1e-9)
    assert ergas(ref + err, ref, 1) == pytest.approx(ratio * base, rel=1e-12)
    assert ergas(k * (ref + err), k * ref, ratio) == pytest.approx(base, rel=1e-9)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10_000), st.data())
def test_chunked_equals_unchunked_random_chunks(seed, data):
    fused, ref = _pair(seed, (3, 45, 50))
    ch = data.draw(st.tuples(st.integers(1, 3), st.integers(5, 45), st.integers(5, 50)))
    lazy = reduced_resolution(da.from_array(fused, chunks=ch), da.from_array(ref, chunks=ch), 4, metrics=REDUCED)
    whole = reduced_resolution(fused, ref, 4, metrics=REDUCED)
    np.testing.assert_allclose(lazy.value.to_numpy(), whole.value.to_numpy(), rtol=1e-11)


def test_geofuse_evaluate_default_is_every_rr_metric():
    fused, ref = _pair(8, (4, 40, 40))
    tab = geofuse.evaluate(fused, ref, ratio=4)
    assert list(dict.fromkeys(tab.metric)) == list(REDUCED)
