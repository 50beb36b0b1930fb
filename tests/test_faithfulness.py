"""Faithfulness to the reference MATLAB pansharpening toolbox (compat="toolbox").

Reference values (provenance): ``../shared/reference/pansharpening/IKONOS_RR_outputs.npz`` was generated
by running the reference MATLAB toolbox of Vivone et al. (2021 distribution, "A New Benchmarking of
Pansharpening Methods", IEEE GRSM 2021, doi:10.1109/MGRS.2020.3019315; mirrored in
liangjiandeng/DLPan-Toolbox @ a34f884af88967580e3ef4f61a89e12fdfe4cda5) under GNU Octave 7.3 on an
IKONOS crop (PAN 1024 x 1024, MS 256 x 256 x 4, L = 11 bits), degraded by the toolbox's own Wald
protocol: ``I_MS_LR`` (64 x 64 x 4, MTF filter + 'nearest' decimation keeping rows/cols 2, 6, 10, ...),
``I_PAN`` (256 x 256, ``imresize(PAN, 1/4)``), ``I_MS = interp23tap(I_MS_LR, 4)`` (circular borders),
and the fused outputs ``EXP`` and ``MTF_GLP_HPM`` (``MTF_GLP_HPM(I_MS, I_PAN, 'IKONOS', 4)``). That is an
independent implementation; nothing is copied into the repository, the test reads the file in place
and skips when ``../shared`` is absent (see the README.md beside the file).

The rasters are georeferenced the way the toolbox lays them out: MS_LR pixel k sits on PAN pixel 4k+2
(``lowres_transform(pan_transform, 4, (2, 2))``, the toolbox phase), which geofuse must derive from the
transforms alone.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from affine import Affine

from geofuse.api import pansharpen
from geofuse.grid import PartialOverlapWarning, lowres_transform
from geofuse.raster import make_raster
from geofuse.sensors import GenericSensorWarning

from .conftest import UTM, shared_path

#: Relative RMSE (RMSE / dynamic range of the reference) allowed; geofuse is at ~1e-7 today (float32).
REL_RMSE = 1e-4
PAN_T = Affine(1.0, 0.0, 500_000.0, 0.0, -1.0, 4_000_256.0)


@pytest.fixture(scope="module")
def ikonos_rr():
    path = shared_path("reference", "pansharpening", "IKONOS_RR_outputs.npz")
    with np.load(path) as d:
        ref = {k: d[k] for k in ("I_MS_LR", "I_PAN", "I_MS", "EXP", "MTF_GLP_HPM")}
    pan = make_raster(ref["I_PAN"][None], PAN_T, UTM, band=["pan"])
    ms = make_raster(np.ascontiguousarray(ref["I_MS_LR"].transpose(2, 0, 1)), lowres_transform(PAN_T, 4, (2, 2)),
                     UTM, band=["blue", "green", "red", "nir"])
    return ms, pan, ref


def rel_rmse(got: np.ndarray, ref_hwc: np.ndarray) -> float:
    ref = ref_hwc.transpose(2, 0, 1).astype(np.float64)
    err = np.sqrt(np.mean((got.astype(np.float64) - ref) ** 2))
    return float(err / (ref.max() - ref.min()))


@pytest.mark.shared
@pytest.mark.parametrize("method, keys", [("exp", ("EXP", "I_MS")), ("mtf_glp_hpm", ("MTF_GLP_HPM",))])
def test_matches_toolbox(ikonos_rr, method, keys):
    ms, pan, ref = ikonos_rr
    with warnings.catch_warnings():
        # a preset sensor and exactly fitting grids: no geofuse warning expected
        warnings.simplefilter("error", GenericSensorWarning)
        warnings.simplefilter("error", PartialOverlapWarning)
        out = pansharpen(ms, pan, method, sensor="IKONOS", compat="toolbox")
    assert json.loads(out.attrs["geofuse_phase"]) == [2.0, 2.0]
    assert out.attrs["geofuse_interpolation"] == "interp23tap"
    assert out.dtype == np.float32 and out.shape == (4, 256, 256)
    assert out.rio.transform() == PAN_T
    got = out.values
    for key in keys:
        err = rel_rmse(got, ref[key])
        assert err <= REL_RMSE, f"{method} vs toolbox {key}: relative RMSE {err:.3g} > {REL_RMSE}"


@pytest.mark.shared
def test_toolbox_mode_refuses_small_chunks(ikonos_rr):
    """The toolbox's circular borders are a whole-image property: a chunk size smaller than the image
    is refused (chunked blocks would wrap their own content), not silently ignored."""
    from geofuse.errors import GeofuseError

    ms, pan, _ = ikonos_rr
    with pytest.raises(GeofuseError, match="whole image in one chunk") as err:
        pansharpen(ms, pan, "exp", sensor="IKONOS", compat="toolbox", chunks=(72, 100))
    assert "Fix: pass chunks=256" in str(err.value)
    whole = pansharpen(ms, pan, "exp", sensor="IKONOS", compat="toolbox", chunks=256)
    assert whole.data.numblocks == (1, 1, 1)
