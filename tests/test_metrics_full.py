"""Full-resolution indexes D_lambda, D_s, QNR, D_lambda_K, HQNR: toolbox faithfulness, laziness, chunking,
compat modes and errors.

Provenance of the reference values: the FR rows of ``../shared/reference/pansharpening/IKONOS_metrics.csv``,
computed by the reference MATLAB toolbox (2021: ``indexes_evaluation_FS.m`` -> ``QNR.m``, ``D_lambda.m``,
``D_s.m``, ``HQNR.m``, ``D_lambda_K.m``, ``q2n.m``; run under GNU Octave 7.3) on the top-left crop of
``../shared/data/pansharpening/IKONOS_imgIK.mat`` (PAN 1024 x 1024, MS 256 x 256 x 4, sensor IKONOS,
ratio 4; see the README.md beside the CSV).

The toolbox's *full-resolution fused images are not stored* in ``../shared/reference`` (only the
reduced-resolution ones are, in ``IKONOS_RR_outputs.npz``). The FR inputs are rebuilt from the .mat crop:
* EXP (the interpolated MS) depends only on interp23tap, so its row checks the metrics directly;
* the other rows use fused images regenerated with geofuse's toolbox-compatible methods, which match the
  toolbox's own outputs to ~1e-7 relative RMSE (tests/test_methods_*.py); agreement here therefore checks
  the metric chain end to end.
"""

from __future__ import annotations

import csv
import warnings

import dask
import dask.array as da
import numpy as np
import pytest
import torch
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import geofuse
from geofuse.errors import GeofuseError, InputError, ParameterError
from geofuse.kernels.resample import upsample
from geofuse.metrics import METRICS
from geofuse.metrics.full import FULL, d_lambda, full_resolution, mtf_fft
from geofuse.metrics.evaluate import full_resolution_table

from .conftest import shared_path, synthetic_scene

RTOL_REF = 1e-4
_COLS = {"D_lambda": "D_lambda", "D_s": "D_s", "QNR": "QNR", "D_lambda_K": "D_lambda_K", "HQNR": "HQNR"}


@pytest.fixture(scope="module")
def ikonos_fr():
    path = shared_path("data", "pansharpening", "IKONOS_imgIK.mat")
    rows_path = shared_path("reference", "pansharpening", "IKONOS_metrics.csv")
    from simulation.realdata import load_pair

    ms, pan, _ = load_pair(path)
    ms = ms.values[:, :256, :256].astype(np.float64)
    pan = pan.values[:, :1024, :1024].astype(np.float64)
    with open(rows_path, newline="") as fh:
        rows = {r["method"]: r for r in csv.DictReader(fh) if r["stage"] == "FR"}
    return ms, pan, rows


def _check_row(values: dict, row: dict, label: str) -> float:
    worst = 0.0
    for name, col in _COLS.items():
        want = float(row[col])
        err = abs(values[name] - want) / max(abs(want), 1e-6)   # EXP: D_lambda is exactly 0
        worst = max(worst, err)
        assert err < RTOL_REF, (label, name, values[name], want)
    return worst


@pytest.mark.shared
def test_exp_row_matches_toolbox(ikonos_fr):
    ms, pan, rows = ikonos_fr
    exp = upsample(torch.from_numpy(ms), 4, 2.0, "interp23tap", "circular").numpy()   # toolbox interp23tap
    got = full_resolution(exp, ms, pan, sensor="IKONOS", compat="toolbox")
    assert got["D_lambda"] == 0.0                  # the fused image is the interpolated MS itself
    assert _check_row(got, rows["EXP"], "EXP") < 1e-5
    # the toolbox's own I_MS passed in gives the same
    got2 = full_resolution(exp, ms, pan, sensor="IKONOS", compat="toolbox", ms_exp=exp)
    assert got2 == pytest.approx(got, rel=1e-12)


@pytest.mark.shared
@pytest.mark.parametrize("method, row", [("gsa", "GSA"), ("mtf_glp", "MTF-GLP"), ("bdsd_pc", "BDSD-PC"),
                                         ("awlp", "AWLP")])
def test_method_rows_match_toolbox(ikonos_fr, method, row):
    ms, pan, rows = ikonos_fr
    msx = xr.DataArray(ms, dims=("band", "y", "x"), coords={"band": ["blue", "green", "red", "nir"]})
    panx = xr.DataArray(pan, dims=("band", "y", "x"))
    fused = geofuse.pansharpen(msx, panx, method, sensor="IKONOS", compat="toolbox", ratio=4, phase="toolbox")
    tab = geofuse.evaluate(fused, ms=msx, pan=panx, protocol="full", compat="toolbox", sensor="IKONOS")
    got = dict(zip(tab.metric, tab.value))
    # measured: <= 8e-6 relative for all five (the CSV has 6 decimals)
    assert _check_row(got, rows[row], row) < 2e-5


# --------------------------------------------------------------------------------------------------
# synthetic data
# --------------------------------------------------------------------------------------------------

def _fr_case(seed: int = 0, lr=(24, 40), ratio: int = 4):
    ms, pan = synthetic_scene(lr, ratio, bands=4, seed=seed, phase="corner")
    rng = np.random.default_rng(seed)
    ms_exp = upsample(torch.from_numpy(ms), ratio, (ratio - 1) / 2, "interp23tap", "symmetric").numpy()
    fused = ms_exp + 0.6 * (pan - pan.mean()) * rng.uniform(0.5, 1.0, size=(4, 1, 1)) + rng.normal(0, 3, ms_exp.shape)
    return fused, ms, pan


def test_mtf_fft_equals_direct_correlation():
    from geofuse.kernels.filters import correlate2d, mtf_kernels

    x = torch.from_numpy(np.random.default_rng(1).uniform(0, 2000, (3, 70, 53)))
    k = mtf_kernels([0.26, 0.28, 0.29], 4)
    np.testing.assert_allclose(mtf_fft(x, k).numpy(), correlate2d(x, k, "replicate").numpy(), rtol=1e-10, atol=1e-9)


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 1000), st.sampled_from([32, 64, 96]), st.integers(8, 60), st.sampled_from(["default", "toolbox"]))
def test_chunked_equals_unchunked(seed, tile, chunk, compat):
    fused, ms, pan = _fr_case(seed % 3)
    whole = full_resolution(fused, ms, pan, sensor="IKONOS", compat=compat, work="float64")
    lazy = full_resolution(da.from_array(fused, chunks=(2, chunk, chunk + 7)),
                           da.from_array(ms, chunks=(4, max(1, chunk // 4), chunk // 3 + 1)),
                           da.from_array(pan, chunks=(1, chunk + 3, chunk)),
                           sensor="IKONOS", compat=compat, work="float64", chunks=tile)
    got = dask.compute(lazy)[0]
    for k in FULL:
        assert float(got[k]) == pytest.approx(whole[k], rel=1e-9, abs=1e-12), k



@pytest.mark.parametrize("work", ["float64", "float32"])
def test_super_windows_equal_one_graph(work):
    # Tiny super-windows (one tile each: tiles are at least as large as the halos, so 2 x 3 windows on
    # 160 x 224), input chunks that match
    # neither the tiles nor the windows: every tile must see the same pixels (halos included) as in the
    # one-graph evaluation, which the toolbox rows above check; only the order of the float64 block sums
    # differs. Each window is one task of the lazy graph that computes the window's own graph.
    fused, ms, pan = _fr_case(1, lr=(40, 56))
    kw = dict(sensor="IKONOS", work=work, chunks=32, per_band=True, p=2.0, q=1.5, alpha=0.7, beta=1.3)
    one = full_resolution(fused, ms, pan, window=None, **kw)
    calls = []

    def counting(dsk, keys, **k):
        calls.append(1)
        return dask.get(dsk, keys, **k)

    lazy_in = (da.from_array(fused, chunks=(4, 37, 51)), da.from_array(ms, chunks=(3, 9, 11)),
               da.from_array(pan, chunks=(1, 45, 29)))
    with dask.config.set(scheduler=counting):
        lazy = full_resolution(*lazy_in, window=1, **kw)
        assert not calls and all(isinstance(v, da.Array) for v in lazy.values())
        got = dict(zip(lazy, dask.compute(*lazy.values())))
    assert len(calls) == 1                            # one compute for all; windows run synchronously inside
    keys = [str(k) for k in dict(lazy["HQNR"].__dask_graph__())]
    assert sum(k.startswith("geofuse-fr-window-") for k in keys) == 6
    eager = full_resolution(fused, ms, pan, window=1, **kw)
    for k in FULL:
        np.testing.assert_allclose(np.asarray(got[k]), np.asarray(one[k]), rtol=1e-12, atol=0, err_msg=k)
        np.testing.assert_allclose(np.asarray(eager[k]), np.asarray(one[k]), rtol=1e-12, atol=0, err_msg=k)
    # the toolbox mode's circular borders need the whole image: window is ignored there
    tb = full_resolution(fused, ms, pan, sensor="IKONOS", compat="toolbox", window=1)
    tb1 = full_resolution(fused, ms, pan, sensor="IKONOS", compat="toolbox", window=None)
    assert tb == tb1

def test_lazy_and_one_compute_through_evaluate():
    fused, ms, pan = _fr_case(4)
    f = xr.DataArray(da.from_array(fused, chunks=(4, 40, 50)), dims=("band", "y", "x"))
    m = xr.DataArray(da.from_array(ms, chunks=(4, 10, 13)), dims=("band", "y", "x"))
    p = xr.DataArray(da.from_array(pan, chunks=(1, 40, 50)), dims=("band", "y", "x"))
    calls = []

    def counting(dsk, keys, **kw):
        calls.append(1)
        return dask.get(dsk, keys, **kw)

    with dask.config.set(scheduler=counting):
        lazy = full_resolution(f, m, p, sensor="IKONOS", chunks=64)
        assert not calls and all(isinstance(v, da.Array) for v in lazy.values())
        tab = geofuse.evaluate(f, ms=m, pan=p, protocol="full", sensor="IKONOS", chunks=64)
    assert len(calls) == 1
    assert list(dict.fromkeys(tab.metric)) == list(FULL)
    assert list(tab.loc[tab.metric == "D_s", "band"]) == ["1", "2", "3", "4", "all"]
    whole = full_resolution(fused, ms, pan, sensor="IKONOS")
    got = tab[tab.band == "all"].set_index("metric")["value"]
    for k in FULL:
        assert got[k] == pytest.approx(whole[k], rel=1e-5), k


def test_exponents_and_identities():
    fused, ms, pan = _fr_case(5)
    v = full_resolution(fused, ms, pan, sensor="IKONOS", work="float64")
    assert v["QNR"] == pytest.approx((1 - v["D_lambda"]) * (1 - v["D_s"]), rel=1e-12)
    assert v["HQNR"] == pytest.approx((1 - v["D_lambda_K"]) * (1 - v["D_s"]), rel=1e-12)
    v2 = full_resolution(fused, ms, pan, sensor="IKONOS", work="float64", p=2, q=3, alpha=0.5, beta=2)
    # power means grow with the exponent; QNR uses the exponentiated terms; HQNR keeps q = 1
    assert v2["D_lambda"] >= v["D_lambda"] and v2["D_s"] >= v["D_s"]
    assert v2["QNR"] == pytest.approx((1 - v2["D_lambda"]) ** 0.5 * (1 - v2["D_s"]) ** 2, rel=1e-12)
    assert v2["HQNR"] == pytest.approx(v["HQNR"], rel=1e-12)
    # the interpolated MS itself has no spectral distortion
    ms_exp = upsample(torch.from_numpy(ms), 4, 1.5, "interp23tap", "symmetric").numpy()
    assert d_lambda(ms_exp, ms, pan, work="float64") == pytest.approx(0.0, abs=1e-12)
    for name in FULL:
        m = METRICS[name]
        assert not m.needs_reference and m.ideal == (1.0 if m.higher_is_better else 0.0)


def test_default_mode_works_on_reflectances_and_toolbox_mode_does_not():
    """Default: no uint16 cast, so [0, 1] reflectances give the values of the DN data (all five indexes
    are scale invariant). Toolbox: q2n's uint16 cast rounds reflectances to 0/1 and D_lambda_K breaks."""
    fused, ms, pan = _fr_case(6)
    s = 1.0 / 2047.0
    dn = full_resolution(fused, ms, pan, sensor="IKONOS", work="float64")
    refl = full_resolution(fused * s, ms * s, pan * s, sensor="IKONOS", work="float64")
    for k in FULL:
        assert refl[k] == pytest.approx(dn[k], rel=1e-9, abs=1e-12), k
    tb_dn = full_resolution(fused, ms, pan, sensor="IKONOS", compat="toolbox")
    tb_refl = full_resolution(fused * s, ms * s, pan * s, sensor="IKONOS", compat="toolbox")
    assert tb_refl["D_s"] == pytest.approx(tb_dn["D_s"], rel=1e-9)          # no cast in D_s
    assert abs(tb_refl["D_lambda_K"] - tb_dn["D_lambda_K"]) > 0.05          # the cast destroys [0, 1] data


def test_reduced_protocol_compat_on_reflectances():
    rng = np.random.default_rng(9)
    ref = np.round(rng.uniform(200, 1800, (4, 64, 64)))
    fused = ref + rng.normal(0, 20, ref.shape)
    s = 1e-4
    t_dn = geofuse.evaluate(fused, ref, ratio=4, metrics=["Q2n"], compat="toolbox", dim_cut=0).value[0]
    d_dn = geofuse.evaluate(fused, ref, ratio=4, metrics=["Q2n"], dim_cut=0).value[0]
    d_refl = geofuse.evaluate(fused * s, ref * s, ratio=4, metrics=["Q2n"]).value[0]
    t_refl = geofuse.evaluate(fused * s, ref * s, ratio=4, metrics=["Q2n"], compat="toolbox", dim_cut=0).value[0]
    assert d_refl == pytest.approx(d_dn, rel=1e-9)       # default: scale invariant
    assert abs(t_dn - d_dn) < 0.02                       # DN data: the cast only rounds
    # reflectances: the cast rounds every pixel to 0, and the toolbox reports a meaningless perfect score
    assert t_refl == 1.0 and d_refl < 1.0 - 1e-4
    # toolbox mode cuts the 21-pixel border by default
    a = geofuse.evaluate(fused, ref, ratio=4, metrics=["Q2n"], compat="toolbox").value[0]
    b = geofuse.evaluate(fused, ref, ratio=4, metrics=["Q2n"], compat="toolbox", dim_cut=21).value[0]
    assert a == b and a != t_dn


# --------------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------------

def _structured(err: GeofuseError) -> None:
    assert err.expected and err.got and err.fix


def test_errors():
    fused, ms, pan = _fr_case(7)
    with pytest.raises(ParameterError, match="needs the MS and the PAN") as e:
        geofuse.evaluate(fused, protocol="full", pan=pan)
    _structured(e.value)
    assert "no ms" in e.value.got
    with pytest.raises(ParameterError, match="needs a reference") as e:
        geofuse.evaluate(fused, ratio=4)
    _structured(e.value)
    with pytest.raises(InputError, match="differ in shape") as e:
        geofuse.evaluate(fused, fused[:, :-1], ratio=4)
    _structured(e.value)
    with pytest.raises(ParameterError, match="multiples of the block size") as e:
        full_resolution(fused[:, :-4, :], ms[:, :-1, :], pan[:, :-4, :], sensor="IKONOS")
    _structured(e.value)
    assert "crop" in e.value.fix
    with pytest.raises(InputError, match="does not match") as e:
        full_resolution(fused, ms[:, :-1], pan, ratio=4)
    _structured(e.value)
    with pytest.raises(InputError, match="PAN") as e:
        full_resolution(fused, ms, pan[:, :-1], sensor="IKONOS")
    _structured(e.value)
    with pytest.raises(ParameterError, match="not a full-resolution index") as e:
        full_resolution_table(fused, ms, pan, metrics=["SAM"])
    assert "reduced" in e.value.fix
    with pytest.raises(ParameterError, match="not a reduced-resolution index") as e:
        geofuse.evaluate(fused, fused, ratio=4, metrics=["HQNR"])
    assert "full" in e.value.fix
    with pytest.raises(ParameterError, match="protocol"):
        geofuse.evaluate(fused, fused, protocol="fr")
    with pytest.raises(ParameterError, match="takes no reference"):
        geofuse.evaluate(fused, fused, ms=ms, pan=pan, protocol="full")
    with pytest.raises(InputError, match="needs the MS and the PAN"):
        d_lambda(fused)


def test_generic_sensor_warns():
    fused, ms, pan = _fr_case(8)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        full_resolution(fused, ms, pan, metrics=["D_lambda_K"])
    assert any("sensor" in str(x.message) for x in w)


@pytest.mark.parametrize("phase, value", [("corner", 1.5), ("toolbox", 2.0)])
def test_evaluate_takes_the_phase_from_the_grids_or_the_fusion(phase, value):
    """Default mode interpolates the MS at the phase of the georeferenced grids (or the one the fusion
    recorded in its attrs), as geofuse.pansharpen did; the toolbox mode always uses ratio // 2."""
    from .conftest import synthetic_pair

    ms, pan = synthetic_pair((16, 24), 4, dtype=np.uint16, seed=2, phase=phase, chunks=None)
    fused = geofuse.pansharpen(ms, pan, "gsa", sensor="IKONOS")
    assert fused.attrs["geofuse_phase"] == f"[{value}, {value}]"
    f, m, p = (a.values.astype(np.float64) for a in (fused, ms, pan))
    want = full_resolution(f, m, p, sensor="IKONOS", phase=value, work="float64")
    other = full_resolution(f, m, p, sensor="IKONOS", phase=3.5 - value, work="float64")
    for src in (fused, fused.copy(data=fused.values)):      # with the attrs; then from the grids only
        if src is not fused:
            src.attrs.pop("geofuse_phase")
        tab = geofuse.evaluate(src, ms=ms, pan=pan, protocol="full", work="float64", per_band=False)
        got = dict(zip(tab.metric, tab.value))
        for k in FULL:
            assert got[k] == pytest.approx(want[k], rel=1e-9), (phase, k)
        assert got["D_lambda_K"] != pytest.approx(other["D_lambda_K"], rel=1e-6)
    tb = geofuse.evaluate(fused, ms=ms, pan=pan, protocol="full", compat="toolbox", per_band=False)
    tb_want = full_resolution(f, m, p, sensor="IKONOS", compat="toolbox")
    assert dict(zip(tb.metric, tb.value)) == pytest.approx(tb_want, rel=1e-12)
