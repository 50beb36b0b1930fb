"""Tests for geofuse.grid: fitting HR and LR grids from affine transforms."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine

from geofuse.errors import GeofuseError, GridMismatchError, ParameterError
from geofuse.grid import (
    AxisFit,
    GridPair,
    PartialOverlapWarning,
    fit_grids,
    is_georeferenced,
    lowres_transform,
)

UTM = "EPSG:32633"
HR_T = Affine(0.5, 0.0, 500000.0, 0.0, -0.5, 4_000_000.0)


def raster(shape, transform=None, crs=UTM, coords=True, bands=1):
    """A zero raster with dims (band, y, x), georeferenced the rioxarray way."""
    h, w = shape
    da = xr.DataArray(np.zeros((bands, h, w), np.float32), dims=("band", "y", "x"))
    if transform is None:
        return da
    if coords:
        xs = transform.c + transform.a * (np.arange(w) + 0.5)
        ys = transform.f + transform.e * (np.arange(h) + 0.5)
        da = da.assign_coords(x=xs, y=ys)
    da = da.rio.write_transform(transform)
    if crs is not None:
        da = da.rio.write_crs(crs)
    return da


def lr_of(hr_t, r, offset_px=(0.0, 0.0)):
    """LR transform with pixel size r * HR and origin shifted by offset_px (y, x) HR pixels."""
    oy, ox = offset_px
    return Affine(hr_t.a * r, 0.0, hr_t.c + ox * hr_t.a, 0.0, hr_t.e * r, hr_t.f + oy * hr_t.e)


def no_warn_fit(hr, lr, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error", PartialOverlapWarning)
        return fit_grids(hr, lr, **kw)


def assert_structured(err, *needles):
    msg = str(err)
    for word in ("Expected:", "Got:", "Fix:"):
        assert word in msg, msg
    for n in needles:
        assert n in msg, (n, msg)


def fmt(t):
    return f"Affine({t.a!r}, {t.b!r}, {t.c!r}, {t.d!r}, {t.e!r}, {t.f!r})"


# ---------------------------------------------------------------------------------------- phases


@pytest.mark.parametrize("coords", [True, False])
def test_corner_aligned_ratio4_phase_1_5(coords):
    hr = raster((64, 48), HR_T, coords=coords)
    lr = raster((16, 12), lr_of(HR_T, 4), coords=coords)
    g = no_warn_fit(hr, lr)
    assert g.ratio == 4
    assert g.phase == (1.5, 1.5)
    assert g.y == AxisFit(4, 0, 64, 0, 16, 1.5)
    assert g.x == AxisFit(4, 0, 48, 0, 12, 1.5)
    assert not g.partial
    assert g.hr_slices() == (slice(0, 64), slice(0, 48))
    assert g.lr_slices() == (slice(0, 16), slice(0, 12))
    assert g.out_transform() == HR_T
    assert g.hr_transform == HR_T and g.lr_transform == lr_of(HR_T, 4)
    assert g.crs == hr.rio.crs


def test_toolbox_centred_ratio4_phase_2():
    # toolbox: LR pixel k centred on HR pixel 4k+2 -> LR origin shifted by half an HR pixel
    hr = raster((64, 64), HR_T)
    lr = raster((16, 16), lr_of(HR_T, 4, (0.5, 0.5)))
    g = no_warn_fit(hr, lr)
    assert g.phase == (2.0, 2.0)
    assert (g.y.start, g.y.stop, g.y.lr_start, g.y.lr_stop) == (0, 64, 0, 16)
    assert not g.partial
    assert no_warn_fit(hr, lr, phase="toolbox").phase == (2.0, 2.0)


def test_ratio3_corner_phase_1():
    hr = raster((30, 27), HR_T)
    lr = raster((10, 9), lr_of(HR_T, 3))
    g = no_warn_fit(hr, lr, ratio=3, phase="corner")
    assert g.ratio == 3 and g.phase == (1.0, 1.0)
    assert g.out_transform() == HR_T


def test_ratio2_and_ratio1():
    hr = raster((8, 8), HR_T)
    assert no_warn_fit(hr, raster((4, 4), lr_of(HR_T, 2))).phase == (0.5, 0.5)
    g1 = no_warn_fit(hr, raster((8, 8), HR_T))
    assert g1.ratio == 1 and g1.phase == (0.0, 0.0) and not g1.partial


def test_mixed_phase_per_axis():
    hr = raster((16, 16), HR_T)
    lr = raster((4, 4), lr_of(HR_T, 4, (0.5, 0.0)))
    assert no_warn_fit(hr, lr).phase == (2.0, 1.5)


def test_offset_within_tolerance_is_snapped():
    hr = raster((16, 16), HR_T)
    lr = raster((4, 4), lr_of(HR_T, 4, (4e-4, -3e-4)))
    assert no_warn_fit(hr, lr).phase == (1.5, 1.5)


def test_phase_south_up_orientation():
    t = Affine(1.0, 0.0, 100.0, 0.0, 1.0, 200.0)  # y grows with row index
    hr = raster((16, 16), t, crs=None)
    lr = raster((4, 4), lr_of(t, 4, (0.5, 0.0)), crs=None)
    g = no_warn_fit(hr, lr)
    assert g.phase == (2.0, 1.5) and g.crs is None


# --------------------------------------------------------------------------------- partial overlap


def test_partial_overlap_lr_starts_inside_hr():
    # LR origin 5 HR pixels right / 8 HR pixels down of the HR origin, corner aligned relative to that
    hr = raster((40, 40), HR_T)
    lr = raster((20, 20), lr_of(HR_T, 4, (8.0, 5.0)))
    with pytest.warns(PartialOverlapWarning, match="output extent") as rec:
        g = fit_grids(hr, lr)
    # y: u0 = 8 + 1.5 -> s = 8; LR rows k with 8 + 4k + 4 <= 40 -> k < 8
    assert g.y == AxisFit(4, 8, 40, 0, 8, 1.5)
    # x: u0 = 6.5 -> s = 5; k < (40 - 5) // 4 = 8
    assert g.x == AxisFit(4, 5, 37, 0, 8, 1.5)
    assert g.partial
    assert g.out_transform() == HR_T @ Affine.translation(5, 8)
    msg = str(rec[0].message)
    left, bottom, right, top = g.out_bounds()
    assert repr(left) in msg and repr(top) in msg
    assert left == HR_T.c + 5 * 0.5 and top == HR_T.f - 8 * 0.5
    # the output grid nests in the LR grid: LR window origin == output origin (corner aligned)
    assert g.lr_transform @ (g.x.lr_start, g.y.lr_start) == g.out_transform() @ (0, 0)


def test_partial_overlap_lr_starts_before_hr_toolbox():
    # LR origin 6.5 HR pixels left/up of the HR origin (half-integer -> toolbox-centred)
    hr = raster((40, 40), HR_T)
    lr = raster((20, 20), lr_of(HR_T, 4, (-6.5, -6.5)))
    with pytest.warns(PartialOverlapWarning):
        g = fit_grids(hr, lr)
    # u0 = -6.5 + 1.5 = -5 -> s = ceil(-5 - 2 - 1e-9) = -7, p = 2
    # lr_start = ceil(7/4) = 2 -> HR start 1; lr_stop = min(20, (40 + 7)//4 = 11)
    assert g.y == AxisFit(4, 1, 37, 2, 11, 2.0)
    assert g.x == g.y
    # centre of LR pixel lr_start sits at HR index start + phase
    lr_centre = g.lr_transform @ (g.x.lr_start + 0.5, g.y.lr_start + 0.5)
    hr_pos = ~g.hr_transform @ lr_centre
    assert np.allclose(hr_pos, (g.x.start + g.x.phase + 0.5, g.y.start + g.y.phase + 0.5))


def test_partial_when_hr_not_a_multiple():
    hr = raster((18, 17), HR_T)
    lr = raster((4, 4), lr_of(HR_T, 4))
    with pytest.warns(PartialOverlapWarning):
        g = fit_grids(hr, lr)
    assert g.hr_slices() == (slice(0, 16), slice(0, 16)) and g.lr_slices() == (slice(0, 4), slice(0, 4))


def test_no_overlap_refused():
    hr = raster((16, 16), HR_T)
    lr = raster((4, 4), lr_of(HR_T, 4, (0.0, 100.0)))
    with pytest.raises(GridMismatchError, match="do not overlap") as ei:
        fit_grids(hr, lr)
    assert_structured(ei.value, fmt(HR_T), fmt(lr_of(HR_T, 4, (0.0, 100.0))), "bounds")


def test_overlap_less_than_one_lr_pixel_refused():
    hr = raster((16, 16), HR_T)
    lr = raster((4, 4), lr_of(HR_T, 4, (0.0, 14.0)))  # LR pixel 0 covers HR cols 14..17 -> 2 inside
    with pytest.raises(GridMismatchError, match="do not overlap"):
        fit_grids(hr, lr)


# -------------------------------------------------------------------------------------- refusals


def test_crs_differ():
    hr = raster((16, 16), HR_T)
    lr = raster((4, 4), lr_of(HR_T, 4), crs="EPSG:32634")
    with pytest.raises(GridMismatchError, match="different CRS") as ei:
        fit_grids(hr, lr)
    assert_structured(ei.value, fmt(HR_T), fmt(lr_of(HR_T, 4)), "EPSG:32633", "EPSG:32634", "gdalwarp",
                      "reproject_match")
    assert isinstance(ei.value, ValueError) and isinstance(ei.value, GeofuseError)


def test_crs_missing_on_one_side():
    hr = raster((16, 16), HR_T)
    lr = raster((4, 4), lr_of(HR_T, 4), crs=None)
    with pytest.raises(GridMismatchError, match="different CRS") as ei:
        fit_grids(hr, lr)
    assert_structured(ei.value, "CRS None", "EPSG:32633", fmt(HR_T), "write_crs")


def test_rotated_refused():
    rot = HR_T @ Affine.rotation(10)
    hr = raster((16, 16), rot, coords=False)
    lr = raster((4, 4), lr_of(HR_T, 4), coords=False)
    with pytest.raises(GridMismatchError, match="rotated or skewed") as ei:
        fit_grids(hr, lr)
    assert_structured(ei.value, fmt(rot), fmt(lr_of(HR_T, 4)), "gdalwarp")


def test_skewed_refused():
    sk = Affine(2.0, 0.3, 0.0, 0.0, -2.0, 0.0)
    hr = raster((16, 16), HR_T, coords=False)
    lr = raster((4, 4), sk, coords=False)
    with pytest.raises(GridMismatchError, match="LR transform is rotated or skewed") as ei:
        fit_grids(hr, lr)
    assert_structured(ei.value, fmt(sk), fmt(HR_T))


def test_non_integer_ratio_refused():
    lt = Affine(1.7, 0.0, HR_T.c, 0.0, -1.7, HR_T.f)
    hr, lr = raster((16, 16), HR_T), raster((4, 4), lt)
    with pytest.raises(GridMismatchError, match="not an integer ratio") as ei:
        fit_grids(hr, lr)
    assert_structured(ei.value, fmt(HR_T), fmt(lt), "3.4", "gdalwarp -t_srs")


def test_ratio_within_tolerance_accepted():
    lt = Affine(2.0 * (1 + 1e-8), 0.0, HR_T.c, 0.0, -2.0, HR_T.f)
    g = no_warn_fit(raster((16, 16), HR_T), raster((4, 4), lt, coords=False))
    assert g.ratio == 4


def test_ratio_differs_between_axes():
    lt = Affine(2.0, 0.0, HR_T.c, 0.0, -1.5, HR_T.f)
    with pytest.raises(GridMismatchError, match="differs between x and y") as ei:
        fit_grids(raster((16, 16), HR_T), raster((4, 4), lt))
    assert_structured(ei.value, fmt(HR_T), fmt(lt))


def test_ratio_below_one_refused_swapped_inputs():
    hr = raster((16, 16), HR_T)
    lr = raster((4, 4), lr_of(HR_T, 4))
    with pytest.raises(GridMismatchError, match="integer ratio >= 1") as ei:
        fit_grids(lr, hr)
    assert_structured(ei.value, "swapped", "high-resolution raster first")


def test_orientation_differs():
    lt = Affine(2.0, 0.0, HR_T.c, 0.0, 2.0, HR_T.f)
    with pytest.raises(GridMismatchError, match="orientation") as ei:
        fit_grids(raster((16, 16), HR_T), raster((4, 4), lt))
    assert_structured(ei.value, fmt(HR_T), fmt(lt))


@pytest.mark.parametrize("offset", [(0.0, 0.3), (0.25, 0.0), (1.01, 0.0)])
def test_subpixel_misalignment_refused(offset):
    lt = lr_of(HR_T, 4, offset)
    with pytest.raises(GridMismatchError, match="fraction of an HR pixel") as ei:
        fit_grids(raster((16, 16), HR_T), raster((4, 4), lt))
    assert_structured(ei.value, fmt(HR_T), fmt(lt), "measured offset")
    assert repr((lt.c - HR_T.c) / HR_T.a) in str(ei.value)


def test_user_ratio_contradicts_transforms():
    with pytest.raises(GridMismatchError, match="ratio=2 contradicts") as ei:
        fit_grids(raster((16, 16), HR_T), raster((4, 4), lr_of(HR_T, 4)), ratio=2)
    assert_structured(ei.value, fmt(HR_T), "ratio=4")
    g = no_warn_fit(raster((16, 16), HR_T), raster((4, 4), lr_of(HR_T, 4)), ratio=4)
    assert g.ratio == 4


def test_user_phase_contradicts_transforms():
    with pytest.raises(GridMismatchError, match="phase='toolbox' contradicts"):
        fit_grids(raster((16, 16), HR_T), raster((4, 4), lr_of(HR_T, 4)), phase="toolbox")


def test_one_georeferenced_one_not():
    hr = raster((16, 16), HR_T)
    lr = raster((4, 4))
    with pytest.raises(GridMismatchError, match="HR raster is georeferenced but the LR raster is not") as ei:
        fit_grids(hr, lr, ratio=4)
    assert_structured(ei.value, fmt(HR_T), "write_transform")
    with pytest.raises(GridMismatchError, match="LR raster is georeferenced but the HR"):
        fit_grids(raster((16, 16)), raster((4, 4), lr_of(HR_T, 4)), ratio=4)


# ------------------------------------------------------------------------------ not georeferenced


def test_pixel_space_corner_default():
    g = no_warn_fit(raster((32, 24)), raster((8, 6)), ratio=4)
    assert g.phase == (1.5, 1.5) and g.crs is None and not g.partial
    assert g.hr_transform == Affine.identity()
    assert g.lr_transform == Affine.scale(4)
    assert g.hr_slices() == (slice(0, 32), slice(0, 24))


@pytest.mark.parametrize("phase,r,want", [("toolbox", 4, 2.0), ("corner", 3, 1.0), ("toolbox", 3, 1.0),
                                          (1.75, 4, 1.75), ("toolbox", 2, 1.0), ("corner", 2, 0.5)])
def test_pixel_space_phases(phase, r, want):
    g = no_warn_fit(raster((4 * r, 2 * r)), raster((4, 2)), ratio=r, phase=phase)
    assert g.phase == (want, want)
    # lr_transform puts the LR pixel 0 centre at HR position (want, want)
    cx, cy = g.lr_transform @ (0.5, 0.5)
    assert np.allclose((cx - 0.5, cy - 0.5), (want, want))


def test_pixel_space_requires_ratio():
    with pytest.raises(GridMismatchError, match="not georeferenced") as ei:
        fit_grids(raster((16, 16)), raster((4, 4)))
    assert_structured(ei.value, "ratio=")


def test_pixel_space_shapes_must_nest():
    with pytest.raises(GridMismatchError, match="do not nest") as ei:
        fit_grids(raster((17, 16)), raster((4, 4)), ratio=4)
    assert_structured(ei.value, "(17, 16)", "(4, 4)")


def test_bad_phase_and_ratio_arguments():
    with pytest.raises(ParameterError, match="unknown phase"):
        fit_grids(raster((16, 16)), raster((4, 4)), ratio=4, phase="centre")
    with pytest.raises(ParameterError):
        fit_grids(raster((16, 16)), raster((4, 4)), ratio=4, phase=float("nan"))
    with pytest.raises(ParameterError, match="ratio must be"):
        fit_grids(raster((16, 16)), raster((4, 4)), ratio=2.5)
    with pytest.raises(ParameterError, match="ratio must be"):
        fit_grids(raster((16, 16)), raster((4, 4)), ratio=0)


# ----------------------------------------------------------------------------------- helpers / misc


def test_is_georeferenced():
    assert not is_georeferenced(raster((4, 4)))
    assert is_georeferenced(raster((4, 4), HR_T))
    assert is_georeferenced(raster((4, 4), HR_T, coords=False))
    da = raster((4, 4)).assign_coords(x=np.arange(4.0), y=np.arange(4.0))
    assert is_georeferenced(da)


@pytest.mark.parametrize("r", [1, 2, 3, 4, 8])
def test_lowres_transform_roundtrip_through_fit(r):
    for off in ((r - 1) / 2, float(r // 2)):
        lt = lowres_transform(HR_T, r, (off, off))
        g = no_warn_fit(raster((8 * r, 8 * r), HR_T), raster((8, 8), lt))
        assert g.phase == (off, off)
        assert g.lr_transform == lt


def test_lowres_transform_corner_is_plain_scaling():
    assert lowres_transform(HR_T, 4, (1.5, 1.5)) == HR_T @ Affine.scale(4)
    with pytest.raises(ParameterError):
        lowres_transform(HR_T, 2.5, (0, 0))


def test_gridpair_is_frozen():
    g = no_warn_fit(raster((8, 8), HR_T), raster((2, 2), lr_of(HR_T, 4)))
    assert isinstance(g, GridPair)
    with pytest.raises(Exception):
        g.ratio = 2  # type: ignore[misc]


def test_sliced_rasters_fit_from_coordinates():
    # isel keeps the (stale) GeoTransform attr; the transform must come from the coordinates
    hr = raster((64, 64), HR_T).isel(y=slice(8, 40), x=slice(4, 36))
    lr = raster((16, 16), lr_of(HR_T, 4)).isel(y=slice(2, 10), x=slice(1, 9))
    g = no_warn_fit(hr, lr)
    assert g.phase == (1.5, 1.5) and not g.partial
    assert g.out_transform() == HR_T @ Affine.translation(4, 8)
