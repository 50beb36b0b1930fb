"""Sensor-realistic synthetic PAN + MS scenes with a known high-resolution truth.

:func:`make_scene` renders a seeded aerial-looking landscape (fields, a river or lake, roads, a small
town, trees, cast shadows, texture at several scales), then images it with a PAN + 4-band MS sensor
model:

1. **Surface.** A material map with sharp edges and per-pixel mixing / brightness fields gives the
   surface reflectance at five channels (blue, green, red, red edge, NIR; :mod:`simulation.spectra`).
   Cast shadows keep only the diffuse-sky fraction of the signal. The path radiance (haze) is added
   and the result is scaled to DN: ``DN = (rho + haze) * s`` with
   ``s = (2**bits - 1) / REFLECTANCE_FULL_SCALE``.
2. **Truth** = the four MS channels of that at-sensor image on the PAN grid, float32, not blurred,
   not quantised, no noise: the image an ideal sensor with MS bands at PAN resolution would record.
3. **PAN** = the PAN-response-weighted sum over the five channels (weights
   :data:`simulation.spectra.PAN_WEIGHTS`, B/G/R/RE/NIR = 0.08/0.22/0.25/0.15/0.30), filtered by the
   PAN MTF (a Gaussian with gain ``pan_gnyq`` at the PAN Nyquist frequency, 0.5 cycles/pixel),
   plus noise, quantised.
4. **MS** = each truth band filtered by a Gaussian, then averaged over the ``ratio x ratio`` HR pixels
   that its LR pixel covers (the detector footprint), plus noise, quantised. The LR pixel ``k`` covers
   HR pixels ``ratio*k .. ratio*k + ratio - 1`` (corner-aligned grids, the MS transform is the PAN
   transform with the pixel size times ``ratio`` and the same origin), so the MS sample sits at HR
   position ``ratio*k + (ratio - 1)/2``. The Gaussian is chosen so that the *system* MTF
   (Gaussian x box) has exactly the sensor's gain ``gnyq`` at the LR Nyquist frequency
   ``1/(2*ratio)`` cycles/HR pixel, i.e. the MS obeys the assumption of MTF-matched methods and of the
   Wald protocol (SPEC sections 2 and 4).

MTF-matched Gaussian
--------------------
A Gaussian of standard deviation :math:`\\sigma` (HR pixels) has the frequency response
:math:`H(f) = \\exp(-2\\pi^2\\sigma^2 f^2)`. Requiring :math:`H(f_N) = g` gives

.. math:: \\sigma = \\frac{\\sqrt{-2\\ln g}}{2\\pi f_N},

so :math:`\\sigma = \\mathrm{ratio}\\,\\sqrt{-2\\ln g}/\\pi` at the LR Nyquist :math:`f_N = 1/(2\\,\\mathrm{ratio})`
(IKONOS red, g = 0.29, ratio 4: 2.0 HR pixels) and :math:`\\sigma = \\sqrt{-2\\ln g}/\\pi` at the
PAN Nyquist (IKONOS PAN, g = 0.17: 0.60 pixels). The ``ratio``-pixel box average has the gain
:math:`b = 1/(\\mathrm{ratio}\\,\\sin(\\pi/(2\\,\\mathrm{ratio})))` at :math:`f_N` (0.653 for ratio 4), so
the MS Gaussian is designed for :math:`g/b`. Filters are applied in the Fourier domain on a
symmetrically padded image (the exact continuous response, no sampled-kernel aliasing; the padding
plays the role of ``mode='reflect'``).

Everything is deterministic from ``seed`` (local ``numpy.random.Generator`` streams: one for the
layout, one for the noise, so ``noise`` does not change the scene). Sizes of objects are in HR pixels
(designed for ~1 m PAN pixels); ``pan_res`` only sets the georeferencing.

References
----------
L. Wald, T. Ranchin, M. Mangolini, "Fusion of satellite images of different spatial resolutions:
assessing the quality of resulting images", PE&RS 63(6), 1997.
B. Aiazzi, L. Alparone, S. Baronti, A. Garzelli, M. Selva, "MTF-tailored multiscale fusion of
high-resolution MS and Pan imagery", PE&RS 72(5), 2006, doi:10.14358/PERS.72.5.591.
G. Vivone et al., "A New Benchmarking of Pansharpening Methods", IEEE GRSM 9(1), 2021,
doi:10.1109/MGRS.2020.3019315.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine
from scipy import ndimage

from geofuse import sensors
from geofuse.errors import ParameterError

from . import spectra as sp

__all__ = ["Scene", "make_scene", "gaussian_sigma", "ms_sigma", "pan_sigma", "box_gain", "mtf_blur",
           "degrade_ms"]

_N_CH = len(sp.CHANNELS)


@dataclass(frozen=True, eq=False)
class Scene:
    """A synthetic PAN + MS scene and its high-resolution truth.

    Attributes
    ----------
    pan : xarray.DataArray
        ``("band", "y", "x")``, 1 band ``"pan"``, ``size x size``, uint8 (``bits <= 8``) or uint16,
        HR grid.
    ms : xarray.DataArray
        ``("band", "y", "x")``, bands ``("blue", "green", "red", "nir")``, ``size/ratio`` square,
        same dtype, LR grid corner-aligned with the PAN.
    truth : xarray.DataArray
        ``("band", "y", "x")``, the 4 bands on the HR grid, float32, same DN scale as ``ms``.
    sensor, ratio, bits, seed
        The generation parameters.
    materials : xarray.DataArray
        ``("y", "x")`` uint8 dominant material per HR pixel (labels of
        :data:`simulation.spectra.MATERIALS`, listed in ``attrs["flag_meanings"]``).
    """

    pan: xr.DataArray
    ms: xr.DataArray
    truth: xr.DataArray
    sensor: str
    ratio: int
    bits: int
    seed: int
    materials: xr.DataArray


# --------------------------------------------------------------------------------------------------
# MTF model
# --------------------------------------------------------------------------------------------------
def gaussian_sigma(gnyq: float, nyquist: float) -> float:
    """Spatial std (pixels) of the Gaussian whose response equals ``gnyq`` at ``nyquist`` cycles/pixel."""
    if not 0.0 < gnyq < 1.0:
        raise ParameterError("MTF gain out of range", expected="a gain in (0, 1)", got=f"{gnyq}",
                             fix="use the sensor's gain at Nyquist, e.g. 0.29")
    return math.sqrt(-2.0 * math.log(gnyq)) / (2.0 * math.pi * nyquist)


def box_gain(ratio: int) -> float:
    """Gain of the ``ratio``-pixel moving average at the LR Nyquist frequency ``1/(2*ratio)``."""
    return 1.0 / (ratio * math.sin(math.pi / (2 * ratio))) if ratio > 1 else 1.0


def ms_sigma(gnyq: float, ratio: int) -> float:
    """Std (HR pixels) of the MS Gaussian such that Gaussian x box has gain ``gnyq`` at ``1/(2*ratio)``."""
    g = gnyq / box_gain(ratio)
    if not g < 1.0:
        raise ParameterError("MS MTF gain too high for the pixel-footprint model",
                             expected=f"gnyq < {box_gain(ratio):.3f} (the box average alone) for ratio {ratio}",
                             got=f"{gnyq}", fix="use a sensor preset or a smaller gain")
    return gaussian_sigma(g, 1.0 / (2 * ratio))


def pan_sigma(gnyq: float) -> float:
    """Std (pixels) of the PAN Gaussian with gain ``gnyq`` at the PAN Nyquist (0.5 cycles/pixel)."""
    return gaussian_sigma(gnyq, 0.5)


def mtf_blur(img: np.ndarray, sigmas) -> np.ndarray:
    """Gaussian blur of ``(C, H, W)`` in the Fourier domain, one sigma per channel (symmetric padding).

    The transfer function is exactly ``exp(-2 pi^2 sigma^2 (fx^2 + fy^2))`` on the padded grid.
    """
    img = np.asarray(img, dtype=np.float32)
    sigmas = np.broadcast_to(np.asarray(sigmas, dtype=np.float64), (img.shape[0],))
    pad = int(math.ceil(4.0 * float(sigmas.max()))) + 2
    h, w = img.shape[1] + 2 * pad, img.shape[2] + 2 * pad
    fh, fw = scipy.fft.next_fast_len(h, real=True), scipy.fft.next_fast_len(w, real=True)
    # symmetric padding, then any extra length for a fast FFT size taken by more symmetric padding
    padded = np.pad(img, ((0, 0), (pad, pad + fh - h), (pad, pad + fw - w)), mode="symmetric")
    fy = np.fft.fftfreq(fh)[:, None]
    fx = np.fft.rfftfreq(fw)[None, :]
    f2 = (fy * fy + fx * fx).astype(np.float32)
    out = np.empty_like(img)
    for c in range(img.shape[0]):
        spec = scipy.fft.rfft2(padded[c], workers=-1)
        spec *= np.exp(np.float32(-2.0 * math.pi ** 2 * sigmas[c] ** 2) * f2)
        out[c] = scipy.fft.irfft2(spec, s=(fh, fw), workers=-1)[pad:pad + img.shape[1], pad:pad + img.shape[2]]
    return out


def degrade_ms(truth: np.ndarray, gnyq, ratio: int) -> np.ndarray:
    """MS sensor model: MTF Gaussian (:func:`ms_sigma`) then ``ratio x ratio`` block average.

    ``truth`` is ``(C, H, W)`` with ``H, W`` multiples of ``ratio``; returns ``(C, H/ratio, W/ratio)``
    float32 whose pixel ``k`` is centred at HR position ``ratio*k + (ratio-1)/2``.
    """
    c, h, w = truth.shape
    gnyq = np.broadcast_to(np.asarray(gnyq, dtype=np.float64), (c,))
    blurred = mtf_blur(truth, [ms_sigma(float(g), ratio) for g in gnyq])
    return blurred.reshape(c, h // ratio, ratio, w // ratio, ratio).mean(axis=(2, 4), dtype=np.float64) \
        .astype(np.float32)


# --------------------------------------------------------------------------------------------------
# texture
# --------------------------------------------------------------------------------------------------
def _fractal(rng: np.random.Generator, shape: tuple[int, int], beta: float, fmin: float = 1.0) -> np.ndarray:
    """Zero-mean, unit-std 1/f**beta (amplitude) noise; ``fmin`` in cycles per image damps the DC."""
    h, w = shape
    white = rng.standard_normal(shape, dtype=np.float32)
    spec = scipy.fft.rfft2(white, workers=-1)
    fy = np.fft.fftfreq(h)[:, None] * h
    fx = np.fft.rfftfreq(w)[None, :] * w
    f = np.sqrt(fy * fy + fx * fx).astype(np.float32)
    spec *= (np.maximum(f, fmin) ** np.float32(-beta))
    spec[0, 0] = 0
    out = scipy.fft.irfft2(spec, s=shape, workers=-1).astype(np.float32)
    out -= out.mean()
    out /= max(float(out.std()), 1e-12)
    return out


# --------------------------------------------------------------------------------------------------
# surface rendering
# --------------------------------------------------------------------------------------------------
class _Canvas:
    """Per-pixel surface description painted layer by layer.

    reflectance = ((1 - mix) * spec[s1] + mix * spec[s2]) * bright, with ``spec`` a growing table of
    5-channel spectra (the material spectra first, then per-object variants).
    """

    def __init__(self, size: int):
        self.size = size
        self.table: list[np.ndarray] = list(sp.table())
        m = sp.index
        self.s1 = np.full((size, size), m("grass"), dtype=np.int32)
        self.s2 = np.full((size, size), m("soil"), dtype=np.int32)
        self.mix = np.zeros((size, size), dtype=np.float32)
        self.bright = np.ones((size, size), dtype=np.float32)
        self.mat = np.full((size, size), m("grass"), dtype=np.uint8)
        self.height = np.zeros((size, size), dtype=np.float32)

    def spectrum(self, rho) -> int:
        self.table.append(np.asarray(rho, dtype=np.float32))
        return len(self.table) - 1

    def paint(self, mask, material: str, *, spec=None, spec2=None, mix=0.0, bright=1.0, height=0.0):
        """Set the masked pixels; ``spec``/``mix``/``bright``/``height`` scalars or arrays over ``mask``."""
        mi = sp.index(material)
        self.mat[mask] = mi
        self.s1[mask] = mi if spec is None else spec
        self.s2[mask] = mi if spec2 is None else spec2
        self.mix[mask] = mix
        self.bright[mask] = bright
        self.height[mask] = height


def _nearest_index(points_y, points_x, size):
    """Index of the nearest point for every pixel (discrete Voronoi), and the distance to it."""
    seeds = np.full((size, size), -1, dtype=np.int32)
    seeds[points_y, points_x] = np.arange(len(points_y), dtype=np.int32)
    dist, (iy, ix) = ndimage.distance_transform_edt(seeds < 0, return_indices=True)
    return seeds[iy, ix], dist.astype(np.float32), iy, ix


def _render_surface(size: int, rng: np.random.Generator):
    """Surface reflectance ``(5, size, size)`` float32 (no haze) and the material map."""
    cv = _Canvas(size)
    m = sp.index
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    smooth = _fractal(rng, (size, size), beta=2.2)
    tree_pts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []   # (y, x, radius) arrays

    # sun: azimuth from north (clockwise), elevation; towards-sun unit vector in (row, col)
    az = math.radians(rng.uniform(125.0, 175.0))
    elev = math.radians(rng.uniform(45.0, 65.0))
    sun = np.array([-math.cos(az), math.sin(az)])

    # ---- agricultural parcels: jittered-grid Voronoi ----------------------------------------------
    n_side = max(2, int(round(size / 90.0)))
    cell = size / n_side
    gy, gx = np.meshgrid(np.arange(n_side), np.arange(n_side), indexing="ij")
    py = np.clip(((gy + 0.5 + rng.uniform(-0.4, 0.4, gy.shape)) * cell).astype(int), 0, size - 1).ravel()
    px = np.clip(((gx + 0.5 + rng.uniform(-0.4, 0.4, gx.shape)) * cell).astype(int), 0, size - 1).ravel()
    keep = rng.random(py.size) < 0.75            # dropping seeds merges cells: varied parcel sizes
    keep[0] = True
    py, px = py[keep], px[keep]
    n_par = py.size
    pid, _, _, _ = _nearest_index(py, px, size)
    kinds = np.array(["crop", "grass", "soil", "forest", "orchard"])
    kind = rng.choice(len(kinds), size=n_par, p=[0.34, 0.2, 0.22, 0.12, 0.12])
    theta = rng.uniform(0, np.pi, n_par)
    period = rng.uniform(3.0, 8.0, n_par)
    cover = rng.uniform(0.3, 1.0, n_par)
    vigor = rng.uniform(0.0, 0.5, n_par)          # share of "grass" in a crop's spectrum
    green = rng.uniform(0.0, 0.6, n_par)          # share of "crop" in a grass parcel's spectrum
    soil_b = rng.uniform(0.7, 1.25, n_par)        # soil moisture / brightness
    T = np.asarray(cv.table)
    crop_spec = np.array([cv.spectrum((1 - v) * T[m("crop")] + v * T[m("grass")]) for v in vigor])
    grass_spec = np.array([cv.spectrum((1 - g) * T[m("grass")] + g * T[m("crop")]) for g in green])

    th = theta[pid]
    rowc = xx * np.cos(th) + yy * np.sin(th)
    stripe = 0.5 + 0.5 * np.cos(2 * np.pi * rowc / period[pid])
    k = kind[pid]
    sel = k == 0                                   # crop rows over soil
    soil_frac = np.clip((1.0 - cover[pid]) * 2.0 * (1.0 - stripe), 0.0, 1.0)
    cv.paint(sel, "crop", spec=crop_spec[pid][sel], spec2=m("soil"), mix=soil_frac[sel])
    sel = k == 1                                   # meadow / stubble with faint mowing stripes
    cv.paint(sel, "grass", spec=grass_spec[pid][sel], bright=(1.0 + 0.06 * (stripe[sel] - 0.5)))
    sel = k == 2                                   # tilled bare soil with furrows
    cv.paint(sel, "soil", bright=(soil_b[pid] * (1.0 + 0.16 * (stripe - 0.5)))[sel])
    sel = k == 3                                   # forest floor, mostly in crown shade
    cv.paint(sel, "grass", spec=grass_spec[pid][sel], bright=0.55)
    sel = k == 4                                   # orchard: mown grass between tree rows
    cv.paint(sel, "grass", spec=grass_spec[pid][sel], bright=0.95)

    # field margins (grass strips) and hedgerows on some parcel borders
    edge = np.zeros((size, size), dtype=bool)
    edge[:, 1:] |= pid[:, 1:] != pid[:, :-1]
    edge[1:, :] |= pid[1:, :] != pid[:-1, :]
    edge = ndimage.binary_dilation(edge, iterations=1)
    cv.paint(edge, "grass", bright=0.9)
    hedge_par = rng.random(n_par) < 0.3
    ey, ex = np.nonzero(edge & hedge_par[pid])
    keep = rng.random(ey.size) < 0.12
    tree_pts.append((ey[keep], ex[keep], rng.uniform(2.0, 4.0, int(keep.sum()))))

    # forest trees (random, dense) and orchard trees (a rotated square lattice per parcel)
    fy, fx = np.nonzero((k == 3) & (rng.random((size, size)) < 1.0 / 22.0))
    tree_pts.append((fy, fx, rng.uniform(2.5, 6.0, fy.size)))
    orch_sp = rng.uniform(8.0, 12.0, n_par)
    orch_r = rng.uniform(2.5, 3.5, n_par)
    oy, ox = np.nonzero(k == 4)
    op = pid[oy, ox]
    u = (ox * np.cos(theta[op]) + oy * np.sin(theta[op])) / orch_sp[op]
    v = (-ox * np.sin(theta[op]) + oy * np.cos(theta[op])) / orch_sp[op]
    on = (np.abs(u - np.round(u)) * orch_sp[op] < 0.5) & (np.abs(v - np.round(v)) * orch_sp[op] < 0.5)
    tree_pts.append((oy[on], ox[on], orch_r[op[on]]))

    # ---- water: a meandering river and/or a lake --------------------------------------------------
    water = np.zeros((size, size), dtype=bool)
    bank = np.zeros((size, size), dtype=bool)
    if rng.random() < 0.85:
        ang = rng.uniform(0, np.pi)
        cy, cx = rng.uniform(0.3, 0.7, 2) * size
        s = (xx - cx) * np.cos(ang) + (yy - cy) * np.sin(ang)
        t = -(xx - cx) * np.sin(ang) + (yy - cy) * np.cos(ang)
        L1, L2 = rng.uniform(0.6, 1.1) * size, rng.uniform(0.15, 0.3) * size
        tc = (rng.uniform(0.03, 0.07) * size * np.sin(2 * np.pi * s / L1 + rng.uniform(0, 6.3))
              + rng.uniform(0.005, 0.02) * size * np.sin(2 * np.pi * s / L2 + rng.uniform(0, 6.3)))
        half = 0.5 * rng.uniform(9.0, 22.0) * (1.0 + 0.2 * np.sin(2 * np.pi * s / rng.uniform(80, 200)))
        d = np.abs(t - tc)
        bw = np.clip(3.0 * np.sin(2 * np.pi * s / rng.uniform(60, 160) + rng.uniform(0, 6.3)) + 1.0, 0, None)
        water |= d < half
        bank |= (d >= half) & (d < half + bw)
        cv.paint(d < half, "river", bright=1.0 + 0.05 * np.tanh((d[d < half] - half[d < half] * 0.6)))
        cv.paint(bank & ~water, "sand")
        rip = (d >= half + bw) & (d < half + bw + 6.0)
        ry, rx = np.nonzero(rip)
        keep = rng.random(ry.size) < 0.035
        tree_pts.append((ry[keep], rx[keep], rng.uniform(2.5, 5.0, int(keep.sum()))))
    if rng.random() < 0.5:
        cy, cx = rng.uniform(0.15, 0.85, 2) * size
        a, b = rng.uniform(0.06, 0.12, 2) * size
        phi = rng.uniform(0, np.pi)
        u = ((xx - cx) * np.cos(phi) + (yy - cy) * np.sin(phi)) / a
        v = (-(xx - cx) * np.sin(phi) + (yy - cy) * np.cos(phi)) / b
        r = u * u + v * v + 0.35 * smooth
        lake = r < 1.0
        shore = (r >= 1.0) & (r < 1.12)
        water |= lake
        cv.paint(shore & ~water, "grass", spec=grass_spec[0], bright=1.05)
        cv.paint(lake, "water")
    cv.height[water] = 0.0

    # ---- town districts: rotated street grid, blocks of houses, big buildings, parks ---------------
    urban = np.zeros((size, size), dtype=bool)
    n_town = 1 if size < 1024 else max(1, int(round((size / 1024.0) ** 2 * 1.5)))
    for _ in range(n_town if rng.random() < 0.95 else 0):
        cy, cx = rng.uniform(0.25, 0.75, 2) * size
        R = rng.uniform(0.17, 0.26) * min(size, 1024)
        urban |= _paint_town(cv, rng, R, smooth, water | bank, xx, yy, cx, cy, sun, tree_pts)

    # ---- roads across the countryside (bridges over water), with dashed centre lines --------------
    road = np.zeros((size, size), dtype=bool)
    for _ in range(2 + size // 768):
        ang = rng.uniform(0, np.pi)
        cy, cx = rng.uniform(0.2, 0.8, 2) * size
        wdt = rng.uniform(4.0, 8.0)
        along = (xx - cx) * np.cos(ang) + (yy - cy) * np.sin(ang)
        d = np.abs(-(xx - cx) * np.sin(ang) + (yy - cy) * np.cos(ang))
        on = (d < wdt / 2) & ~urban
        road |= on
        cv.paint(on, "asphalt")
        if wdt >= 6.0:
            dash = on & (d < 0.55) & ((along % 12.0) < 6.0)
            cv.paint(dash, "concrete", bright=1.35)
        if rng.random() < 0.5:
            side = (np.abs(d - (wdt / 2 + 3.5)) < 0.5) & ~urban & ~water & ((along % 9.0) < 1.0)
            sy, sx = np.nonzero(side)
            tree_pts.append((sy, sx, rng.uniform(2.0, 3.5, sy.size)))

    # ---- farmhouses: isolated rotated rectangles -------------------------------------------------
    free = ~(water | bank | urban | road)
    for _ in range(max(1, size * size // (250 * 250))):
        cy, cx = rng.uniform(0.05, 0.95, 2) * size
        L, W = rng.uniform(10, 22), rng.uniform(7, 13)
        phi = rng.uniform(0, np.pi)
        rad = int(math.hypot(L, W) / 2) + 2
        y0, y1 = int(max(cy - rad, 0)), int(min(cy + rad, size))
        x0, x1 = int(max(cx - rad, 0)), int(min(cx + rad, size))
        if y1 <= y0 or x1 <= x0 or not free[y0:y1, x0:x1].all():
            continue
        u = (xx[y0:y1, x0:x1] - cx) * np.cos(phi) + (yy[y0:y1, x0:x1] - cy) * np.sin(phi)
        v = -(xx[y0:y1, x0:x1] - cx) * np.sin(phi) + (yy[y0:y1, x0:x1] - cy) * np.cos(phi)
        inside = (np.abs(u) < L / 2) & (np.abs(v) < W / 2)
        roof = ["tile_roof", "grey_roof", "metal_roof"][rng.integers(0, 3)]
        nrm = np.array([np.cos(phi), -np.sin(phi)])   # (row, col) of the +v direction
        shade = 1.0 + 0.13 * np.sign(v[inside]) * float(nrm @ sun) if roof != "metal_roof" else 1.0
        full = np.zeros((size, size), dtype=bool)
        full[y0:y1, x0:x1] = inside
        cv.paint(full, roof, bright=shade, height=rng.uniform(4.0, 8.0))
        free &= ~full

    # ---- trees: round crowns with sun-side shading, over non-built, non-water ground -------------
    ty = np.concatenate([p[0] for p in tree_pts]).astype(np.int64)
    tx = np.concatenate([p[1] for p in tree_pts]).astype(np.int64)
    tr = np.concatenate([p[2] for p in tree_pts]).astype(np.float32)
    builtish = np.isin(cv.mat, [m("tile_roof"), m("grey_roof"), m("metal_roof"), m("asphalt")])
    ok = (ty >= 0) & (ty < size) & (tx >= 0) & (tx < size)
    ty, tx, tr = ty[ok], tx[ok], tr[ok]
    ok = ~water[ty, tx] & ~builtish[ty, tx]
    ty, tx, tr = ty[ok], tx[ok], tr[ok]
    if ty.size:
        idx, dist, iy, ix = _nearest_index(ty, tx, size)
        rad = tr[idx]
        crown = (dist <= rad) & ~water & ~np.isin(cv.mat, [m("tile_roof"), m("grey_roof"), m("metal_roof")])
        tvar = rng.uniform(0.0, 0.45, ty.size).astype(np.float32)      # greener (crop-like) share
        tb = rng.uniform(0.85, 1.15, ty.size).astype(np.float32)
        oy = (yy - iy) / np.maximum(rad, 1.0)
        ox = (xx - ix) / np.maximum(rad, 1.0)
        q = np.clip(dist / np.maximum(rad, 1.0), 0.0, 1.0)
        shade = tb[idx] * (1.0 + 0.35 * (oy * sun[0] + ox * sun[1]) - 0.2 * q * q)
        h = 1.8 * rad * (0.6 + 0.4 * np.sqrt(1.0 - q * q))
        cv.paint(crown, "tree", spec2=m("crop"), mix=tvar[idx][crown], bright=shade[crown], height=h[crown])

    # ---- compose: spectra x brightness x texture, cast shadows ------------------------------------
    fine = _fractal(rng, (size, size), beta=1.1)
    veg_tex = _fractal(rng, (size, size), beta=1.4)
    amp = np.array([sp.TEXTURE[name] for name in sp.MATERIALS], dtype=np.float32)
    bright = cv.bright * (1.0 + amp[cv.mat] * fine) * (1.0 + 0.04 * smooth)
    table = np.asarray(cv.table, dtype=np.float32)
    shadow = _cast_shadows(cv.height, sun, math.tan(elev))
    veg = np.isin(cv.mat, [m("crop"), m("grass"), m("tree")])
    dveg = table[m("crop")] - table[m("grass")]
    refl = np.empty((_N_CH, size, size), dtype=np.float32)
    for c in range(_N_CH):
        col = table[:, c]
        r = (1.0 - cv.mix) * col[cv.s1] + cv.mix * col[cv.s2]
        r *= bright
        r += np.where(veg, np.float32(0.12 * dveg[c]) * veg_tex, np.float32(0.0))
        r[shadow] *= np.float32(sp.SHADOW_FACTOR[c])
        np.maximum(r, 0.0, out=r)
        refl[c] = r
    return refl, cv.mat


def _paint_town(cv: _Canvas, rng, R, smooth, wet, xx, yy, cx, cy, sun, tree_pts) -> np.ndarray:
    """A rotated street grid of whole blocks whose centres lie within a wobbly radius ``R`` of
    ``(cx, cy)``: houses (2x2 lots), large buildings, parks. Returns the district mask."""
    m = sp.index
    phi = rng.uniform(0, np.pi / 2)
    P = rng.uniform(42.0, 64.0)                   # block pitch
    ws = rng.uniform(5.0, 8.0)                    # street width
    size = cv.size
    nb = int(math.ceil(size * 1.5 / P)) + 2
    n = 2 * nb + 1
    inner = P - ws
    # which blocks belong to the town (block centre inside the wobbly disc), and the window they cover
    ci, cj = np.meshgrid(np.arange(n) - nb + 0.5, np.arange(n) - nb + 0.5, indexing="ij")
    bx = cx + ci * P * np.cos(phi) - cj * P * np.sin(phi)
    by = cy + ci * P * np.sin(phi) + cj * P * np.cos(phi)
    wob = smooth[np.clip(by, 0, size - 1).astype(int), np.clip(bx, 0, size - 1).astype(int)]
    member = np.hypot(bx - cx, by - cy) < R * (1.0 + 0.25 * wob)
    district = np.zeros((size, size), dtype=bool)
    if not member.any():
        return district
    half = P * math.sqrt(0.5) + 1.0
    y0, y1 = int(max(by[member].min() - half, 0)), int(min(by[member].max() + half + 1, size))
    x0, x1 = int(max(bx[member].min() - half, 0)), int(min(bx[member].max() + half + 1, size))
    if y1 <= y0 or x1 <= x0:
        return district
    win = (slice(y0, y1), slice(x0, x1))
    xw, yw = xx[win], yy[win]
    u = (xw - cx) * np.cos(phi) + (yw - cy) * np.sin(phi)
    v = -(xw - cx) * np.sin(phi) + (yw - cy) * np.cos(phi)
    bi = np.clip(np.floor(u / P).astype(np.int64) + nb, 0, n - 1)
    bj = np.clip(np.floor(v / P).astype(np.int64) + nb, 0, n - 1)
    a = u - (bi - nb) * P - ws                    # coordinates inside the block (street on the low side)
    b = v - (bj - nb) * P - ws
    dist_w = member[bi, bj] & ~wet[win]
    district[win] = dist_w
    street = dist_w & ((a < 0) | (b < 0))
    mat_w, s1_w, s2_w = cv.mat[win], cv.s1[win], cv.s2[win]
    mix_w, bright_w, height_w = cv.mix[win], cv.bright[win], cv.height[win]
    mat_w[street] = s1_w[street] = s2_w[street] = m("asphalt")
    mix_w[street], bright_w[street], height_w[street] = 0.0, 1.0, 0.0
    blk = dist_w & ~street
    btype = rng.choice(3, size=(n, n), p=[0.62, 0.22, 0.16])     # houses, large building, park
    split_a = rng.uniform(0.35, 0.65, (n, n)) * inner
    split_b = rng.uniform(0.35, 0.65, (n, n)) * inner
    roofs = np.array([m("tile_roof"), m("grey_roof"), m("metal_roof"), m("concrete")])
    roof = rng.choice(4, size=(n, n, 2, 2), p=[0.5, 0.25, 0.1, 0.15])
    empty = rng.random((n, n, 2, 2)) < 0.12
    margins = rng.uniform(0.1, 0.3, (n, n, 2, 2, 4))
    hgt = rng.uniform(4.0, 9.0, (n, n, 2, 2))
    lawn = rng.random((n, n, 2, 2)) < 0.6
    big_roof = rng.choice([m("metal_roof"), m("concrete"), m("grey_roof")], size=(n, n))
    big_m = rng.uniform(3.0, 7.0, (n, n))
    big_h = rng.uniform(10.0, 22.0, (n, n))

    I, J = bi[blk], bj[blk]
    A, B = a[blk], b[blk]
    bt = btype[I, J]
    li = (A >= split_a[I, J]).astype(np.int64)
    lj = (B >= split_b[I, J]).astype(np.int64)
    la = A - li * split_a[I, J]
    lb = B - lj * split_b[I, J]
    La = np.where(li == 1, inner - split_a[I, J], split_a[I, J])
    Lb = np.where(lj == 1, inner - split_b[I, J], split_b[I, J])
    mg = margins[I, J, li, lj]
    in_house = ((la > mg[:, 0] * La) & (la < La - mg[:, 1] * La) & (lb > mg[:, 2] * Lb) & (lb < Lb - mg[:, 3] * Lb)
                & ~empty[I, J, li, lj] & (bt == 0))
    in_big = (bt == 1) & (A > big_m[I, J]) & (A < inner - big_m[I, J]) & (B > big_m[I, J]) & (B < inner - big_m[I, J])

    # ground of the blocks: lawns or paving for houses, paving for large buildings, lawn for parks
    ground_lawn = ((bt == 0) & lawn[I, J, li, lj]) | (bt == 2)
    vals_s1 = np.where(ground_lawn, m("crop"), m("concrete"))
    vals_mat = vals_s1.astype(np.uint8)
    vals_mix = np.where(ground_lawn, 0.35, 0.0).astype(np.float32)
    vals_b = np.where(ground_lawn, 1.0, 0.85).astype(np.float32)
    vals_h = np.zeros(A.shape, dtype=np.float32)
    # houses: gable roofs (ridge along the long side, the sun-facing slope brighter) for tiles/shingles
    rr = roofs[roof[I, J, li, lj]]
    long_a = (La * (1 - mg[:, 0] - mg[:, 1])) >= (Lb * (1 - mg[:, 2] - mg[:, 3]))
    ca = (mg[:, 0] * La + La - mg[:, 1] * La) / 2
    cb = (mg[:, 2] * Lb + Lb - mg[:, 3] * Lb) / 2
    # normals of the slopes in (row, col): the +b direction is (cos phi, -sin phi) and +a is (sin phi, cos phi)
    na = np.array([np.sin(phi), np.cos(phi)]) @ sun
    nbv = np.array([np.cos(phi), -np.sin(phi)]) @ sun
    side = np.where(long_a, np.sign(lb - cb) * nbv, np.sign(la - ca) * na)
    gable = np.isin(rr, [m("tile_roof"), m("grey_roof")])
    vals_s1 = np.where(in_house, rr, vals_s1)
    vals_mat = np.where(in_house, rr, vals_mat).astype(np.uint8)
    vals_mix = np.where(in_house, 0.0, vals_mix).astype(np.float32)
    vals_b = np.where(in_house, np.where(gable, 1.0 + 0.15 * side, 1.0), vals_b).astype(np.float32)
    vals_h = np.where(in_house, hgt[I, J, li, lj], vals_h).astype(np.float32)
    br = big_roof[I, J]
    vals_s1 = np.where(in_big, br, vals_s1)
    vals_mat = np.where(in_big, br, vals_mat).astype(np.uint8)
    vals_mix = np.where(in_big, 0.0, vals_mix).astype(np.float32)
    vals_b = np.where(in_big, 1.0, vals_b).astype(np.float32)
    vals_h = np.where(in_big, big_h[I, J], vals_h).astype(np.float32)

    mat_w[blk] = vals_mat
    s1_w[blk] = vals_s1
    s2_w[blk] = m("concrete")
    mix_w[blk] = vals_mix
    bright_w[blk] = vals_b
    height_w[blk] = vals_h

    # trees in lawns and parks
    gy, gx = np.nonzero(blk)
    gy += y0
    gx += x0
    lawn_px = ground_lawn & ~in_house & ~in_big
    prob = np.where(bt == 2, 0.02, 0.004)[lawn_px]
    keep = rng.random(prob.size) < prob
    tree_pts.append((gy[lawn_px][keep], gx[lawn_px][keep], rng.uniform(2.0, 5.0, int(keep.sum()))))
    return district


def _cast_shadows(height: np.ndarray, sun: np.ndarray, tan_elev: float) -> np.ndarray:
    """Pixels whose line of sight to the sun is blocked by a taller pixel (height map in pixels)."""
    hmax = float(height.max())
    shadow = np.zeros(height.shape, dtype=bool)
    if hmax <= 0:
        return shadow
    h, w = height.shape
    for t in range(1, int(math.ceil(hmax / tan_elev)) + 1):
        dy, dx = int(round(t * sun[0])), int(round(t * sun[1]))
        # shifted[p] = height[p + (dy, dx)] (0 outside)
        shifted = np.zeros_like(height)
        ys, yd = (slice(dy, h), slice(0, h - dy)) if dy >= 0 else (slice(0, h + dy), slice(-dy, h))
        xs, xd = (slice(dx, w), slice(0, w - dx)) if dx >= 0 else (slice(0, w + dx), slice(-dx, w))
        shifted[yd, xd] = height[ys, xs]
        shadow |= (shifted - height) > t * tan_elev
    return shadow


# --------------------------------------------------------------------------------------------------
# public entry point
# --------------------------------------------------------------------------------------------------
def _grid_coords(n: int, res: float, origin: tuple[float, float]):
    x0, y0 = origin
    x = x0 + (np.arange(n) + 0.5) * res
    y = y0 - (np.arange(n) + 0.5) * res
    return y, x, Affine(res, 0.0, x0, 0.0, -res, y0)


def _to_da(data, bands, res, origin, crs, attrs) -> xr.DataArray:
    y, x, transform = _grid_coords(data.shape[-1], res, origin)
    da = xr.DataArray(data, dims=("band", "y", "x"), coords={"band": list(bands), "y": y, "x": x})
    da = da.rio.write_crs(crs).rio.write_transform(transform)
    da.attrs.update(attrs)
    da.attrs["long_name"] = tuple(bands)
    return da


def make_scene(size: int = 512, *, ratio: int = 4, sensor: str = "IKONOS", bits: int = 11, seed: int = 0,
               crs: str = "EPSG:32633", origin: tuple[float, float] = (500000.0, 4650000.0),
               pan_res: float = 1.0, noise: float = 0.0) -> Scene:
    """Render a synthetic, georeferenced PAN + 4-band MS scene with its HR multispectral truth.

    Parameters
    ----------
    size : int
        PAN side in pixels; a multiple of ``ratio``, at least ``8 * ratio``.
    ratio : int
        MS pixel size / PAN pixel size (integer >= 1).
    sensor : str
        Sensor preset of :func:`geofuse.sensors.get` giving the MS and PAN MTF gains at Nyquist.
    bits : int
        Radiometric resolution: DN in ``[0, 2**bits - 1]``; uint8 for ``bits <= 8``, else uint16.
    seed : int
        Seed of the local random generators (layout and noise); same seed, same scene.
    crs, origin, pan_res
        CRS, upper-left corner ``(x, y)`` of both grids, PAN pixel size in CRS units.
    noise : float
        Std of additive Gaussian noise in DN on the PAN and the MS (not on the truth).

    Returns
    -------
    Scene
        numpy-backed DataArrays ``pan`` (1, size, size), ``ms`` (4, size/ratio, size/ratio) and
        ``truth`` (4, size, size) float32, plus the material map. See the module docstring for the model.
    """
    if not isinstance(ratio, (int, np.integer)) or ratio < 1:
        raise ParameterError("Invalid ratio", expected="an integer >= 1", got=repr(ratio), fix="use ratio=4")
    if not isinstance(size, (int, np.integer)) or size < 8 * ratio or size % ratio:
        raise ParameterError("Invalid scene size", expected=f"an integer multiple of ratio={ratio}, >= {8 * ratio}",
                             got=repr(size), fix=f"use size={max(8 * ratio, (int(size) // ratio) * ratio)}")
    if not 1 <= int(bits) <= 16:
        raise ParameterError("Invalid bit depth", expected="1 <= bits <= 16", got=repr(bits), fix="use bits=11")
    if noise < 0:
        raise ParameterError("Invalid noise", expected="noise std >= 0 (DN)", got=repr(noise), fix="use noise=0")
    size, ratio, bits = int(size), int(ratio), int(bits)
    sens = sensors.get(sensor, 4)
    gains = sens.gains(4)

    layout_ss, noise_ss = np.random.SeedSequence(seed).spawn(2)
    refl, mat = _render_surface(size, np.random.default_rng(layout_ss))

    dmax = float(2 ** bits - 1)
    scale = dmax / sp.REFLECTANCE_FULL_SCALE
    at_sensor = (refl + np.asarray(sp.PATH_RADIANCE, dtype=np.float32)[:, None, None]) * np.float32(scale)
    truth = np.ascontiguousarray(at_sensor[list(sp.MS_CHANNELS)])
    pan_ideal = np.tensordot(np.asarray(sp.PAN_WEIGHTS, dtype=np.float32), at_sensor, axes=1)[None]
    del refl, at_sensor
    pan = mtf_blur(pan_ideal, [pan_sigma(sens.pan_gnyq)])
    ms = degrade_ms(truth, gains, ratio)
    if noise > 0:
        nrng = np.random.default_rng(noise_ss)
        pan += nrng.standard_normal(pan.shape, dtype=np.float32) * np.float32(noise)
        ms += nrng.standard_normal(ms.shape, dtype=np.float32) * np.float32(noise)
    dtype = np.uint8 if bits <= 8 else np.uint16

    def quantise(a):
        return np.clip(np.rint(a), 0.0, dmax).astype(dtype)

    common = {"sensor": sens.name, "bits": bits, "seed": int(seed), "ratio": ratio,
              "reflectance_scale": scale, "units": "DN"}
    pan_da = _to_da(quantise(pan), ("pan",), pan_res, origin, crs,
                    common | {"mtf_gnyq": sens.pan_gnyq, "description": "synthetic PAN"})
    ms_da = _to_da(quantise(ms), sp.MS_BANDS, pan_res * ratio, origin, crs,
                   common | {"mtf_gnyq": tuple(gains), "description": "synthetic MS"})
    truth_da = _to_da(truth.astype(np.float32), sp.MS_BANDS, pan_res, origin, crs,
                      common | {"description": "synthetic HR multispectral truth (unquantised DN)"})
    y, x, transform = _grid_coords(size, pan_res, origin)
    mat_da = xr.DataArray(mat, dims=("y", "x"), coords={"y": y, "x": x}, name="materials")
    mat_da = mat_da.rio.write_crs(crs).rio.write_transform(transform)
    mat_da.attrs.update(flag_values=tuple(range(len(sp.MATERIALS))), flag_meanings=" ".join(sp.MATERIALS),
                        long_name="dominant surface material")
    return Scene(pan=pan_da, ms=ms_da, truth=truth_da, sensor=sens.name, ratio=ratio, bits=bits,
                 seed=int(seed), materials=mat_da)
