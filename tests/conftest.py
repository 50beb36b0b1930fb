"""Shared test fixtures: the ``../shared`` reference data and small synthetic georeferenced PAN/MS pairs.

The synthetic pairs are made by :func:`synthetic_pair`, a committed generator with a local seeded RNG
(``numpy.random.default_rng(seed)``; no global state), in the spirit of TorchGeo's ``tests/data``
generators: a smooth random high-resolution scene with 4 spectrally correlated bands is built, the PAN is
a weighted sum of the bands plus a little noise, and the MS is the scene block-averaged by ``ratio``
(corner-aligned grids) or sampled at the toolbox's centred phase. Values look like 11-bit DN
(~150..1900) so that integer and float paths are both exercised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from affine import Affine

from geofuse.grid import lowres_transform
from geofuse.raster import make_raster

#: ``../shared`` beside the checkout (reference data; absent in a bare clone).
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SHARED_MISSING = "../shared not found: reference tests need the shared data beside the checkout"

UTM = "EPSG:32633"
#: HR (PAN) transform of the synthetic pairs: 0.5 m pixels, north-up.
PAN_TRANSFORM = Affine(0.5, 0.0, 500_000.0, 0.0, -0.5, 4_000_000.0)


def shared_path(*parts: str) -> Path:
    """A path under ``../shared``; skips the calling test when it is absent."""
    p = SHARED.joinpath(*parts)
    if not SHARED.is_dir() or not p.exists():
        pytest.skip(SHARED_MISSING)
    return p


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` (the reference data beside the checkout); skips when absent."""
    return shared_path()


# --------------------------------------------------------------------------------------------------
# synthetic PAN / MS generator


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], scale: int) -> np.ndarray:
    """A smooth random field in [0, 1]: coarse noise, bilinearly upsampled, plus finer texture."""
    h, w = shape
    out = np.zeros(shape)
    for s, amp in ((scale, 1.0), (max(2, scale // 4), 0.35), (1, 0.05)):
        gh, gw = h // s + 2, w // s + 2
        g = rng.standard_normal((gh, gw))
        yy = np.arange(h) / s
        xx = np.arange(w) / s
        y0, x0 = np.floor(yy).astype(int), np.floor(xx).astype(int)
        fy, fx = (yy - y0)[:, None], (xx - x0)[None, :]
        v = (g[y0][:, x0] * (1 - fy) * (1 - fx) + g[y0 + 1][:, x0] * fy * (1 - fx)
             + g[y0][:, x0 + 1] * (1 - fy) * fx + g[y0 + 1][:, x0 + 1] * fy * fx)
        out += amp * v
    out -= out.min()
    return out / out.max()


def synthetic_scene(lr_shape: tuple[int, int], ratio: int, *, bands: int = 4, seed: int = 0,
                    phase: str = "corner") -> tuple[np.ndarray, np.ndarray]:
    """``(ms (bands, h, w), pan (1, ratio*h, ratio*w))`` as float64 DN-like arrays.

    ``phase="corner"``: MS pixel k is the mean of HR pixels ``ratio*k .. ratio*k + ratio - 1``;
    ``phase="toolbox"``: MS pixel k is a local mean centred on HR pixel ``ratio*k + ratio//2``.
    """
    rng = np.random.default_rng(seed)
    h, w = lr_shape
    H, W = ratio * h, ratio * w
    base = _smooth_field(rng, (H, W), 16)
    detail = _smooth_field(rng, (H, W), 3)
    scene = np.empty((bands, H, W))
    for b in range(bands):
        own = _smooth_field(rng, (H, W), 24)
        scene[b] = 150 + 1500 * (0.55 * base + 0.25 * own + 0.2 * detail) * (0.7 + 0.1 * b)
    weights = rng.uniform(0.15, 0.35, bands)
    pan = (weights[:, None, None] * scene).sum(0) / weights.sum() + rng.normal(0, 2.0, (H, W))
    if phase == "corner":
        ms = scene.reshape(bands, h, ratio, w, ratio).mean(axis=(2, 4))
    elif phase == "toolbox":
        p = ratio // 2
        padded = np.pad(scene, ((0, 0), (1, 1), (1, 1)), mode="edge")
        local = sum(padded[:, 1 + dy:1 + dy + H, 1 + dx:1 + dx + W] for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9
        ms = local[:, p::ratio, p::ratio]
    else:
        raise ValueError(phase)
    return ms, pan[None]


def synthetic_pair(lr_shape: tuple[int, int] = (29, 37), ratio: int = 4, *, bands: int = 4,
                   dtype=np.uint16, seed: int = 0, phase: str = "corner", crs: str = UTM,
                   pan_transform: Affine = PAN_TRANSFORM, chunks: int | None = 64,
                   ) -> tuple[xr.DataArray, xr.DataArray]:
    """A georeferenced ``(ms, pan)`` pair of DataArrays (dask-backed unless ``chunks=None``).

    The MS transform is :func:`geofuse.grid.lowres_transform` of the PAN transform at the phase
    (corner: ``(ratio-1)/2``; toolbox: ``ratio//2``), so the pair fits exactly.
    """
    ms, pan = synthetic_scene(lr_shape, ratio, bands=bands, seed=seed, phase=phase)
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        ms, pan = np.rint(ms), np.rint(pan)
    ms, pan = ms.astype(dtype), pan.astype(dtype)
    p = (ratio - 1) / 2 if phase == "corner" else float(ratio // 2)
    ms_t = lowres_transform(pan_transform, ratio, (p, p))
    band = [f"b{i}" for i in range(1, bands + 1)]
    ms_da = make_raster(ms, ms_t, crs, band=band)
    pan_da = make_raster(pan, pan_transform, crs, band=["pan"])
    if chunks is not None:
        ms_da = ms_da.chunk({"band": -1, "y": max(1, chunks // ratio), "x": max(1, chunks // ratio)})
        pan_da = pan_da.chunk({"band": -1, "y": chunks, "x": chunks})
    return ms_da, pan_da


@pytest.fixture
def pair_u16() -> tuple[xr.DataArray, xr.DataArray]:
    """Corner-aligned uint16 pair, ratio 4, odd sizes: MS 29 x 37, PAN 116 x 148."""
    return synthetic_pair((29, 37), 4, dtype=np.uint16, seed=1)


@pytest.fixture
def pair_f32() -> tuple[xr.DataArray, xr.DataArray]:
    """The same scene as float32."""
    return synthetic_pair((29, 37), 4, dtype=np.float32, seed=1)
