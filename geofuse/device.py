"""Torch device selection: ``device="auto"`` picks CUDA when torch sees a GPU, else CPU.

The environment variable ``GEOFUSE_DEVICE`` overrides ``"auto"`` (e.g. ``GEOFUSE_DEVICE=cpu`` on a GPU
worker, or ``cuda:1``).
"""

from __future__ import annotations

import os

import torch

from .errors import DeviceError


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Return the torch device for ``device`` ("auto", "cpu", "cuda", "cuda:N" or a torch.device)."""
    if isinstance(device, torch.device):
        dev = device
    else:
        name = (device or "auto").strip().lower()
        if name == "auto":
            name = os.environ.get("GEOFUSE_DEVICE", "").strip().lower() or (
                "cuda" if torch.cuda.is_available() else "cpu")
        try:
            dev = torch.device(name)
        except RuntimeError as exc:
            raise DeviceError(f"Unknown torch device {device!r}", expected="'auto', 'cpu', 'cuda' or 'cuda:N'",
                              got=repr(device), fix="pass device='auto' or set GEOFUSE_DEVICE") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError("CUDA was requested but torch sees no GPU", expected="a CUDA-enabled torch and a GPU",
                          got=f"device={str(dev)!r}, torch {torch.__version__}, cuda available: False",
                          fix="use device='auto' or 'cpu', or unset GEOFUSE_DEVICE")
    return dev
