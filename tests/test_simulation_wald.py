"""Tests of the real-pair loader (simulation/realdata.py), the Wald dataset builder (simulation/wald.py)
and the ``python -m simulation wald`` / ``real`` subcommands.

The real pairs live in ``../shared/data/pansharpening`` (never in the repository; non-commercial
licence, see PROVENANCE.txt there); tests needing them are marked ``shared`` and skip when it is absent.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from affine import Affine

import geofuse
from geofuse.errors import RasterIOError
from geofuse.grid import fit_grids
from simulation.__main__ import main
from simulation.realdata import PIXEL_CRS, load_pair
from simulation.scene import make_scene
from simulation.wald import FILES, build_wald_dataset, read_wald_dataset

from .conftest import shared_path

PAIRS = "data", "pansharpening"


def _metrics(fused, reference, dim_cut=21) -> dict[str, float]:
    table = geofuse.evaluate(fused, reference, ratio=4, compat="toolbox", dim_cut=dim_cut)
    return dict(zip(table["metric"], table["value"].astype(float)))


# --------------------------------------------------------------------------------------------------
# real pairs


@pytest.mark.shared
@pytest.mark.parametrize("name, hr, nb, dtype, bits, bands0", [
    ("IKONOS", 1280, 4, np.uint16, 11, "blue"),
    ("GeoEye1", 1280, 4, np.uint8, 8, "blue"),
    ("WV2", 1280, 8, np.uint16, 11, "coastal"),
    ("WV3", 128, 8, np.uint16, 11, "coastal"),
])
def test_load_pair_shapes_dtypes_bands(name, hr, nb, dtype, bits, bands0):
    import scipy.io

    path = shared_path(*PAIRS, {"IKONOS": "IKONOS_imgIK.mat", "GeoEye1": "GeoEye1_imgGE1.mat",
                                "WV2": "WV2_imgWV2.mat", "WV3": "WV3_example_ZPNN.mat"}[name])
    ms, pan, meta = load_pair(name)
    lr = hr // 4
    assert pan.dims == ms.dims == ("band", "y", "x")
    assert pan.shape == (1, hr, hr) and ms.shape == (nb, lr, lr)
    assert pan.dtype == dtype and ms.dtype == dtype
    assert list(pan["band"].values) == ["pan"] and str(ms["band"].values[0]) == bands0
    assert len(set(map(str, ms["band"].values))) == nb
    assert meta["sensor"] == name and meta["ratio"] == 4 and meta["bits"] == bits
    assert meta["provenance"] == str(path.resolve())
    # the values are the file's, untouched
    d = scipy.io.loadmat(str(path))
    np.testing.assert_array_equal(pan.values[0], d["I_PAN"])
    np.testing.assert_array_equal(ms.values, np.moveaxis(d["I_MS" if "I_MS" in d else "I_MS_LR"], 2, 0))
    # documented synthetic pixel-space georeferencing: 1 m PAN pixels from (0, rows), corner-aligned MS
    assert pan.rio.crs == PIXEL_CRS == ms.rio.crs
    assert pan.rio.transform().almost_equals(Affine(1, 0, 0, 0, -1, hr))
    assert ms.rio.transform().almost_equals(Affine(4, 0, 0, 0, -4, hr))
    assert fit_grids(pan, ms).phase == (1.5, 1.5)


@pytest.mark.shared
def test_load_pair_ikonos_documented_values():
    shared_path(*PAIRS, "IKONOS_imgIK.mat")
    ms, pan, meta = load_pair("ikonos")  # case-insensitive name
    assert pan.shape == (1, 1280, 1280) and pan.dtype == np.uint16
    assert ms.shape == (4, 320, 320) and ms.dtype == np.uint16
    assert [str(b) for b in ms["band"].values] == ["blue", "green", "red", "nir"]
    assert (int(pan.min()), int(pan.max())) == (8, 2040)  # PROVENANCE.txt: I_PAN [8..2040]
    assert (int(ms.min()), int(ms.max())) == (168, 2040)  # I_MS [168..2040]
    assert meta["rgb_indexes"] == [2, 1, 0]


def test_load_pair_missing_data_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOFUSE_PANSHARPENING_DATA", str(tmp_path))
    with pytest.raises(RasterIOError, match="GEOFUSE_PANSHARPENING_DATA") as err:
        load_pair("IKONOS")
    assert "IKONOS_imgIK.mat" in str(err.value)
    with pytest.raises(RasterIOError, match="neither a known pair name"):
        load_pair("no-such-pair")


# --------------------------------------------------------------------------------------------------
# Wald datasets


def _check_dataset(paths, ms, ratio=4):
    assert set(paths) == set(FILES) and all(p.exists() for p in paths.values())
    ms_lr, pan_lr, ref, info = read_wald_dataset(paths["ms_lr"].parent)
    # the reference is the original MS, bit for bit and in its dtype
    assert ref.dtype == ms.dtype
    np.testing.assert_array_equal(ref.values, ms.values)
    assert [str(b) for b in ref["band"].values] == [str(b) for b in ms["band"].values]
    assert ms_lr.shape == (ms.sizes["band"], ms.sizes["y"] // ratio, ms.sizes["x"] // ratio)
    assert pan_lr.shape == (1, ms.sizes["y"], ms.sizes["x"])
    assert ms_lr.dtype == pan_lr.dtype == np.float32
    # georeferencing kept: the fused product lands on the reference grid at the toolbox phase
    assert ref.rio.crs == ms.rio.crs == pan_lr.rio.crs == ms_lr.rio.crs
    assert ref.rio.transform().almost_equals(ms.rio.transform())
    assert pan_lr.rio.transform().almost_equals(ref.rio.transform())
    fused = geofuse.pansharpen(ms_lr, pan_lr, method="exp", sensor=info["sensor"])
    assert fused.attrs["geofuse_phase"] == "[2.0, 2.0]"
    assert fused.shape == ref.shape
    assert info["ratio"] == ratio and info["phase"] == [2.0, 2.0]
    assert info["pan_lr_shift_ignored"] == [0.0, 0.0]
    assert "Wald" in info["protocol"] and info["provenance"]
    return ms_lr, pan_lr, ref, info


def test_wald_dataset_of_the_synthetic_scene(tmp_path):
    scene = make_scene(256, seed=0)
    paths = build_wald_dataset(scene.ms, scene.pan, tmp_path / "w")
    ms_lr, pan_lr, ref, info = _check_dataset(paths, scene.ms)
    assert info["sensor"] == "IKONOS" and info["bits"] == 11
    assert info["band_names"] == ["blue", "green", "red", "nir"]
    assert ms_lr.rio.crs.to_epsg() == 32633
    # the degraded MS is the MTF-filtered, decimated MS: its mean is the MS mean to within a few DN
    assert abs(float(ms_lr.mean()) - float(scene.ms.mean())) < 5.0
    # existing products are refused unless overwrite=True
    with pytest.raises(RasterIOError, match="already exists"):
        build_wald_dataset(scene.ms, scene.pan, tmp_path / "w")
    build_wald_dataset(scene.ms, scene.pan, tmp_path / "w", overwrite=True)


def test_wald_dataset_of_pixel_space_inputs_and_mtf_pan(tmp_path):
    scene = make_scene(128, seed=1)
    ms = scene.ms.drop_vars(["x", "y", "spatial_ref"])
    pan = scene.pan.drop_vars(["x", "y", "spatial_ref"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no grid-shift warning here
        paths = build_wald_dataset(ms, pan, tmp_path / "corner", ratio=4)
    info = json.loads(paths["dataset"].read_text())
    assert info["phase"] == [2.0, 2.0] and info["pan_lr_shift_ignored"] == [0.0, 0.0]
    # geofuse samples the PAN-MTF-filtered PAN at the block centre (not the toolbox v1.3's sample 2,
    # half a PAN pixel off), so the degraded PAN stays on the MS grid: no shift to ignore, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        paths = build_wald_dataset(scene.ms, scene.pan, tmp_path / "mtf", pan_filter="mtf")
    ms_lr, pan_lr, ref, info = read_wald_dataset(tmp_path / "mtf")
    assert info["pan_lr_shift_ignored"] == [0.0, 0.0] and info["pan_filter"] == "mtf"
    assert pan_lr.rio.transform().almost_equals(ref.rio.transform())
    assert geofuse.pansharpen(ms_lr, pan_lr, method="exp").attrs["geofuse_phase"] == "[2.0, 2.0]"


@pytest.mark.shared
def test_wald_dataset_of_ikonos(tmp_path):
    shared_path(*PAIRS, "IKONOS_imgIK.mat")
    ms, pan, meta = load_pair("IKONOS")
    paths = build_wald_dataset(ms, pan, tmp_path / "ik", meta=meta)
    ms_lr, pan_lr, ref, info = _check_dataset(paths, ms)
    assert ms_lr.shape == (4, 80, 80) and pan_lr.shape == (1, 320, 320)
    assert info["sensor"] == "IKONOS" and info["bits"] == 11
    assert info["provenance"].endswith("IKONOS_imgIK.mat")
    # Loose plausibility check against the toolbox. Provenance of the numbers: IKONOS_metrics.csv
    # in ../shared/reference/pansharpening holds the reference MATLAB toolbox's RR values (Octave 7.3,
    # README there), but computed on the top-left 256x256 MS crop of this scene (PAN 1024), while this
    # dataset uses the whole 320x320 MS: only the ballpark is comparable (toolbox GSA: Q2n 0.875,
    # SAM 3.31, ERGAS 2.16; MTF-GLP-HPM: 0.873, 3.23, 2.25). The exact comparison on the same crop is
    # test_wald_dataset_reproduces_the_toolbox_on_its_crop.
    csv = pd.read_csv(shared_path("reference", "pansharpening", "IKONOS_metrics.csv"))
    rr = csv[csv.stage == "RR"].set_index("method")
    for method, tb in (("gsa", "GSA"), ("mtf_glp_hpm", "MTF-GLP-HPM")):
        m = _metrics(geofuse.pansharpen(ms_lr, pan_lr, method=method, sensor="IKONOS"), ref)
        assert m["Q2n"] > 0.75 and m["SAM"] < 5.0 and m["ERGAS"] < 4.0, (method, m)
        assert abs(m["Q2n"] - rr.loc[tb, "Q2n"]) < 0.05 and abs(m["ERGAS"] - rr.loc[tb, "ERGAS"]) < 0.5


@pytest.mark.shared
def test_wald_dataset_reproduces_the_toolbox_on_its_crop(tmp_path):
    """On the toolbox's own crop (PAN 1024, MS 256; ../shared/reference/pansharpening/README.md) the
    dataset is the toolbox's I_MS_LR / I_PAN / I_GT and the RR metrics are those of IKONOS_metrics.csv."""
    ref_npz = np.load(shared_path("reference", "pansharpening", "IKONOS_RR_outputs.npz"))
    csv = pd.read_csv(shared_path("reference", "pansharpening", "IKONOS_metrics.csv"))
    rr = csv[csv.stage == "RR"].set_index("method")
    ms, pan, meta = load_pair("IKONOS")
    ms, pan = ms.isel(y=slice(0, 256), x=slice(0, 256)), pan.isel(y=slice(0, 1024), x=slice(0, 1024))
    build_wald_dataset(ms, pan, tmp_path / "crop", meta=meta)
    ms_lr, pan_lr, gt, _ = read_wald_dataset(tmp_path / "crop")
    np.testing.assert_array_equal(np.moveaxis(gt.values, 0, -1), ref_npz["I_GT"])
    np.testing.assert_allclose(np.moveaxis(ms_lr.values, 0, -1), ref_npz["I_MS_LR"], rtol=0, atol=5e-3)
    np.testing.assert_allclose(pan_lr.values[0], ref_npz["I_PAN"], rtol=0, atol=5e-3)
    for method, tb in (("exp", "EXP"), ("gsa", "GSA"), ("mtf_glp_hpm", "MTF-GLP-HPM")):
        m = _metrics(geofuse.pansharpen(ms_lr, pan_lr, method=method, sensor="IKONOS", compat="toolbox"), gt)
        assert m["Q2n"] == pytest.approx(rr.loc[tb, "Q2n"], abs=1e-3), (method, m)
        assert m["SAM"] == pytest.approx(rr.loc[tb, "SAM_deg"], abs=1e-3), (method, m)
        assert m["ERGAS"] == pytest.approx(rr.loc[tb, "ERGAS"], abs=1e-3), (method, m)


# --------------------------------------------------------------------------------------------------
# CLI


def test_cli_wald_synthetic(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["wald", "--source", "synthetic", "--size", "256", "--seed", "0", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(out / FILES[k]) for k in ("ms_lr", "pan_lr", "reference", "dataset")]
    ms_lr, pan_lr, ref, info = read_wald_dataset(out)
    assert ref.shape == (4, 64, 64) and ms_lr.shape == (4, 16, 16) and pan_lr.shape == (1, 64, 64)
    assert "make_scene(size=256, seed=0" in info["provenance"]
    np.testing.assert_array_equal(ref.values, make_scene(256, seed=0).ms.values)
    # existing output: one-line error, exit status 1
    assert main(["wald", "--source", "synthetic", "--size", "256", "--out", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err


def test_cli_wald_missing_pair(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GEOFUSE_PANSHARPENING_DATA", str(tmp_path))
    assert main(["wald", "--source", "IKONOS", "--out", str(tmp_path / "o")]) == 1
    assert "not found" in capsys.readouterr().err


@pytest.mark.shared
def test_cli_real_then_wald_from_geotiffs(tmp_path, capsys):
    shared_path(*PAIRS, "GeoEye1_imgGE1.mat")
    assert main(["real", "--name", "GeoEye1", "--out", str(tmp_path / "ge")]) == 0
    capsys.readouterr()
    ms = geofuse.open_raster(tmp_path / "ge" / "ms.tif")
    assert ms.dtype == np.uint8 and ms.rio.crs == PIXEL_CRS
    ge = tmp_path / "ge"
    assert main(["wald", "--source", str(ge / "ms.tif"), "--pan", str(ge / "pan.tif"),
                 "--sensor", "GeoEye1", "--out", str(tmp_path / "w")]) == 0
    _, _, ref, info = read_wald_dataset(tmp_path / "w")
    assert info["sensor"] == "GeoEye1" and info["phase"] == [2.0, 2.0] and ref.dtype == np.uint8
    np.testing.assert_array_equal(ref.values, ms.values)
