"""onnxruntime sessions as impasto's one-pass runtimes open them (imported lazily: onnxruntime is an extra).

A pipeline that runs several pictures at once (video: two frames) asks, for its own threads, that each run use fewer
threads (:func:`set_thread_budget`): on two cores two single-threaded runs side by side paint more frames a second
than one two-threaded run after another, whose threads wait for each other at every layer.
"""

from __future__ import annotations

import os
import threading
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
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
