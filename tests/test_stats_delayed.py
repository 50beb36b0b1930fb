"""``stats.delayed_on``: small dask arrays reach a delayed function as one graph input, so an upstream
shared by several arguments is computed once (plain ``dask.delayed`` computes it once per argument)."""

from __future__ import annotations

import threading

import dask
import dask.array as da
import numpy as np

from geofuse import stats


def _counted_source(counter):
    lock = threading.Lock()

    def block(x):
        with lock:
            counter["n"] += 1
        return x * 2.0

    base = da.arange(40, chunks=10, dtype=np.float64)
    return base.map_blocks(block, dtype=np.float64)


def _f(a, b, *, c, k):
    return float(a.sum() + b.sum() + c.sum()) * k, a.dtype, b.dtype, c.dtype, a.shape, c.shape


def test_shared_upstream_computed_once_and_values_kept():
    counter = {"n": 0}
    up = _counted_source(counter)
    a = up.sum(keepdims=True)              # (1,) float64
    b = (up > 30).reshape(4, 10)           # bool
    c = up.astype(np.int32)[:5]            # int32
    dask.compute(a, b, c, scheduler="synchronous")
    direct, counter["n"] = counter["n"], 0  # the passes the three arrays need when computed together
    got, *meta = dask.compute(stats.delayed_on(_f, a, b, c=c, k=2.0), scheduler="synchronous")[0]
    assert counter["n"] <= direct
    want = (np.arange(40) * 2.0).sum() + ((np.arange(40) * 2.0) > 30).sum() + (np.arange(5) * 2).sum()
    assert got == 2.0 * want
    assert meta == [np.dtype(np.float64), np.dtype(bool), np.dtype(np.int32), (1,), (5,)]


def test_plain_delayed_would_recompute():
    """The behaviour delayed_on exists for (if dask stops doing this, delayed_on is merely harmless)."""
    counter = {"n": 0}
    up = _counted_source(counter)
    dask.compute(dask.delayed(lambda a, b: a.sum() + b.sum())(up.sum(keepdims=True), up[:3]),
                 scheduler="synchronous")
    assert counter["n"] >= 4


def test_regress_runs_its_input_pass_once():
    counter = {"n": 0}
    lock = threading.Lock()

    def block(x):
        with lock:
            counter["n"] += 1
        return x

    rng = np.random.default_rng(0)
    X = rng.normal(size=(2, 30, 30))
    y = 3.0 * X[:1] - 2.0 * X[1:] + 1.0
    Xd = da.from_array(X, chunks=(2, 10, 10)).map_blocks(block, dtype=float)
    yd = da.from_array(y, chunks=(1, 10, 10))
    dask.compute(stats.moments([Xd, yd]).cov, scheduler="synchronous")
    one_pass, counter["n"] = counter["n"], 0
    coef, icpt = stats.regress(yd, Xd)
    (c,) = dask.compute(coef, scheduler="synchronous")
    assert counter["n"] <= one_pass  # it was twice that: the solver's two inputs each had their own pass
    np.testing.assert_allclose(c, [3.0, -2.0], atol=1e-10)
    np.testing.assert_allclose(icpt.compute(), 1.0, atol=1e-10)


def test_placeholder_survives_pickling_to_workers():
    """dask.distributed pickles the call: the packed-argument marker must still be recognised."""
    import pickle

    args = pickle.loads(pickle.dumps((stats._Packed(), 3)))
    assert stats._unpack_call(lambda a, b: (a.tolist(), b), (((2,), np.dtype(np.int32)),),
                              np.array([1.0, 2.0]), args, {}) == ([1, 2], 3)
