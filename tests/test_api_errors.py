"""Bad inputs to ``geofuse.pansharpen`` raise GeofuseError subclasses with expected / got / fix messages.

Every error is also catchable as the builtin a caller would expect (``ValueError`` for bad values and
grids, ``KeyError`` for unknown names), and the grid errors name both transforms.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from affine import Affine
from numpy.testing import assert_array_equal

from geofuse import registry
from geofuse.api import pansharpen
from geofuse.errors import (
    BandCountError,
    GeofuseError,
    GridMismatchError,
    InputError,
    ParameterError,
    UnknownMethodError,
)
from geofuse.grid import PartialOverlapWarning
from geofuse.raster import make_raster
from geofuse.sensors import GenericSensorWarning

from .conftest import PAN_TRANSFORM, UTM, synthetic_pair

PAN_T_STR = "Affine(0.5, 0.0, 500000.0, 0.0, -0.5, 4000000.0)"


@pytest.fixture(scope="module")
def pair():
    """MS 9 x 11 (2 m), PAN 36 x 44 (0.5 m), corner aligned, numpy-backed."""
    return synthetic_pair((9, 11), 4, dtype=np.uint16, seed=2, chunks=None)


def ms_on(ms: xr.DataArray, transform: Affine, crs=UTM) -> xr.DataArray:
    return make_raster(ms.values, transform, crs, band=ms["band"].values)


def check_message(err: BaseException, *needles: str) -> str:
    msg = str(err)
    for word in ("Expected:", "Got:", "Fix:", *needles):
        assert word in msg, f"{word!r} not in: {msg}"
    return msg


def fuse_quiet(ms, pan, method="gsa", **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GenericSensorWarning)
        return pansharpen(ms, pan, method, **kw)


# --------------------------------------------------------------------------------------------------
# grids


def test_mismatched_crs(pair):
    ms, pan = pair
    with pytest.raises(GridMismatchError) as err:
        fuse_quiet(ms.rio.write_crs("EPSG:32632"), pan)
    msg = check_message(err.value, "different CRS", "EPSG:32633", "EPSG:32632", PAN_T_STR,
                        "Affine(2.0, 0.0, 500000.0, 0.0, -2.0, 4000000.0)")
    assert "reproject" in msg
    assert isinstance(err.value, ValueError) and isinstance(err.value, GeofuseError)


def test_non_integer_scale(pair):
    ms, pan = pair
    with pytest.raises(GridMismatchError) as err:
        fuse_quiet(ms_on(ms, Affine(1.25, 0, 500000, 0, -1.25, 4e6)), pan)
    check_message(err.value, "integer ratio", "2.5", PAN_T_STR, "Affine(1.25,", "gdalwarp")


def test_swapped_inputs(pair):
    ms, _ = pair
    hr_like = make_raster(np.repeat(np.repeat(ms.values, 4, 1), 4, 2)[:1], PAN_TRANSFORM, UTM)
    with pytest.raises(GridMismatchError) as err:
        fuse_quiet(hr_like, ms.isel(band=[0]))
    check_message(err.value, "swapped inputs?")


@pytest.mark.parametrize("which", ["pan", "ms"])
def test_rotated_or_skewed(pair, which):
    ms, pan = pair
    if which == "pan":
        pan = make_raster(pan.values, Affine(0.5, 0.1, 500000, 0.0, -0.5, 4e6), UTM)
        needle = "HR transform is rotated or skewed (b=0.1"
    else:
        ms = ms_on(ms, Affine(2.0, 0.0, 500000, 0.3, -2.0, 4e6))
        needle = "LR transform is rotated or skewed (b=0.0, d=0.3)"
    with pytest.raises(GridMismatchError) as err:
        fuse_quiet(ms, pan)
    check_message(err.value, needle, "north-up")


def test_subpixel_misalignment(pair):
    ms, pan = pair
    shifted = Affine(2.0, 0, 500000 + 0.3 * 0.5, 0, -2.0, 4e6)  # 0.3 PAN pixel to the east
    with pytest.raises(GridMismatchError) as err:
        fuse_quiet(ms_on(ms, shifted), pan)
    msg = check_message(err.value, "shifted by a fraction of an HR pixel on the x axis", "x = 0.3",
                        PAN_T_STR, "Affine(2.0, 0.0, 500000.15")
    assert "0.30000" in msg or "x = 0.3 " in msg


def test_no_overlap(pair):
    ms, pan = pair
    with pytest.raises(GridMismatchError) as err:
        fuse_quiet(ms_on(ms, Affine(2.0, 0, 600000, 0, -2.0, 4e6)), pan)
    check_message(err.value, "do not overlap", "HR bounds", "LR bounds", PAN_T_STR)


def test_georeferenced_and_not(pair):
    ms, pan = pair
    bare = xr.DataArray(ms.values, dims=("band", "y", "x"))
    with pytest.raises(GridMismatchError) as err:
        fuse_quiet(bare, pan)
    check_message(err.value, "HR raster is georeferenced but the LR raster is not", "write_transform")


def test_partial_overlap_gives_the_intersection(pair):
    ms, pan = pair
    # MS shifted 2 LR pixels east and 1 LR pixel south of the PAN origin: only part of it lies on the PAN
    t = Affine(2.0, 0, 500000 + 2 * 2.0, 0, -2.0, 4e6 - 1 * 2.0)
    ms_shift = ms_on(ms, t)
    with pytest.warns(PartialOverlapWarning, match="only partly overlap") as rec:
        out = fuse_quiet(ms_shift, pan, "gsa", chunks=4096)
    assert "output extent" in str(rec[0].message)
    # HR rows 4..36 (LR rows 0..8), HR cols 8..44 (LR cols 0..9)
    assert out.shape == (4, 32, 36)
    assert out.rio.transform() == Affine(0.5, 0, 500004.0, 0, -0.5, 3999998.0)
    assert out.rio.transform() == PAN_TRANSFORM @ Affine.translation(8, 4)
    assert_array_equal(out["x"].values, pan["x"].values[8:44])
    assert_array_equal(out["y"].values, pan["y"].values[4:36])
    # the same as fusing the intersection cut out by hand (statistics over the intersection only)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PartialOverlapWarning)
        ref = fuse_quiet(ms_shift.isel(y=slice(0, 8), x=slice(0, 9)), pan.isel(y=slice(4, 36), x=slice(8, 44)),
                         "gsa", chunks=4096)
    assert ref.rio.transform() == out.rio.transform()
    assert_array_equal(out.values, ref.values)


# --------------------------------------------------------------------------------------------------
# bands, arrays


def test_band_count_for_sensor(pair):
    ms, pan = pair
    ms5 = make_raster(np.concatenate([ms.values, ms.values[:1]]), ms.rio.transform(), UTM)
    for method in ("gsa", "mtf_glp_hpm"):
        with pytest.raises(BandCountError) as err:
            pansharpen(ms5, pan, method, sensor="IKONOS")
        check_message(err.value, "'IKONOS'", "4 bands", "Got: 5 bands", "custom")
        assert isinstance(err.value, ValueError)


def test_two_band_pan(pair):
    ms, pan = pair
    pan2 = make_raster(np.concatenate([pan.values, pan.values]), PAN_TRANSFORM, UTM)
    with pytest.raises(BandCountError) as err:
        fuse_quiet(ms, pan2)
    check_message(err.value, "exactly one band", "Got: 2 bands", "isel(band=[0])")


def test_empty_array(pair):
    ms, pan = pair
    with pytest.raises(InputError) as err:
        fuse_quiet(ms.isel(x=slice(0, 0)), pan)
    check_message(err.value, "empty", "(4, 9, 0)")
    with pytest.raises(InputError):
        fuse_quiet(ms, pan.isel(band=slice(0, 0)))


def test_two_d_array(pair):
    ms, pan = pair
    with pytest.raises(InputError) as err:
        fuse_quiet(ms, pan.isel(band=0))
    check_message(err.value, "'pan' has no band dimension", "('y', 'x')", "expand_dims('band')")
    assert isinstance(err.value, ValueError)


def test_not_a_dataarray(pair):
    ms, pan = pair
    with pytest.raises(InputError) as err:
        fuse_quiet(ms.values, pan)
    check_message(err.value, "ndarray", "xarray.DataArray")


# --------------------------------------------------------------------------------------------------
# names and parameters


def test_unknown_method_lists_available(pair):
    ms, pan = pair
    with pytest.raises(UnknownMethodError) as err:
        pansharpen(ms, pan, "gsaa")
    msg = check_message(err.value, "Unknown fusion method 'gsaa'", "did you mean 'gsa'")
    for spec in registry.available():
        assert spec.name in msg
    assert isinstance(err.value, KeyError) and isinstance(err.value, GeofuseError)
    assert str(err.value) == msg and not msg.startswith('"')  # readable, not KeyError's repr
    with pytest.raises(KeyError):
        pansharpen(ms, pan, "no_such_method")


def test_method_names_are_normalised(pair):
    ms, pan = pair
    out = fuse_quiet(ms, pan, "MTF-GLP-HPM")
    assert out.attrs["geofuse_method"] == "mtf_glp_hpm"


def test_unknown_parameter(pair):
    ms, pan = pair
    with pytest.raises(ParameterError) as err:
        fuse_quiet(ms, pan, "gsa", beta=2)
    check_message(err.value, "no parameter 'beta'", "geofuse methods gsa")
    with pytest.raises(ValueError):
        fuse_quiet(ms, pan, "exp", params={"gamma": 1})


@pytest.mark.parametrize("kw, needle", [
    ({"compat": "matlab"}, "Unknown compat mode"),
    ({"interpolation": "nearest"}, "Unknown interpolation"),
    ({"chunks": 0}, "Chunk size must be positive"),
    ({"nodata": -1}, "nodata value does not fit the output dtype"),
    ({"nodata": 0.5}, "nodata value does not fit the output dtype"),
])
def test_bad_options(pair, kw, needle):
    ms, pan = pair
    with pytest.raises(ParameterError) as err:
        fuse_quiet(ms, pan, "gsa", **kw)
    check_message(err.value, needle)


# --------------------------------------------------------------------------------------------------
# sensors


@pytest.mark.parametrize("sensor", ["Pleiades", None])
def test_unknown_sensor_warns(pair, sensor):
    ms, pan = pair
    with pytest.warns(GenericSensorWarning) as rec:
        out = pansharpen(ms, pan, "mtf_glp_hpm", sensor=sensor)
    msg = str(rec[0].message)
    assert repr(sensor) in msg and "Set sensor=" in msg and "IKONOS" in msg and "custom" in msg
    assert out.attrs["geofuse_sensor"] == "none"


def test_preset_sensor_does_not_warn(pair):
    ms, pan = pair
    with warnings.catch_warnings():
        warnings.simplefilter("error", GenericSensorWarning)
        pansharpen(ms, pan, "mtf_glp_hpm", sensor="ikonos")
        pansharpen(ms, pan, "gsa")  # GSA does not use the MTF: no sensor needed
