"""The polyphase interpolator (banded matrix products) against a direct per-sample sum, and its
independence of the tile's extent (what makes chunked == whole image)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geofuse.kernels.filters import pad
from geofuse.kernels.resample import apply_polyphase, polyphase_taps

CASES = [(4, 1.5, "interp23tap"), (4, 2.0, "interp23tap"), (2, 0.5, "interp23tap"), (3, 1.0, "lanczos3"),
         (4, 1.5, "bicubic")]


def _direct(x: np.ndarray, taps: np.ndarray, M: int, axis: int, mode: str) -> np.ndarray:
    """out[ratio*k + j] = sum_m xpad[k + m] * taps[j, m] along ``axis``, one sample at a time (float64)."""
    xp = pad(torch.from_numpy(x), M, M, 0, 0, mode) if axis == 0 else pad(torch.from_numpy(x), 0, 0, M, M, mode)
    xp = xp.numpy().astype(np.float64)
    r = taps.shape[0]
    if axis == 1:
        xp = xp.transpose(0, 2, 1)
    C, n2, W = xp.shape
    n = n2 - 2 * M
    out = np.zeros((C, n * r, W))
    for k in range(n):
        for j in range(r):
            out[:, r * k + j] = np.tensordot(taps[j], xp[:, k:k + 2 * M + 1], axes=([0], [1]))
    return out.transpose(0, 2, 1) if axis == 1 else out


@pytest.mark.parametrize("ratio, phase, kind", CASES)
@pytest.mark.parametrize("mode", ["symmetric", "circular", "replicate"])
def test_matches_direct_sum(ratio, phase, kind, mode):
    taps, M = polyphase_taps(ratio, phase, kind)
    x = np.random.default_rng(2).random((3, 23, 29)).astype(np.float32) * 1000
    for axis in (0, 1):
        got = apply_polyphase(torch.from_numpy(x), taps, M, axis, mode).numpy()
        np.testing.assert_allclose(got, _direct(x, taps, M, axis, mode), rtol=0, atol=1e-3)


@pytest.mark.parametrize("ratio, phase, kind", CASES)
def test_tile_extent_does_not_change_values(ratio, phase, kind):
    """Every output sample whose support lies inside a sub-tile is bit-identical to the whole image's."""
    taps, M = polyphase_taps(ratio, phase, kind)
    x = torch.from_numpy(np.random.default_rng(3).random((4, 50, 61)).astype(np.float32) * 1000)
    rng = np.random.default_rng(4)
    for axis in (0, 1):
        whole = apply_polyphase(x, taps, M, axis, "symmetric")
        for _ in range(60):
            y0, y1 = np.sort(rng.choice(51, 2, replace=False))
            x0, x1 = np.sort(rng.choice(62, 2, replace=False))
            lo, hi = (y0, y1) if axis == 0 else (x0, x1)
            if hi - lo < 2 * M + 1:
                continue
            part = apply_polyphase(x[:, y0:y1, x0:x1], taps, M, axis, "symmetric")
            if axis == 0:
                a, b = whole[:, ratio * (y0 + M):ratio * (y1 - M), x0:x1], part[:, ratio * M:ratio * (y1 - y0 - M)]
            else:
                a, b = whole[:, y0:y1, ratio * (x0 + M):ratio * (x1 - M)], part[:, :, ratio * M:ratio * (x1 - x0 - M)]
            assert torch.equal(a, b), (axis, y0, y1, x0, x1)
