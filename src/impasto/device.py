"""Choosing the compute device."""

from __future__ import annotations

import torch

from .errors import ImpastoError

DEVICES = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple MPS, then the CPU; asking for a missing device is an error."""
    base = name.split(":")[0]
    if base not in DEVICES:
        raise ImpastoError(f"unknown device {name!r}; choose from {', '.join(DEVICES)}")
    if base == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise ImpastoError("--device cuda: no CUDA GPU is available to this PyTorch build; use --device cpu or auto")
    if base == "mps" and not _mps_available():
        raise ImpastoError("--device mps: Apple MPS is not available here; use --device cpu or auto")
    return torch.device(name)
