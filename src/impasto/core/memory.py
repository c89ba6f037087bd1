"""Memory budgets: sizes like "6G", the machine's RAM (or a container's limit) and the default budget."""

from __future__ import annotations

import math
import os
import re
from typing import Any

from ..errors import ImpastoError

GiB = 1 << 30
MiB = 1 << 20
_UNITS = {"": 1, "k": 1 << 10, "m": MiB, "g": GiB, "t": 1 << 40}


def parse_size(value: int | float | str) -> int:
    """Bytes from a number of bytes or a size like "6G", "6GB", "6GiB", "800M", "1.5g" (binary units)."""
    problem = f"--max-memory: expected a size in bytes or with a unit K, M, G or T (6G, 6GB, 800M), got {value!r}"
    if isinstance(value, bool):
        raise ImpastoError(problem)
    if isinstance(value, (int, float)):
        number, unit = float(value), ""
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(i?b)?\s*", str(value), re.IGNORECASE)
        if m is None or (m.group(3) and m.group(3).lower() == "ib" and not m.group(2)):
            raise ImpastoError(problem)
        number, unit = float(m.group(1)), m.group(2).lower()
    size = number * _UNITS[unit] if math.isfinite(number) else -1
    if not size >= 1:
        raise ImpastoError(f"--max-memory must be a positive size, got {value!r}")
    return int(size)


def physical_memory() -> int:
    """Bytes of RAM this process may use: the machine's, or a smaller cgroup (container) limit."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def default_max_memory(device: Any = None) -> int:
    """min(8 GiB, 60 % of RAM) on the CPU (leaves room for everything else); 60 % of the GPU's memory on CUDA."""
    if device is not None and device.type == "cuda":
        import torch

        return int(0.6 * torch.cuda.get_device_properties(device).total_memory)
    return min(8 * GiB, int(0.6 * physical_memory()))


def resolve_max_memory(value: int | float | str | None, device: Any = None) -> int:
    """--max-memory in bytes: the value given (bytes or "6G"-style text), else the device's default budget."""
    return default_max_memory(device) if value is None else parse_size(value)


def format_size(n: int) -> str:
    """Bytes as "1.5 GiB" or "300 MiB", for messages and docs."""
    if n >= GiB:
        return f"{n / GiB:.1f} GiB"
    return f"{n / MiB:.0f} MiB" if n >= MiB else f"{n} bytes"
