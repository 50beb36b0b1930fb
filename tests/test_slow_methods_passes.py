"""The statistics passes of BT-H, PRACS and C-GSA and their per-block helpers.

* Each statistics pass computes every block once (a dask array handed to ``dask.delayed`` used to be
  finalised once per downstream consumer, which recomputed L(PAN) 3x and the MS upsampling up to 8x per
  block): counted on a 2 x 2-block scene.
* The helpers against plain numpy loops / numpy's own reductions (independent formulations):
  first radix digit vs the float order, nearest-centroid labels vs a numpy argmin, per-segment moments
  vs ``np.mean``/``np.cov``, k-means centroid update vs a boolean-mask loop, merged moments vs
  ``stats.moments``, C-GSA's per-block k-means sample vs the strided global slice, PRACS slabs vs
  the whole tile.
"""

from __future__ import annotations

import collections
import math
import warnings

import dask
import dask.array as da
import numpy as np
import pytest
import torch

from geofuse import engine, stats
from geofuse.api import pansharpen
from geofuse.kernels import cs_classic as kc
from geofuse.kernels import pracs as kp
from geofuse.kernels import segment
from geofuse.methods import c_gsa as cg
from geofuse.methods import cs_classic as m

from .conftest import synthetic_pair


# ------------------------------------------------------------------------------------------------
# every block once per pass
# ------------------------------------------------------------------------------------------------

#: tile computations per block: statistics passes + apply
EXPECTED_UPSAMPLES = {"bt_h": 4, "pracs": 3, "c_gsa": 3}


@pytest.mark.parametrize("method", sorted(EXPECTED_UPSAMPLES))
def test_each_pass_computes_each_block_once(method, monkeypatch):
    calls = collections.Counter()
    up, lp, km = engine.Block.upsample, kc.lp_filter_gauss, segment.kmeans_fit

    def count(tag, fn):
        def wrapped(*a, **kw):
            calls[tag] += 1
            return fn(*a, **kw)
        return wrapped

    monkeypatch.setattr(engine.Block, "upsample", count("up", up))
    monkeypatch.setattr(kc, "lp_filter_gauss", count("lp", lp))
    monkeypatch.setattr(segment, "kmeans_fit", count("kmeans", km))
    ms, pan = synthetic_pair((64, 64), 4, chunks=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = pansharpen(ms, pan, method, sensor="IKONOS", chunks=128)  # 2 x 2 blocks
    nblocks = math.prod(len(c) for c in out.data.chunks[1:])
    assert nblocks == 4
    out.data.compute(scheduler="synchronous")
    assert calls["up"] == EXPECTED_UPSAMPLES[method] * nblocks, calls
    if method == "bt_h":
        assert calls["lp"] == nblocks, calls
    if method == "c_gsa":
        assert calls["kmeans"] == 1, calls


# ------------------------------------------------------------------------------------------------
# exact percentile helpers
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_top_digits_follow_the_float_order(dtype):
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(size=500) * 10.0 ** rng.integers(-30, 30, 500),
                        [0.0, -0.0, np.inf, -np.inf, 1e-40, -1e-40, 7.0, 7.0]]).astype(dtype)
    top = m._top_digits(x[None])[0]
    assert top.dtype == np.uint16
    # non-decreasing along the sorted values (-0.0 sorts just below +0.0, which numpy calls equal)
    order = np.lexsort((~np.signbit(x), x))
    assert np.all(np.diff(top[order].astype(np.int64)) >= 0)
    # the same digit as the top 16 bits of the full sortable keys
    keys, width = m._sortable_keys(x[None])
    np.testing.assert_array_equal(top, (keys[0] >> keys.dtype.type(width - 16)).astype(np.uint16))
    # the raw top bits, permuted by the lookup tables, give the same digits
    np.testing.assert_array_equal(m._RAW_TO_KEY[m._raw_top(x[None])[0]], top)
    np.testing.assert_array_equal(m._KEY_TO_RAW[top], m._raw_top(x[None])[0])


def test_digit_histograms_against_numpy_counts():
    rng = np.random.default_rng(4)
    x = (rng.normal(size=(2, 40, 30)) * 50).astype(np.float32)
    valid = rng.random((40, 30)) > 0.3
    h0 = m._digit_histograms(x, valid, None, 0).reshape(2, -1)
    assert h0.sum(axis=1).tolist() == [valid.sum()] * 2
    state = m._select_digit(h0.reshape(-1), None, 2, 10.0)
    h1 = m._digit_histograms(x, valid, state, 1).reshape(2, 2, -1)
    for b in range(2):
        v = np.sort(x[b][valid])
        for r in range(2):
            # the values whose first 16 key bits equal the selected prefix: numpy's own count
            first = int(state["prefix"][b, r])
            members = v[m._top_digits(v[None])[0] == first]
            assert h1[b, r].sum() == members.size


# ------------------------------------------------------------------------------------------------
# C-GSA helpers
# ------------------------------------------------------------------------------------------------

def _assign_reference(f: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Nearest centroid by a plain numpy loop (float32 arithmetic in the band order, first on ties)."""
    d = np.stack([sum(((f[j] - c[k, j]) ** 2 for j in range(f.shape[0])), np.zeros_like(f[0]))
                  for k in range(c.shape[0])])
    return d.argmin(axis=0)


def test_assign_segments_matches_numpy(monkeypatch):
    rng = np.random.default_rng(5)
    f = rng.random((4, 37, 53)).astype(np.float32)
    c = rng.random((5, 4)).astype(np.float32)
    c[3] = c[1]  # tie: the first centroid wins
    want = _assign_reference(f, c)
    monkeypatch.setattr(segment, "ASSIGN_SLAB", 100)  # many slabs, a ragged last one
    got = segment.assign_segments(torch.from_numpy(f), torch.from_numpy(c)).numpy()
    np.testing.assert_array_equal(got, want)
    scale = np.float32([2.0, 3.0, 0.5, 7.0])
    got = segment.assign_segments(torch.from_numpy(f * 0 + f), torch.from_numpy(c),
                                  divisor=torch.from_numpy(scale)).numpy()
    np.testing.assert_array_equal(got, _assign_reference(f / scale[:, None, None], c))


def test_grouped_block_matches_numpy_per_segment():
    rng = np.random.default_rng(6)
    k, B = 4, 3
    lab = rng.integers(0, k - 1, (33, 41)).astype(np.float32)  # segment k-1 empty
    vals = (rng.normal(size=(B, 33, 41)) * 100 + 500).astype(np.float32)
    valid = rng.random((33, 41)) > 0.2
    x = np.concatenate([lab[None], vals])[:, 1:, 2:]  # a strided (trimmed) view, as from the engine
    got = cg._grouped_block(x, valid[1:, 2:][None][0], k=k).reshape(k, -1)
    for s in range(k):
        sel = (x[0] == s) & valid[1:, 2:]
        xs = x[1:][:, sel].astype(np.float64)
        assert got[s, 0] == sel.sum()
        if sel.sum():
            np.testing.assert_allclose(got[s, 1:1 + B], xs.mean(axis=1), rtol=1e-13)
            np.testing.assert_allclose(got[s, 1 + B:].reshape(B, B), np.cov(xs) * (sel.sum() - 1), rtol=1e-10)
        else:
            assert not got[s, 1:].any()


def test_kmeans_update_matches_mask_loop():
    """The stable-sort centroid update gives the centroids of the boolean-mask loop, bit for bit."""
    rng = np.random.default_rng(8)
    x = torch.from_numpy(np.concatenate([rng.normal(loc=i, scale=0.8, size=(300, 3)) for i in range(4)]))
    got = segment.kmeans_fit(x, 4, seed=3)
    # reference: the same seeding, then Lloyd with a per-cluster boolean mask
    g = torch.Generator().manual_seed(3)
    n = x.shape[0]
    centres = [x[int(torch.randint(n, (1,), generator=g))]]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, 4):
        i = int(torch.multinomial(d2 / d2.sum(), 1, generator=g))
        centres.append(x[i])
        d2 = torch.minimum(d2, ((x - x[i]) ** 2).sum(1))
    c = torch.stack(centres)
    labels = None
    for _ in range(100):
        new = torch.cdist(x, c).argmin(1)
        if labels is not None and torch.equal(new, labels):
            break
        labels = new
        for j in range(4):
            sel = labels == j
            if sel.any():
                c[j] = x[sel].mean(0)
    torch.testing.assert_close(got, c, rtol=0, atol=0)


def test_c_gsa_block_sample_is_the_global_strided_slice():
    rng = np.random.default_rng(9)
    ms = rng.random((3, 50, 47)).astype(np.float32)
    valid = rng.random((50, 47)) > 0.1
    X = da.from_array(ms, chunks=(3, 17, 13))
    V = da.from_array(valid, chunks=(17, 13))
    step = 4
    rows, cols = cg._sample_offsets(X.chunks[1], step), cg._sample_offsets(X.chunks[2], step)
    rmax, cmax = max(r for _, r in rows), max(c for _, c in cols)
    K = 3 + 4 * rmax * cmax
    parts = da.map_blocks(cg._ms_pass, X, V[None], step=step, rmax=rmax, cmax=cmax,
                          chunks=((K,),) + tuple((1,) * len(c) for c in X.chunks[1:]), dtype=np.float64)
    blocks = [b.compute() for b in stats.block_summaries(parts)]
    merged_lr = np.concatenate([[10.0, 1.0, 2.0, 3.0, 4.0], np.eye(4).ravel()])  # [MS (3), L(PAN)]
    got = cg._first(merged_lr, blocks, rows, cols, True, np.float32, 3, 0)
    np.testing.assert_array_equal(got["ms_max"], np.where(valid, ms, -np.inf).max(axis=(1, 2)))
    want = cg._fit_centroids(ms[:, ::step, ::step], valid[::step, ::step], got["ms_max"], 3, 0)
    np.testing.assert_array_equal(got["centroids"], want)


# ------------------------------------------------------------------------------------------------
# moments and PRACS
# ------------------------------------------------------------------------------------------------

def test_merged_moments_equal_stats_moments():
    rng = np.random.default_rng(10)
    x = da.from_array(rng.normal(size=(3, 40, 30)).astype(np.float32), chunks=(3, 13, 11))
    y = da.from_array(rng.normal(size=(1, 40, 30)).astype(np.float32), chunks=(1, 13, 11))
    v = da.from_array(rng.random((40, 30)) > 0.2, chunks=(13, 11))
    for valid in (None, v):
        ref = stats.moments([x, y], valid)
        n, mean, cov = stats.moments_of(stats.merged_moments([x, y], valid).compute())
        rn, rmean, rcov = dask.compute(ref.n, ref.mean, ref.cov)
        assert n == rn
        np.testing.assert_array_equal(mean, rmean)
        np.testing.assert_array_equal(cov, rcov)


def test_pracs_slabs_equal_the_whole_tile(monkeypatch):
    rng = np.random.default_rng(11)
    C = 4
    ms = torch.from_numpy(rng.random((C, 23, 19)).astype(np.float32) * 300)
    pan = torch.from_numpy(rng.random((1, 23, 19)).astype(np.float32) * 300)
    t = {k: torch.from_numpy(rng.random(s).astype(np.float32)) for k, s in
         {"ms_mean": (C,), "scale": (C,), "pan_mean": (1,), "cc": (C,), "lint": (C,), "lcoef": (C, C),
          "dmean": (C,), "w": (C,), "c_int": (C,)}.items()}
    whole = kp.pracs(ms, pan, **t)
    monkeypatch.setattr(kp, "SLAB_PIXELS", 40)  # 2 rows per slab, a ragged last slab
    torch.testing.assert_close(kp.pracs(ms, pan, **t), whole, rtol=0, atol=0)
