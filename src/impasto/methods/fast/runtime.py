"""The fast method without PyTorch: the networks exported to ONNX and run by onnxruntime (or OpenVINO, in bf16 on CPUs
with bf16 units: :class:`impasto.core.onnx.OpenVinoSession`), with numpy and Pillow.

Importing torch takes about 3 s on the project's machines, longer than painting a picture; this engine never imports
it for the common run (a style or a blend of styles, the layer sliders, strength, any size with the working scale and
the detail put back). A model file is exported to ONNX once, into the cache (that first time needs torch, and checks
the graph against PyTorch), and reused from then on. Runs that ask for masks or colour preservation are handed to the
PyTorch engine, loaded on first need.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
from PIL import Image

from ...core.image import ImageLike, as_pil, fit_longest_side, sized_content
from ...core.tone import match_palette, match_tone
from ...engine import Callback, Progress, Result, StreamingEngine
from ...errors import ImpastoError
from . import (
    Options,
    has_predictor,
    model_grid_period,
    model_metadata,
    model_names,
    painting_tone,
    parse_model,
    run_model,
    stats_size,
    style_images_key,
)

MIN_SIDE = 8  # as impasto.nets.fast.MIN_SIDE
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def available(items: Sequence[tuple[str, str, float]] = ()) -> bool:
    """Whether onnxruntime can run these models: it is installed, and each model's graph is in the cache or can be
    exported there (the `onnx` package is installed)."""
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None:
        return False
    if importlib.util.find_spec("onnx") is not None:
        return True
    return all(onnx_path(path).exists() for path, _, _ in items)


def onnx_path(model: str | os.PathLike) -> Path:
    """Where the ONNX export of a model file is cached (see :func:`impasto.export.cached_graph`)."""
    from ...core.cache import graph_path

    return graph_path("fast", model)


def ensure_onnx(model: str | os.PathLike) -> Path:
    """The cached ONNX graph of a model file, exported (and checked against PyTorch) the first time."""
    from ...export import cached_graph

    return cached_graph(model)


class OrtFastEngine(StreamingEngine):
    """The fast method on onnxruntime or OpenVINO (see the module's notes); the same Options and results as the
    PyTorch engine. `runtime` runs single pictures and `stream_runtime` frames of one size (a video, the camera:
    :func:`impasto.core.onnx.frames_of_one_size`), each "onnx" or "openvino" (as
    :func:`impasto.methods.fast.graph_runtimes` chooses)."""

    def __init__(
        self, options: Options, threads: int | None = None, runtime: str = "onnx", stream_runtime: str | None = None
    ) -> None:
        super().__init__(options)
        parse_model(run_model(options, 0))  # a bad --model fails at load
        self.threads = threads
        self.runtime = runtime
        self.stream_runtime = stream_runtime or runtime
        self._sessions: dict[tuple[str, int | None, str], tuple[Any, list[str], int]] = {}
        # sessions by (graph, threads, runtime), opened on threads of their own (see _open)
        self._opening: dict[tuple[str, int | None, str], Future] = {}
        self._lock = threading.Lock()
        self._graphs: dict[str, tuple[Path, Path]] = {}  # a model's style-image graphs (painting, picture)
        self._torch_engine = None
        self._painted: tuple = ((), None, [])  # (key, (embeddings, tone, palette), the style images) of the last run
        self._scales: dict[str, int] = {}
        self._int8_painting: bool | None = None

    def _open(self, graph: str | os.PathLike, threads: int | None, runtime: str) -> Future:
        """The session of a graph for `threads` threads on `runtime` ("onnx" or "openvino"), opening on a thread of
        its own (the first time).

        onnxruntime lets go of the GIL while it opens a graph, and opening takes 25-40 ms, a part of every command's
        start-up: meanwhile the pictures are read and the painting's pass runs. Where auto chose OpenVINO and it
        fails (a broken install, a graph it cannot compile), onnxruntime runs the graph instead."""
        from ...core.onnx import cpu_session

        key = (str(graph), threads, runtime)
        with self._lock:  # (video workers and camera clients share the engine: one session per key)
            if key not in self._opening:
                if runtime == "openvino":
                    self._opening[key] = _in_background(self._openvino, graph, threads)
                else:
                    self._opening[key] = _in_background(cpu_session, graph, threads)
            return self._opening[key]

    def _openvino(self, graph: str | os.PathLike, threads: int | None) -> Any:
        """An OpenVINO session of a graph, falling back to onnxruntime's where auto chose it (see :meth:`_open`)."""
        from ...core.onnx import OpenVinoSession, cpu_session

        fallback = (lambda: cpu_session(graph, threads)) if self.options.runtime == "auto" else None
        try:
            return OpenVinoSession(graph, threads, self._bf16(), fallback=fallback)
        except Exception:
            if fallback is None:
                raise
            import warnings

            warnings.warn("OpenVINO could not read the graph; running it on onnxruntime", stacklevel=2)
            return fallback()

    def runtime_here(self) -> str:
        """The runtime of runs started from the calling thread: frames of one size on `stream_runtime`."""
        from ...core.onnx import frames_of_one_size

        return self.stream_runtime if frames_of_one_size() else self.runtime

    def _bf16(self) -> bool:
        """Whether OpenVINO runs the graphs in bf16: asked for, or auto on a CPU with bf16 units."""
        from ...core.cache import cpu_flags_say_fast_bf16

        precision = self.options.precision
        return precision == "bf16" or (precision == "auto" and bool(cpu_flags_say_fast_bf16()))

    def prepare(self, n_styles: int = 0) -> None:
        """Start opening, in the background, the sessions that runs with `n_styles` style images will use; returns at
        once. Only graphs already in the cache: exporting one needs PyTorch, and the run does it."""
        from ...core.onnx import thread_budget

        files = {path for path, _, _ in parse_model(run_model(self.options, n_styles))}
        if len(files) != 1:
            return
        model = next(iter(files))
        threads = thread_budget(self.threads)
        if not n_styles:
            if onnx_path(model).exists():
                self._open(onnx_path(model), threads, self.runtime_here())
        elif has_predictor(model) and self._arbitrary_graphs(model, make=False) is not None:
            self._arbitrary(model)

    def session(self, model: str) -> tuple[Any, list[str], int]:
        """(onnxruntime session, style names, training scale) of a model file, for the calling thread's thread
        budget (see :mod:`impasto.core.onnx`)."""
        from ...core.onnx import thread_budget

        key = (model, thread_budget(self.threads), self.runtime_here())
        if key not in self._sessions:
            session = self._open(ensure_onnx(model), *key[1:]).result()
            meta = model_metadata(model)
            self._sessions[key] = (session, model_names(model), int(meta["image_size"]))
        return self._sessions[key]

    def clear_cache(self) -> None:
        """Forget the last style images' predicted embeddings (the next run predicts them again)."""
        self._painted = ((), None, [])

    def _painting_in_int8(self) -> bool:
        """Whether the painting's VGG-19 pass runs in int8: where 8-bit units make it pay (2x here: 10 ms of a 512 px
        picture's 95). /proc/cpuinfo is read once."""
        from ...core.cache import cpu_flags_say_fast_int8

        if self._int8_painting is None:
            self._int8_painting = self.options.precision == "auto" and bool(cpu_flags_say_fast_int8())
        return self._int8_painting

    def _arbitrary_graphs(self, model: str, make: bool = True) -> tuple[Path, Path] | None:
        """A model's (painting -> embedding, embeddings -> picture) graphs (see
        :func:`impasto.export.cached_arbitrary_graphs`), found once: the model file is hashed once per engine."""
        from ...export import cached_arbitrary_graphs

        if model not in self._graphs:
            found = cached_arbitrary_graphs(model, int8=self._painting_in_int8(), make=make)
            if found is None:
                return None
            self._graphs[model] = found
        return self._graphs[model]

    def _arbitrary(self, model: str) -> tuple[Future, Future]:
        """The sessions of a model with a style predictor (painting -> embedding, embeddings -> picture), perhaps
        still opening: the picture's opens while the painting's pass runs. The painting's graph runs once per style
        image, so it stays on the pictures' runtime (no compile for frames of one size), and an int8 one on
        onnxruntime (its int8 kernels are what make it pay)."""
        from ...core.onnx import thread_budget

        code, paint = self._arbitrary_graphs(model)  # type: ignore[misc]
        threads = thread_budget(self.threads)
        code_runtime = "onnx" if self._painting_in_int8() else self.runtime
        return self._open(code, threads, code_runtime), self._open(paint, threads, self.runtime_here())

    def embeddings(self, model: str, styles: Sequence[ImageLike]) -> np.ndarray:
        """(k, 32): each style image's predicted embedding."""
        code = self._arbitrary(model)[0].result()
        side = stats_size(model)
        out = []
        for s in styles:
            small = fit_longest_side(as_pil(s).convert("RGB"), side)
            x = np.ascontiguousarray(np.asarray(small, np.float32).transpose(2, 0, 1)[None] / 255)
            out.append(code.run(None, {"painting": x})[0])
        return np.concatenate(out).astype(np.float32)

    def grid_period(self, opts: Options, width: int, height: int, n_styles: int = 0) -> float | None:
        """For video: the period of the network's stride grid on such frames (see :class:`impasto.video.GridAnchor`)."""
        return model_grid_period(opts, width, height, n_styles)

    def paint(self, picture: np.ndarray, model: str, style: Any, layers: Sequence[float]) -> np.ndarray:
        """One pass over a (H, W, 3) float32 picture in [0, 1] at its own size; returns the same shape. `style`: the
        model's paintings' blend weights (n_styles,), or (embeddings (k, 32), weights (k,)) of style images."""
        h, w = picture.shape[:2]
        x = picture.transpose(2, 0, 1)[None]
        if h < MIN_SIDE or w < MIN_SIDE:
            x = np.pad(x, ((0, 0), (0, 0), (0, max(0, MIN_SIDE - h)), (0, max(0, MIN_SIDE - w))), mode="edge")
        feed = {"image": np.ascontiguousarray(x, dtype=np.float32), "layers": np.asarray([layers], np.float32)}
        if isinstance(style, tuple):
            session = self._arbitrary(model)[1].result()
            feed["embeddings"], feed["weights"] = style
        else:
            session = self.session(model)[0]
            feed["style"] = style[None].astype(np.float32)
        out = session.run(None, feed)[0][0, :, :h, :w]
        return np.clip(out.transpose(1, 2, 0), 0, 1)

    def stylize(
        self,
        photo: Image.Image,
        model: str,
        style: Any,
        layers: Sequence[float],
        work: int | None,
        detail: float,
    ) -> np.ndarray:
        """As :meth:`impasto.methods.fast.engine.FastEngine.stylize`: large pictures painted at the working scale,
        enlarged, with the photo's fine luminance detail put back."""
        rgb = np.asarray(photo, np.float32) / 255
        if work is None:
            if model not in self._scales:  # from the header: style images need no named-style graph
                self._scales[model] = int(model_metadata(model)["image_size"])
            work = self._scales[model]
        w, h = photo.size
        if not work or min(h, w) <= work:
            return self.paint(rgb, model, style, layers)
        scale = work / min(h, w)
        small_size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = photo.resize(small_size, Image.BILINEAR, reducing_gap=None)
        painted = self.paint(np.asarray(small, np.float32) / 255, model, style, layers)
        big = _resize(painted, (w, h), Image.BICUBIC)
        if detail > 0:
            y = rgb @ _LUMA
            y_small = _resize(_resize(y, small_size, Image.BILINEAR), (w, h), Image.BICUBIC)
            big = big + detail * (y - y_small)[..., None]
        return np.clip(big, 0, 1)

    def _torch(self):
        if self._torch_engine is None:
            from .engine import FastEngine

            self._torch_engine = FastEngine(self.options)
        return self._torch_engine

    def run_many(
        self,
        contents: Iterable[ImageLike],
        styles: Sequence[ImageLike] = (),
        options: Options | None = None,
        *,
        callback: Callback | None = None,
        progress: bool = False,
    ) -> Iterator[Result]:
        """Many pictures (or a stream of frames) with the same settings."""
        styles = list(styles)
        opts = self.resolve(options, len(styles))
        if opts.masks is not None or opts.content_mask is not None or opts.preserve_color != "none":
            yield from self._torch().run_many(contents, styles, opts, callback=callback, progress=progress)
            return
        items = parse_model(run_model(opts, len(styles)))
        files = {path for path, _, _ in items}
        if len(files) > 1:
            raise ImpastoError("--model: styles from different model files cannot blend; use --mask to place them")
        model = next(iter(files))
        if styles:
            # Video frames and batches call once a picture with the same style images: predicted once.
            key = (model, style_images_key(styles))
            if self._painted[0] != key:
                if not _can_export_arbitrary(model):
                    yield from self._torch().run_many(contents, styles, opts, callback=callback, progress=progress)
                    return
                # Style images blend equally (a model with a style predictor: validated by resolve()).
                code = (self.embeddings(model, styles), np.ones(len(styles), np.float32))
                found = (code, *_style_images_look(styles))
                self._painted = (key, found, styles)
            style: Any = self._painted[1][0]
            tone = self._painted[1][1] if opts.tone > 0 else None
            palette = self._painted[1][2] if opts.palette > 0 else None
        else:
            names = self.session(model)[1]
            style = np.zeros(len(names), np.float32)
            for _, name, weight in items:
                style[names.index(name)] += weight
            style /= style.sum()
            tone = painting_tone(items) if opts.tone > 0 else None
            palette = None  # a trained style's palette is the one it learnt
        for index, content in enumerate(contents):
            photo = sized_content(content, opts.size, opts.max_size)
            out = self.stylize(photo, model, style, opts.layer_weights, opts.work_size, opts.detail)
            if tone is not None:
                out = match_tone(out, tone, opts.tone, inplace=True)
            if palette is not None:
                out = match_palette(out, palette, opts.palette, inplace=True)
            if opts.strength < 1:
                out = opts.strength * out + (1 - opts.strength) * (np.asarray(photo, np.float32) / 255)
            image = out.transpose(2, 0, 1)[None].astype(np.float32)
            if callback is not None:
                callback(Progress(step=1, total=1, image=image, index=index))
            yield Result(image=image)


def _can_export_arbitrary(model: str) -> bool:
    """Whether the style-image graphs of a model are cached or can be exported (the `onnx` package)."""
    import importlib.util

    from ...core.cache import graph_path

    if not has_predictor(model):
        return False
    cached = all(graph_path(kind, model).exists() for kind in ("fast-code", "fast-paint"))
    return cached or importlib.util.find_spec("onnx") is not None


def _style_images_look(styles: Sequence[ImageLike]) -> tuple[np.ndarray, np.ndarray]:
    """The tone and the palette (:mod:`impasto.core.tone`) of style images blended equally."""
    from ...core.tone import blended_stats, look_stats

    looks = [look_stats(np.asarray(as_pil(s).convert("RGB"))) for s in styles]
    return blended_stats([t for t, _ in looks]), blended_stats([p for _, p in looks])


def _in_background(fn: Any, *args: Any) -> Future:
    """``fn(*args)`` started on a thread of its own; its result (or exception) from ``.result()``."""
    future: Future = Future()

    def work() -> None:
        try:
            future.set_result(fn(*args))
        except BaseException as e:  # handed to whoever asks for the result
            future.set_exception(e)

    # Not a daemon: an interpreter that exits (a bad picture) waits for it instead of unloading onnxruntime under it.
    threading.Thread(target=work).start()
    return future


def _resize(a: np.ndarray, size: tuple[int, int], resample: int) -> np.ndarray:
    """Resize a float (H, W) or (H, W, C) array with Pillow, channel by channel in 32-bit float."""
    if a.ndim == 2:
        return np.asarray(Image.fromarray(a.astype(np.float32), "F").resize(size, resample), np.float32)
    return np.stack([_resize(a[..., c], size, resample) for c in range(a.shape[-1])], axis=-1)
