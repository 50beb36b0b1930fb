"""Device selection, the registry's typed parameters, and sensor presets."""

from __future__ import annotations

import pytest
import torch

from geofuse import registry, sensors
from geofuse.device import resolve_device
from geofuse.errors import (BandCountError, DeviceError, GeofuseError, ParameterError, UnknownMethodError,
                            UnknownSensorError)
from geofuse.registry import MethodSpec, Parameter


def test_auto_device(monkeypatch):
    monkeypatch.delenv("GEOFUSE_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


def test_env_overrides_auto(monkeypatch):
    monkeypatch.setenv("GEOFUSE_DEVICE", "cpu")
    assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_is_a_clear_error(monkeypatch):
    with pytest.raises(DeviceError, match="torch sees no GPU"):
        resolve_device("cuda")
    monkeypatch.setenv("GEOFUSE_DEVICE", "cuda")
    with pytest.raises(DeviceError):
        resolve_device("auto")


def test_bad_device_name():
    with pytest.raises(DeviceError, match="Expected"):
        resolve_device("tpu9")


def _spec(**kw):
    return MethodSpec(name="dummy", title="d", family="CS", scenario="pansharpening", inputs=("ms", "pan"),
                      parameters=(Parameter("k", "int", 3, "window", min=1, max=9),
                                  Parameter("mode", "str", "a", "mode", choices=("a", "b")),
                                  Parameter("flag", "bool", False, "a flag")),
                      references=(), summary="", apply=lambda b, e, p: b.ms, halo=lambda p, r: p["k"], **kw)


def test_parameters_validate_types_ranges_and_choices():
    s = _spec()
    assert s.resolve(None) == {"k": 3, "mode": "a", "flag": False}
    assert s.resolve({"k": 5, "flag": "yes"}) == {"k": 5, "mode": "a", "flag": True}
    with pytest.raises(ParameterError, match="out of range"):
        s.resolve({"k": 10})
    with pytest.raises(ParameterError, match="wrong type"):
        s.resolve({"k": 2.5})
    with pytest.raises(ParameterError, match="no such choice"):
        s.resolve({"mode": "c"})
    with pytest.raises(ParameterError, match="has no parameter 'q'"):
        s.resolve({"q": 1})


def test_unknown_method_lists_available_and_suggests():
    with pytest.raises(UnknownMethodError) as ei:
        registry.get("gsaa")
    msg = str(ei.value)
    assert "did you mean 'gsa'" in msg
    for s in registry.available():
        assert s.name in msg
    assert isinstance(ei.value, KeyError) and isinstance(ei.value, GeofuseError)


def test_registry_names_are_unique_lowercase_and_documented():
    specs = registry.available()
    assert len({s.name for s in specs}) == len(specs)
    for s in specs:
        assert s.name == s.name.lower()
        assert s.references and all(r.startswith("10.") for r in s.references), s.name
        assert len(s.summary) > 40, s.name


def test_sensor_presets_match_spec_table():
    # SPEC section 1 (toolbox genMTF.m / MTF_PAN.m, 2021)
    assert sensors.get("IKONOS").gains(4) == (0.26, 0.28, 0.29, 0.28)
    assert sensors.get("IKONOS").pan_gnyq == 0.17
    assert sensors.get("WV2").gains(8) == (0.35,) * 7 + (0.27,)
    assert sensors.get("GeoEye1").gains(4) == sensors.get("WV4").gains(4)


def test_sensor_band_mismatch_and_generic_warning():
    with pytest.raises(BandCountError, match="4 bands"):
        sensors.get("IKONOS", 8)
    with pytest.warns(sensors.GenericSensorWarning, match="sensor="):
        s = sensors.get("Pleiades", 4)
    assert s.gains(4) == (0.3,) * 4
    assert sensors.custom([0.2, 0.3]).gains(2) == (0.2, 0.3)
    with pytest.raises(UnknownSensorError):
        sensors.custom([1.5])
