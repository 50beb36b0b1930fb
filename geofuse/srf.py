"""Spectral response functions (SRF): tables of real sensors, user CSVs, and the matrix ``R`` (K x B)
that maps a hyperspectral pixel onto a multispectral one (``MSI = R @ HS``).

The sensor tables are not shipped with geofuse (their licences are the publishers'): they are read from
a directory given by ``GEOFUSE_SRF_DIR`` or, in a development checkout, ``../shared/data/hyperspectral``
beside the repository. Known presets (:data:`PRESETS`):

* ``Sentinel-2A`` / ``Sentinel-2B`` (MSI B2, B3, B4, B5, B6, B7, B8, B8A, B11, B12), ``Landsat-8`` /
  ``Landsat-9`` (OLI; coastal, blue, green, red, NIR, cirrus, SWIR1, SWIR2; ``-PAN`` variants give the
  panchromatic band), ``Pleiades`` (blue, green, red, NIR; ``Pleiades-PAN``), ``SPOT-6/7`` (blue, green,
  red, NIR): the ``prosail`` package's tables (1 nm, Feret et al.);
* ``IKONOS`` (blue, green, red, NIR; ``IKONOS-PAN``): the table distributed with HySure
  (Simoes et al. 2015, doi:10.1109/TGRS.2014.2375320).

A user CSV has a wavelength column first (nm, or micrometres when every value is below 30) and one column
per band (header with band names); comma, tab or semicolon separated.

Resampling onto the HS wavelengths (:func:`srf_matrix`) samples each response at the HS band centres by
linear interpolation (zero outside the table), or, when HS band widths (FWHM) are given, integrates the
response against each HS band's Gaussian; every row is then normalised to sum to one (Yokoya et al. 2017,
doi:10.1109/MGRS.2016.2637824: "rows of R normalised").
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import BandCountError, InputError, ParameterError, RasterIOError

_PROSAIL = {
    "sentinel-2a": ("srf/prosail_Sentinel_2A_Spectral_Response.tsv", None),
    "sentinel-2b": ("srf/prosail_Sentinel_2B_Spectral_Response.tsv", None),
    "landsat-8": ("srf/prosail_Landsat_8_Spectral_Response.tsv", ("CoastalAerosol", "Blue", "Green", "Red", "NIR",
                                                                   "Cirrus", "SWIR1", "SWIR2")),
    "landsat-8-pan": ("srf/prosail_Landsat_8_Spectral_Response.tsv", ("Pan",)),
    "landsat-9": ("srf/prosail_Landsat_9_Spectral_Response.tsv", ("CoastalAerosol", "Blue", "Green", "Red", "NIR",
                                                                   "Cirrus", "SWIR1", "SWIR2")),
    "landsat-9-pan": ("srf/prosail_Landsat_9_Spectral_Response.tsv", ("Pan",)),
    "pleiades": ("srf/prosail_Pleiades_1A_Spectral_Response.tsv", ("blue", "green", "red", "NIR")),
    "pleiades-pan": ("srf/prosail_Pleiades_1A_Spectral_Response.tsv", ("pan",)),
    "spot-6/7": ("srf/prosail_SPOT_6_7_Spectral_Response.tsv", None),
    "ikonos": ("ikonos_spec_resp_HySure.mat", ("blue", "green", "red", "nir")),
    "ikonos-pan": ("ikonos_spec_resp_HySure.mat", ("pan",)),
}
_ALIASES = {"s2a": "sentinel-2a", "s2b": "sentinel-2b", "sentinel-2": "sentinel-2a", "sentinel2": "sentinel-2a",
            "sentinel2a": "sentinel-2a", "sentinel2b": "sentinel-2b", "l8": "landsat-8", "l9": "landsat-9",
            "landsat8": "landsat-8", "landsat9": "landsat-9", "pleiades-1a": "pleiades", "spot6": "spot-6/7",
            "spot7": "spot-6/7", "spot-6": "spot-6/7", "spot-7": "spot-6/7", "spot-6-7": "spot-6/7"}
#: Names accepted by :func:`load_srf` (case-insensitive).
PRESETS = ("Sentinel-2A", "Sentinel-2B", "Landsat-8", "Landsat-8-PAN", "Landsat-9", "Landsat-9-PAN", "Pleiades",
           "Pleiades-PAN", "SPOT-6/7", "IKONOS", "IKONOS-PAN")


@dataclass(frozen=True)
class SRFTable:
    """Spectral responses sampled on a wavelength grid.

    Attributes
    ----------
    wavelengths : numpy.ndarray
        (n,) nm, increasing.
    responses : numpy.ndarray
        (K, n) relative responses.
    bands : tuple of str
        K band names.
    name : str
    """

    wavelengths: np.ndarray
    responses: np.ndarray
    bands: tuple[str, ...]
    name: str

    def matrix(self, wavelengths: Sequence[float], fwhm: Sequence[float] | float | None = None,
               normalise: bool = True) -> np.ndarray:
        """The (K, B) matrix on the HS band centres ``wavelengths`` (nm); see :func:`srf_matrix`."""
        return srf_matrix(self, wavelengths, fwhm=fwhm, normalise=normalise)


def srf_dir() -> Path:
    """Directory holding the sensor tables: ``$GEOFUSE_SRF_DIR`` or ``../shared/data/hyperspectral``."""
    env = os.environ.get("GEOFUSE_SRF_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "hyperspectral"


def _key(name: str) -> str | None:
    k = name.strip().lower().replace("_", "-").replace(" ", "-")
    k = _ALIASES.get(k, k)
    return k if k in _PROSAIL else None


def load_srf(source: str | os.PathLike) -> SRFTable:
    """A named sensor preset (:data:`PRESETS`) or a user CSV file as an :class:`SRFTable`."""
    key = _key(str(source)) if isinstance(source, str) else None
    if key is None:
        path = Path(source)
        if path.is_file():
            return read_srf_csv(path)
        raise ParameterError(f"Unknown spectral response {str(source)!r}",
                             expected="a preset (" + ", ".join(PRESETS) + ") or the path of an SRF CSV file",
                             got=repr(str(source)),
                             fix="pass srf='Sentinel-2A', a CSV (wavelength column, one column per band), "
                                 "or a (MSI bands x HS bands) array")
    rel, cols = _PROSAIL[key]
    path = srf_dir() / rel
    if not path.is_file():
        raise RasterIOError(f"The spectral response table of {source!r} is not installed",
                            expected=f"the file {path}", got="no such file",
                            fix="set GEOFUSE_SRF_DIR to the directory holding the SRF tables, or pass your own "
                                "CSV / array as srf=")
    if path.suffix == ".mat":
        from scipy.io import loadmat

        t = loadmat(path)["ikonos_sp"]
        names = ("pan", "blue", "green", "red", "nir")
        wl, resp = t[:, 0], t[:, 1:].T
        sel = [names.index(c) for c in cols]
        return SRFTable(np.asarray(wl, float), np.asarray(resp[sel], float), tuple(cols), _display(key))
    table = _read_table(path, sep="\t")
    if cols is not None:
        idx = [table.bands.index(c) for c in cols]
        table = SRFTable(table.wavelengths, table.responses[idx], tuple(cols), _display(key))
    return SRFTable(table.wavelengths, table.responses, table.bands, _display(key))


def _display(key: str) -> str:
    return next(p for p in PRESETS if p.lower() == key)


def _read_table(path: Path, sep: str | None) -> SRFTable:
    import pandas as pd

    try:
        df = pd.read_csv(path, sep=sep, engine="python", comment="#")
    except Exception as err:  # pragma: no cover - pandas' own message is kept
        raise RasterIOError(f"Could not read the SRF table {str(path)!r}", expected="a CSV/TSV with a header",
                            got=str(err), fix="check the file") from None
    if df.shape[1] < 2 or df.shape[0] < 2:
        raise InputError(f"The SRF table {str(path)!r} is too small",
                         expected="a wavelength column and at least one band column, two rows or more",
                         got=f"{df.shape[0]} rows x {df.shape[1]} columns",
                         fix="write one row per wavelength: wavelength,band1,band2,...")
    try:
        vals = df.to_numpy(dtype=np.float64)
    except ValueError:
        raise InputError(f"The SRF table {str(path)!r} has non-numeric values", expected="numbers below the header",
                         got="text", fix="keep only the header row as text") from None
    wl = vals[:, 0]
    if np.nanmax(wl) < 30:  # micrometres
        wl = wl * 1000.0
    order = np.argsort(wl)
    resp = np.clip(np.nan_to_num(vals[order, 1:].T), 0.0, None)  # measured tables carry tiny negatives
    return SRFTable(wl[order], resp, tuple(str(c).strip() for c in df.columns[1:]), path.stem)


def read_srf_csv(path: str | os.PathLike) -> SRFTable:
    """A user SRF file: wavelength (nm or um) then one column per band; separator detected."""
    return _read_table(Path(path), sep=None)


def srf_matrix(table: SRFTable, wavelengths: Sequence[float], fwhm: Sequence[float] | float | None = None,
               normalise: bool = True) -> np.ndarray:
    r"""Resample ``table`` onto HS band centres (nm): the (K, B) matrix ``R``.

    Without ``fwhm``: :math:`R_{kb} = s_k(\lambda_b)` (linear interpolation, zero outside the table). With
    ``fwhm`` (nm, scalar or per band): :math:`R_{kb} = \int s_k(\lambda)\, g_b(\lambda)\, d\lambda` with
    ``g_b`` the HS band's unit-area Gaussian. Rows are normalised to sum to one. A band whose response
    does not overlap the HS range raises :class:`~geofuse.errors.BandCountError`.
    """
    wl = np.asarray(wavelengths, dtype=np.float64).ravel()
    if wl.size == 0 or not np.isfinite(wl).all():
        raise ParameterError("The HS band wavelengths are missing or not finite", expected="B finite values (nm)",
                             got=f"{wl.size} values", fix="pass wavelengths= (nm) or a 'wavelength' coordinate")
    if np.nanmax(wl) < 30:
        wl = wl * 1000.0
    if fwhm is None:
        R = np.stack([np.interp(wl, table.wavelengths, r, left=0.0, right=0.0) for r in table.responses])
    else:
        fw = np.broadcast_to(np.asarray(fwhm, dtype=np.float64), wl.shape)
        sig = fw / 2.35482
        grid = table.wavelengths
        g = np.exp(-0.5 * ((grid[None, :] - wl[:, None]) / sig[:, None]) ** 2)
        g /= np.trapezoid(g, grid, axis=1)[:, None]
        R = np.stack([np.trapezoid(g * r[None, :], grid, axis=1) for r in table.responses])
    sums = R.sum(axis=1)
    empty = [b for b, s in zip(table.bands, sums) if not s > 0]
    if empty:
        raise BandCountError(f"Bands of {table.name!r} do not overlap the HS wavelengths",
                             expected=f"responses inside {wl.min():.0f}-{wl.max():.0f} nm",
                             got="no response for " + ", ".join(empty),
                             fix="select the overlapping bands (srf_bands=...) or an MSI that the HS covers")
    return R / sums[:, None] if normalise else R


def resolve_srf(srf: Any, hs_wavelengths: Sequence[float] | None, n_msi: int | None, n_hs: int,
                fwhm: Sequence[float] | float | None = None) -> np.ndarray | None:
    """The (K, B) matrix from what a user passes as ``srf=``: None, a preset name, a CSV path, an
    :class:`SRFTable`, or an array. Named/CSV responses need the HS wavelengths."""
    if srf is None:
        return None
    if isinstance(srf, (str, os.PathLike, SRFTable)):
        if hs_wavelengths is None:
            raise ParameterError("A named or tabulated SRF needs the HS band wavelengths",
                                 expected="a 'wavelength' coordinate on the HS band dimension, or wavelengths=",
                                 got="neither", fix="hs = hs.assign_coords(wavelength=('band', wl_nm)) or pass "
                                                    "srf as a (MSI bands x HS bands) array")
        table = srf if isinstance(srf, SRFTable) else load_srf(srf)
        R = srf_matrix(table, hs_wavelengths, fwhm=fwhm)
        if n_msi is not None and R.shape[0] != n_msi:
            raise BandCountError(f"The SRF {table.name!r} has {R.shape[0]} bands but the MSI has {n_msi}",
                                 expected=f"{R.shape[0]} MSI bands ({', '.join(table.bands)})",
                                 got=f"{n_msi} bands", fix="select the MSI bands in the SRF's order, or pass a "
                                                           "matching SRF")
        return R
    R = np.asarray(srf, dtype=np.float64)
    if R.ndim == 1:
        R = R[None]
    if R.shape != (n_msi if n_msi is not None else R.shape[0], n_hs):
        raise BandCountError("The spectral response matrix does not fit the inputs",
                             expected=f"shape (MSI bands, HS bands) = ({n_msi}, {n_hs})", got=f"shape {R.shape}",
                             fix="one row per MSI band, one column per HS band")
    return R
