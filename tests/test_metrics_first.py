"""First reduced-resolution metrics: Q2n, SAM, ERGAS, border cut, evaluation table.

Reference values (provenance): ``../shared/reference/pansharpening/`` holds outputs of the reference
MATLAB pansharpening toolbox of Vivone et al. (2021 distribution, mirrored in
liangjiandeng/DLPan-Toolbox @ a34f884) run under GNU Octave 7.3 — an independent implementation
(``q2n.m``, ``SAM.m``, ``ERGAS.m``, ``indexes_evaluation.m``); see the README.md beside the files.
Nothing from there is copied into the repository: the tests read it in place and skip when absent.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from geofuse import metrics
from geofuse.errors import InputError, ParameterError
from geofuse.metrics import cut_border, ergas, q2n, reduced_resolution, sam
from geofuse.metrics.reduced import cayley_dickson_conj, cayley_dickson_mul

RTOL_REF = 1e-4


# --------------------------------------------------------------------------------------------------
# shared reference data
# --------------------------------------------------------------------------------------------------

def _shared_reference() -> Path:
    ref = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "pansharpening"
    if not ref.is_dir():
        pytest.skip("../shared/reference not found: reference tests need the shared data beside the checkout")
    return ref


def _load(name: str):
    path = _shared_reference() / name
    if not path.is_file():
        pytest.skip(f"../shared/reference/pansharpening/{name} not found: "
                    "reference tests need the shared data beside the checkout")
    return np.load(path)


def _bands_first(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a).transpose(2, 0, 1))


def _csv_name(array_name: str) -> str:
    """npz array name -> method name in IKONOS_metrics.csv (BT_H -> BT-H, PCA_v1_3 -> PCA(v1.3), ...)."""
    special = {"BDSD_S_128": "BDSD(S=128)", "BDSD_global": "BDSD(global)"}
    if array_name in special:
        return special[array_name]
    if array_name.endswith("_v1_3"):
        return array_name[: -len("_v1_3")].replace("_", "-") + "(v1.3)"
    return array_name.replace("_", "-")


_NOT_FUSED = {"I_GT", "I_MS", "I_MS_LR", "I_PAN"}


def _ikonos_rr_rows() -> dict[str, dict[str, str]]:
    with open(_shared_reference() / "IKONOS_metrics.csv", newline="") as fh:
        return {row["method"]: row for row in csv.DictReader(fh) if row["stage"] == "RR"}


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


# --------------------------------------------------------------------------------------------------
# 1. toolbox building blocks: whole 256x256x4 pair, no border cut
# --------------------------------------------------------------------------------------------------

@pytest.mark.shared
def test_building_blocks_q2n_sam_ergas():
    # metric_GT / metric_F and the values q2n_32 (q2n.m, block 32, shift 32), SAM (SAM.m),
    # ERGAS (ERGAS.m, ratio 4): computed by the toolbox under Octave on the whole pair (no cut).
    d = _load("toolbox_building_blocks.npz")
    gt, fu = _bands_first(d["metric_GT"]), _bands_first(d["metric_F"])
    got = {"q2n_32": q2n(fu, gt, 32, 32, compat="toolbox"), "SAM": sam(fu, gt), "ERGAS": ergas(fu, gt, 4)}
    errors = {k: _rel(v, float(d[k].squeeze())) for k, v in got.items()}
    # measured: Q2n ~5e-16, ERGAS ~3e-15, SAM ~4e-12 (toolbox acos vs our atan2 form at 0.036 deg)
    assert max(errors.values()) < RTOL_REF, errors
    assert errors["q2n_32"] < 1e-12 and errors["ERGAS"] < 1e-12 and errors["SAM"] < 1e-9, errors
    # same values through the evaluation table and through dask with odd chunks
    tab = reduced_resolution(da.from_array(fu, chunks=(3, 37, 53)), gt, 4, compat="toolbox")
    for name, key in (("Q2n", "q2n_32"), ("SAM", "SAM"), ("ERGAS", "ERGAS")):
        value = tab.loc[tab.metric == name, "value"].item()
        assert _rel(value, float(d[key].squeeze())) < 1e-9


# --------------------------------------------------------------------------------------------------
# 2. IKONOS reduced-resolution table: every fused array vs I_GT, dim_cut 21, ratio 4
# --------------------------------------------------------------------------------------------------

@pytest.mark.shared
def test_ikonos_rr_table_matches_toolbox():
    # IKONOS_RR_outputs.npz (fused images of the toolbox's methods, float32) and the RR rows of
    # IKONOS_metrics.csv (indexes_evaluation.m: Q2n block 32, SAM, ERGAS, dim_cut 21, ratio 4).
    # The CSV has 6 decimals, so ~1e-6 relative is the best achievable agreement.
    e = _load("IKONOS_RR_outputs.npz")
    rows = _ikonos_rr_rows()
    gt = _bands_first(e["I_GT"]).astype(np.float64)
    fused_names = [k for k in e.files if k not in _NOT_FUSED]
    assert len(fused_names) >= 20
    worst = {"Q2n": 0.0, "SAM_deg": 0.0, "ERGAS": 0.0}
    for name in fused_names:
        row = rows[_csv_name(name)]
        fu = _bands_first(e[name]).astype(np.float64)
        tab = reduced_resolution(fu, gt, 4, compat="toolbox", dim_cut=21).set_index("metric")["value"]
        for metric, col in (("Q2n", "Q2n"), ("SAM", "SAM_deg"), ("ERGAS", "ERGAS")):
            err = _rel(tab[metric], float(row[col]))
            worst[col] = max(worst[col], err)
            assert err < RTOL_REF, (name, metric, tab[metric], row[col])
    print("max relative error vs IKONOS_metrics.csv:", worst)


@pytest.mark.shared
def test_ikonos_border_cut_is_the_toolbox_one():
    # The toolbox keeps 0-based rows/cols 20..234 of 256 (I(21:end-21)); a one-pixel shift of the cut
    # window changes Q2n in the 4th decimal for GSA, so the CSV pins it down.
    e = _load("IKONOS_RR_outputs.npz")
    gt = _bands_first(e["I_GT"])
    fu = _bands_first(e["GSA"])
    target = float(_ikonos_rr_rows()["GSA"]["Q2n"])
    assert cut_border(gt, 21).shape == (4, 215, 215)
    assert _rel(q2n(cut_border(fu, 21), cut_border(gt, 21), compat="toolbox"), target) < 1e-5
    assert _rel(q2n(fu[:, 20:236, 20:236], gt[:, 20:236, 20:236], compat="toolbox"), target) > 1e-5


# --------------------------------------------------------------------------------------------------
# 3. laziness and chunking
# --------------------------------------------------------------------------------------------------

class _CountingScheduler:
    """A dask scheduler that counts compute calls and refuses more than ``max_computes`` (xarray style)."""

    def __init__(self, max_computes: int = 0):
        self.total = 0
        self.max_computes = max_computes

    def __call__(self, dsk, keys, **kwargs):
        self.total += 1
        if self.total > self.max_computes:
            raise RuntimeError(f"Too many computes: {self.total} > {self.max_computes}")
        return dask.get(dsk, keys, **kwargs)


def _pair(seed: int = 0, shape=(4, 100, 90)):
    rng = np.random.default_rng(seed)
    ref = rng.uniform(100, 2000, size=shape)
    fused = ref * rng.uniform(0.9, 1.1, size=shape) + rng.normal(0, 20, size=shape)
    return fused, ref


def test_lazy_until_asked():
    fused, ref = _pair()
    f, g = da.from_array(fused, chunks=(4, 37, 53)), da.from_array(ref, chunks=(4, 37, 53))
    counter = _CountingScheduler(0)
    with dask.config.set(scheduler=counter):
        lazy = [q2n(f, g), q2n(f, g, compat="toolbox"), sam(f, g), ergas(f, g, 4),
                cut_border(f, 5), q2n(cut_border(f, 5), cut_border(g, 5))]
    assert counter.total == 0
    for v in lazy[:4] + lazy[5:]:
        assert isinstance(v, da.Array) and v.shape == ()


def test_evaluate_computes_once():
    fused, ref = _pair()
    f = xr.DataArray(da.from_array(fused, chunks=(4, 37, 53)), dims=("band", "y", "x"))
    g = xr.DataArray(da.from_array(ref, chunks=(4, 41, 29)), dims=("band", "y", "x"))
    counter = _CountingScheduler(1)
    with dask.config.set(scheduler=counter):
        tab = reduced_resolution(f, g, 4, dim_cut=7)
    assert counter.total == 1
    assert list(tab.columns) == ["metric", "band", "value", "higher_is_better", "ideal"]
    assert list(tab.metric) == ["Q2n", "SAM", "ERGAS"] and (tab.band == "all").all()
    expected = reduced_resolution(fused, ref, 4, dim_cut=7)
    pd.testing.assert_frame_equal(tab, expected, rtol=1e-12)


@pytest.mark.parametrize("chunks", [(4, 37, 53), (1, 100, 90), (2, 64, 32), (4, 13, 90), (4, 100, 7)])
@pytest.mark.parametrize("compat", ["default", "toolbox"])
def test_chunked_equals_unchunked(chunks, compat):
    fused, ref = _pair(1, (3, 100, 90))   # 3 bands -> zero band padding; 100x90 -> mirror padding
    f, g = da.from_array(fused, chunks=chunks), da.from_array(ref, chunks=chunks)
    np.testing.assert_allclose(q2n(f, g, compat=compat).compute(), q2n(fused, ref, compat=compat), rtol=1e-12)
    np.testing.assert_allclose(sam(f, g).compute(), sam(fused, ref), rtol=1e-12)
    np.testing.assert_allclose(ergas(f, g, 4).compute(), ergas(fused, ref, 4), rtol=1e-12)
    # mixed numpy / dask inputs
    np.testing.assert_allclose(q2n(fused, g, compat=compat).compute(), q2n(fused, ref, compat=compat),
                               rtol=1e-12)


def test_q2n_block_aligned_chunks_are_not_rechunked():
    fused, ref = _pair(2, (4, 128, 96))
    f, g = da.from_array(fused, chunks=(4, 64, 32)), da.from_array(ref, chunks=(4, 64, 32))
    out = q2n(f, g)
    layers = out.__dask_graph__().layers
    assert not any(name.startswith("rechunk") for name in layers), list(layers)
    assert out.compute() == pytest.approx(q2n(fused, ref), rel=1e-12)


def test_q2n_mirror_padding_reaches_previous_block():
    # 33 rows -> 31 mirrored rows, more than the single row of the last partial block
    fused, ref = _pair(3, (4, 33, 40))
    f, g = da.from_array(fused, chunks=(4, 11, 13)), da.from_array(ref, chunks=(4, 11, 13))
    assert q2n(f, g).compute() == pytest.approx(q2n(fused, ref), rel=1e-12)


# --------------------------------------------------------------------------------------------------
# 4. properties
# --------------------------------------------------------------------------------------------------

_images = hnp.arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 40), st.integers(1, 40)),
                     elements=st.floats(1.0, 5000.0))


@settings(max_examples=60, deadline=None)
@given(_images, st.sampled_from(["default", "toolbox"]), st.sampled_from([4, 8, 32]))
def test_metric_of_image_with_itself_is_ideal(x, compat, block):
    assert q2n(x, x, block=block, compat=compat) == pytest.approx(metrics.get("Q2n").ideal, abs=1e-12)
    assert sam(x, x) == metrics.get("SAM").ideal
    assert ergas(x, x, 4) == metrics.get("ERGAS").ideal


@settings(max_examples=60, deadline=None)
@given(_images, st.data())
def test_sam_invariant_to_per_pixel_positive_scaling(x, data):
    ref = x[::-1].copy()
    scale = data.draw(hnp.arrays(np.float64, x.shape[1:], elements=st.floats(0.01, 100.0)))
    assert sam(x * scale, ref) == pytest.approx(sam(x, ref), rel=1e-9, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(_images)
def test_q2n_in_unit_interval(x):
    # |sigma_xy| <= sigma_x sigma_y holds for up to 8 components (norm-multiplicative algebras)
    rng = np.random.default_rng(0)
    y = x * rng.uniform(0.5, 1.5, size=x.shape)
    v = q2n(y, x, block=8)
    assert 0.0 <= v <= 1.0 + 1e-12


def test_sam_excludes_zero_pixels_and_degrees():
    ref = np.zeros((2, 1, 3))
    fused = np.zeros((2, 1, 3))
    ref[:, 0, 0], fused[:, 0, 0] = (1, 0), (0, 1)       # 90 degrees
    ref[:, 0, 1], fused[:, 0, 1] = (1, 1), (2, 2)       # 0 degrees
    ref[:, 0, 2] = (1, 0)                                # fused zero -> excluded
    assert sam(fused, ref) == pytest.approx(45.0, rel=1e-15)


def test_ergas_formula_small_case():
    ref = np.stack([np.full((2, 2), 10.0), np.full((2, 2), 20.0)])
    fused = ref + np.array([1.0, 2.0])[:, None, None]
    # per band MSE/mean^2 = 1/100 and 4/400 -> mean 0.01 -> 100/4 * 0.1
    assert ergas(fused, ref, 4) == pytest.approx(2.5, rel=1e-15)


def test_cayley_dickson_matches_complex_and_quaternions():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(2, 10)), rng.normal(size=(2, 10))
    z = (a[0] + 1j * a[1]) * (b[0] + 1j * b[1])
    np.testing.assert_allclose(cayley_dickson_mul(a, b), [z.real, z.imag], rtol=1e-13)
    # quaternion units: i j = k, j k = i, k i = j, i^2 = -1
    e = np.eye(4)
    np.testing.assert_allclose(cayley_dickson_mul(e[1], e[2]), e[3])
    np.testing.assert_allclose(cayley_dickson_mul(e[2], e[3]), e[1])
    np.testing.assert_allclose(cayley_dickson_mul(e[3], e[1]), e[2])
    np.testing.assert_allclose(cayley_dickson_mul(e[1], e[1]), -e[0])
    # norm-multiplicative up to octonions; x x* = |x|^2
    for n in (4, 8):
        x, y = rng.normal(size=(n, 6)), rng.normal(size=(n, 6))
        np.testing.assert_allclose(np.linalg.norm(cayley_dickson_mul(x, y), axis=0),
                                   np.linalg.norm(x, axis=0) * np.linalg.norm(y, axis=0), rtol=1e-12)
        xx = cayley_dickson_mul(x, cayley_dickson_conj(x))
        np.testing.assert_allclose(xx[0], (x * x).sum(0), rtol=1e-12)
        np.testing.assert_allclose(xx[1:], 0, atol=1e-12)


def test_q2n_single_band_is_uiqi_of_normalised_blocks():
    # With one band (1 component = the reals), Q2n is the mean over blocks of |UIQI| (Wang & Bovik
    # 2002, written here with np.cov) of the blocks after the (x - mu_ref)/sd_ref + 1 normalisation.
    rng = np.random.default_rng(7)
    g = rng.uniform(10, 100, size=(1, 64, 64))
    f = g + rng.normal(0, 5, size=g.shape)
    normed = []
    for i in range(0, 64, 32):
        for j in range(0, 64, 32):
            a, b = g[0, i:i + 32, j:j + 32].ravel(), f[0, i:i + 32, j:j + 32].ravel()
            mu, sd = a.mean(), a.std(ddof=1)
            a, b = (a - mu) / sd + 1, (b - mu) / sd + 1
            cov = np.cov(a, b)
            normed.append(abs(4 * cov[0, 1] * a.mean() * b.mean()
                              / ((cov[0, 0] + cov[1, 1]) * (a.mean() ** 2 + b.mean() ** 2))))
    assert q2n(f, g) == pytest.approx(np.mean(normed), rel=1e-12)


def test_toolbox_cast_rounds_half_away_and_clips():
    ref = np.full((1, 32, 32), 100.0)
    ref[0, ::2] = 200.0
    a = ref.copy()
    a[0, 0, 0] = 200.5          # -> 201 (half away from zero), numpy's round would give 200
    b = ref.copy()
    b[0, 0, 0] = 201.0
    assert q2n(a, ref, compat="toolbox") == q2n(b, ref, compat="toolbox")
    assert q2n(a, ref) != q2n(b, ref)
    neg = ref.copy()
    neg[0, 1, 1] = -50.0        # clipped to 0 in toolbox mode
    zero = ref.copy()
    zero[0, 1, 1] = 0.0
    assert q2n(neg, ref, compat="toolbox") == q2n(zero, ref, compat="toolbox")


# --------------------------------------------------------------------------------------------------
# API and errors
# --------------------------------------------------------------------------------------------------

def test_registry():
    assert {"Q2n", "SAM", "ERGAS"} <= set(metrics.METRICS)
    m = metrics.get("sam")
    assert m.name == "SAM" and not m.higher_is_better and m.ideal == 0 and m.needs_reference
    assert metrics.get("Q2n").higher_is_better and metrics.get("Q2n").ideal == 1
    with pytest.raises(ParameterError, match="ERGAS, .*Q2n, .*SAM"):   # sorted list of every metric
        metrics.get("Q4x")
    with pytest.raises(ValueError):   # ParameterError is a ValueError too
        reduced_resolution(np.ones((1, 4, 4)), np.ones((1, 4, 4)), 4, metrics=("PSNRX",))


def test_errors():
    x = np.ones((2, 8, 8))
    with pytest.raises(InputError, match="different shapes"):
        sam(x, np.ones((2, 8, 9)))
    with pytest.raises(InputError, match="3-d"):
        sam(x[0], x[0])
    with pytest.raises(ParameterError, match="compat"):
        q2n(x, x, compat="matlab")
    with pytest.raises(ParameterError, match="ratio"):
        ergas(x, x, 0)
    with pytest.raises(ParameterError, match="dim_cut"):
        cut_border(x, 5)
    with pytest.raises(ParameterError, match="dim_cut"):
        cut_border(x, -1)
    with pytest.raises(ParameterError, match="Overlapping"):
        q2n(da.from_array(x), x, block=4, shift=2)


def test_cut_border_semantics_and_xarray():
    x = np.arange(2 * 10 * 12).reshape(2, 10, 12)
    c = cut_border(x, 3)                       # MATLAB x(3:end-3, 3:end-3)
    np.testing.assert_array_equal(c, x[:, 2:7, 2:9])
    assert cut_border(x, 0) is x
    xa = xr.DataArray(x, dims=("band", "y", "x"), coords={"y": np.arange(10), "x": np.arange(12) * 2})
    cx = cut_border(xa, 3)
    np.testing.assert_array_equal(cx.values, c)
    assert list(cx.y.values) == list(range(2, 7))
    # DataArrays in any dim order work through the metrics
    assert sam(xa.transpose("y", "x", "band"), xa) == 0.0


def test_overlapping_blocks_numpy():
    fused, ref = _pair(4, (4, 64, 64))
    # shift == block gives the same as the default; shift < block averages more (overlapping) blocks
    assert q2n(fused, ref, 32, 32) == q2n(fused, ref)
    v = q2n(fused, ref, 32, 16)
    assert 0 < v < 1 and v != q2n(fused, ref)


@pytest.mark.slow
def test_q2n_timing_1024_dask():
    rng = np.random.default_rng(0)
    ref = da.from_array(rng.uniform(100, 2000, size=(4, 1024, 1024)), chunks=(4, 256, 256))
    fused = ref * 1.01 + 3
    t = time.perf_counter()
    v = q2n(fused, ref, compat="toolbox").compute()
    elapsed = time.perf_counter() - t
    print(f"q2n 4x1024x1024 dask (256^2 chunks): {elapsed:.3f} s")
    assert 0.9 < v <= 1.0
