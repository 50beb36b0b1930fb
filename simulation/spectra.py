"""Material reflectance spectra and sensor spectral responses for the synthetic scenes.

Each material is described by its surface reflectance (0..1) at five wavelengths: the centres of
the four multispectral bands of an IKONOS/QuickBird-like sensor, plus the red edge, which the wide
PAN band sees but no MS band does:

=========  ==========  ==================================
channel    centre (nm) MS band (IKONOS nominal range)
=========  ==========  ==================================
blue       480         445-516 nm
green      550         506-595 nm
red        665         632-698 nm
rededge    715         (gap between red and NIR; PAN only)
nir        805         757-853 nm
=========  ==========  ==================================

Physical basis (shapes as in the USGS / ASTER spectral libraries; the numbers are illustrative
round values chosen by hand, not copied from a data set):

* green vegetation: chlorophyll absorbs blue and red, a small green peak, then the red edge
  (steep rise between ~690 and ~740 nm) to a high NIR plateau from leaf mesophyll scattering.
  Tree canopies are darker than crops (self-shadowing inside the crown); dry / senescent grass
  has lost chlorophyll, so red rises and the red edge flattens.
* water: low everywhere, decreasing with wavelength, almost black in the NIR (strong absorption);
  turbid river water has a higher green-red from suspended sediment.
* soils: reflectance rising monotonically with wavelength (iron oxides absorb the blue); sand is
  the brighter, quartz-rich version of the same shape.
* man-made: asphalt dark and nearly flat, slowly rising; concrete bright and flat; red clay tiles
  red-dominated (iron oxide pigment) with a soil-like rise; grey shingles/sheets and galvanised
  metal almost spectrally flat at two levels.

The PAN reflectance is the response-weighted sum over the five channels with
:data:`PAN_WEIGHTS`, so the PAN is mostly, but not exactly, a linear combination of the four MS
bands: the red-edge channel makes vegetation brighter in the PAN than any fixed combination of
B, G, R, NIR predicts, as with real wide-band PAN sensors (the spectral mismatch that GSA / BDSD
estimate by regression).
"""

from __future__ import annotations

import numpy as np

#: The five spectral channels in the order of the columns of :data:`REFLECTANCE`.
CHANNELS: tuple[str, ...] = ("blue", "green", "red", "rededge", "nir")
#: Indices of the four MS bands among :data:`CHANNELS`.
MS_CHANNELS: tuple[int, ...] = (0, 1, 2, 4)
MS_BANDS: tuple[str, ...] = ("blue", "green", "red", "nir")
CENTRES_NM: tuple[float, ...] = (480.0, 550.0, 665.0, 715.0, 805.0)

#: Surface reflectance per material at (blue, green, red, rededge, nir).
REFLECTANCE: dict[str, tuple[float, float, float, float, float]] = {
    #               blue   green  red    rededge nir
    "crop":        (0.035, 0.080, 0.040, 0.200, 0.450),   # healthy green crop / lawn
    "grass":       (0.060, 0.090, 0.110, 0.170, 0.280),   # dry / senescent grass, stubble
    "tree":        (0.030, 0.060, 0.030, 0.160, 0.380),   # broadleaf canopy
    "soil":        (0.090, 0.130, 0.180, 0.220, 0.260),   # bare loam, dry
    "sand":        (0.230, 0.300, 0.360, 0.390, 0.420),   # river bank sand / gravel
    "water":       (0.060, 0.050, 0.025, 0.010, 0.006),   # clear deep lake water
    "river":       (0.070, 0.085, 0.070, 0.040, 0.025),   # turbid river water
    "asphalt":     (0.060, 0.070, 0.080, 0.085, 0.095),
    "concrete":    (0.230, 0.260, 0.280, 0.290, 0.300),
    "tile_roof":   (0.070, 0.090, 0.230, 0.270, 0.300),   # red clay tiles
    "grey_roof":   (0.110, 0.115, 0.120, 0.125, 0.130),   # shingles / dark sheets
    "metal_roof":  (0.300, 0.310, 0.310, 0.310, 0.310),   # galvanised / light flat roofs
}

#: Material names in label order (the ``materials`` map of a scene stores these indices).
MATERIALS: tuple[str, ...] = tuple(REFLECTANCE)

#: Relative texture amplitude (std of the multiplicative brightness variation) per material.
TEXTURE: dict[str, float] = {
    "crop": 0.10, "grass": 0.14, "tree": 0.12, "soil": 0.12, "sand": 0.08, "water": 0.03,
    "river": 0.04, "asphalt": 0.06, "concrete": 0.07, "tile_roof": 0.05, "grey_roof": 0.05,
    "metal_roof": 0.04,
}

#: Relative spectral response of a wide PAN band (~450-900 nm, IKONOS/QuickBird-like) over
#: (blue, green, red, rededge, nir): roughly the share of the PAN passband each channel stands
#: for (blue is cut by the PAN's lower edge and low detector response). Sums to 1.
PAN_WEIGHTS: tuple[float, float, float, float, float] = (0.08, 0.22, 0.25, 0.15, 0.30)

#: Additive path radiance (haze) in reflectance units per channel: Rayleigh scattering, strongest
#: in the blue (about lambda^-4). Present in the MS, the PAN and the truth alike (an at-sensor
#: quantity), so haze-corrected methods (BT-H) have something to estimate.
PATH_RADIANCE: tuple[float, float, float, float, float] = (0.035, 0.022, 0.012, 0.008, 0.005)

#: Fraction of the sunlit signal left in a cast shadow per channel (diffuse skylight only,
#: which is bluer than direct sunlight).
SHADOW_FACTOR: tuple[float, float, float, float, float] = (0.42, 0.33, 0.27, 0.24, 0.22)

#: Reflectance mapped to the top DN value ``2**bits - 1``; brighter pixels are clipped
#: (the headroom above the brightest materials of the scene, ~0.45-0.55 with texture).
REFLECTANCE_FULL_SCALE = 0.7


def table() -> np.ndarray:
    """Reflectance table, shape ``(n_materials, 5)``, float32, rows in :data:`MATERIALS` order."""
    return np.asarray([REFLECTANCE[m] for m in MATERIALS], dtype=np.float32)


def index(name: str) -> int:
    """Label of a material."""
    return MATERIALS.index(name)


def pan_reflectance(name: str) -> float:
    """PAN reflectance of a material (response-weighted sum over the five channels)."""
    return float(np.dot(PAN_WEIGHTS, REFLECTANCE[name]))
