"""onnxruntime sessions as impasto's one-pass runtimes open them (imported lazily: onnxruntime is an extra).

A pipeline that runs several pictures at once (video: three frames) asks, for its own threads, that each run use fewer
threads (:func:`set_thread_budget`): on two cores two single-threaded runs side by side paint more frames a second
than one two-threaded run after another, whose threads wait for each other at every layer.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Any

_LOCAL = threading.local()


def set_thread_budget(threads: int | None) -> None:
    """Runs started from the calling thread use `threads` threads (None: the session's default again)."""
    _LOCAL.threads = threads


def thread_budget(default: int | None = None) -> int | None:
    """The threads a run started from the calling thread should use: its budget, else `default`."""
    return getattr(_LOCAL, "threads", None) or default


def cpu_session(path: str | os.PathLike, threads: int | None = None) -> Any:
    """An onnxruntime CPU session of the graph at `path`, with `threads` threads (default: one per core).

    Its threads sleep when idle instead of spinning: spinning threads take the cores from the other steps of a
    pipeline (video decoding, optical flow, encoding, a second frame), and not spinning cost nothing measurable
    for one picture at a time on this project's machines.

    The graph onnxruntime optimizes for this CPU is kept in the cache (:func:`optimized_path`) and opened as it is
    the next time: the compact AdaIN model's two sessions open in 10 ms instead of 25 ms, a part of every command's
    start-up (2026-12-04); the outputs are the same to the bit. Each use marks the kept graph as used; writing a new
    one removes those no session has used for UNUSED_DAYS (another CPU's, an older onnxruntime's, a replaced
    model file's: nothing else would ever remove them).
    """
    import onnxruntime as ort

    def options() -> Any:
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return so

    providers = ["CPUExecutionProvider"]
    optimized = optimized_path(path)
    if optimized is not None and optimized.exists():
        so = options()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # it is optimized already
        try:
            session = ort.InferenceSession(str(optimized), so, providers=providers)
            _mark_used(optimized)
            return session
        except Exception:  # a damaged file (a full disk, an older onnxruntime): optimize afresh below
            optimized.unlink(missing_ok=True)
    so = options()
    tmp = None
    if optimized is not None:
        try:
            optimized.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp.onnx", dir=optimized.parent)
            os.close(fd)
            so.optimized_model_filepath = tmp
            # (It warns that the file suits this CPU only: the file's name says which CPU, see optimized_path.)
            so.log_severity_level = 3
        except OSError:  # a read-only cache: optimize in memory every time
            tmp = None
    try:
        session = ort.InferenceSession(str(path), so, providers=providers)
        if tmp is not None:
            try:
                os.replace(tmp, optimized)
                tmp = None
                remove_unused(optimized.parent)
            except OSError:  # not kept this time; the session is good
                pass
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return session


UNUSED_DAYS = 30


def _mark_used(path: Path) -> None:
    try:
        os.utime(path)  # the modification time says when a session last used it (atime is often not kept)
    except OSError:
        pass


def remove_unused(folder: Path, days: float = UNUSED_DAYS) -> list[Path]:
    """Remove the optimized graphs in `folder` that no session has used for `days`; returns them."""
    import time

    cutoff = time.time() - days * 86400
    removed = []
    for p in folder.glob("*.onnx"):
        try:
            if p.stat().st_mtime < cutoff:
                p.unlink()
                removed.append(p)
        except OSError:  # gone already, or another process's
            pass
    return removed


def optimized_path(path: str | os.PathLike) -> Path | None:
    """Where the graph at `path`, as onnxruntime optimizes it for this CPU, is cached: named by the file (its
    place, size and time), the onnxruntime version and the CPU's features, since the optimized graph may use
    instructions of this CPU only. None when `path` cannot be read."""
    import hashlib
    import platform

    import onnxruntime as ort

    from .cache import cache_dir, cpu_flags

    try:
        st = os.stat(path)
    except OSError:
        return None
    flags = " ".join(sorted(cpu_flags() or [platform.processor()]))
    key = f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}|{ort.__version__}|{platform.machine()}|{flags}"
    return cache_dir() / "onnx" / "optimized" / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.onnx"
