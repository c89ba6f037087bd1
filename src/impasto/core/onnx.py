"""onnxruntime and OpenVINO sessions as impasto's one-pass runtimes open them (each imported lazily).

A pipeline that runs several pictures at once (video: three frames) asks, for its own threads, that each run use fewer
threads (:func:`set_thread_budget`): on two cores two single-threaded runs side by side paint more frames a second
than one two-threaded run after another, whose threads wait for each other at every layer.

On CPUs with bf16 units (AVX512-BF16, AMX) OpenVINO runs the same graphs in bf16 (:class:`OpenVinoSession`) about
1.5x as fast as onnxruntime's fp32 (a frame on one thread, or two frames side by side), at 0.4/255 mean difference
(docs/MODELS.md, "OpenVINO in bf16"), once compiled for the pictures' size; it is an extra
(``pip install 'impasto[openvino]'``).
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

_LOCAL = threading.local()


def set_thread_budget(threads: int | None, one_size: bool | None = None) -> None:
    """Runs started from the calling thread use `threads` threads (None: the session's default again); with
    `one_size` True, they paint many frames of one size (a video, a camera), for which a runtime may compile the graph
    for that size (:class:`OpenVinoSession`); None leaves that as it is."""
    _LOCAL.threads = threads
    if one_size is not None:
        _LOCAL.one_size = one_size


def thread_budget(default: int | None = None) -> int | None:
    """The threads a run started from the calling thread should use: its budget, else `default`."""
    return getattr(_LOCAL, "threads", None) or default


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS says it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def frames_of_one_size() -> bool:
    """Whether runs started from the calling thread paint many frames of one size (see :func:`set_thread_budget`)."""
    return getattr(_LOCAL, "one_size", False)


@contextmanager
def frames_in(threads: int | None) -> Iterator[None]:
    """Within it, runs started from the calling thread paint frames of one size with `threads` threads each (see
    :func:`set_thread_budget`); the thread's settings before are restored after."""
    before = (getattr(_LOCAL, "threads", None), frames_of_one_size())
    set_thread_budget(threads, one_size=True)
    try:
        yield
    finally:
        set_thread_budget(*before)


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


def remove_unused(folder: Path, days: float = UNUSED_DAYS, suffix: str = ".onnx") -> list[Path]:
    """Remove the files ending in `suffix` in `folder` (the optimized graphs; OpenVINO's compiled ones) that have not
    been used (by their modification time) for `days`; returns them."""
    import time

    cutoff = time.time() - days * 86400
    removed = []
    for p in folder.glob(f"*{suffix}"):
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


def openvino_installed() -> bool:
    """Whether the `openvino` package can be imported (the openvino extra)."""
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


_OV_CORE: list[Any] = []
_OV_LOCK = threading.Lock()


def _openvino_core() -> Any:
    """The process's one OpenVINO Core, its compiled-model cache in impasto's cache folder."""
    with _OV_LOCK:
        if not _OV_CORE:
            import openvino as ov

            from .cache import cache_dir

            core = ov.Core()
            folder = cache_dir() / "openvino"
            try:
                folder.mkdir(parents=True, exist_ok=True)
                remove_unused(folder, suffix=".blob")
                core.set_property({"CACHE_DIR": str(folder)})
            except OSError:  # a read-only cache: compile every time
                pass
            _OV_CORE.append(core)
        return _OV_CORE[0]


class _Shape:
    """One input shape's compiled model (None until compiled) and its idle inference requests."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # held while compiling: the shape's other callers wait, no one else
        self.compiled: Any = None
        self.idle: list[Any] = []


class OpenVinoSession:
    """An ONNX graph run by OpenVINO on the CPU, with the part of onnxruntime's session API impasto uses (`run`).

    OpenVINO's CPU kernels for a graph whose input shapes are left open ran the fast network at 40 ms a 368x210 frame
    against 21 ms compiled for that shape (bf16, one thread, 2026-12-08), so the graph is compiled for each input
    shape it is given (170-190 ms the first time, 80-120 ms from OpenVINO's own cache) and the last MAX_SHAPES kept:
    a video or a camera stream compiles once. `threads` as for :func:`cpu_session`: with a per-run budget the graph
    gets one stream per budget's worth of cores, so that runs from several threads (a video's frames in flight) go
    side by side instead of queueing. Thread-safe: each run takes an idle inference request of its shape; a shape
    dropped from the kept ones while a run uses it finishes that run.

    `fallback` (a function making another session, e.g. onnxruntime's): where OpenVINO fails to compile a shape (a
    broken install, an operator it lacks), the runs go there instead of failing.
    """

    MAX_SHAPES = 8

    def __init__(
        self, path: str | os.PathLike, threads: int | None = None, bf16: bool = True, fallback: Any = None
    ) -> None:
        self._core = _openvino_core()
        self._model = self._core.read_model(str(path))
        self._inputs = [i.any_name for i in self._model.inputs]
        self._outputs = [o.any_name for o in self._model.outputs]
        streams = max(1, usable_cores() // threads) if threads else 1
        self._config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32", "NUM_STREAMS": streams}
        if threads:
            self._config["INFERENCE_NUM_THREADS"] = streams * threads
        self._lock = threading.Lock()
        self._compiled: OrderedDict[tuple, _Shape] = OrderedDict()
        self._fallback_factory = fallback
        self._fallback: Any = None

    def _shape(self, shapes: tuple) -> _Shape:
        """The entry of these input shapes, compiled the first time (outside the session's lock: other shapes' runs
        go on meanwhile)."""
        with self._lock:
            entry = self._compiled.get(shapes)
            if entry is None:
                entry = self._compiled[shapes] = _Shape()
                while len(self._compiled) > self.MAX_SHAPES:
                    self._compiled.popitem(last=False)
            self._compiled.move_to_end(shapes)
        with entry.lock:
            if entry.compiled is None:
                model = self._model.clone()
                model.reshape({name: list(shape) for name, shape in shapes})
                entry.compiled = self._core.compile_model(model, "CPU", self._config)
        return entry

    def run(self, output_names: Sequence[str] | None, feeds: dict[str, Any]) -> list[Any]:
        """The outputs named (None: all, in the graph's order) for `feeds` (name -> numpy array), as numpy arrays."""
        import numpy as np

        if self._fallback is not None:
            return self._fallback.run(output_names, feeds)
        shapes = tuple((name, tuple(feeds[name].shape)) for name in self._inputs)
        try:
            entry = self._shape(shapes)
        except Exception:
            if self._fallback_factory is None:
                raise
            import warnings

            warnings.warn("OpenVINO could not compile the graph; running it on onnxruntime", stacklevel=2)
            with self._lock:
                if self._fallback is None:
                    self._fallback = self._fallback_factory()
            return self._fallback.run(output_names, feeds)
        with entry.lock:
            request = entry.idle.pop() if entry.idle else None
        if request is None:
            request = entry.compiled.create_infer_request()
        try:
            # share_outputs=False (the default): the arrays are copies, not the request's buffers reused next run
            result = request.infer({name: np.ascontiguousarray(feeds[name]) for name in self._inputs}).to_tuple()
        finally:
            with entry.lock:
                entry.idle.append(request)
        by_name = dict(zip(self._outputs, result))
        return [by_name[name] for name in (output_names or self._outputs)]
