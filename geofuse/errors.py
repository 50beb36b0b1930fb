"""The geofuse error tree.

Every error geofuse raises on bad input derives from :class:`GeofuseError` and, where it fits, from
the builtin a caller would expect (``ValueError``, ``KeyError``, ``OSError``), so both
``except GeofuseError`` and ``except ValueError`` work. Messages state what was expected, what was
received, and how to fix it.
"""

from __future__ import annotations


class GeofuseError(Exception):
    """Root of every error geofuse raises on purpose."""


def _msg(what: str, expected: str | None = None, got: str | None = None, fix: str | None = None) -> str:
    parts = [what.rstrip(".") + "."]
    if expected is not None:
        parts.append(f"Expected: {expected}.")
    if got is not None:
        parts.append(f"Got: {got}.")
    if fix is not None:
        parts.append(f"Fix: {fix}.")
    return " ".join(parts)


class _Structured(GeofuseError):
    """Builds the 'what / expected / got / fix' message from keyword arguments."""

    def __init__(self, what: str, *, expected: str | None = None, got: str | None = None,
                 fix: str | None = None):
        self.what, self.expected, self.got, self.fix = what, expected, got, fix
        super().__init__(_msg(what, expected, got, fix))

    def __reduce__(self):  # picklable across dask.distributed workers
        return (_rebuild, (type(self), self.what, self.expected, self.got, self.fix))


def _rebuild(cls, what, expected, got, fix):
    return cls(what, expected=expected, got=got, fix=fix)


class GridMismatchError(_Structured, ValueError):
    """High- and low-resolution grids do not fit together (CRS, scale, phase, rotation, extent)."""


class BandCountError(_Structured, ValueError):
    """An input has the wrong number of bands for the method, sensor or gains."""


class ParameterError(_Structured, ValueError):
    """A method parameter is unknown, of the wrong type or out of range."""


class UnknownMethodError(_Structured, KeyError):
    """No registered method has this name."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class UnknownSensorError(_Structured, KeyError):
    """No sensor preset has this name."""

    def __str__(self) -> str:
        return self.args[0]


class InputError(_Structured, ValueError):
    """An input raster is unusable: empty, corrupt, wrong dims/dtype, all nodata."""


class RasterIOError(_Structured, OSError):
    """Reading or writing a raster file failed."""


class DeviceError(_Structured, RuntimeError):
    """The requested torch device is not available."""
