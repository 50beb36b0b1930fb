"""The same graph on a dask.distributed cluster gives the same array as the threaded scheduler.

A two-process ``LocalCluster`` (one thread per worker) exercises what a real cluster needs: task
specs, methods, sensors and estimates pickled to other processes, the global estimate computed once
and shipped to the block tasks, and :func:`geofuse.io.write_raster` writing through a
``distributed.Lock``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from geofuse import degrade
from geofuse.api import pansharpen
from geofuse.io import open_raster, write_raster

from .conftest import synthetic_pair

distributed = pytest.importorskip("distributed")

METHODS = ["gsa", "mtf_glp_hpm"]
CHUNKS = (44, 52)


def _warm_up() -> bool:
    import geofuse.engine
    import geofuse.methods  # noqa: F401

    return True


@pytest.fixture(scope="module")
def client():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # port / memory-limit notices of a local cluster
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None)
        cl = distributed.Client(cluster, set_as_default=False)
        cl.run(_warm_up)  # import torch + geofuse in both workers once (seconds on a busy 2-core box)
    try:
        yield cl
    finally:
        cl.close()
        cluster.close()


@pytest.fixture(scope="module")
def pair():
    return synthetic_pair((33, 41), 4, dtype=np.uint16, seed=11)


def fuse(ms, pan, method):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pansharpen(ms, pan, method, sensor="IKONOS", chunks=CHUNKS)


@pytest.mark.parametrize("method", METHODS)
def test_cluster_equals_threads(client, pair, method):
    ms, pan = pair
    out = fuse(ms, pan, method)
    assert out.data.npartitions > 1
    threaded = out.compute(scheduler="threads").values
    on_cluster = client.compute(out).result().values
    assert_array_equal(on_cluster, threaded)
    # nodata masks, their fill means and the masked statistics also travel
    ms_nd = ms.rio.write_nodata(0, encoded=False)
    pan_nd = pan.copy(data=pan.data.map_blocks(lambda b: np.where(np.arange(b.shape[-1]) < 5, 0, b)))
    pan_nd = pan_nd.rio.write_nodata(0, encoded=False)
    out_nd = fuse(ms_nd, pan_nd, method)
    assert_array_equal(out_nd.compute(scheduler=client).values, out_nd.compute(scheduler="threads").values)


def test_degrade_on_cluster(client, pair):
    ms, pan = pair
    ms_lr, pan_lr = degrade.wald(ms, pan, "IKONOS", chunks=52)
    assert_array_equal(ms_lr.compute(scheduler=client).values, ms_lr.compute(scheduler="threads").values)
    assert_array_equal(pan_lr.compute(scheduler=client).values, pan_lr.compute(scheduler="threads").values)


@pytest.mark.parametrize("suffix", [".tif", ".zarr"])
def test_write_raster_through_client(client, pair, tmp_path, suffix):
    ms, pan = pair
    out = fuse(ms, pan, "gsa")
    path = write_raster(out, tmp_path / f"gsa{suffix}", scheduler=client)
    back = open_raster(path)
    assert back.dtype == np.uint16 and back.shape == out.shape
    assert back.rio.transform() == pan.rio.transform() and back.rio.crs == pan.rio.crs
    assert_array_equal(back.values, out.compute(scheduler="threads").values)


def test_full_resolution_super_windows_on_the_cluster(client):
    """The FR indexes' super-window tasks (each computes its own small graph synchronously inside the task)
    run on distributed workers and give the single-graph values of the threaded scheduler."""
    import dask.array as da

    from geofuse.metrics.full import full_resolution

    from geofuse.metrics.full import FULL

    from .test_metrics_full import _fr_case

    fused, ms, pan = _fr_case(1, lr=(40, 56))
    one = full_resolution(fused, ms, pan, sensor="IKONOS", window=None)
    lazy = full_resolution(da.from_array(fused, chunks=(4, 37, 51)), da.from_array(ms, chunks=(4, 9, 11)),
                           da.from_array(pan, chunks=(1, 45, 29)), sensor="IKONOS", window=1)
    got = dict(zip(lazy, client.gather(client.compute(list(lazy.values())))))
    for k in FULL:
        np.testing.assert_allclose(np.asarray(got[k]), np.asarray(one[k]), rtol=1e-12, atol=0, err_msg=k)
