"""BDSD, BDSD-PC and PRACS: faithfulness to the reference toolbox and the methods' own properties.

Reference values: ``../shared/reference/pansharpening/IKONOS_RR_outputs.npz``, the outputs of the reference
MATLAB pansharpening toolbox (Vivone et al. 2021, doi:10.1109/MGRS.2020.3019315; ``BDSD.m`` with
S = 256 (global) and S = 128, ``BDSD_PC.m``, ``PRACS.m``) run under GNU Octave 7.3 on the IKONOS crop
(see the README beside it). The reference tests skip when ``../shared`` is absent; the property tests
always run on small seeded synthetic pairs.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch
from affine import Affine
from scipy.optimize import lsq_linear

from geofuse.api import pansharpen
from geofuse.errors import ParameterError
from geofuse.grid import lowres_transform
from geofuse.kernels import bdsd as kb
from geofuse.kernels import pracs as kp
from geofuse.methods import bdsd as mb
from geofuse.raster import make_raster

from .conftest import shared_path, synthetic_pair

CRS = "EPSG:32633"


def fuse(ms, pan, method, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pansharpen(ms, pan, method, **kw)


@pytest.fixture(scope="module")
def ref():
    with np.load(shared_path("reference", "pansharpening", "IKONOS_RR_outputs.npz")) as z:
        return {k: z[k] for k in z.files}


def _toolbox_rasters(ref):
    pt = Affine(1, 0, 0, 0, -1, ref["I_PAN"].shape[0])
    pan = make_raster(ref["I_PAN"][None], pt, CRS)
    ms = make_raster(ref["I_MS_LR"].transpose(2, 0, 1), lowres_transform(pt, 4, (2, 2)), CRS)
    return ms, pan


@pytest.mark.parametrize("method, params, key", [
    ("bdsd", {}, "BDSD_global"),
    ("bdsd", {"block_size": 128}, "BDSD_S_128"),
    ("bdsd_pc", {}, "BDSD_PC"),
    ("pracs", {}, "PRACS"),
])
def test_matches_toolbox(ref, method, params, key):
    """Relative RMSE (to the reference's dynamic range) far below the 1e-4 requirement (measured: about
    1e-7, i.e. float32 rounding of the output)."""
    ms, pan = _toolbox_rasters(ref)
    out = pansharpen(ms, pan, method, sensor="IKONOS", compat="toolbox", params=params, dtype="float64")
    got = out.values.astype(np.float64)
    want = ref[key].transpose(2, 0, 1).astype(np.float64)
    rel = np.sqrt(np.mean((got - want) ** 2)) / (want.max() - want.min())
    assert rel < 1e-6, rel
    assert np.abs(got - want).max() < 0.05


def test_default_mode_chunked_on_reference(ref):
    """Default mode on the toolbox-phase pair: the same gains, and chunked == whole image."""
    ms, pan = _toolbox_rasters(ref)
    for method in ("bdsd", "bdsd_pc", "pracs"):
        a = fuse(ms, pan, method, sensor="IKONOS", chunks=(72, 100)).values
        b = fuse(ms, pan, method, sensor="IKONOS", chunks=4096).values
        np.testing.assert_array_equal(a, b)


# -------------------------------------------------------------------------------------------------- BDSD


def test_block_edges():
    assert kb.block_edges(64, 0).tolist() == [0, 64]
    assert kb.block_edges(64, 32).tolist() == [0, 32, 64]
    assert kb.block_edges(64, 100).tolist() == [0, 64]
    assert kb.block_edges(70, 32).tolist() == [0, 32, 70]  # remainder 6 < 16 joins the last block
    assert kb.block_edges(80, 32).tolist() == [0, 32, 64, 80]  # remainder 16 is a block of its own


def test_bdsd_blocks_equals_per_block_injection():
    g = torch.Generator().manual_seed(0)
    ms, pan = torch.rand(3, 10, 12, generator=g), torch.rand(1, 10, 12, generator=g)
    gamma = torch.randn(2, 3, 4, 3, generator=g)
    rows = torch.tensor([0] * 4 + [1] * 6)
    cols = torch.tensor([0] * 5 + [1] * 3 + [2] * 4)
    got = kb.bdsd_blocks(ms, pan, gamma, rows, cols)
    for i in range(10):
        for j in range(12):
            want = kb.bdsd(ms[:, i:i + 1, j:j + 1], pan[:, i:i + 1, j:j + 1], gamma[rows[i], cols[j]])
            torch.testing.assert_close(got[:, i:i + 1, j:j + 1], want)


def test_bdsd_gains_solve_the_least_squares():
    """The gains from the raw sums equal a direct least-squares fit of the detail (numpy lstsq)."""
    rng = np.random.default_rng(0)
    C, n = 4, 500
    ml, pl, mo = rng.normal(size=(n, C)), rng.normal(size=(n, 1)), rng.normal(size=(n, C))
    z = np.hstack([ml, pl, mo])
    gamma = kb.bdsd_gains(z.T @ z, C)
    want = np.linalg.lstsq(np.hstack([ml, pl]), mo - ml, rcond=None)[0]
    np.testing.assert_allclose(gamma, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_bdsd_pc_gains_are_the_constrained_optimum(seed):
    """Against two independent solvers: scipy's bounded least squares on the full design matrix, and
    an exhaustive search over active sets (the optimum of a convex QP with bounds is the best feasible
    'free variables at their unconstrained optimum, the others at 0')."""
    rng = np.random.default_rng(seed)
    C, n = 3, 400
    base = rng.normal(size=(n, 1))
    ml = base + 0.3 * rng.normal(size=(n, C))
    pl = base + 0.2 * rng.normal(size=(n, 1))
    mo = ml + rng.normal(size=(n, C)) * 0.5 + 0.4 * pl
    z = np.hstack([ml, pl, mo])
    got = kb.bdsd_pc_gains(z.T @ z, C)
    H = np.hstack([pl, ml])  # BDSD-PC order: PAN first
    lb, ub = np.r_[0.0, -np.inf * np.ones(C)], np.r_[np.inf, np.zeros(C)]
    for b in range(C):
        y = mo[:, b] - ml[:, b]
        g_ref = lsq_linear(H, y, bounds=(lb, ub), tol=1e-14, method="bvls").x
        np.testing.assert_allclose(np.r_[got[C, b], got[:C, b]], g_ref, atol=1e-8)
        best, best_cost = None, np.inf
        for free in itertools.chain.from_iterable(itertools.combinations(range(C + 1), k) for k in range(C + 2)):
            g = np.zeros(C + 1)
            if free:
                g[list(free)] = np.linalg.lstsq(H[:, list(free)], y, rcond=None)[0]
            if g[0] >= -1e-12 and (g[1:] <= 1e-12).all():
                cost = np.sum((H @ g - y) ** 2)
                if cost < best_cost:
                    best, best_cost = g, cost
        np.testing.assert_allclose(np.r_[got[C, b], got[:C, b]], best, atol=1e-8)
        assert got[C, b] >= 0 and (got[:C, b] <= 0).all()


def test_bdsd_block_size_larger_than_image_is_global():
    ms, pan = synthetic_pair((20, 24), 4, dtype=np.float32, seed=2, phase="toolbox")
    a = fuse(ms, pan, "bdsd", params={"block_size": 1024}, chunks=4096).values
    b = fuse(ms, pan, "bdsd", chunks=4096).values
    np.testing.assert_array_equal(a, b)


def test_bdsd_local_blocks_whole_image():
    """Local blocks (with a remainder that joins the last block): finite, and different from global."""
    ms, pan = synthetic_pair((36, 42), 4, dtype=np.float32, seed=2)
    loc = fuse(ms, pan, "bdsd", params={"block_size": 64}, chunks=4096).values
    glob = fuse(ms, pan, "bdsd", chunks=4096).values
    assert np.isfinite(loc).all() and not np.array_equal(loc, glob)
    if mb._ENGINE_HAS_ORIGIN:
        np.testing.assert_array_equal(fuse(ms, pan, "bdsd", params={"block_size": 64}, chunks=(52, 60)).values, loc)


def test_bdsd_bad_block_size():
    ms, pan = synthetic_pair((20, 24), 4, dtype=np.float32, seed=2)
    with pytest.raises(ParameterError, match="even multiple of the ratio"):
        fuse(ms, pan, "bdsd", params={"block_size": 30})
    with pytest.raises(ParameterError):
        fuse(ms, pan, "bdsd", params={"block_size": -4})


# -------------------------------------------------------------------------------------------------- PRACS


def test_pracs_detail_scales_with_beta():
    """beta only scales the injected detail: F - MS is proportional to beta."""
    ms, pan = synthetic_pair((20, 24), 4, dtype=np.float32, seed=3)
    exp = fuse(ms, pan, "exp", dtype="float64").values
    d1 = fuse(ms, pan, "pracs", params={"beta": 0.95}, dtype="float64").values - exp
    d2 = fuse(ms, pan, "pracs", params={"beta": 1.95}, dtype="float64").values - exp
    np.testing.assert_allclose(d2, d1 * (1.95 / 0.95), rtol=1e-3, atol=2e-2)
    assert np.abs(d1).max() > 1.0


def test_pracs_coefficients_match_direct_regressions():
    """The closed-form coefficients equal the explicit regressions/correlations of the method on a
    small float64 image (numpy lstsq / corrcoef, the toolbox's sequence of steps)."""
    rng = np.random.default_rng(4)
    C, n = 3, 2000
    ms = rng.normal(100, 20, size=(C, n)) + rng.normal(0, 30, size=(1, n))
    hm = ms * 1.3 + 5
    pan_l = hm.mean(0) + rng.normal(0, 5, n)
    hm_low = hm + rng.normal(0, 3, size=(C, n))
    pan_mean, beta = 130.0, 0.95
    z = np.vstack([ms, hm, pan_l, hm_low])
    co = kp.pracs_coefficients(z.mean(1), np.cov(z), pan_mean, beta)
    X = np.vstack([np.ones(n), hm]).T
    il = X @ np.linalg.lstsq(X, pan_l, rcond=None)[0]
    cc = np.array([np.corrcoef(il, hm[k])[0, 1] for k in range(C)])
    np.testing.assert_allclose(co["cc"], cc, rtol=1e-10)
    std = ms.std(1, ddof=1)
    for k in range(C):
        a = np.linalg.lstsq(X, cc[k] * pan_l + (1 - cc[k]) * hm_low[k], rcond=None)[0]
        np.testing.assert_allclose(co["lint"][k], a[0], rtol=1e-9)
        np.testing.assert_allclose(co["lcoef"][k], a[1:], rtol=1e-9)
        ilp = X @ a
        w = beta * np.corrcoef(ilp, ms[k])[0, 1] * std[k] / std.mean()
        np.testing.assert_allclose(co["w"][k], w, rtol=1e-10)
        np.testing.assert_allclose(co["c_int"][k], np.corrcoef(il, ms[k])[0, 1], rtol=1e-10)


def test_bicubic_lowpass_keeps_constants_and_is_local():
    x = torch.full((1, 24, 28), 7.0, dtype=torch.float64)
    torch.testing.assert_close(kp.bicubic_lowpass(x, 4), x)
    g = torch.Generator().manual_seed(1)
    img = torch.rand(2, 64, 64, generator=g, dtype=torch.float64)
    whole = kp.bicubic_lowpass(img, 4)
    h = 18  # the method's halo for ratio 4
    tile = kp.bicubic_lowpass(img[:, 16:64, 8:64], 4)  # tile starting on the ratio lattice
    torch.testing.assert_close(tile[:, h:48 - h, h:56 - h], whole[:, 16 + h:64 - h, 8 + h:64 - h])
