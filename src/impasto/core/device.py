"""Choosing the compute device and the precision of the network passes."""

from __future__ import annotations

import torch

from ..errors import ImpastoError
from ..options import DEVICES, PRECISIONS
from .cache import cpu_flags_say_fast_bf16


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


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with native bf16 matrix units (AMX-BF16 or AVX512-BF16), where bf16 autocast pays off."""
    said = cpu_flags_say_fast_bf16()
    if said is not None:
        return said
    try:  # other systems: ask oneDNN
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for the network passes, or None for plain fp32.

    'auto' picks bf16 on CUDA GPUs that support it and on CPUs with native bf16 units, fp32 elsewhere.
    """
    if name not in PRECISIONS:
        raise ImpastoError(f"unknown precision {name!r}; choose from {', '.join(PRECISIONS)}")
    if name == "fp32":
        return None
    if name == "fp16":
        return torch.float16
    cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if name == "bf16":
        if device.type == "cuda" and not cuda_bf16:
            raise ImpastoError("--precision bf16: this GPU has no bf16 support; use fp16 or fp32")
        if device.type == "mps":
            raise ImpastoError("--precision bf16: not supported on MPS; use fp16 or fp32")
        return torch.bfloat16
    if cuda_bf16 or (device.type == "cpu" and cpu_has_fast_bf16()):
        return torch.bfloat16
    return None
