"""Where impasto keeps what it makes once and reuses (converted weights, exported graphs), and what the CPU offers.

Imports no torch.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$IMPASTO_CACHE``, else ``$XDG_CACHE_HOME/impasto``, else ~/.cache/impasto."""
    env = os.environ.get("IMPASTO_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "impasto"


# The exported graphs' layout: bumped when a network's forward is rewritten (3: the fast network's and the compact
# model's output and upsampling convolutions in 2x2 blocks), so that graphs exported by older code are made again.
GRAPH_LAYOUT = 3


def graph_path(kind: str, source: str | os.PathLike) -> Path:
    """Where the ONNX graph `kind` of a model file is cached: named by the file's content and GRAPH_LAYOUT, so a
    changed file or a rewritten network gets a new graph."""
    import hashlib

    digest = hashlib.sha256(Path(source).read_bytes()).hexdigest()[:16]
    return cache_dir() / "onnx" / f"{kind}-{digest}-g{GRAPH_LAYOUT}.onnx"


def remove_older_layouts(path: Path) -> list[Path]:
    """Delete the graphs of the same kind and model file that older layouts left beside `path` (a name from
    :func:`graph_path`): they are never opened again. Returns what was removed."""
    import re

    stem = path.name[: -len(f"-g{GRAPH_LAYOUT}.onnx")]
    older = re.compile(re.escape(stem) + r"(-g\d+)?\.onnx")
    removed = []
    for other in path.parent.glob(f"{stem}*.onnx"):
        if other != path and older.fullmatch(other.name):
            other.unlink(missing_ok=True)
            removed.append(other)
    return removed


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags from /proc/cpuinfo, or None where there is none."""
    try:
        with open("/proc/cpuinfo") as f:
            line = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return None
    return set(line.partition(":")[2].split())


def cpu_flags_say_fast_bf16() -> bool | None:
    """True when /proc/cpuinfo lists native bf16 matrix units (AMX-BF16 or AVX512-BF16), False when it lists none,
    None where there is no /proc/cpuinfo."""
    flags = cpu_flags()
    return None if flags is None else bool(flags & {"amx_bf16", "avx512_bf16"})


def cpu_flags_say_fast_int8() -> bool | None:
    """True when /proc/cpuinfo lists 8-bit dot-product units (VNNI or AMX-INT8), where onnxruntime's int8
    convolutions beat fp32 (3x for the VGG-19 AdaIN model on an AVX512-VNNI EPYC, 2026-12-04); None as above."""
    flags = cpu_flags()
    return None if flags is None else bool(flags & {"amx_int8", "avx512_vnni", "avx_vnni"})
