"""The chunked fusion engine: the only code that knows about chunks.

For a pansharpening-like method with inputs ``("ms", "pan")`` the engine

1. fits the two grids (:func:`geofuse.grid.fit_grids`): integer ratio, sub-pixel phase, windows;
2. converts both inputs to float32 dask arrays on a common block layout: the HR chunks are exactly
   ``ratio`` times the LR chunks, so LR block ``(i, j)`` covers HR block ``(i, j)``;
3. replaces nodata by the band's valid mean (so filters see a neutral value) and keeps the masks;
4. runs the method's ``estimate`` once, as lazy global reductions (:mod:`geofuse.stats`);
5. runs the method's ``apply`` per block through an overlap of ``halo`` pixels (``boundary='none'``:
   at the image's own borders every filter pads with its own rule, exactly as on the whole image),
   upsampling the LR tile *inside* the task, on the torch device;
6. trims the halo, casts to the output dtype, restores nodata.

Nothing is computed until the caller asks for it.

Hyperspectral methods (HS + MSI fusion)
---------------------------------------
A method registered with ``scenario="hyperspectral"`` and ``inputs=("hs", "msi")`` runs through the same
engine with the roles shifted, so everything above (layout, masks, nodata, halo, laziness) is shared:

* the high-resolution input may have ``K >= 1`` bands (the MSI; a PAN is the ``K = 1`` case).
  :func:`prepare` takes ``hr_bands=None`` for such methods (pansharpening keeps ``hr_bands=1`` and its
  :class:`BandCountError`);
* in ``apply``, ``block.pan`` is the ``(K, H, W)`` MSI tile and ``block.ms_lr`` the ``(B, h, w)`` HS tile
  (``block.ms`` its interpolation onto the tile); ``apply`` returns ``(B, H, W)``;
* ``estimate(ctx, params)`` gets the :class:`Prepared` context with ``ctx.pan`` = the MSI ``(K, H, W)``,
  ``ctx.ms_lr`` = the HS ``(B, h, w)``, and ``ctx.srf``: the ``(K, B)`` spectral response matrix ``R``
  (MSI = R @ HS per pixel) as a lazy dask array -- the user's matrix when one was given
  (``fuse_hyperspectral(srf=...)``), else estimated from the data by :func:`estimate_srf` (regularised
  least squares of the MSI degraded onto the HS grid on the HS bands, HySure-style). ``ctx.msi_lr``
  is that degraded MSI (lazy, ``(K, h, w)``). Global quantities (SRF, subspace, endmembers, dictionary)
  belong in ``estimate``, never per chunk;
* iterative methods whose chunked result is not bit-identical to the whole image set
  ``exact_chunking=False`` and state their seam bound in ``MethodSpec.seam_tolerance`` (checked by
  tests/test_contract.py).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Mapping

import dask
import dask.array as da
import numpy as np
import torch
import xarray as xr

from . import sensors as _sensors
from .device import resolve_device
from .errors import BandCountError, InputError, ParameterError
from .kernels.hs_simple import gaussian_psf_kernel, psf_halo
from .kernels.resample import INTERPOLATORS, decimate, upsample, upsample_halo
from .raster import nodata_of  # noqa: F401  (engine.nodata_of is used by api and degrade)

COMPAT = ("default", "toolbox")
DEFAULT_CHUNK = 1024


@dataclass
class Block:
    """One chunk of the inputs, with halo, as torch tensors on the task's device.

    Attributes
    ----------
    pan : torch.Tensor or None
        (1, H, W) high-resolution tile (nodata filled); for hyperspectral methods the (K, H, W) MSI tile.
    ms_lr : torch.Tensor
        (C, h, w) low-resolution tile, ``H = ratio * h``; for hyperspectral methods the (B, h, w) HS tile.
    ratio : int
    phase : tuple of float
        HR position of LR sample 0 of the tile, per axis (see :mod:`geofuse.kernels.resample`).
    compat : {"default", "toolbox"}
    interpolation : str
    sensor : geofuse.sensors.Sensor
    """

    pan: torch.Tensor | None
    ms_lr: torch.Tensor
    ratio: int
    phase: tuple[float, float]
    compat: str
    interpolation: str
    sensor: _sensors.Sensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    #: LR (row, col) of the tile's first LR sample, halo included, in the fused window; HR = ratio * this.
    #: For methods whose own statistics live on a grid fixed to the image (block-wise BDSD, pyramids).
    origin: tuple[int, int] = (0, 0)

    @property
    def border(self) -> str:
        """Border rule of the interpolator: the toolbox's interp23tap is circular."""
        return "circular" if self.compat == "toolbox" else "symmetric"

    @property
    def device(self) -> torch.device:
        return self.ms_lr.device

    @property
    def dtype(self) -> torch.dtype:
        return self.ms_lr.dtype

    @cached_property
    def ms(self) -> torch.Tensor:
        """The LR tile interpolated onto the HR tile (``interp23tap`` by default), computed in-task."""
        return self.upsample(self.ms_lr)

    def upsample(self, x_lr: torch.Tensor) -> torch.Tensor:
        return upsample(x_lr, self.ratio, self.phase, self.interpolation, self.border)

    def decimate(self, x_hr: torch.Tensor) -> torch.Tensor:
        return decimate(x_hr, self.ratio, self.phase)

    @property
    def gains(self) -> tuple[float, ...]:
        return self.sensor.gains(self.ms_lr.shape[0])


# --------------------------------------------------------------------------------------------------
# layout


@dataclass(frozen=True)
class Layout:
    """Block layout shared by the HR and LR arrays."""

    ratio: int
    lr_chunks: tuple[tuple[int, ...], tuple[int, ...]]

    @property
    def hr_chunks(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return tuple(tuple(self.ratio * c for c in cs) for cs in self.lr_chunks)  # type: ignore[return-value]


def _axis_chunks(n: int, size: int, min_size: int) -> tuple[int, ...]:
    size = max(size, min_size, 1)
    chunks = [size] * (n // size)
    rest = n - size * len(chunks)
    if rest:
        if chunks and rest < min_size:
            chunks[-1] += rest
        else:
            chunks.append(rest)
    return tuple(chunks) or (n,)


def make_layout(lr_shape: tuple[int, int], ratio: int, hr_chunk: int | tuple[int, int] | None,
                lr_halo: int) -> Layout:
    """LR chunks of ``hr_chunk // ratio`` (>= the LR halo so overlaps stay between neighbours)."""
    if hr_chunk is None:
        hr_chunk = DEFAULT_CHUNK
    cy, cx = (hr_chunk, hr_chunk) if isinstance(hr_chunk, int) else hr_chunk
    if min(cy, cx) < 1:
        raise ParameterError("Chunk size must be positive", expected="chunks >= 1 HR pixel", got=str(hr_chunk),
                             fix="pass chunks=1024")
    ly = _axis_chunks(lr_shape[0], max(1, cy // ratio), lr_halo)
    lx = _axis_chunks(lr_shape[1], max(1, cx // ratio), lr_halo)
    return Layout(ratio, (ly, lx))


# --------------------------------------------------------------------------------------------------
# per-block execution

_TORCH_THREADS_SET = False
_TORCH_LOCK = threading.Lock()


def _configure_torch_threads() -> None:
    """Inside dask's thread pool each task uses one torch thread (dask provides the parallelism)."""
    global _TORCH_THREADS_SET
    if not _TORCH_THREADS_SET and threading.current_thread() is not threading.main_thread():
        with _TORCH_LOCK:
            if not _TORCH_THREADS_SET:
                torch.set_num_threads(1)
                _TORCH_THREADS_SET = True


def _torch_dtype(work: str) -> torch.dtype:
    return torch.float64 if work == "float64" else torch.float32


def _edges(block_info: Mapping | None) -> tuple[bool, bool, bool, bool]:
    """(top, bottom, left, right): is that side of this block a border of the whole image?"""
    if not block_info:
        return (True, True, True, True)
    info = block_info[None]  # the output block: same block grid as every input
    (_, iy, ix), (_, ny, nx) = info["chunk-location"], info["num-chunks"]
    return (iy == 0, iy == ny - 1, ix == 0, ix == nx - 1)


def _trim(x: np.ndarray, h: int, edges: tuple[bool, bool, bool, bool]) -> np.ndarray:
    top, bottom, left, right = (0 if e else h for e in edges)
    H, W = x.shape[-2:]
    return x[..., top:H - bottom, left:W - right]


@dataclass(frozen=True)
class _TaskSpec:
    """Everything a block task needs besides its arrays; small and picklable."""

    fn: Callable[..., Any]
    params: Mapping[str, Any]
    ratio: int
    phase: tuple[float, float]
    compat: str
    interpolation: str
    sensor: _sensors.Sensor
    device: str
    work: str
    lr_halo: int
    out_grid: str  # "hr" or "lr"


def _run_block(task: _TaskSpec, pan: np.ndarray | None, ms_lr: np.ndarray, est: Mapping[str, Any],
               block_info=None) -> np.ndarray:
    _configure_torch_threads()
    dev = resolve_device(task.device)
    dt = _torch_dtype(task.work)

    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a)).to(device=dev, dtype=dt)

    blk = Block(pan=None if pan is None else t(pan), ms_lr=t(ms_lr), ratio=task.ratio, phase=task.phase,
                compat=task.compat, interpolation=task.interpolation, sensor=task.sensor,
                origin=_tile_origin(block_info, task))
    est_t = {k: (t(v) if isinstance(v, np.ndarray) else v) for k, v in (est or {}).items()}
    with torch.no_grad():
        out = task.fn(blk, est_t, task.params)
    out = out.detach().to("cpu", torch.float32 if task.work != "float64" else torch.float64).numpy()
    h = task.lr_halo * (task.ratio if task.out_grid == "hr" else 1)
    return _trim(out, h, _edges(block_info))


def _tile_origin(block_info: Mapping | None, task: "_TaskSpec") -> tuple[int, int]:
    """LR index of the first sample of this block's tile (its core start minus the halo it received)."""
    if not block_info:
        return (0, 0)
    (_, (y0, _), (x0, _)) = block_info[None]["array-location"]
    top, _, left, _ = _edges(block_info)
    div = task.ratio if task.out_grid == "hr" else 1
    return (y0 // div - (0 if top else task.lr_halo), x0 // div - (0 if left else task.lr_halo))


def _run_block_hr(task, pan, ms_lr, est=None, block_info=None):
    return _run_block(task, pan, ms_lr, est, block_info)


def _run_block_lr_only(task, ms_lr, est=None, block_info=None):
    return _run_block(task, None, ms_lr, est, block_info)


# --------------------------------------------------------------------------------------------------
# the prepared inputs and the estimate context


@dataclass
class Prepared:
    """Float32 dask inputs on a common layout, nodata filled, with masks (engine-internal)."""

    pan: da.Array | None  # (1, H, W); hyperspectral methods: the MSI (K, H, W)
    ms_lr: da.Array  # (C, h, w); hyperspectral methods: the HS (B, h, w)
    valid_hr: da.Array | None  # (H, W) bool
    valid_lr: da.Array | None  # (h, w) bool
    layout: Layout
    ratio: int
    phase: tuple[float, float]
    compat: str
    interpolation: str
    sensor: _sensors.Sensor
    device: str
    work: str
    lr_halo: int
    pan_apply: da.Array | None = None  # the same inputs from independent (cloned) read tasks
    ms_lr_apply: da.Array | None = None
    valid_hr_apply: da.Array | None = None
    #: (K, B) spectral response matrix given by the user (hyperspectral methods), else None
    srf_given: np.ndarray | None = None
    #: regularisation weight of the SRF estimate (see :func:`estimate_srf`)
    srf_smooth: float = 1e-4

    @cached_property
    def valid_lr_joint(self) -> da.Array | None:
        """(h, w) LR pixels valid in the LR input AND over their whole ratio x ratio HR block (for
        regressions between the two grids, e.g. the MSI degraded onto the HS grid against the HS)."""
        if self.valid_hr is None:
            return self.valid_lr
        return da.coarsen(np.all, self.valid_hr, {0: self.ratio, 1: self.ratio})

    @cached_property
    def msi_lr(self) -> da.Array:
        """The high-resolution input (MSI / PAN) degraded onto the LR grid, lazily: Gaussian PSF with a
        FWHM of ``ratio`` HR pixels, sampled at the grid phase (the HS sensor's nominal blur)."""
        return self.tile_map(_block_msi_lr, bands=self.pan.shape[0], grid="lr")

    @cached_property
    def srf(self) -> da.Array:
        """(K, B) spectral response: the user's, else :func:`estimate_srf` (lazy)."""
        if self.srf_given is not None:
            return da.from_array(np.asarray(self.srf_given, dtype=np.float64), chunks=-1)
        return estimate_srf(self, smooth=self.srf_smooth)

    def tile_map(self, fn: Callable[[Block, Mapping, Mapping], torch.Tensor], *, bands: int,
                 grid: str = "hr", params: Mapping[str, Any] | None = None, est: Any = None,
                 dtype=np.float32, use_pan: bool = True, source: str = "estimate") -> da.Array:
        """Lazily apply ``fn(block, est, params)`` to every block with halo; returns (bands, ...) on ``grid``.

        ``grid="hr"``: ``fn`` returns an HR tile (the block's full extent); ``grid="lr"``: an LR tile.
        ``use_pan=False`` leaves the PAN out of the blocks (``block.pan`` is None). ``source="apply"``
        reads the inputs through the cloned tasks meant for the final per-block pass.
        """
        pan, ms_lr = (self.pan_apply, self.ms_lr_apply) if source == "apply" else (self.pan, self.ms_lr)
        task = _TaskSpec(fn=fn, params=dict(params or {}), ratio=self.ratio, phase=self.phase,
                         compat=self.compat, interpolation=self.interpolation, sensor=self.sensor,
                         device=self.device, work=self.work, lr_halo=self.lr_halo, out_grid=grid)
        hl = self.lr_halo
        # one block along an axis needs no overlap (and dask refuses a depth larger than the array)
        dy, dx = (hl if len(c) > 1 else 0 for c in self.layout.lr_chunks)
        lr_ov = _overlap(ms_lr, dy, dx)
        chunks_yx = self.layout.hr_chunks if grid == "hr" else self.layout.lr_chunks
        out_chunks = ((bands,),) + tuple(chunks_yx)
        kwargs = {} if est is None else {"est": est}
        out_dtype = np.float64 if self.work == "float64" else dtype
        if pan is not None and use_pan:
            pan_ov = _overlap(pan, dy * self.ratio, dx * self.ratio)
            return da.map_blocks(_run_block_hr, task, pan_ov, lr_ov, chunks=out_chunks, dtype=out_dtype,
                                 meta=np.empty((0, 0, 0), out_dtype), **kwargs)
        return da.map_blocks(_run_block_lr_only, task, lr_ov, chunks=out_chunks, dtype=out_dtype,
                             meta=np.empty((0, 0, 0), out_dtype), **kwargs)

    @cached_property
    def ms(self) -> da.Array:
        """The upsampled MS on the HR grid, lazily (for global statistics; fused into reductions)."""
        return self.tile_map(_block_ms, bands=self.ms_lr.shape[0], use_pan=False)


def _overlap(x: da.Array, dy: int, dx: int) -> da.Array:
    """Share ``dy``/``dx`` pixels with the neighbouring blocks (none beyond the image: ``boundary='none'``).

    Each haloed block is one task that cuts its halo out of the (up to 9) neighbouring chunks and
    assembles it in one copy: the same blocks as ``dask.array.overlap.overlap(boundary='none')``, but
    one task per block instead of a slice task per neighbour piece plus concatenations (~50 tasks
    per block, which the threaded scheduler also materialised far ahead of their consumers).
    Without any depth the array is used as it is.
    """
    if dy == 0 and dx == 0:
        return x
    if x.ndim != 3 or x.numblocks[0] != 1:
        return da.overlap.overlap(x, depth={0: 0, 1: dy, 2: dx}, boundary="none")
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    cy, cx = x.chunks[1], x.chunks[2]
    if min(cy) < dy or min(cx) < dx:  # a neighbour thinner than the halo: dask's general overlap
        return da.overlap.overlap(x, depth={0: 0, 1: dy, 2: dx}, boundary="none")
    name = "halo-" + tokenize(x, dy, dx)
    ny, nx = len(cy), len(cx)

    def pieces(n: int, i: int, d: int) -> list[tuple[int, slice]]:
        out = [(i - 1, slice(-d, None))] if i > 0 else []
        out.append((i, slice(None)))
        if i < n - 1:
            out.append((i + 1, slice(0, d)))
        return out

    dsk = {}
    for i in range(ny):
        for j in range(nx):
            py, px = pieces(ny, i, dy), pieces(nx, j, dx)
            keys = [(x.name, 0, bi, bj) for bi, _ in py for bj, _ in px]
            dsk[(name, 0, i, j)] = (_assemble_halo, keys, tuple(sy for _, sy in py), tuple(sx for _, sx in px))
    chunks = (x.chunks[0],
              tuple(c + dy * ((i > 0) + (i < ny - 1)) for i, c in enumerate(cy)),
              tuple(c + dx * ((j > 0) + (j < nx - 1)) for j, c in enumerate(cx)))
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[x])
    return da.Array(graph, name, chunks, meta=x._meta)


def _assemble_halo(chunks, rows, cols) -> np.ndarray:
    """One haloed block from its neighbour ``chunks`` (row-major) and the row / column slice to take
    from each neighbour row / column."""
    nc = len(cols)
    parts = [[chunks[a * nc + b][:, sy, sx] for b, sx in enumerate(cols)] for a, sy in enumerate(rows)]
    H = sum(r[0].shape[1] for r in parts)
    W = sum(p.shape[2] for p in parts[0])
    first = parts[0][0]
    out = np.empty((first.shape[0], H, W), dtype=first.dtype)
    y = 0
    for r in parts:
        x = 0
        for p in r:
            out[:, y:y + p.shape[1], x:x + p.shape[2]] = p
            x += p.shape[2]
        y += r[0].shape[1]
    return out


def _block_ms(block: Block, est, params) -> torch.Tensor:
    return block.ms


def gaussian_psf_halo(ratio: int) -> int:
    """HR halo of :func:`gaussian_psf_kernel` (default support) plus one for a half-integer phase."""
    return psf_halo(ratio)


def _block_msi_lr(block: Block, est, params) -> torch.Tensor:
    from .kernels.filters import correlate2d

    k, off = gaussian_psf_kernel(block.ratio, block.phase)
    return correlate2d(block.pan, k, mode="replicate", stride=block.ratio, offset=off)


def _srf_solve(raw: np.ndarray, B: int, smooth: float) -> np.ndarray:
    """Rows of R from the raw second moments of [HS (B), MSI_lr (K)]: non-negative regularised LS."""
    from scipy.optimize import nnls

    G, C = raw[:B, :B], raw[:B, B:]  # E[h h^T], E[h y_k]
    K = C.shape[1]
    scale = np.trace(G) / B
    D = np.diff(np.eye(B), axis=0)
    A = G + smooth * scale * (D.T @ D) + 1e-9 * scale * np.eye(B)
    L = np.linalg.cholesky(A)  # A = L L^T; min r^T A r - 2 r^T c  <=>  min ||L^T r - L^-1 c||^2
    out = np.zeros((K, B))
    for k in range(K):
        out[k] = nnls(L.T, np.linalg.solve(L, C[:, k]), maxiter=50 * B)[0]
    return out


def estimate_srf(ctx: "Prepared", smooth: float = 1e-4) -> da.Array:
    r"""Estimate the (K, B) spectral response matrix ``R`` with ``MSI ~ R HS`` from the data, lazily.

    The MSI is degraded onto the HS grid (:attr:`Prepared.msi_lr`: Gaussian PSF, FWHM = ratio, at the
    grid phase) and each of its bands is fitted on the HS bands by non-negative least squares with a
    spectral smoothness penalty, as HySure estimates R (Simoes et al. 2015, doi:10.1109/TGRS.2014.2375320):

    .. math::

        r_k = rg\min_{r \ge 0} \|y_k - H^T r\|^2 + \lambda \,\mathrm{tr}(G)/B\, \|D r\|^2

    with ``G = H H^T`` (one pass of global second moments over the valid LR pixels) and ``D`` the first
    spectral difference. No intercept; rows are not renormalised (the fit carries the radiometric scale).
    """
    from . import stats

    B = ctx.ms_lr.shape[0]
    m = stats.moments([ctx.ms_lr, ctx.msi_lr], ctx.valid_lr_joint)
    k = (m.n - 1) / m.n
    raw = m.cov * k + m.mean[:, None] * m.mean[None, :]
    K = ctx.pan.shape[0]
    return da.from_delayed(dask.delayed(_srf_solve)(raw, B, smooth), shape=(K, B), dtype=np.float64)


EstimateContext = Prepared


# --------------------------------------------------------------------------------------------------
# preparing inputs


def _as_float_dask(data: xr.DataArray, chunks, independent: bool = False) -> da.Array:
    """The raster's pixels as a dask array with ``chunks``.

    ``independent=True`` gives the same pixels from read tasks of their own (a clone of the source
    graph, or a fresh name for in-memory data), so two passes over the image do not share tasks.
    """
    arr = data.data
    if not isinstance(arr, da.Array):
        return da.from_array(np.asarray(arr), chunks=chunks, name=False if independent else None)
    if independent:
        arr = _clone_reads(arr)  # clone before rechunking (cloned rechunks do not fuse)
    return arr.rechunk(chunks)


def _clone_reads(arr: da.Array) -> da.Array:
    """A clone of ``arr``'s graph (same pixels, tasks of its own), or ``arr`` itself when cloning fails.

    dask's ``clone`` leaves dangling references in some graphs (e.g. a band selection
    ``open_raster(f).isel(band=[0, 2])`` puts a shuffle-taker layer in the graph whose tasks keep the
    old key names), which would fail at compute time with "Missing dependency". The clone is checked
    for completeness here; when it is incomplete the shared graph is used: same pixels, only the two
    passes share their read tasks (more memory held between them, never different values).
    """
    from dask.graph_manipulation import clone

    cloned = clone(arr, assume_layers=False)
    graph = dict(cloned.__dask_graph__())
    for task in graph.values():
        if any(dep not in graph for dep in getattr(task, "dependencies", ())):
            return arr
    return cloned


def _valid_mask(arr: da.Array, nodata: float | None, floating: bool) -> da.Array | None:
    """(H, W) mask of pixels valid in every band (nodata and NaN excluded)."""
    if nodata is None and not floating:
        return None
    bad = da.zeros(arr.shape[1:], dtype=bool, chunks=arr.chunks[1:])
    if nodata is not None:
        bad = bad | (da.isclose(arr, nodata) if not math.isnan(nodata) else da.isnan(arr)).any(axis=0)
    if floating:
        bad = bad | da.isnan(arr).any(axis=0)
    return ~bad


def _fill_value(arr: da.Array, valid: da.Array | None) -> da.Array | None:
    """Per-band mean of the valid pixels (the neutral value nodata is replaced with before filtering)."""
    if valid is None:
        return None
    w = valid.astype(np.float64)[None]
    return (da.where(valid[None], arr, 0).astype(np.float64)).sum(axis=(1, 2)) / w.sum()


def _fill(arr: da.Array, valid: da.Array | None, value: da.Array | None) -> da.Array:
    arr = arr.astype(np.float32)
    if valid is None:
        return arr
    return da.where(valid[None], arr, value.astype(np.float32)[:, None, None])


def prepare(ms: xr.DataArray, pan: xr.DataArray | None, grid, *, halo_hr: int, compat: str = "default",
            interpolation: str = "interp23tap", sensor=None, device: str = "auto", chunks=None,
            work: str = "float32", hr_bands: int | None = 1, srf: Any = None,
            srf_smooth: float = 1e-4) -> Prepared:
    """Window, rechunk, mask and fill the inputs for a method whose own halo is ``halo_hr`` HR pixels.

    ``hr_bands``: the band count the high-resolution input must have (1 = a PAN); ``None`` accepts any
    ``K >= 1`` (hyperspectral methods: the MSI), and then the halo also covers the PSF of
    :attr:`Prepared.msi_lr`. ``srf``: a (K, B) spectral response matrix (numpy) for hyperspectral
    methods, else estimated when a method asks for ``ctx.srf``.
    """
    if hr_bands is None and pan is not None:
        halo_hr = max(int(halo_hr), gaussian_psf_halo(grid.ratio))
    if compat not in COMPAT:
        raise ParameterError("Unknown compat mode", expected=" or ".join(map(repr, COMPAT)), got=repr(compat),
                             fix="use compat='default' (or 'toolbox' to reproduce the MATLAB toolbox)")
    if interpolation not in INTERPOLATORS:
        raise ParameterError("Unknown interpolation", expected=", ".join(INTERPOLATORS), got=repr(interpolation),
                             fix="use interpolation='interp23tap'")
    r = grid.ratio
    phase = grid.phase
    if interpolation == "interp23tap" and (r & (r - 1) or any(abs(2 * p - round(2 * p)) > 1e-9 for p in phase)):
        interpolation = "lanczos3"  # interp23tap exists for powers of two only (SPEC section 3)
    ms_w = ms.isel(y=grid.lr_slices()[0], x=grid.lr_slices()[1]) if "y" in ms.dims else ms
    up_h = upsample_halo(r, phase, interpolation)
    lr_halo = int(math.ceil(halo_hr / r)) + up_h
    if compat == "toolbox":
        # The toolbox's interp23tap pads circularly at the *image* borders: a whole-image property that
        # per-block padding cannot reproduce (a border block would wrap its own content), so toolbox
        # mode runs the window as one block; an explicit smaller chunk size is refused, not ignored.
        whole = (r * ms_w.shape[1], r * ms_w.shape[2])
        cy, cx = (chunks, chunks) if isinstance(chunks, int) else (chunks or whole)
        if cy < whole[0] or cx < whole[1]:
            raise ParameterError("compat='toolbox' reproduces the toolbox's circular image borders, which "
                                 "needs the whole image in one chunk",
                                 expected=f"chunks >= the fused window {whole} (or chunks=None)",
                                 got=f"chunks={chunks!r}",
                                 fix=f"pass chunks={max(whole)} (CLI --chunks {max(whole)}) or use "
                                     "compat='default' for chunked processing")
        chunks = whole
    layout = make_layout(ms_w.shape[1:], r, chunks, lr_halo)
    nbands = ms_w.shape[0]
    sensor = sensor if isinstance(sensor, _sensors.Sensor) else _sensors.get(sensor, nbands)
    sensor.gains(nbands)
    ms_raw = _as_float_dask(ms_w, ((nbands,),) + layout.lr_chunks)
    ms_c = _as_float_dask(ms_w, ((nbands,),) + layout.lr_chunks, independent=True)
    pan_raw = pan_c = None
    if pan is not None:
        sl = grid.hr_slices()
        pan_w = pan.isel(y=sl[0], x=sl[1]) if "y" in pan.dims else pan
        if hr_bands == 1 and pan_w.shape[0] != 1:
            raise BandCountError("The PAN must have exactly one band", expected="1 band", got=f"{pan_w.shape[0]} bands",
                                 fix="select the panchromatic band, e.g. pan.isel(band=[0])")
        if hr_bands is not None and pan_w.shape[0] != hr_bands:
            raise BandCountError("The high-resolution input has the wrong number of bands",
                                 expected=f"{hr_bands} bands", got=f"{pan_w.shape[0]} bands",
                                 fix="select the bands the method expects")
        kb = pan_w.shape[0]
        pan_raw = _as_float_dask(pan_w, ((kb,),) + layout.hr_chunks)
        pan_c = _as_float_dask(pan_w, ((kb,),) + layout.hr_chunks, independent=True)
    srf_arr = None
    if srf is not None:
        srf_arr = np.asarray(srf, dtype=np.float64)
        want = (pan.sizes["band"] if pan is not None else None, nbands)
        if srf_arr.ndim != 2 or srf_arr.shape[1] != nbands or (want[0] is not None and srf_arr.shape[0] != want[0]):
            raise BandCountError("The spectral response matrix does not fit the inputs",
                                 expected=f"shape (MSI bands, HS bands) = {want}", got=f"shape {srf_arr.shape}",
                                 fix="give one SRF row per MSI band and one column per HS band (or srf=None "
                                     "to estimate it from the data)")
        if not np.isfinite(srf_arr).all():
            raise ParameterError("The spectral response matrix has non-finite entries", expected="finite values",
                                 got="NaN or inf", fix="check the SRF table / its resampling")
    ms_nd, ms_float = nodata_of(ms), np.issubdtype(ms.dtype, np.floating)
    pan_nd = nodata_of(pan) if pan is not None else None
    pan_float = pan is not None and np.issubdtype(pan.dtype, np.floating)

    def masked(ms_a, pan_a):
        valid_lr = _valid_mask(ms_a, ms_nd, ms_float)
        valid_hr = None
        if pan_a is not None:
            valid_hr = _valid_mask(pan_a, pan_nd, pan_float)
            if valid_lr is not None:
                up = da.repeat(da.repeat(valid_lr, r, axis=0), r, axis=1).rechunk(layout.hr_chunks)
                valid_hr = up if valid_hr is None else (valid_hr & up)
        return valid_lr, valid_hr

    # Statistics path: the global reductions (estimate, nodata fill values) read the inputs once ...
    valid_lr, valid_hr = masked(ms_raw, pan_raw)
    ms_fill = _fill_value(ms_raw, valid_lr)
    pan_fill = _fill_value(pan_raw, valid_hr) if pan_raw is not None else None
    # ... and the per-block path reads them again from cloned tasks, so that no input chunk has to stay
    # in memory between the reductions and the fusion (memory bounded by chunk size, not scene size).
    valid_lr_c, valid_hr_c = masked(ms_c, pan_c)
    return Prepared(pan=None if pan_raw is None else _fill(pan_raw, valid_hr, pan_fill),
                    ms_lr=_fill(ms_raw, valid_lr, ms_fill), valid_hr=valid_hr, valid_lr=valid_lr,
                    pan_apply=None if pan_c is None else _fill(pan_c, valid_hr_c, pan_fill),
                    ms_lr_apply=_fill(ms_c, valid_lr_c, ms_fill), valid_hr_apply=valid_hr_c,
                    layout=layout, ratio=r, phase=phase, compat=compat, interpolation=interpolation, sensor=sensor,
                    device=str(device), work=work, lr_halo=lr_halo, srf_given=srf_arr, srf_smooth=srf_smooth)


def _materialise_est(**est: Any) -> dict[str, Any]:
    return {k: (np.asarray(v) if not isinstance(v, (int, float, str, bool)) else v) for k, v in est.items()}


def fuse_prepared(spec, prep: Prepared, params: Mapping[str, Any]) -> da.Array:
    """Run ``spec.estimate`` once (lazily) and ``spec.apply`` per block; float (C, H, W) on the HR grid.

    The estimate's arrays reach the blocks as one graph input (:func:`geofuse.stats.delayed_on`), so
    statistics they share are computed once.
    """
    from .stats import delayed_on

    est = spec.estimate(prep, params) if spec.estimate is not None else {}
    est_delayed = delayed_on(_materialise_est, **dict(est)) if est else None
    return prep.tile_map(spec.apply, bands=prep.ms_lr.shape[0], params=params, est=est_delayed, source="apply",
                         use_pan="pan" in spec.inputs or "msi" in spec.inputs)


def _cast_block(x: np.ndarray, dtype: np.dtype, lo: float | None, hi: float | None) -> np.ndarray:
    """Round and clip (integers), then cast one block: one rounded copy (the input block may be shared,
    so it is never modified), clipped in place."""
    if lo is not None:
        x = np.rint(x)
        np.clip(x, lo, hi, out=x)
    return x.astype(dtype, copy=False)


def to_output_dtype(x: da.Array, dtype: np.dtype, valid: da.Array | None, nodata: float | None) -> da.Array:
    """Cast to ``dtype`` (integers: rounded and clipped to the dtype's range, kept off the nodata value)
    and write ``nodata`` where ``valid`` is False."""
    dtype = np.dtype(dtype)
    lo = hi = None
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        lo, hi = float(info.min), float(info.max)
        if nodata is not None and nodata == lo:
            lo += 1
        elif nodata is not None and nodata == hi:
            hi -= 1
    x = x.map_blocks(_cast_block, dtype, lo, hi, dtype=dtype, meta=np.empty((0,) * x.ndim, dtype))
    if valid is not None:
        fill = nodata if nodata is not None else (np.nan if np.issubdtype(dtype, np.floating) else 0)
        x = da.where(valid[None], x, np.asarray(fill).astype(dtype))
    return x


def check_inputs(ms: xr.DataArray, pan: xr.DataArray | None) -> None:
    """Dims, emptiness and dtype checks with clear errors."""
    for name, x in (("ms", ms), ("pan", pan)):
        if x is None:
            continue
        if not isinstance(x, xr.DataArray):
            raise InputError(f"Input {name!r} is not an xarray.DataArray",
                             expected="an xarray.DataArray with dims ('band', 'y', 'x')", got=type(x).__name__,
                             fix="open files with geofuse.open_raster(path) or wrap arrays with xr.DataArray")
        if x.ndim == 2:
            raise InputError(f"Input {name!r} has no band dimension", expected="dims ('band', 'y', 'x')",
                             got=f"dims {x.dims}", fix=f"use {name}.expand_dims('band')")
        if x.ndim != 3 or x.dims[0] != "band":
            raise InputError(f"Input {name!r} has the wrong dimensions", expected="dims ('band', 'y', 'x')",
                             got=f"dims {x.dims}", fix=f"transpose with {name}.transpose('band', 'y', 'x')")
        if 0 in x.shape:
            raise InputError(f"Input {name!r} is empty", expected="at least one band and one pixel",
                             got=f"shape {x.shape}", fix="check the file or the selection that produced it")
        if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
            raise InputError(f"Input {name!r} has a non-numeric dtype", expected="integer or float pixels",
                             got=str(x.dtype), fix="convert with .astype('float32')")


# --------------------------------------------------------------------------------------------------
# single-input chunked maps (Wald degradation, interpolation)


def _run_single(fn, x: np.ndarray, *, out_halo: int, device: str, work: str, block_info=None) -> np.ndarray:
    _configure_torch_threads()
    dev = resolve_device(device)
    dt = _torch_dtype(work)
    t = torch.from_numpy(np.ascontiguousarray(x)).to(device=dev, dtype=dt)
    with torch.no_grad():
        out = fn(t)
    out = out.detach().to("cpu").numpy()
    return _trim(out, out_halo, _edges(block_info))


def map_tiles(arr: da.Array, fn: Callable[[torch.Tensor], torch.Tensor], *, depth: int, num: int = 1,
              den: int = 1, bands: int | None = None, chunk: int = DEFAULT_CHUNK, device: str = "auto",
              work: str = "float32") -> da.Array:
    """Apply ``fn`` to (C, H, W) tiles of ``arr`` with ``depth`` pixels of halo (``boundary='none'``:
    at the image's borders ``fn`` pads with its own rule, so chunked == whole image).

    ``fn`` maps a tile of n pixels per axis to ``n * num / den`` pixels (decimation: ``den = ratio``;
    interpolation: ``num = ratio``). Chunks are rounded to multiples of ``den`` and ``depth`` up to a
    multiple of ``den`` so that every tile starts on the decimation lattice.
    """
    depth = int(math.ceil(depth / den) * den)
    size = max(den, (max(chunk, depth) // den) * den)
    ys = _axis_chunks(arr.shape[1] // den, size // den, int(math.ceil(depth / den)))
    xs = _axis_chunks(arr.shape[2] // den, size // den, int(math.ceil(depth / den)))
    ys, xs = tuple(c * den for c in ys), tuple(c * den for c in xs)
    if sum(ys) != arr.shape[1] or sum(xs) != arr.shape[2]:
        raise ParameterError("Image size is not a multiple of the decimation factor",
                             expected=f"rows and cols divisible by {den}", got=f"{arr.shape[1:]}",
                             fix=f"crop the image to a multiple of {den} pixels")
    arr = arr.rechunk(((arr.shape[0],), ys, xs))
    ov = _overlap(arr, depth if len(ys) > 1 else 0, depth if len(xs) > 1 else 0)
    nb = bands if bands is not None else arr.shape[0]
    out_chunks = ((nb,), tuple(c * num // den for c in ys), tuple(c * num // den for c in xs))
    dtype = np.float64 if work == "float64" else np.float32
    return da.map_blocks(_run_single, fn, ov, out_halo=depth * num // den, device=device, work=work,
                         chunks=out_chunks, dtype=dtype, meta=np.empty((0, 0, 0), dtype))
