"""Full-resolution (no reference) pansharpening indexes: D_lambda, D_s, QNR, D_lambda_K (Khan), HQNR.

The toolbox's ``indexes_evaluation_FS.m`` conventions (SPEC section 6), computed lazily over dask:

* everything happens at PAN scale, against the MS interpolated onto the PAN grid (``MS~``, the toolbox-1.0
  option; :func:`geofuse.kernels.resample.upsample`, interp23tap by default);
* Q is the plain UIQI of non-overlapping ``S x S`` blocks (``blockproc``), averaged over the blocks;
* ``D_lambda = (mean_{i<j} |Q(F_i, F_j) - Q(MS~_i, MS~_j)|^p)^(1/p)``;
* ``D_s = (mean_b |Q(F_b, PAN) - Q(MS~_b, PAN_f)|^q)^(1/q)`` with
  ``PAN_f = interp23tap(imresize(PAN, 1/ratio))`` (MATLAB bicubic with antialiasing, then back up);
* ``QNR = (1 - D_lambda)^alpha (1 - D_s)^beta``;
* ``D_lambda_K = 1 - Q2n(MS~, MTF(F))`` with the sensor's MTF-matched filter at PAN scale (no
  decimation, the 2021 ``MTF.m``), Q2n on ``S x S`` blocks with MS~ as the reference;
* ``HQNR = (1 - D_lambda_K)(1 - D_s)`` with ``q = 1`` (exponents fixed, as in ``HQNR.m``).

Image size: rows and columns must be multiples of ``S`` (the toolbox errors otherwise; so does
geofuse, with a :class:`~geofuse.errors.ParameterError` that says how to crop).

Lazy evaluation: one task per PAN-scale tile does everything for its pixels: it receives its tile of the
fused image, the PAN and the MS plus the halos the filters need from the neighbouring chunks
(``dask.array.overlap``; the image's own border rule where a tile touches the image border), builds ``MS~``,
``PAN_f`` and ``MTF(F)`` for the tile only, and reduces them to the statistics of its ``S x S`` blocks (block
means and covariances as one batched Gram matrix). Tiles are aligned with the block grid (their size is a
multiple of ``lcm(S, ratio)``; inputs with other chunks are rechunked inside), so no intermediate PAN-scale
array exists and no task holds more than a tile, its halo and its temporaries. The MTF filter (41x41, not
separable) runs as an FFT convolution per tile.

Flat memory: in one dask graph, the input chunks of about two rows of tiles wait for their neighbours'
halos, so memory would grow with the image *width*. Images larger than ``window`` (default 2048 PAN pixels,
whole tiles) are therefore evaluated by square super-windows: each window's inputs are sliced with the halos
the filters need, and one task of the lazy graph computes that window's own small graph (synchronous
scheduler, inside the worker thread) down to the sums of its block statistics; a last task merges the
windows' sums (the statistics are per block, so this is exact up to the order of the float64 sums). Every
tile sees the same pixels as in the one-graph evaluation; peak memory is one window per scheduler thread,
whatever the image size (the input chunks under a window's halo are read again by its neighbour: ~5-10%
more CPU with 1024² input chunks).

``compat="toolbox"`` reproduces the toolbox exactly: interp23tap at the toolbox's phase ``ratio // 2``
with circular borders (whole image in one tile), the uint16 cast inside Q2n, float64 throughout.
``compat="default"`` uses the same formulas without the uint16 cast, interpolates at the grids' phase
(``phase``, default the corner-aligned ``(ratio - 1) / 2`` that :func:`geofuse.pansharpen` uses for
inputs without georeferencing) with symmetric borders, chunked, and float32 filtering (``work``).
"""

from __future__ import annotations

import math
import uuid
from functools import lru_cache, partial
from typing import Any, Iterable

import numpy as np

from ..errors import InputError, ParameterError
from . import Metric, register
from .reduced import (_EPS, _block_moments, _check_compat, _check_positive, _is_dask, _next_pow2, _structure,
                      _to_uint16_values)

__all__ = ["FULL", "d_lambda", "d_lambda_k", "d_s", "full_resolution", "hqnr", "qnr"]

#: The full-resolution indexes, in table order.
FULL: tuple[str, ...] = ("D_lambda", "D_s", "QNR", "D_lambda_K", "HQNR")

_DEFAULT_TILE = 512
_DEFAULT_WINDOW = 2048


# --------------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------------

def _unwrap(x: Any, name: str, allow_2d: bool = False) -> Any:
    if hasattr(x, "dims") and hasattr(x, "data") and hasattr(x, "transpose"):
        dims = tuple(x.dims)
        if set(dims) == {"band", "y", "x"}:
            x = x.transpose("band", "y", "x")
        x = x.data
    if not (_is_dask(x) or isinstance(x, np.ndarray)):
        x = np.asarray(x)
    if allow_2d and x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise InputError(f"{name} is not a (bands, rows, cols) image", expected="a 3-d array (bands, rows, cols)",
                         got=f"shape {tuple(x.shape)}", fix="add a leading band axis for single-band images (x[None])")
    if not np.issubdtype(x.dtype, np.number):
        raise InputError(f"{name} is not numeric", expected="an integer or floating dtype", got=f"dtype {x.dtype}",
                         fix="convert the image to a numeric dtype")
    return x


def _resolve_phase(phase: Any, ratio: int, compat: str) -> float:
    if compat == "toolbox":
        return float(ratio // 2)
    if phase is None or phase == "corner":
        return (ratio - 1) / 2.0
    if phase == "toolbox":
        return float(ratio // 2)
    if isinstance(phase, (list, tuple)):
        if len(set(float(p) for p in phase)) != 1:
            raise ParameterError("Different phases along y and x are not supported here",
                                 expected="one phase for both axes", got=repr(phase), fix="pass a single phase")
        phase = phase[0]
    try:
        return float(phase)
    except (TypeError, ValueError):
        raise ParameterError("Unknown phase", expected="'corner', 'toolbox' or a number", got=repr(phase),
                             fix="use phase='corner' (corner-aligned grids) or 'toolbox'") from None


def _check_sizes(f, ms, pan, ratio, block, ms_exp):
    bands, rows, cols = f.shape
    if pan.shape[0] != 1 or tuple(pan.shape[1:]) != (rows, cols):
        raise InputError("The PAN is not a one-band image on the fused grid",
                         expected=f"PAN shape (1, {rows}, {cols})", got=f"{tuple(pan.shape)}",
                         fix="pass the PAN the fusion used (same rows and columns as the fused image)")
    if ms.shape[0] != bands:
        raise InputError("The MS and the fused image have different band counts", expected=f"{bands} MS bands",
                         got=f"{ms.shape[0]}", fix="pass the MS the fusion used")
    if ratio is None:
        ry, rx = rows / ms.shape[1], cols / ms.shape[2]
        if ry != rx or not float(ry).is_integer() or ry < 1:
            raise InputError("The fused image is not an integer multiple of the MS size",
                             expected="rows/ms_rows == cols/ms_cols == an integer ratio",
                             got=f"fused {rows}x{cols}, MS {ms.shape[1]}x{ms.shape[2]}",
                             fix="crop both to matching extents (PAN = ratio x MS) or pass ratio=")
        ratio = int(ry)
    ratio = _check_positive(ratio, "ratio", integer=True)
    if (ms.shape[1] * ratio, ms.shape[2] * ratio) != (rows, cols):
        raise InputError("The MS does not match the fused image at this ratio",
                         expected=f"MS {rows // ratio}x{cols // ratio} for ratio {ratio}",
                         got=f"MS {ms.shape[1]}x{ms.shape[2]}, fused {rows}x{cols}",
                         fix="crop the PAN-scale images to ratio x the MS size")
    if ms_exp is not None and tuple(ms_exp.shape) != tuple(f.shape):
        raise InputError("ms_exp is not on the fused grid", expected=f"shape {tuple(f.shape)}",
                         got=f"{tuple(ms_exp.shape)}",
                         fix="pass the MS interpolated to the PAN grid, or leave ms_exp out")
    if rows % block or cols % block:
        r2, c2 = rows // block * block, cols // block * block
        step = block * ratio // math.gcd(block, ratio)
        raise ParameterError("The full-resolution indexes need image sizes that are multiples of the block size "
                             "(as the toolbox's D_lambda.m / D_s.m)",
                             expected=f"rows and cols multiples of S={block}", got=f"{rows}x{cols}",
                             fix=f"crop the fused image and the PAN to a multiple of {step} pixels (e.g. "
                                 f"{rows // step * step}x{cols // step * step}) and the MS by the ratio, or pass a "
                                 f"block size that divides {rows} and {cols}" if r2 and c2 else "use a larger image")
    return ratio


# --------------------------------------------------------------------------------------------------
# per-tile filters (torch)
# --------------------------------------------------------------------------------------------------

@lru_cache(maxsize=16)
def _fft_size(n: int) -> int:
    from scipy.fft import next_fast_len

    return int(next_fast_len(n, real=True))


_SPECTRA: dict = {}


def _kernel_spectrum(kernels: np.ndarray, sy: int, sx: int, dtype, device):
    """rfft2 of the flipped kernels at FFT size (sy, sx), cached (tiles of one image share their sizes)."""
    import hashlib

    import torch

    key = (hashlib.sha1(np.ascontiguousarray(kernels).tobytes()).hexdigest(), sy, sx, str(dtype), str(device))
    spec = _SPECTRA.get(key)
    if spec is None:
        k = torch.as_tensor(np.ascontiguousarray(kernels[:, ::-1, ::-1]), dtype=dtype, device=device)
        spec = torch.fft.rfft2(k, s=(sy, sx))
        if len(_SPECTRA) > 32:
            _SPECTRA.clear()
        _SPECTRA[key] = spec
    return spec


def mtf_fft(x, kernels: np.ndarray, mode: str = "replicate"):
    """Same-size correlation of a (C, H, W) tensor with per-band kernels (C, k, k), ``mode`` borders, by FFT.

    Equals :func:`geofuse.kernels.filters.correlate2d` (``imfilter(x, h, 'replicate')``) to rounding; the
    41x41 MTF kernels are not separable, and the FFT is 3-5x faster than a direct depthwise convolution.
    """
    import torch

    from ..kernels.filters import pad

    c, h, w = x.shape
    r = kernels.shape[-1] // 2
    xp = pad(x, r, r, r, r, mode)
    hp, wp = xp.shape[-2:]
    sy, sx = _fft_size(hp), _fft_size(wp)
    spec = torch.fft.rfft2(xp, s=(sy, sx))
    spec *= _kernel_spectrum(kernels, sy, sx, x.dtype, x.device)
    y = torch.fft.irfft2(spec, s=(sy, sx))
    return y[:, 2 * r:2 * r + h, 2 * r:2 * r + w].contiguous()


def _pan_filt_fn(ratio: int, phase: float, border: str):
    from ..kernels.filters import imresize_down
    from ..kernels.resample import upsample

    def fn(t):
        return upsample(imresize_down(t, ratio, "symmetric"), ratio, phase, "interp23tap", border)
    return fn


def _pan_filt_depth(ratio: int, phase: float) -> int:
    from ..kernels.filters import imresize_down_halo
    from ..kernels.resample import upsample_halo

    return ratio * (math.ceil(imresize_down_halo(ratio) / ratio) + upsample_halo(ratio, phase) + 1)


# --------------------------------------------------------------------------------------------------
# per-tile block statistics
# --------------------------------------------------------------------------------------------------

def _uiqi_from_moments(mu: np.ndarray, cov: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Toolbox ``uqi``: 4 cov_ij mu_i mu_j / ((var_i + var_j)(mu_i^2 + mu_j^2)) for channel pairs (i, j)."""
    mi, mj = mu[..., i], mu[..., j]
    with np.errstate(invalid="ignore", divide="ignore"):
        return 4.0 * cov[..., i, j] * mi * mj / (cov[..., i, i] + cov[..., j, j]) / (mi * mi + mj * mj)


def _q2n_from_moments(mu: np.ndarray, cov: np.ndarray, c: int) -> np.ndarray:
    """Q2n block values from the moments of [reference (c), fused (c)] (see ``reduced._q2n_blocks``)."""
    n = _next_pow2(c)
    idx = np.arange(c)
    mg, mf = mu[..., :c], mu[..., c:]
    vg = cov[..., idx, idx]
    sd = np.sqrt(vg)
    sd = np.where(sd == 0, _EPS, sd)
    my = (mf - mg) / sd + 1.0
    cxy = cov[..., :c, c:] / (sd[..., :, None] * sd[..., None, :])
    vx = (vg / (sd * sd)).sum(axis=-1)
    vy = (cov[..., c + idx, c + idx] / (sd * sd)).sum(axis=-1)
    sxy = np.einsum("...ij,ijk->...k", cxy, _structure(n)[:c, :c])
    nmx2 = float(n)
    nmy2 = (my * my).sum(axis=-1) + (n - c)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_term = 2.0 * np.sqrt(nmx2 * nmy2) / (nmx2 + nmy2)
        vsum = vx + vy
        return np.where(vsum == 0, mean_term, np.sqrt((sxy * sxy).sum(axis=-1)) * mean_term * 2.0 / vsum)


def _tile_stats(f, m, p, pf, fm, *, block: int, bands: int, want_lambda: bool, want_s: bool, want_k: bool,
                cast: bool, stat_dtype: Any = np.float64) -> np.ndarray:
    """Block statistics of one tile: rows = [Q(F_i,F_j), Q(M_i,M_j) (pairs i<j)], [Q(F_b,P), Q(M_b,Pf)], [Q2n].

    One Gram matrix per block over the channels needed (F, M, P, Pf, MTF(F)), in ``stat_dtype``.
    """
    b = np.arange(bands)
    chans: list[np.ndarray] = []
    at: dict[str, int] = {}

    def add(name: str, arr) -> None:
        at[name] = sum(c.shape[0] for c in chans)
        chans.append(np.asarray(arr))

    if want_lambda or want_s:
        add("f", f)
        add("m", m)
    if want_s:
        add("p", p)
        add("pf", pf)
    if want_k:
        if cast:                       # the toolbox's q2n casts its two inputs to uint16 (the Q indexes do not)
            add("mk", _to_uint16_values(np.asarray(m)))
            add("fm", _to_uint16_values(np.asarray(fm)))
        else:
            if "m" not in at:
                add("m", m)
            at["mk"] = at["m"]
            add("fm", fm)
    mu, cov = _block_moments(chans, block, stat_dtype)
    mu, cov = mu.astype(np.float64, copy=False), cov.astype(np.float64, copy=False)
    out = []
    pi, pj = np.triu_indices(bands, 1)
    if want_lambda:
        out += [_uiqi_from_moments(mu, cov, at["f"] + pi, at["f"] + pj),
                _uiqi_from_moments(mu, cov, at["m"] + pi, at["m"] + pj)]
    if want_s:
        out += [_uiqi_from_moments(mu, cov, at["f"] + b, np.full(bands, at["p"])),
                _uiqi_from_moments(mu, cov, at["m"] + b, np.full(bands, at["pf"]))]
    if want_k:
        sel = np.concatenate([at["mk"] + b, at["fm"] + b])
        out.append(_q2n_from_moments(mu[..., sel], cov[..., sel[:, None], sel[None, :]], bands)[..., None])
    stats = np.concatenate(out, axis=-1)             # (nby, nbx, nstat)
    return np.ascontiguousarray(stats.transpose(2, 0, 1))


def _fr_tile(f, m, p, *, ratio: int, phase: float, border: str, kern, hf: int, hm: int, hp: int,
             multi: tuple[bool, bool], upsample_ms: bool, block: int, bands: int, want_lambda: bool, want_s: bool,
             want_k: bool, cast: bool, work: str, device: str, loc0: tuple[int, int] = (0, 0),
             ntiles: tuple[int, int] | None = None, block_info=None) -> np.ndarray:
    """One PAN-scale tile, end to end: filters on the tile + halo (the image's own border rule where the tile
    touches the image border), halos trimmed, then the block statistics (:func:`_tile_stats`)."""
    import torch

    from .. import engine
    from ..kernels.resample import upsample

    engine._configure_torch_threads()
    dev = engine.resolve_device(device)
    dt = torch.float64 if work == "float64" else torch.float32
    if block_info and None in block_info:
        (_, iy, ix), (_, ny, nx) = block_info[None]["chunk-location"], block_info[None]["num-chunks"]
        iy, ix = iy + loc0[0], ix + loc0[1]            # position in the whole image's tile grid (windows)
        if ntiles is not None:
            ny, nx = ntiles
        edges = (iy == 0, iy == ny - 1, ix == 0, ix == nx - 1)
    else:
        edges = (True, True, True, True)

    def trim(x, h):
        # the halo exists only along axes that have several tiles (overlap depth 0 otherwise)
        e = (edges[0] or not multi[0], edges[1] or not multi[0], edges[2] or not multi[1], edges[3] or not multi[1])
        return engine._trim(x, h, e)

    def run(x, fn, halo_out):
        t = torch.from_numpy(np.ascontiguousarray(x)).to(device=dev, dtype=dt)
        with torch.no_grad():
            y = fn(t).to("cpu").numpy()
        return trim(y, halo_out)

    f_core = trim(np.asarray(f), hf)
    fm = run(f, lambda t: mtf_fft(t, kern, "replicate"), hf) if want_k else None
    if upsample_ms:
        m_core = run(m, lambda t: upsample(t, ratio, phase, "interp23tap", border), hm * ratio)
    else:
        m_core = np.asarray(m)
    if want_s:
        p_core = trim(np.asarray(p), hp)
        pf = run(p, _pan_filt_fn(ratio, phase, border), hp)
    else:
        p_core = pf = None
    return _tile_stats(f_core, m_core, p_core, pf, fm, block=block, bands=bands, want_lambda=want_lambda,
                       want_s=want_s, want_k=want_k, cast=cast)



# --------------------------------------------------------------------------------------------------
# super-windows: bounded memory
# --------------------------------------------------------------------------------------------------

def _groups(n: int, per: int) -> list[tuple[int, int]]:
    """Consecutive runs of ``per`` tiles out of ``n`` (the last run takes the remainder)."""
    out = [(i, min(n, i + per)) for i in range(0, n, per)]
    if len(out) > 1 and out[-1][1] - out[-1][0] < per // 2:
        out[-2:] = [(out[-2][0], n)]
    return out


class _Windows:
    """The block statistics of one super-window of tiles (a lazy graph of its own), and their merge.

    Window ``(ty0, ty1, tx0, tx1)`` (tile indices) slices each input to the window plus the halo its
    filters need on the sides that are inside the image, rechunks it so that the outer tiles carry that halo,
    overlaps its inner tiles, and maps :func:`_fr_tile` with the tiles' positions in the whole image's grid:
    every tile sees exactly the pixels it sees when the image is evaluated as one graph.
    :meth:`merged` makes one task per window that computes the window's graph with the synchronous
    scheduler (in the worker thread that runs it: no nested thread pool), and one task that merges their
    block sums: at most one window per scheduler thread is in memory at a time.
    """

    def __init__(self, f, m_lr, pn, me, tile_fn, ty, tx, ratio, block, nstat, hf, hm, hp, want_s):
        self.f, self.m_lr, self.pn, self.me = f, m_lr, pn, me
        self.tile_fn, self.ratio, self.block, self.nstat = tile_fn, ratio, block, nstat
        self.ty, self.tx = tuple(ty), tuple(tx)
        self.cy, self.cx = np.concatenate([[0], np.cumsum(ty)]), np.concatenate([[0], np.cumsum(tx)])
        self.hf, self.hm, self.hp, self.want_s = hf, hm, hp, want_s

    def _axis(self, sizes, cuts, t0, t1, scale, depth):
        n = len(sizes)
        d = depth if n > 1 else 0
        lo, hi = (d if t0 > 0 else 0), (d if t1 < n else 0)
        ch = [s // scale for s in sizes[t0:t1]]
        ch[0] += lo
        ch[-1] += hi
        sl = slice(int(cuts[t0]) // scale - lo, int(cuts[t1]) // scale + hi)
        return sl, tuple(ch), (d if t1 - t0 > 1 else 0)

    def _sub(self, a, y, x, scale, depth):
        import dask.array as da

        sy, cy, dy = self._axis(self.ty, self.cy, y[0], y[1], scale, depth)
        sx, cx, dx = self._axis(self.tx, self.cx, x[0], x[1], scale, depth)
        chunks = ((a.shape[0],), cy, cx)
        a = a[:, sy, sx]
        a = a.rechunk(chunks) if _is_dask(a) else da.from_array(np.asarray(a), chunks=chunks)
        if dy or dx:
            a = da.overlap.overlap(a, depth={0: 0, 1: dy, 2: dx}, boundary="none")
        return a

    def stats(self, ty0: int, ty1: int, tx0: int, tx1: int):
        """Lazy (nstat, block rows, block cols) statistics of the tiles ``[ty0, ty1) x [tx0, tx1)``."""
        import dask.array as da

        y, x = (ty0, ty1), (tx0, tx1)
        F = self._sub(self.f, y, x, 1, self.hf)
        M = self._sub(self.me, y, x, 1, 0) if self.me is not None else self._sub(self.m_lr, y, x, self.ratio, self.hm)
        P = self._sub(self.pn, y, x, 1, self.hp) if self.want_s else F
        b = self.block
        return da.map_blocks(partial(self.tile_fn, loc0=(ty0, tx0)), F, M, P, dtype=np.float64,
                             chunks=((self.nstat,), tuple(c // b for c in self.ty[ty0:ty1]),
                                     tuple(c // b for c in self.tx[tx0:tx1])),
                             token=f"geofuse-fr-block-stats-{ty0}-{tx0}")   # pairs blocks by position

    def __call__(self, ty0: int, ty1: int, tx0: int, tx1: int) -> np.ndarray:
        """The sums of the block statistics of one window, computed now (synchronous scheduler)."""
        import dask

        (s,) = dask.compute(self.stats(ty0, ty1, tx0, tx1).sum(axis=(1, 2)), scheduler="sync")
        return np.asarray(s, dtype=np.float64)

    def merged(self, windows: list[tuple[int, int, int, int]]):
        """Lazy (nstat,) block means over the windows: one task per window, then their sum."""
        import dask
        import dask.array as da

        nblocks = (int(self.cy[-1]) // self.block) * (int(self.cx[-1]) // self.block)
        uid = uuid.uuid4().hex                    # no tokenize: it would hash (pickle) numpy inputs whole
        fn = dask.delayed(self, pure=False, traverse=False)
        parts = [fn(*w, dask_key_name=f"geofuse-fr-window-{uid}-{i}") for i, w in enumerate(windows)]
        total = dask.delayed(_sum_over_nblocks)(parts, nblocks, dask_key_name=f"geofuse-fr-windows-{uid}")
        return da.from_delayed(total, shape=(self.nstat,), dtype=np.float64)


def _sum_over_nblocks(parts: list[np.ndarray], nblocks: int) -> np.ndarray:
    return np.sum(parts, axis=0) / nblocks


# --------------------------------------------------------------------------------------------------
# the lazy evaluation
# --------------------------------------------------------------------------------------------------

def _needs(names: Iterable[str]) -> tuple[bool, bool, bool]:
    names = set(names)
    want_lambda = bool(names & {"D_lambda", "QNR"})
    want_s = bool(names & {"D_s", "QNR", "HQNR"})
    want_k = bool(names & {"D_lambda_K", "HQNR"})
    return want_lambda, want_s, want_k


def full_resolution(fused: Any, ms: Any, pan: Any, *, ratio: int | None = None, sensor: Any = None,
                    metrics: Iterable[str] = FULL, block: int = 32, p: float = 1.0, q: float = 1.0,
                    alpha: float = 1.0, beta: float = 1.0, compat: str = "default", phase: Any = None,
                    ms_exp: Any = None, chunks: int = _DEFAULT_TILE, work: str | None = None,
                    device: str = "cpu", per_band: bool = False,
                    window: int | None = _DEFAULT_WINDOW) -> dict[str, Any]:
    r"""The full-resolution indexes of ``fused`` from its inputs ``ms`` and ``pan``, lazily.

    Parameters
    ----------
    fused : array (bands, rows, cols)
        The pansharpened image at PAN scale (numpy, dask or DataArray).
    ms : array (bands, rows / ratio, cols / ratio)
        The original (low-resolution) MS.
    pan : array (1, rows, cols) or (rows, cols)
        The PAN.
    ratio : int, optional
        PAN/MS pixel-size ratio; default from the shapes.
    sensor : str, Sensor or sequence of float, optional
        MTF preset or per-band MS gains at Nyquist, for D_lambda_K / HQNR (the fused image is filtered
        with the MS MTF). ``None``: the toolbox's generic gain 0.3 per band, with a warning.
    metrics : iterable of str
        Any of ``D_lambda, D_s, QNR, D_lambda_K, HQNR``; only the intermediates they need are built
        (the MTF filtering only for D_lambda_K / HQNR).
    block : int
        Block size S (toolbox 32); rows and columns must be multiples of it.
    p, q, alpha, beta : float
        QNR exponents (toolbox defaults 1). HQNR always uses ``q = 1``.
    compat : {"default", "toolbox"}
        See the module docstring.
    phase : {"corner", "toolbox"} or float, optional
        Default mode only: where MS pixel 0 lies on the PAN grid (PAN pixels), as in
        :func:`geofuse.pansharpen`; default ``"corner"``.
    ms_exp : array, optional
        Your own MS on the PAN grid (e.g. the toolbox's ``I_MS``); skips the interpolation.
    chunks : int
        Tile side in PAN pixels (rounded to a multiple of ``lcm(block, ratio)``); toolbox mode uses one
        tile (circular borders wrap around the image).
    work : {"float32", "float64"}, optional
        Filtering precision; default float32 (float64 with ``compat="toolbox"``). Block statistics are
        always float64.
    device : str
        Torch device for the filters (``"cpu"``, ``"cuda"``, ``"auto"``).
    per_band : bool
        D_s also as ``bands + 1`` values: ``|Q(F_b, PAN) - Q(MS~_b, PAN_f)|`` per band, then D_s.
    window : int or None
        Super-window side in PAN pixels (rounded to whole tiles; default 2048). Larger images are evaluated
        window by window (each with its halos, one task per window), and the windows' block sums merged, so
        that peak memory does not grow with the image size (see the module docstring).
        ``None`` or 0: the whole image as one graph. Toolbox mode always uses one window.

    Returns
    -------
    dict name -> value
        Floats for numpy inputs; lazy 0-d dask arrays (1-d for D_s with ``per_band``) when any input is
        a dask array: compute them together (``dask.compute(*d.values())``) so the tiles are read once.
        For images larger than one ``window`` each window is one task that computes its own graph with
        the synchronous scheduler (the tasks run in parallel on the caller's scheduler).

    References
    ----------
    Alparone et al. (2008), "Multispectral and panchromatic data fusion assessment without reference",
    PE&RS 74(2), doi:10.14358/PERS.74.2.193. Khan, Alparone, Chanussot (2009), "Pansharpening quality
    assessment using the modulation transfer functions of instruments", IEEE TGRS 47(11),
    doi:10.1109/TGRS.2009.2029094. Aiazzi et al. (2014), "Full-scale assessment of pansharpening methods
    and data products", Proc. SPIE 9244, doi:10.1117/12.2067770. Vivone et al. (2021),
    doi:10.1109/MGRS.2020.3019315.
    """
    import dask.array as da

    from .. import engine
    from .. import sensors as _sensors
    from ..kernels.resample import upsample_halo

    compat = _check_compat(compat)
    names = list(metrics)
    for n in names:
        if n not in FULL:
            raise ParameterError(f"{n!r} is not a full-resolution index", expected=", ".join(FULL), got=repr(n),
                                 fix="pick full-resolution indexes (or protocol='reduced' for the others)")
    block = _check_positive(block, "block", integer=True)
    for name, v in (("p", p), ("q", q), ("alpha", alpha), ("beta", beta)):
        _check_positive(v, name)
    f = _unwrap(fused, "fused")
    m_lr = _unwrap(ms, "ms")
    pn = _unwrap(pan, "pan", allow_2d=True)
    me = _unwrap(ms_exp, "ms_exp") if ms_exp is not None else None
    r = _check_sizes(f, m_lr, pn, ratio, block, me)
    lazy = any(_is_dask(a) for a in (f, m_lr, pn) + ((me,) if me is not None else ()))
    bands, rows, cols = f.shape
    want_lambda, want_s, want_k = _needs(names)
    work = work or ("float64" if compat == "toolbox" else "float32")
    if work not in ("float32", "float64"):
        raise ParameterError("Unknown work precision", expected="'float32' or 'float64'", got=repr(work),
                             fix="use work='float64' for reference comparisons")
    ph = _resolve_phase(phase, r, compat)
    border = "circular" if compat == "toolbox" else "symmetric"

    step = block * r // math.gcd(block, r)
    kern = None
    if want_k:
        from ..kernels.filters import mtf_kernels

        sens = _sensors.get(sensor, bands)
        kern = mtf_kernels(sens.gains(bands), r)
    hf = kern.shape[-1] // 2 if want_k else 0                 # MTF filter radius (PAN pixels)
    hm = upsample_halo(r, ph) if me is None else 0           # interpolation context (MS pixels)
    hp = _pan_filt_depth(r, ph) if want_s else 0             # PAN degradation + re-interpolation (PAN pixels)
    min_steps = max(1, -(-max(hf, hp, hm * r) // step))       # every tile at least as large as the halos
    if compat == "toolbox":
        tile = -(-max(rows, cols) // step) * step
    else:
        tile = max(step, int(chunks) // step * step)
    ys = tuple(int(c) for c in engine._axis_chunks(rows // step, tile // step, min_steps))
    xs = tuple(int(c) for c in engine._axis_chunks(cols // step, tile // step, min_steps))
    grid = ((bands,), tuple(c * step for c in ys), tuple(c * step for c in xs))
    multi_y, multi_x = len(ys) > 1, len(xs) > 1
    npair = bands * (bands - 1) // 2
    nstat = (2 * npair if want_lambda else 0) + (2 * bands if want_s else 0) + (1 if want_k else 0)
    tile_fn = partial(_fr_tile, ratio=r, phase=ph, border=border, kern=kern, hf=hf,
                      hm=hm, hp=hp, multi=(multi_y, multi_x), upsample_ms=me is None, block=block, bands=bands,
                      want_lambda=want_lambda, want_s=want_s, want_k=want_k, cast=compat == "toolbox",
                      work=work, device=device, ntiles=(len(ys), len(xs)))
    win = _Windows(f, m_lr, pn, me, tile_fn, grid[1], grid[2], r, block, nstat, hf, hm, hp, want_s)
    side = max(grid[1][0], grid[2][0])                      # the tiles' side (at least the halos)
    per = 0 if compat == "toolbox" or not window else max(1, round(int(window) / side))   # tiles per window side
    groups_y = _groups(len(ys), per or len(ys))
    groups_x = _groups(len(xs), per or len(xs))
    if len(groups_y) * len(groups_x) == 1:
        means = win.stats(0, len(ys), 0, len(xs)).mean(axis=(1, 2))
    else:
        means = win.merged([(y0, y1, x0, x1) for y0, y1 in groups_y for x0, x1 in groups_x])

    out: dict[str, Any] = {}
    at = 0
    d_lam = d_s_q = d_s_1 = dk = None
    if want_lambda:
        qf, qm = means[at:at + npair], means[at + npair:at + 2 * npair]
        at += 2 * npair
        d_lam = (abs(qf - qm) ** p).mean() ** (1.0 / p) if npair else da.full((), np.nan)  # no band pairs
    if want_s:
        qh, ql = means[at:at + bands], means[at + bands:at + 2 * bands]
        at += 2 * bands
        diff = abs(qh - ql)
        d_s_q = (diff ** q).mean() ** (1.0 / q)
        d_s_1 = diff.mean()
    if want_k:
        dk = 1.0 - means[at]
    for n in names:
        if n == "D_lambda":
            out[n] = d_lam
        elif n == "D_s":
            out[n] = da.concatenate([diff, d_s_q.reshape(1)]) if per_band else d_s_q
        elif n == "QNR":
            out[n] = (1.0 - d_lam) ** alpha * (1.0 - d_s_q) ** beta
        elif n == "D_lambda_K":
            out[n] = dk
        elif n == "HQNR":
            out[n] = (1.0 - dk) * (1.0 - d_s_1)
    if not lazy:
        import dask

        vals = dask.compute(*out.values(), scheduler="threads")
        out = {k: (np.asarray(v, dtype=np.float64) if np.ndim(v) else float(v)) for k, v in zip(out, vals)}
    return out


# --------------------------------------------------------------------------------------------------
# one index at a time, and the registry
# --------------------------------------------------------------------------------------------------

def _one(name: str):
    def func(fused: Any, ms: Any = None, pan: Any = None, *, ratio: int | None = None, sensor: Any = None,
             block: int = 32, p: float = 1.0, q: float = 1.0, alpha: float = 1.0, beta: float = 1.0,
             compat: str = "default", phase: Any = None, ms_exp: Any = None, chunks: int = _DEFAULT_TILE,
             work: str | None = None, device: str = "cpu", per_band: bool = False,
             window: int | None = _DEFAULT_WINDOW) -> Any:
        if ms is None or pan is None:
            raise InputError(f"{name} is a full-resolution index: it needs the MS and the PAN",
                             expected="ms=<low-resolution MS>, pan=<PAN>",
                             got=f"ms={'None' if ms is None else 'given'}, pan={'None' if pan is None else 'given'}",
                             fix=f"call {name.lower()}(fused, ms, pan, ...) with the inputs of the fusion")
        return full_resolution(fused, ms, pan, ratio=ratio, sensor=sensor, metrics=(name,), block=block, p=p, q=q,
                               alpha=alpha, beta=beta, compat=compat, phase=phase, ms_exp=ms_exp, chunks=chunks,
                               work=work, device=device, per_band=per_band, window=window)[name]
    func.__name__ = name.lower()
    func.__qualname__ = name.lower()
    func.__doc__ = (f"{name} of ``fused`` from its inputs ``ms`` and ``pan`` (see :func:`full_resolution` for the "
                    "parameters and :mod:`geofuse.metrics.full` for the definition).")
    return func


d_lambda = _one("D_lambda")
d_s = _one("D_s")
qnr = _one("QNR")
d_lambda_k = _one("D_lambda_K")
hqnr = _one("HQNR")

for _name, _title, _hib, _ideal, _func, _per in (
    ("D_lambda", "Spectral distortion of QNR (band-pair UIQI, S x S blocks, PAN scale)", False, 0.0, d_lambda, False),
    ("D_s", "Spatial distortion of QNR (band-PAN UIQI vs interpolated MS vs degraded PAN)", False, 0.0, d_s, True),
    ("QNR", "Quality with no reference: (1 - D_lambda)^alpha (1 - D_s)^beta", True, 1.0, qnr, False),
    ("D_lambda_K", "Khan's spectral distortion: 1 - Q2n(MS~, MTF(fused))", False, 0.0, d_lambda_k, False),
    ("HQNR", "Hybrid QNR: (1 - D_lambda_K)(1 - D_s)", True, 1.0, hqnr, False),
):
    register(Metric(_name, _title, higher_is_better=_hib, ideal=_ideal, needs_reference=False, per_band=_per,
                    func=_func, inputs=("fused", "ms", "pan")))
