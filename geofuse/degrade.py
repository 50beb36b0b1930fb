"""Wald-protocol degradation (reduced-resolution simulation), lazily on dask.

The Wald protocol (Wald, Ranchin, Mangolini 1997, doi:10.14358/PERS.63.6.691) degrades a real PAN + MS
pair by the resolution ratio so that the original MS becomes the reference for the fused product:

* MS: the sensor's MTF-matched Gaussian filter (SPEC section 2, ``replicate`` border) then decimation
  keeping HR samples ``ratio*k + ratio//2`` (the toolbox's ``imresize(., 1/ratio, 'nearest')``);
* PAN: MATLAB's ``imresize(PAN, 1/ratio)`` (bicubic with antialiasing, the 2021 toolbox) or, with
  ``pan_filter="mtf"``, the PAN MTF filter + the same decimation (v1.3 ``flag_PAN_MTF``).

Georeferencing is kept: each product's transform puts its pixels where the kept samples really are, so
the degraded MS sits on the toolbox's centred phase relative to the degraded PAN, and the engine
reproduces ``interp23tap`` exactly on such pairs.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import xarray as xr

from . import engine
from . import sensors as _sensors
from .errors import ParameterError
from .grid import fit_grids, is_georeferenced, lowres_transform
from .kernels.filters import correlate2d, imresize_down, imresize_down_halo, mtf_kernel, mtf_kernels
from .kernels.resample import INTERPOLATORS, decimation_kernel, upsample, upsample_halo
from .raster import make_raster


def _check_ratio(ratio: Any) -> int:
    whole = isinstance(ratio, (int, np.integer)) or (isinstance(ratio, float) and float(ratio).is_integer())
    r = int(ratio) if whole else None
    if r is None or r < 2:
        raise ParameterError("The degradation ratio must be an integer >= 2", expected="ratio in 2, 3, 4, ...",
                             got=repr(ratio), fix="pass ratio=4 (the PAN/MS resolution ratio)")
    return r


def _out(x: xr.DataArray, data, ratio: int, offset: float, up: bool = False, attrs: dict | None = None):
    transform = None
    if is_georeferenced(x):
        t = x.rio.transform()
        if up:
            from affine import Affine
            # HR grid whose decimation at ``offset`` gives x's grid
            shift = -(offset + 0.5 - 0.5 * ratio)
            t = t @ Affine.scale(1 / ratio) @ Affine.translation(shift, shift)
        else:
            t = lowres_transform(t, ratio, (offset, offset))
        transform = t
    crs = x.rio.crs if transform is not None else None
    band = x["band"].values if "band" in x.coords else None
    return make_raster(data, transform, crs, band=band, attrs={**x.attrs, **(attrs or {})},
                       nodata=engine.nodata_of(x), name=x.name)


def _dask(x: xr.DataArray):
    import dask.array as da

    arr = x.data if isinstance(x.data, da.Array) else da.from_array(np.asarray(x.data), chunks=(x.shape[0], 1024, 1024))
    return arr.astype(np.float32) if arr.dtype != np.float64 else arr


def degrade_ms(ms: xr.DataArray, ratio: int, sensor: str | _sensors.Sensor | Sequence[float] | None = None, *,
               chunks: int = engine.DEFAULT_CHUNK, device: str = "auto", work: str = "float32") -> xr.DataArray:
    """MTF-matched filtering and decimation of an MS image (Wald protocol, SPEC section 4 step 1).

    Returns the lazily degraded image, float32, on the grid zoomed out by ``ratio`` whose pixel ``k``
    sits on input pixel ``ratio*k + ratio//2``.
    """
    r = _check_ratio(ratio)
    sens = sensor if isinstance(sensor, _sensors.Sensor) else _sensors.get(sensor, ms.sizes["band"])
    k = mtf_kernels(sens.gains(ms.sizes["band"]), r)
    p = r // 2

    def fn(t):
        return correlate2d(t, k, mode="replicate", stride=r, offset=(p, p))

    data = engine.map_tiles(_dask(ms), fn, depth=k.shape[-1] // 2, den=r, chunk=chunks, device=device, work=work)
    return _out(ms, data, r, p, attrs={"geofuse_degraded": f"MTF {sens.name} + decimation x{r}"})


def degrade_pan(pan: xr.DataArray, ratio: int, *, pan_filter: str = "bicubic",
                sensor: str | _sensors.Sensor | None = None, chunks: int = engine.DEFAULT_CHUNK,
                device: str = "auto", work: str = "float32") -> xr.DataArray:
    """Degrade the PAN by ``ratio``: MATLAB bicubic ``imresize`` with antialiasing (toolbox 2021) or
    ``pan_filter="mtf"`` (the PAN MTF filter + sampling at the grid's centre). Both outputs are
    corner-aligned with the input, i.e. on the grid of the MS that came with this PAN.

    (The toolbox's v1.3 ``flag_PAN_MTF`` keeps samples ``ratio*k + ratio//2`` instead, half a PAN pixel
    off the MS grid; geofuse keeps the geometry consistent rather than reproduce that shift.)"""
    r = _check_ratio(ratio)
    if pan_filter == "bicubic":
        data = engine.map_tiles(_dask(pan), lambda t: imresize_down(t, r), depth=imresize_down_halo(r), den=r,
                                chunk=chunks, device=device, work=work)
        return _out(pan, data, r, (r - 1) / 2, attrs={"geofuse_degraded": f"bicubic imresize 1/{r}"})
    if pan_filter == "mtf":
        # PAN MTF filter, then sampling at the corner-aligned phase (r-1)/2 (a half-integer phase averages
        # the two middle samples), so the degraded PAN stays on the original MS grid.
        sens = sensor if isinstance(sensor, _sensors.Sensor) else _sensors.get(sensor)
        p = (r - 1) / 2
        k, off = decimation_kernel(mtf_kernel(sens.pan_gnyq, r), (p, p))
        data = engine.map_tiles(_dask(pan), lambda t: correlate2d(t, k, "replicate", stride=r, offset=off),
                                depth=k.shape[-1] // 2, den=r, chunk=chunks, device=device, work=work)
        return _out(pan, data, r, p, attrs={"geofuse_degraded": f"PAN MTF {sens.name} + decimation x{r}"})
    raise ParameterError("Unknown PAN degradation", expected="'bicubic' or 'mtf'", got=repr(pan_filter),
                         fix="use pan_filter='bicubic' (toolbox 2021 default)")


def wald(ms: xr.DataArray, pan: xr.DataArray, sensor: str | _sensors.Sensor | Sequence[float] | None = None, *,
         ratio: int | None = None, pan_filter: str = "bicubic", chunks: int = engine.DEFAULT_CHUNK,
         device: str = "auto") -> tuple[xr.DataArray, xr.DataArray]:
    """Build a reduced-resolution pair (MS_LR, PAN_LR) from a real PAN + MS pair (Wald protocol).

    The ratio comes from the two grids (their transforms); the original ``ms`` is the reference for
    evaluating a fusion of the returned pair. Both outputs keep georeferencing and are lazy.
    """
    engine.check_inputs(ms, pan)
    grid = fit_grids(pan, ms, ratio=ratio)
    r = grid.ratio
    ms_w = ms.isel(y=grid.lr_slices()[0], x=grid.lr_slices()[1])
    pan_w = pan.isel(y=grid.hr_slices()[0], x=grid.hr_slices()[1])
    rows, cols = ms_w.sizes["y"] // r * r, ms_w.sizes["x"] // r * r
    ms_w = ms_w.isel(y=slice(0, rows), x=slice(0, cols))
    pan_w = pan_w.isel(y=slice(0, rows * r), x=slice(0, cols * r))
    return (degrade_ms(ms_w, r, sensor, chunks=chunks // r or 1, device=device),
            degrade_pan(pan_w, r, pan_filter=pan_filter, sensor=sensor, chunks=chunks, device=device))


def interpolate(lr: xr.DataArray, ratio: int, *, phase: str | float = "corner", kind: str = "interp23tap",
                border: str = "symmetric", chunks: int = 256, device: str = "auto",
                work: str = "float32") -> xr.DataArray:
    """Lazily interpolate ``lr`` onto the grid ``ratio`` times finer (``interp23tap`` by default).

    ``phase`` is where LR sample 0 lands on the fine grid (HR pixel units): ``"corner"`` for
    corner-aligned grids ((ratio-1)/2), ``"toolbox"`` for the toolbox's ``ratio//2``; the output
    transform follows. ``border="circular"`` reproduces the toolbox's interp23tap at image borders
    (whole image as one chunk).
    """
    r = _check_ratio(ratio)
    p = {"corner": (r - 1) / 2, "toolbox": float(r // 2)}.get(phase, phase) if isinstance(phase, str) else float(phase)
    if isinstance(p, str):
        raise ParameterError("Unknown phase", expected="'corner', 'toolbox' or a number", got=repr(phase),
                             fix="use phase='corner'")
    if kind not in INTERPOLATORS:
        raise ParameterError("Unknown interpolator", expected=", ".join(INTERPOLATORS), got=repr(kind),
                             fix="use kind='interp23tap'")
    if border == "circular" and chunks < max(lr.sizes["y"], lr.sizes["x"]):
        # circular padding wraps around the *image*; per-tile padding would wrap each tile's own content
        raise ParameterError("border='circular' wraps around the image borders, which needs the whole image "
                             "in one chunk", expected=f"chunks >= {max(lr.sizes['y'], lr.sizes['x'])} (the "
                             "input's larger side)", got=f"chunks={chunks!r}",
                             fix=f"pass chunks={max(lr.sizes['y'], lr.sizes['x'])} or border='symmetric'")
    data = engine.map_tiles(_dask(lr), lambda t: upsample(t, r, p, kind, border), depth=upsample_halo(r, p, kind),
                            num=r, chunk=chunks, device=device, work=work)
    return _out(lr, data, r, p, up=True, attrs={"geofuse_interpolated": f"{kind} x{r}"})


# --------------------------------------------------------------------------------------------------
# Hyperspectral simulation (HSI -> LR-HSI, HSI -> MSI, noise); Yokoya et al. 2017, SPEC section 9

#: The 5x5 Starck-Murtagh B3-spline kernel ``[1 4 6 4 1]/16`` (separable), HySure's HS blur
#: (Simoes et al. 2015, doi:10.1109/TGRS.2014.2375320).
STARCK_MURTAGH = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]) / 256.0


def _phase_value(phase: Any, r: int, default: str) -> float:
    phase = default if phase is None else phase
    if isinstance(phase, str):
        table = {"corner": (r - 1) / 2, "center": float(r // 2), "toolbox": float(r // 2)}
        if phase not in table:
            raise ParameterError("Unknown decimation phase", expected="'corner', 'center' or a number",
                                 got=repr(phase), fix="use phase='corner' (LR pixel = HR block centre)")
        return table[phase]
    return float(phase)


def hs_psf(ratio: int, psf: Any = "gaussian", *, fwhm: float | None = None,
           phase: Any = None) -> tuple[np.ndarray, tuple[int, int], float]:
    """The HS sensor's PSF as an odd kernel for decimation at ``ratio*k + phase``.

    ``psf="gaussian"``: normalised Gaussian, FWHM ``ratio`` HR pixels by default (``sigma = FWHM/2.35482``),
    support ``2*ratio`` centred on the phase (Yokoya's ``gaussian_down_sample``); default phase
    ``"corner"`` ((ratio-1)/2: each LR pixel is centred on its HR block). ``psf="starck-murtagh"`` (5x5
    ``[1 4 6 4 1]/16`` separable) or a 2-D array (odd sizes, normalised to unit sum): default phase
    ``"center"`` (ratio//2, an HR sample). Returns ``(kernel, pick offsets, phase)``.
    """
    r = _check_ratio(ratio)
    if isinstance(psf, str) and psf.lower() == "gaussian":
        p = _phase_value(phase, r, "corner")
        k, off = engine.gaussian_psf_kernel(r, p, fwhm=fwhm)
        return k, off, p
    if isinstance(psf, str):
        if psf.lower().replace("_", "-") not in ("starck-murtagh", "sm", "b3"):
            raise ParameterError("Unknown PSF", expected="'gaussian', 'starck-murtagh' or a 2-D array",
                                 got=repr(psf), fix="use psf='gaussian' (FWHM = ratio)")
        psf = STARCK_MURTAGH
    k = np.asarray(psf, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] % 2 == 0 or k.shape[1] % 2 == 0 or not np.isfinite(k).all() or k.sum() <= 0:
        raise ParameterError("The PSF must be a 2-D array with odd sizes and a positive sum",
                             expected="e.g. a 5x5 kernel", got=f"shape {k.shape}",
                             fix="pad an even kernel with a zero row/column")
    p = _phase_value(phase, r, "center")
    from .kernels.resample import decimation_kernel as _dk

    k2, off = _dk(k / k.sum(), (p, p))
    return k2, off, p


def _yokoya_border(arr, lr, r: int, sigma: float):
    """Yokoya's ``gaussian_down_sample`` border rule: the outer ring of LR pixels is the r x r Gaussian
    (normalised) over their own HR block only (the 2r x 2r support would leave the image)."""
    import dask.array as da

    d = np.arange(r) - (r - 1) / 2.0
    g = np.exp(-0.5 * (d / sigma) ** 2)
    k = np.outer(g, g)
    k /= k.sum()
    h, w = lr.shape[1:]

    def blocks(strip, ny, nx):  # (B, ny*r, nx*r) -> (B, ny, nx) weighted block sums
        wts = np.tile(k, (ny, nx)).astype(np.float32)
        return da.coarsen(np.sum, strip * wts[None], {1: r, 2: r}).astype(lr.dtype)

    top = blocks(arr[:, :r, :w * r], 1, w)
    bottom = blocks(arr[:, (h - 1) * r:h * r, :w * r], 1, w)
    left = blocks(arr[:, :h * r, :r], h, 1)
    right = blocks(arr[:, :h * r, (w - 1) * r:w * r], h, 1)
    mid = da.concatenate([left[:, 1:-1], lr[:, 1:-1, 1:-1], right[:, 1:-1]], axis=2)
    out = da.concatenate([top, mid, bottom], axis=1)
    return out.rechunk(lr.chunks)


def degrade_hs(hs: xr.DataArray, ratio: int, *, psf: Any = "gaussian", fwhm: float | None = None,
               phase: Any = None, border: str = "replicate", chunks: int = engine.DEFAULT_CHUNK,
               device: str = "auto", work: str = "float32") -> xr.DataArray:
    """Spatial degradation of a hyperspectral cube: PSF blur then decimation by ``ratio`` (lazy).

    Parameters
    ----------
    hs : xarray.DataArray
        ("band", "y", "x") reference cube; rows and columns are cropped to a multiple of ``ratio``.
    ratio : int
    psf : "gaussian", "starck-murtagh" or 2-D array
        See :func:`hs_psf` (Gaussian FWHM = ratio: Yokoya et al. 2017, doi:10.1109/MGRS.2016.2637824).
    fwhm : float, optional
        Gaussian FWHM in HR pixels (default ``ratio``).
    phase : "corner", "center" or float, optional
        HR position of LR sample 0 (see :func:`hs_psf`); the output transform follows.
    border : {"replicate", "symmetric", "yokoya"}
        Image-border rule. ``"yokoya"`` (Gaussian PSF, corner phase only) reproduces
        ``gaussian_down_sample``: the outer LR ring uses the r x r Gaussian of its own block.

    Returns
    -------
    xarray.DataArray
        float32, on the grid zoomed out by ``ratio``; georeferencing and the ``wavelength`` coordinate kept.
    """
    from .kernels.filters import correlate2d

    r = _check_ratio(ratio)
    if border not in ("replicate", "symmetric", "yokoya"):
        raise ParameterError("Unknown border rule", expected="'replicate', 'symmetric' or 'yokoya'",
                             got=repr(border), fix="use border='replicate'")
    rows, cols = hs.sizes["y"] // r * r, hs.sizes["x"] // r * r
    hs = hs.isel(y=slice(0, rows), x=slice(0, cols))
    k, off, p = hs_psf(r, psf, fwhm=fwhm, phase=phase)
    if border == "yokoya" and not (isinstance(psf, str) and psf == "gaussian" and abs(p - (r - 1) / 2) < 1e-9):
        raise ParameterError("border='yokoya' is defined for the Gaussian PSF at the corner phase",
                             expected="psf='gaussian', phase='corner'", got=f"psf={psf!r}, phase={p}",
                             fix="use border='replicate'")
    mode = "symmetric" if border == "symmetric" else "replicate"
    arr = _dask(hs)

    def fn(t):
        return correlate2d(t, k, mode=mode, stride=r, offset=off)

    data = engine.map_tiles(arr, fn, depth=max(k.shape) // 2 + r, den=r, chunk=chunks, device=device, work=work)
    if border == "yokoya":
        data = _yokoya_border(arr, data, r, (float(r) if fwhm is None else float(fwhm)) / 2.35482)
    desc = f"HS PSF {psf if isinstance(psf, str) else 'array'} + decimation x{r} (phase {p}, border {border})"
    out = _out(hs, data, r, p, attrs={"geofuse_degraded": desc})
    return _keep_wavelength(hs, out)


def _keep_wavelength(src: xr.DataArray, out: xr.DataArray) -> xr.DataArray:
    if "wavelength" in src.coords:
        out = out.assign_coords(wavelength=("band", np.asarray(src["wavelength"].values)))
    return out


def spectral_response(hs: xr.DataArray, srf: Any, *, wavelengths: Sequence[float] | None = None,
                      fwhm: Sequence[float] | float | None = None) -> xr.DataArray:
    """HSI -> MSI: apply the (K, B) spectral response ``R`` per pixel, ``MSI = R @ HS`` (lazy, float32).

    ``srf``: a preset name (``"Sentinel-2A"``, ... see :data:`geofuse.srf.PRESETS`), a CSV path, an
    :class:`geofuse.srf.SRFTable` (resampled onto the HS wavelengths, rows normalised to one) or a (K, B)
    array used as given. Georeferencing kept; band names from the table.
    """

    from . import srf as _srf

    wl = wavelengths
    if wl is None and "wavelength" in hs.coords:
        wl = np.asarray(hs["wavelength"].values, dtype=np.float64)
    names = None
    if isinstance(srf, (str, _srf.SRFTable)) or hasattr(srf, "__fspath__"):
        table = srf if isinstance(srf, _srf.SRFTable) else _srf.load_srf(srf)
        names = list(table.bands)
    R = _srf.resolve_srf(srf, wl, None, hs.sizes["band"], fwhm=fwhm).astype(np.float32)
    arr = _dask(hs).rechunk({0: -1})
    data = arr.map_blocks(lambda b: np.tensordot(R, b, axes=(1, 0)).astype(np.float32),
                          chunks=((R.shape[0],),) + arr.chunks[1:], dtype=np.float32)
    transform = hs.rio.transform() if is_georeferenced(hs) else None
    out = make_raster(data, transform, hs.rio.crs if transform is not None else None,
                      band=names or list(range(1, R.shape[0] + 1)),
                      attrs={**hs.attrs, "geofuse_degraded": "spectral response " + (
                          table.name if names else "matrix")}, name=hs.name)
    out.attrs["geofuse_srf"] = R.tolist() if R.size <= 4096 else "matrix"
    if transform is None:
        for d in ("y", "x"):
            if d in hs.coords:
                out = out.assign_coords({d: hs[d].values})
    return out


def noise_sigma(x, snr_db: float, per_band: bool = False):
    r"""Noise standard deviation for a given SNR (dB), lazily:
    :math:`\sigma = \sqrt{\sum Y^2 / 10^{SNR/10} / N}` over the image (HySure), or per band."""
    import dask.array as da

    arr = x if isinstance(x, da.Array) else da.asarray(x)
    arr = arr.astype(np.float64)
    if per_band:
        return da.sqrt((arr ** 2).mean(axis=(1, 2)) / 10 ** (snr_db / 10))
    return da.sqrt((arr ** 2).mean() / 10 ** (snr_db / 10))


def _noise_block(x, sigma, seed: int, block_info=None):
    loc = block_info[0]["chunk-location"] if block_info else (0, 0, 0)
    rng = np.random.default_rng([int(seed), *map(int, loc)])
    s = np.asarray(sigma, dtype=np.float64).reshape(-1, 1, 1) if np.ndim(sigma) else float(sigma)
    return (x + s * rng.standard_normal(x.shape)).astype(x.dtype)


def add_noise(x: xr.DataArray, snr_db: float | None, *, per_band: bool = False, seed: int = 0) -> xr.DataArray:
    """Add white Gaussian noise at ``snr_db`` (image-wide sigma, or one sigma per band), seeded, lazily.

    The noise of each chunk comes from ``numpy.random.default_rng([seed, *chunk index])``: the same
    seed and chunking give the same noise. ``snr_db=None`` returns ``x`` unchanged.
    """
    if snr_db is None:
        return x
    arr = _dask(x)
    sig = noise_sigma(arr, float(snr_db), per_band)
    if per_band:
        sig = sig.rechunk(-1)
    data = arr.map_blocks(_noise_block, sig, seed=int(seed), dtype=arr.dtype) if not per_band else \
        arr.map_blocks(_noise_block, sig[:, None, None], seed=int(seed), dtype=arr.dtype)
    out = x.copy(data=data)
    out.attrs = {**x.attrs, "geofuse_noise": f"SNR {snr_db} dB ({'per band' if per_band else 'image-wide'}), "
                                             f"seed {seed}"}
    return out


def simulate_hs_ms(reference: xr.DataArray, ratio: int = 4, srf: Any = "Sentinel-2A", *,
                   snr_hs: float | None = 35.0, snr_ms: float | None = 35.0, per_band: bool = True,
                   psf: Any = "gaussian", fwhm: float | None = None, phase: Any = None,
                   border: str = "yokoya", seed: int = 0, hs_noise: str = "after",
                   chunks: int = engine.DEFAULT_CHUNK, device: str = "auto") -> tuple[xr.DataArray, xr.DataArray]:
    """The HS-MS fusion simulation protocol (Yokoya et al. 2017; SPEC section 9): from a reference cube,
    an LR-HSI (PSF + decimation, :func:`degrade_hs`) and an MSI (:func:`spectral_response`), each with
    noise at its SNR (per band by default, else image-wide). Returns ``(hs_lr, msi)``, lazy,
    georeferenced; the reference (cropped to a multiple of ``ratio``) is the ground truth.

    ``hs_noise="after"`` (default): the HS noise is added to the LR-HSI, the observation model of the
    review (``Y_h = X B S + N_h``, doi:10.1109/MGRS.2016.2637824; its demo data are named
    ``..._HSLR_fDS6_SNR35``); white noise added after the decimation has the statistics of HySure's, which
    adds it to the blurred image before picking the samples. ``hs_noise="before"``: the noise (its SNR
    taken on the reference) is added to the reference before the PSF and the decimation, which then
    average it down: a sensitivity option, one reading of SPEC section 9's "HS noise before decimation"
    when blur and decimation are one step (the toolbox's ``gaussian_down_sample``)."""
    r = _check_ratio(ratio)
    if hs_noise not in ("after", "before"):
        raise ParameterError("Unknown HS noise stage", expected="'after' or 'before'", got=repr(hs_noise),
                             fix="pass hs_noise='after' (the review's observation model)")
    ref = reference.isel(y=slice(0, reference.sizes["y"] // r * r), x=slice(0, reference.sizes["x"] // r * r))
    msi = add_noise(spectral_response(ref, srf), snr_ms, per_band=per_band, seed=seed + 1)
    src = add_noise(ref, snr_hs, per_band=per_band, seed=seed) if hs_noise == "before" else ref
    hs = degrade_hs(src, r, psf=psf, fwhm=fwhm, phase=phase, border=border, chunks=chunks, device=device)
    if hs_noise == "after":
        hs = add_noise(hs, snr_hs, per_band=per_band, seed=seed)
    return hs, msi
