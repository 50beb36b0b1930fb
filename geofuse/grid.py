"""How a high-resolution grid and a low-resolution grid fit together.

:func:`fit_grids` relates the high-resolution raster (PAN / MSI) to the low-resolution raster
(MS / HSI): the integer ``ratio`` (LR pixel size / HR pixel size), the sub-pixel ``phase`` (where the
centre of an LR pixel falls in HR pixel units) and the windows of both rasters that cover the same
ground. For georeferenced inputs everything is derived from the two affine transforms, never from the
array shapes; inputs that do not fit (different CRS, rotation, non-integer ratio, sub-pixel
misalignment, no overlap) are refused with a :class:`~geofuse.errors.GridMismatchError` that prints both
transforms and says how to fix them.

Conventions
-----------
HR pixel ``i`` (0-based) has its centre at HR index coordinate ``i``; its footprint is
``[i - 0.5, i + 0.5)``. For ratio :math:`r`, LR pixel ``k`` is associated with the block of ``r`` HR
pixels ``s + r k, ..., s + r k + r - 1`` and its centre lies at HR coordinate ``s + r k + p`` where
the phase ``p`` is normalised to

.. math::

    p \\in \\left(\\tfrac{r-1}{2} - \\tfrac12,\\ \\tfrac{r-1}{2} + \\tfrac12\\right].

Corner-aligned products (the LR pixel covers exactly ``r`` HR pixels) have
:math:`p = (r-1)/2` (1.5 for ratio 4); the MATLAB pansharpening toolbox convention (``interp23tap``,
``imresize(X, 1/4, 'nearest')``, LR pixel ``k`` at HR pixel ``4k+2``) has :math:`p = \\lfloor r/2
\\rfloor` (2 for ratio 4).

Partial overlap
---------------
When the rasters do not cover the same ground exactly, geofuse fuses the intersection: the largest run
of whole LR pixels whose HR blocks lie inside the HR raster. A :class:`PartialOverlapWarning` names
the output extent.

References
----------
Vivone, G. et al. (2021). A new benchmark based on recent advances in multispectral pansharpening:
revisiting pansharpening with classical and emerging pansharpening methods. IEEE GRSM 9(1), 53-81.
https://doi.org/10.1109/MGRS.2020.3019315
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import xarray as xr
from affine import Affine

from .errors import GridMismatchError, InputError, ParameterError

__all__ = [
    "AxisFit",
    "GridPair",
    "PartialOverlapWarning",
    "fit_grids",
    "is_georeferenced",
    "lowres_transform",
]

#: Relative tolerance on the pixel-size ratio.
RATIO_RTOL = 1e-6
#: Absolute tolerance (HR pixels) on the origin offset being an integer or half-integer.
OFFSET_ATOL = 1e-3

_FIX_RESAMPLE = (
    "resample one input onto a grid that nests in the other, e.g. "
    "`gdalwarp -t_srs <HR CRS> -tr <HR pixel size * ratio> <HR pixel size * ratio> -tap` for the LR "
    "file (or `gdalwarp -te <HR bounds>` to snap it to the HR corners), or in Python "
    "`lr.rio.reproject_match(template)` with a template built from the HR transform "
    "(geofuse.grid.lowres_transform)"
)


class PartialOverlapWarning(UserWarning):
    """The HR and LR rasters only partly cover each other; the intersection is fused."""


@dataclass(frozen=True)
class AxisFit:
    """How one axis (rows or columns) of the HR and LR grids fit.

    Attributes
    ----------
    ratio : int
        LR pixel size / HR pixel size.
    start, stop : int
        HR window ``[start, stop)``; ``stop - start == ratio * (lr_stop - lr_start)``.
    lr_start, lr_stop : int
        LR window ``[lr_start, lr_stop)``.
    phase : float
        Centre of LR pixel ``lr_start`` in HR index units, relative to ``start`` (HR pixel ``i`` has
        its centre at ``i``).
    """

    ratio: int
    start: int
    stop: int
    lr_start: int
    lr_stop: int
    phase: float

    @property
    def hr_slice(self) -> slice:
        return slice(self.start, self.stop)

    @property
    def lr_slice(self) -> slice:
        return slice(self.lr_start, self.lr_stop)


@dataclass(frozen=True)
class GridPair:
    """The fitted relation between an HR raster and an LR raster.

    Attributes
    ----------
    ratio : int
        LR pixel size / HR pixel size (same on both axes).
    y, x : AxisFit
        Row and column fits.
    crs : rasterio.crs.CRS or None
        The common CRS (``None`` for non-georeferenced inputs or inputs without a CRS).
    hr_transform, lr_transform : affine.Affine
        Transforms of the FULL inputs. For non-georeferenced inputs ``hr_transform`` is the identity
        (pixel space) and ``lr_transform`` follows from ``ratio`` and ``phase``.
    hr_shape, lr_shape : tuple of int
        ``(rows, cols)`` of the full inputs.
    """

    ratio: int
    y: AxisFit
    x: AxisFit
    crs: Any
    hr_transform: Affine
    lr_transform: Affine
    hr_shape: tuple[int, int] = (0, 0)
    lr_shape: tuple[int, int] = (0, 0)

    @property
    def phase(self) -> tuple[float, float]:
        """``(y.phase, x.phase)``."""
        return (self.y.phase, self.x.phase)

    @property
    def partial(self) -> bool:
        """True if the windows do not cover both inputs fully."""
        (hh, hw), (lh, lw) = self.hr_shape, self.lr_shape
        return not (
            self.y.start == 0 and self.y.stop == hh and self.x.start == 0 and self.x.stop == hw
            and self.y.lr_start == 0 and self.y.lr_stop == lh
            and self.x.lr_start == 0 and self.x.lr_stop == lw
        )

    @property
    def out_shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of the HR window, i.e. of the fused output."""
        return (self.y.stop - self.y.start, self.x.stop - self.x.start)

    def hr_slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` slices of the HR input to fuse."""
        return (self.y.hr_slice, self.x.hr_slice)

    def lr_slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` slices of the LR input to fuse."""
        return (self.y.lr_slice, self.x.lr_slice)

    def out_transform(self) -> Affine:
        """Transform of the HR window (the fused output)."""
        return self.hr_transform @ Affine.translation(self.x.start, self.y.start)

    def out_bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` of the HR window in CRS units."""
        return _bounds(self.out_transform(), *self.out_shape)


# --------------------------------------------------------------------------------------------------
# small helpers


def _fmt_t(t: Affine) -> str:
    return f"Affine({t.a!r}, {t.b!r}, {t.c!r}, {t.d!r}, {t.e!r}, {t.f!r})"


def _fmt_crs(crs: Any) -> str:
    if crs is None:
        return "None"
    try:
        return crs.to_string()
    except Exception:  # pragma: no cover - exotic CRS objects
        return str(crs)


def _bounds(t: Affine, rows: int, cols: int) -> tuple[float, float, float, float]:
    xs, ys = zip(*(t @ (c, r) for c in (0, cols) for r in (0, rows)))
    return (min(xs), min(ys), max(xs), max(ys))


def _describe(hr_t: Affine, hr_crs: Any, hr_shape, lr_t: Affine, lr_crs: Any, lr_shape) -> str:
    return (
        f"HR transform {_fmt_t(hr_t)}, CRS {_fmt_crs(hr_crs)}, shape {tuple(hr_shape)}; "
        f"LR transform {_fmt_t(lr_t)}, CRS {_fmt_crs(lr_crs)}, shape {tuple(lr_shape)}"
    )


def _yx_shape(da: Any, name: str) -> tuple[int, int]:
    if not isinstance(da, xr.DataArray):
        raise InputError(
            f"the {name} input is not an xarray.DataArray",
            expected='an xarray.DataArray with dims ("band", "y", "x")',
            got=type(da).__name__,
            fix="open it with geofuse.io.open_raster or rioxarray.open_rasterio",
        )
    if "y" not in da.dims or "x" not in da.dims:
        raise InputError(
            f"the {name} raster has no 'y'/'x' dimensions",
            expected='dims ("band", "y", "x")',
            got=f"dims {tuple(da.dims)}",
            fix="rename the spatial dimensions to 'y' and 'x' (DataArray.rename)",
        )
    shape = (int(da.sizes["y"]), int(da.sizes["x"]))
    if 0 in shape:
        raise InputError(
            f"the {name} raster is empty",
            expected="at least one pixel on each axis",
            got=f"shape (y, x) = {shape}",
            fix="check the window or file that produced it",
        )
    return shape


def is_georeferenced(da: xr.DataArray) -> bool:
    """True if ``da`` carries a geotransform: 1-D ``x``/``y`` coordinates or a cached transform.

    A cached transform is the ``GeoTransform`` attribute of the grid-mapping coordinate
    (``spatial_ref``) or a ``transform`` attribute, as written by rioxarray.
    """
    has_coords = all(
        d in da.coords and da.coords[d].ndim == 1 and da.coords[d].dims == (d,) for d in ("x", "y")
    )
    if has_coords:
        return True
    try:
        return da.rio._cached_transform() is not None
    except Exception:
        return False


def _transform_of(da: xr.DataArray, name: str) -> Affine:
    try:
        with warnings.catch_warnings():  # rioxarray's own use of affine's deprecated `*`
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            t = da.rio.transform()
    except Exception as err:
        raise GridMismatchError(
            f"cannot determine the transform of the {name} raster",
            expected="x/y coordinates with at least 2 pixels per axis, or a spatial_ref GeoTransform",
            got=f"{type(err).__name__}: {err}",
            fix="write the transform explicitly with da.rio.write_transform(transform)",
        ) from err
    if not isinstance(t, Affine):  # pragma: no cover - defensive
        t = Affine(*tuple(t)[:6])
    return t


def _crs_of(da: xr.DataArray) -> Any:
    try:
        return da.rio.crs
    except Exception:  # pragma: no cover - malformed spatial_ref
        return None


def lowres_transform(hr_transform: Affine, ratio: int, offset: tuple[float, float]) -> Affine:
    """Transform of a grid decimated by ``ratio`` whose pixel 0 centre sits at HR pixel ``offset``.

    Parameters
    ----------
    hr_transform : affine.Affine
        Transform of the HR grid.
    ratio : int
        Decimation factor (LR pixel size / HR pixel size).
    offset : (float, float)
        ``(offset_y, offset_x)``: position of the centre of LR pixel (0, 0) in HR index coordinates,
        where HR pixel ``i`` has its centre at ``i``. Corner-aligned decimation uses
        ``((r-1)/2, (r-1)/2)``; decimation that keeps HR samples ``k r + p`` uses ``(p, p)``.

    Returns
    -------
    affine.Affine
        The LR transform: its upper-left corner lies at HR index coordinate
        ``offset - r/2`` (in corner units, ``offset + 1/2 - r/2``) and its pixels are ``ratio`` times
        larger.

    Examples
    --------
    >>> from affine import Affine
    >>> lowres_transform(Affine(1, 0, 0, 0, -1, 0), 4, (1.5, 1.5)) == Affine(4, 0, 0, 0, -4, 0)
    True
    """
    r = int(ratio)
    if r != ratio or r < 1:
        raise ParameterError(
            "lowres_transform needs an integer ratio >= 1",
            expected="an integer >= 1",
            got=repr(ratio),
            fix="pass the decimation factor as an int",
        )
    oy, ox = (float(v) for v in offset)
    corner_x = ox + 0.5 - 0.5 * r
    corner_y = oy + 0.5 - 0.5 * r
    return hr_transform @ Affine.translation(corner_x, corner_y) @ Affine.scale(r)


def _phase_value(phase: str | float, r: int) -> float:
    if isinstance(phase, str):
        key = phase.strip().lower()
        if key == "corner":
            return (r - 1) / 2.0
        if key == "toolbox":
            return float(r // 2)
        raise ParameterError(
            f"unknown phase {phase!r}",
            expected='"corner", "toolbox" or a number (HR pixels)',
            got=repr(phase),
            fix='use phase="corner" for corner-aligned products or "toolbox" for the MATLAB toolbox grid',
        )
    try:
        p = float(phase)
    except (TypeError, ValueError):
        p = math.nan
    if isinstance(phase, bool) or not math.isfinite(p):
        raise ParameterError(
            "phase must be a finite number or a name",
            expected='"corner", "toolbox" or a finite float',
            got=repr(phase),
            fix="pass the centre of LR pixel 0 in HR pixel units, e.g. 1.5 for corner-aligned ratio 4",
        )
    return p


def _fit_axis(u0: float, r: int, n_hr: int, n_lr: int) -> AxisFit:
    """Fit one axis; ``u0`` is the centre of LR pixel 0 in HR index coordinates."""
    half = (r - 1) / 2.0
    s = math.ceil(u0 - half - 0.5 - 1e-9)
    p = u0 - s
    lr_start = max(0, -(s // r))  # ceil(-s / r) with integer arithmetic
    lr_stop = min(n_lr, (n_hr - s) // r)
    if lr_stop < lr_start:
        lr_stop = lr_start
    return AxisFit(
        ratio=r,
        start=s + r * lr_start,
        stop=s + r * lr_stop,
        lr_start=lr_start,
        lr_stop=lr_stop,
        phase=float(p),
    )


def _check_ratio_arg(ratio: Any) -> int | None:
    if ratio is None:
        return None
    if isinstance(ratio, bool) or not float(ratio).is_integer() or int(ratio) < 1:
        raise ParameterError(
            "ratio must be an integer >= 1",
            expected="an int >= 1 (LR pixel size / HR pixel size)",
            got=repr(ratio),
            fix="pass e.g. ratio=4",
        )
    return int(ratio)


# --------------------------------------------------------------------------------------------------
# fit_grids


def fit_grids(
    hr: xr.DataArray,
    lr: xr.DataArray,
    *,
    ratio: int | None = None,
    phase: str | float | None = None,
) -> GridPair:
    """Relate a high-resolution raster to a low-resolution raster.

    Parameters
    ----------
    hr : xarray.DataArray, dims ("band", "y", "x")
        High-resolution input (PAN / MSI).
    lr : xarray.DataArray, dims ("band", "y", "x")
        Low-resolution input (MS / HSI).
    ratio : int, optional
        LR pixel size / HR pixel size. Required when neither input is georeferenced; for
        georeferenced inputs it is derived from the transforms and, if given, must agree.
    phase : {"corner", "toolbox"} or float, optional
        Centre of LR pixel 0 in HR pixel units. Only for non-georeferenced inputs (default
        ``"corner"``: :math:`(r-1)/2`; ``"toolbox"``: :math:`\\lfloor r/2 \\rfloor`). For
        georeferenced inputs the phase comes from the transforms; a given value must agree.

    Returns
    -------
    GridPair

    Raises
    ------
    GridMismatchError
        Different CRS, rotated/skewed transforms, a non-integer or axis-dependent ratio, different
        axis orientation, a sub-pixel misalignment that is neither corner-aligned nor toolbox-centred,
        no overlap, a ``ratio``/``phase`` that contradicts the transforms, shapes that do not nest
        (non-georeferenced), or one georeferenced input and one not.

    Warns
    -----
    PartialOverlapWarning
        When the rasters only partly overlap; the returned windows cover the intersection.

    Notes
    -----
    Per axis, with HR transform pixel size :math:`a_h` and origin :math:`c_h` (``e``/``f`` for rows)
    and LR origin :math:`c_l`, the LR origin offset in HR pixels is :math:`o = (c_l - c_h) / a_h`
    (must be a multiple of 1/2 within 1e-3) and the centre of LR pixel 0 lies at
    :math:`u_0 = o + r/2 - 1/2`. The HR window starts at
    :math:`s = \\lceil u_0 - (r-1)/2 - 1/2 \\rceil` so that the phase :math:`p = u_0 - s` lies in
    :math:`((r-1)/2 - 1/2, (r-1)/2 + 1/2]`. LR pixel ``k`` is kept if its HR block
    ``[s + r k, s + r k + r)`` lies inside ``[0, n_hr)``.
    """
    hr_shape = _yx_shape(hr, "HR")
    lr_shape = _yx_shape(lr, "LR")
    user_ratio = _check_ratio_arg(ratio)
    geo_hr, geo_lr = is_georeferenced(hr), is_georeferenced(lr)

    if geo_hr != geo_lr:
        which, other = ("HR", "LR") if geo_hr else ("LR", "HR")
        raise GridMismatchError(
            f"the {which} raster is georeferenced but the {other} raster is not",
            expected="both rasters georeferenced (x/y coordinates or a transform) or neither",
            got=f"{which} transform {_fmt_t(_transform_of(hr if geo_hr else lr, which))}, "
            f"{other}: no x/y coordinates and no transform",
            fix=f"write the {other} transform with da.rio.write_transform(...) (and its CRS with "
            "da.rio.write_crs(...)), or drop the georeferencing of both and pass ratio= and phase=",
        )

    if not geo_hr:
        pair = _fit_pixel_space(hr_shape, lr_shape, user_ratio, phase)
    else:
        pair = _fit_georeferenced(hr, lr, hr_shape, lr_shape, user_ratio, phase)

    if pair.partial:
        left, bottom, right, top = pair.out_bounds()
        warnings.warn(
            PartialOverlapWarning(
                "the HR and LR rasters only partly overlap; fusing the intersection: "
                f"HR rows {pair.y.start}:{pair.y.stop} of {hr_shape[0]}, cols {pair.x.start}:{pair.x.stop} "
                f"of {hr_shape[1]}; LR rows {pair.y.lr_start}:{pair.y.lr_stop} of {lr_shape[0]}, cols "
                f"{pair.x.lr_start}:{pair.x.lr_stop} of {lr_shape[1]}; output extent "
                f"(left, bottom, right, top) = ({left!r}, {bottom!r}, {right!r}, {top!r}), "
                f"shape {pair.out_shape}, transform {_fmt_t(pair.out_transform())}"
            ),
            stacklevel=2,
        )
    return pair


def _fit_pixel_space(hr_shape, lr_shape, ratio: int | None, phase) -> GridPair:
    if ratio is None:
        raise GridMismatchError(
            "the rasters are not georeferenced, so the ratio cannot be derived",
            expected="ratio= (LR pixel size / HR pixel size) for non-georeferenced inputs",
            got=f"ratio=None, HR shape (y, x) {hr_shape}, LR shape (y, x) {lr_shape}",
            fix="pass ratio=<int> (and phase='corner' or 'toolbox'), or georeference both inputs",
        )
    r = ratio
    if hr_shape != (r * lr_shape[0], r * lr_shape[1]):
        raise GridMismatchError(
            f"the shapes do not nest with ratio {r}",
            expected=f"HR shape = {r} x LR shape = {(r * lr_shape[0], r * lr_shape[1])}",
            got=f"HR shape (y, x) {hr_shape}, LR shape (y, x) {lr_shape}",
            fix="crop the HR raster to ratio * LR shape (or pass the right ratio=)",
        )
    p = _phase_value("corner" if phase is None else phase, r)
    hr_t = Affine.identity()
    lr_t = lowres_transform(hr_t, r, (p, p))
    return GridPair(
        ratio=r,
        y=_fit_axis(p, r, hr_shape[0], lr_shape[0]),
        x=_fit_axis(p, r, hr_shape[1], lr_shape[1]),
        crs=None,
        hr_transform=hr_t,
        lr_transform=lr_t,
        hr_shape=hr_shape,
        lr_shape=lr_shape,
    )


def _fit_georeferenced(hr, lr, hr_shape, lr_shape, user_ratio, phase) -> GridPair:
    ht, lt = _transform_of(hr, "HR"), _transform_of(lr, "LR")
    hc, lc = _crs_of(hr), _crs_of(lr)
    both = _describe(ht, hc, hr_shape, lt, lc, lr_shape)

    def fail(what: str, expected: str, fix: str = _FIX_RESAMPLE, extra: str = "") -> GridMismatchError:
        return GridMismatchError(what, expected=expected, got=(extra + "; " if extra else "") + both,
                                 fix=fix)

    # CRS: one missing and one present counts as differing.
    if (hc is None) != (lc is None) or (hc is not None and hc != lc):
        raise fail(
            "the HR and LR rasters have different CRS",
            "the same CRS for both rasters",
            fix="reproject the LR raster onto the HR CRS and a nested grid, e.g. "
            "`gdalwarp -t_srs <HR CRS> -tr <ratio * HR pixel size> ...` or "
            "`lr.rio.reproject_match(template)`; if a CRS is just missing, set it with "
            "da.rio.write_crs(...)",
        )

    for name, t in (("HR", ht), ("LR", lt)):
        if t.b != 0 or t.d != 0:
            raise fail(
                f"the {name} transform is rotated or skewed (b={t.b!r}, d={t.d!r})",
                "north-up transforms (b == 0 and d == 0)",
                fix="warp both rasters to a north-up grid with `gdalwarp` (no -to ROTATION) or "
                "rio.reproject",
            )
        if t.a == 0 or t.e == 0:
            raise fail(f"the {name} transform is degenerate (zero pixel size)", "non-zero pixel sizes")

    if (ht.a > 0) != (lt.a > 0) or (ht.e > 0) != (lt.e > 0):
        raise fail(
            "the HR and LR rasters have different axis orientation (sign of the pixel size)",
            "pixel sizes of the same sign on each axis (e.g. both north-up, e < 0)",
            fix="flip one raster (da.isel(y=slice(None, None, -1)) with a matching transform) or warp "
            "both with `gdalwarp`",
        )

    rx, ry = lt.a / ht.a, lt.e / ht.e
    r_int = []
    for axis, rv in (("x", rx), ("y", ry)):
        rn = round(rv)
        if rn < 1 or abs(rv - rn) > RATIO_RTOL * abs(rv):
            raise fail(
                f"the pixel sizes are not an integer ratio >= 1 on the {axis} axis",
                "LR pixel size = integer ratio >= 1 times HR pixel size",
                extra=f"measured ratio {axis} = {rv!r}"
                + (" (the LR raster is finer than the HR raster: swapped inputs?)" if rv < 1 else ""),
                fix="pass the high-resolution raster first; otherwise " + _FIX_RESAMPLE
                if rv < 1 else _FIX_RESAMPLE,
            )
        r_int.append(int(rn))
    if r_int[0] != r_int[1]:
        raise fail(
            "the pixel-size ratio differs between x and y",
            "the same integer ratio on both axes",
            extra=f"measured ratio x = {rx!r}, y = {ry!r}",
        )
    r = r_int[0]
    if user_ratio is not None and user_ratio != r:
        raise fail(
            f"ratio={user_ratio} contradicts the transforms",
            f"ratio={r} (LR pixel size / HR pixel size from the transforms)",
            fix=f"drop ratio= or pass ratio={r}; if the transforms are wrong, fix them with "
            "da.rio.write_transform(...)",
        )

    # Sub-pixel alignment: LR origin offset from HR origin, in HR pixels, per axis.
    ox = (lt.c - ht.c) / ht.a
    oy = (lt.f - ht.f) / ht.e
    snapped = []
    for axis, o in (("y", oy), ("x", ox)):
        h = round(2.0 * o) / 2.0
        if abs(o - h) > OFFSET_ATOL:
            raise fail(
                f"the LR grid is shifted by a fraction of an HR pixel on the {axis} axis",
                "the LR origin offset from the HR origin, in HR pixels, to be an integer "
                f"(corner-aligned, phase {(r - 1) / 2}) or a half-integer (toolbox-centred) within "
                f"{OFFSET_ATOL}",
                extra=f"measured offset y = {oy!r}, x = {ox!r} HR pixels",
            )
        snapped.append(h)
    u0y = snapped[0] + 0.5 * r - 0.5
    u0x = snapped[1] + 0.5 * r - 0.5
    fy = _fit_axis(u0y, r, hr_shape[0], lr_shape[0])
    fx = _fit_axis(u0x, r, hr_shape[1], lr_shape[1])

    if phase is not None:
        want = _phase_value(phase, r)
        if abs(fy.phase - want) > 1e-6 or abs(fx.phase - want) > 1e-6:
            raise fail(
                f"phase={phase!r} contradicts the transforms",
                f"phase (y, x) = {(fy.phase, fx.phase)} as derived from the transforms",
                fix="drop phase= for georeferenced inputs (it is derived from the transforms); if the "
                "transforms are wrong, fix them with da.rio.write_transform(...)",
            )

    if fy.lr_stop - fy.lr_start < 1 or fx.lr_stop - fx.lr_start < 1:
        hb = _bounds(ht, *hr_shape)
        lb = _bounds(lt, *lr_shape)
        raise fail(
            "the HR and LR rasters do not overlap by at least one LR pixel",
            "extents that share at least one whole LR pixel",
            fix="check that the two files show the same scene (and CRS); crop or warp them to a "
            "common extent",
            extra=f"HR bounds {hb}, LR bounds {lb} (left, bottom, right, top)",
        )

    return GridPair(
        ratio=r, y=fy, x=fx, crs=hc, hr_transform=ht, lr_transform=lt,
        hr_shape=hr_shape, lr_shape=lr_shape,
    )
