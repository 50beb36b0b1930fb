"""Sensor presets: MTF gains at Nyquist of the multispectral bands and of the PAN.

Values are those of the reference pansharpening toolbox (2021 distribution, ``Tools/genMTF.m`` and
``Tools/MTF_PAN.m``); see SPEC section 1. A sensor without a preset uses the generic gain 0.3 for every
MS band (the toolbox's ``otherwise`` branch) and 0.15 for the PAN, with a warning naming the
parameter to set. Users pass their own gains with :func:`custom`.

References
----------
G. Vivone et al., "A New Benchmarking of Pansharpening Methods", IEEE GRSM 9(1), 2021,
doi:10.1109/MGRS.2020.3019315.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

from .errors import BandCountError, UnknownSensorError

GENERIC_MS_GNYQ = 0.3
GENERIC_PAN_GNYQ = 0.15


class GenericSensorWarning(UserWarning):
    """A sensor without a preset was used: the generic MTF gains apply."""


@dataclass(frozen=True)
class Sensor:
    """MTF description of a PAN + MS sensor.

    Parameters
    ----------
    name : str
        Preset tag (as in the toolbox) or ``"custom"``.
    ms_gnyq : tuple of float or None
        MTF gain at Nyquist per MS band; ``None`` means "generic 0.3 for any band count".
    pan_gnyq : float
        MTF gain at Nyquist of the PAN.
    band_names : tuple of str
        Names of the MS bands in order (informative).
    """

    name: str
    ms_gnyq: tuple[float, ...] | None
    pan_gnyq: float
    band_names: tuple[str, ...] = ()

    def gains(self, nbands: int) -> tuple[float, ...]:
        """MS gains for ``nbands`` bands; raises :class:`BandCountError` on a mismatch."""
        if self.ms_gnyq is None:
            return (GENERIC_MS_GNYQ,) * nbands
        if len(self.ms_gnyq) != nbands:
            raise BandCountError(
                f"Sensor {self.name!r} has MTF gains for {len(self.ms_gnyq)} bands",
                expected=f"an MS image with {len(self.ms_gnyq)} bands ({', '.join(self.band_names) or '-'})",
                got=f"{nbands} bands",
                fix="select the sensor's bands, pass the right sensor, or give your own gains with "
                    "sensor=geofuse.sensors.custom([...]) / --mtf-gains")
        return self.ms_gnyq


_BGRN = ("blue", "green", "red", "nir")
_WV8 = ("coastal", "blue", "green", "yellow", "red", "rededge", "nir1", "nir2")

PRESETS: dict[str, Sensor] = {
    "QB": Sensor("QB", (0.34, 0.32, 0.30, 0.22), 0.15, _BGRN),
    "IKONOS": Sensor("IKONOS", (0.26, 0.28, 0.29, 0.28), 0.17, _BGRN),
    "GeoEye1": Sensor("GeoEye1", (0.23, 0.23, 0.23, 0.23), 0.16, _BGRN),
    "WV4": Sensor("WV4", (0.23, 0.23, 0.23, 0.23), 0.16, _BGRN),
    "WV2": Sensor("WV2", (0.35,) * 7 + (0.27,), 0.11, _WV8),
    "WV3": Sensor("WV3", (0.325, 0.355, 0.360, 0.350, 0.365, 0.360, 0.335, 0.315), 0.14, _WV8),
    "none": Sensor("none", None, GENERIC_PAN_GNYQ),
}
_ALIASES = {k.lower(): k for k in PRESETS} | {"geoeye-1": "GeoEye1", "geoeye": "GeoEye1", "ge1": "GeoEye1",
                                              "quickbird": "QB", "worldview-2": "WV2", "worldview-3": "WV3",
                                              "worldview-4": "WV4", "generic": "none"}


def names() -> list[str]:
    """Names of the sensor presets."""
    return list(PRESETS)


def custom(ms_gnyq: Sequence[float], pan_gnyq: float = GENERIC_PAN_GNYQ, name: str = "custom") -> Sensor:
    """A sensor from user-given MTF gains at Nyquist (each in (0, 1))."""
    gains = tuple(float(g) for g in ms_gnyq)
    for g in gains + (float(pan_gnyq),):
        if not 0.0 < g < 1.0:
            raise UnknownSensorError("MTF gain at Nyquist out of range", expected="every gain in (0, 1)",
                                     got=f"{g}", fix="give gains such as 0.29 (IKONOS red)")
    return Sensor(name, gains, float(pan_gnyq))


def get(sensor: "str | Sensor | Sequence[float] | None", nbands: int | None = None, *, warn: bool = True) -> Sensor:
    """Resolve a sensor preset name, a :class:`Sensor`, or a list of MS gains.

    ``None`` or an unknown-but-plausible name (``"Pleiades"``, ``"GF2"``) gives the generic sensor with
    a :class:`GenericSensorWarning` naming the ``sensor`` / ``mtf_gains`` parameter.
    """
    if isinstance(sensor, Sensor):
        s = sensor
    elif sensor is None or isinstance(sensor, str):
        key = _ALIASES.get((sensor or "none").lower())
        if key is None or key == "none":
            if warn:
                warnings.warn(
                    f"No MTF preset for sensor {sensor!r}: using the generic gain {GENERIC_MS_GNYQ} per MS band "
                    f"and {GENERIC_PAN_GNYQ} for the PAN. Set sensor= to one of "
                    f"{', '.join(k for k in PRESETS if k != 'none')} "
                    "or pass your own gains (sensor=geofuse.sensors.custom([...]), CLI --mtf-gains).",
                    GenericSensorWarning, stacklevel=3)
            s = PRESETS["none"]
        else:
            s = PRESETS[key]
    else:
        s = custom(sensor)
    if nbands is not None:
        s.gains(nbands)
    return s
