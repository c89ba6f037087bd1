"""AdaIN without PyTorch: the model (encoder, AdaIN, decoder) exported to ONNX and run by onnxruntime.

Two graphs (:func:`impasto.export.cached_adain_parts`): a painting's style code, kept for the next pictures and
frames, and the transfer; `impasto export adain` writes the whole model as one graph for use elsewhere.

For the common run (one painting, a strength, any size) on CPUs: onnxruntime skips PyTorch's 3 s start-up, and in
int8 on CPUs with VNNI or AMX it is also faster than PyTorch in bf16. The graphs are exported into the cache the
first time (with PyTorch, checked against it; int8 calibrated on the bundled examples and checked against fp32).
Blends of several paintings, masks, colour preservation and pictures under 17 px go to the PyTorch engine, loaded on
first need.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from ...core.image import ImageLike, as_pil, fit_area, fit_longest_side, sized_content
from ...core.tone import match_palette, match_tone, palette_stats, tone_stats
from ...engine import Callback, Progress, Result, StreamingEngine
from . import Options, grid_period

MIN_CONTENT_SIDE = 17  # the graph reflects a 16 px margin, which needs more than 16 px a side
MIN_STYLE_SIDE = 16  # impasto.nets.adain.MIN_STYLE_SIDE (this module stays torch-free)
CODE_CACHE = 32  # paintings whose style codes are kept


def available(decoder: str | None) -> bool:
    """Whether onnxruntime can run this decoder: installed, and the graph cached or exportable (`onnx` installed)."""
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None:
        return False
    return importlib.util.find_spec("onnx") is not None


class OrtAdaINEngine(StreamingEngine):
    """AdaIN on onnxruntime (see the module's notes); the same Options and results as the PyTorch engine."""

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        self._sessions: dict[int | None, tuple[Any, Any]] = {}
        self._codes: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()
        self._torch_engine = None
        self.session()  # a missing or foreign decoder fails at load, as with PyTorch

    def session(self) -> tuple[Any, Any]:
        """The (style code, transfer) sessions for the calling thread's thread budget (see
        :mod:`impasto.core.onnx`), opened once."""
        from ...core.onnx import cpu_session, thread_budget

        threads = thread_budget()
        if threads not in self._sessions:
            from ...export import cached_adain_parts
            from .. import adain as package

            decoder = str(package.decoder_path(self.options.decoder))
            code, transfer = cached_adain_parts(decoder, int8=package.onnx_int8(self.options))
            self._sessions[threads] = (cpu_session(code, threads), cpu_session(transfer, threads))
        return self._sessions[threads]

    def grid_period(self, opts: Options, width: int, height: int, n_styles: int = 0) -> float | None:
        """For video: the period of the encoder's stride grid on such frames (see :class:`impasto.video.GridAnchor`)."""
        return grid_period(opts, width, height)

    def style_code(self, style: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A painting's (mean, std), cached by its pixels: a video or a batch encodes its painting once."""
        key = hashlib.sha1(style.tobytes()).hexdigest() + str(style.shape)
        with self._lock:
            code = self._codes.get(key)
        if code is None:
            mean, std = self.session()[0].run(None, {"style": style})
            code = (mean, std)
            with self._lock:
                self._codes[key] = code
                while len(self._codes) > CODE_CACHE:
                    self._codes.popitem(last=False)
        return code

    def _torch(self, opts: Options):
        """The PyTorch engine for what onnxruntime does not run, and `opts` for it: PyTorch has no int8, so an int8
        run goes through PyTorch's own choice of precision."""
        import dataclasses

        def for_torch(o: Options) -> Options:
            return dataclasses.replace(o, precision="auto") if o.precision == "int8" else o

        if self._torch_engine is None:
            from .engine import AdaINEngine

            self._torch_engine = AdaINEngine(for_torch(self.options))
        return self._torch_engine, for_torch(opts)

    def run_many(
        self,
        contents: Iterable[ImageLike],
        styles: Sequence[ImageLike],
        options: Options | None = None,
        *,
        callback: Callback | None = None,
        progress: bool = False,
    ) -> Iterator[Result]:
        """Many pictures with the same painting: its size is prepared once."""
        styles = list(styles)
        opts = self.resolve(options, len(styles))
        if len(styles) != 1 or opts.masks is not None or opts.content_mask is not None or opts.preserve_color != "none":
            engine, torch_opts = self._torch(opts)
            yield from engine.run_many(contents, styles, torch_opts, callback=callback, progress=progress)
            return
        style = as_pil(styles[0])
        if opts.style_size is not None:
            style = fit_longest_side(style, opts.style_size)
        if min(style.size) < MIN_STYLE_SIDE:
            style = fit_area(style, style.width * style.height, MIN_STYLE_SIDE)
        style_a = _array(style)
        painting_tone = tone_stats(style_a[0].transpose(1, 2, 0))
        painting_palette = palette_stats(style_a[0].transpose(1, 2, 0))
        strength = np.array([opts.strength], np.float32)
        for index, content in enumerate(contents):
            c = sized_content(content, opts.size, opts.max_size)
            if min(c.size) < MIN_CONTENT_SIDE:
                engine, torch_opts = self._torch(opts)
                result = engine.run(c, styles, torch_opts)
            else:
                mean, std = self.style_code(style_a)
                feed = {"content": _array(c), "mean": mean, "std": std, "strength": strength}
                out = np.clip(self.session()[1].run(None, feed)[0], 0, 1)
                if opts.tone > 0 or opts.palette > 0:
                    toned = match_tone(out[0].transpose(1, 2, 0), painting_tone, opts.tone * opts.strength)
                    toned = match_palette(toned, painting_palette, opts.palette * opts.strength, inplace=True)
                    out = np.ascontiguousarray(toned.transpose(2, 0, 1)[None])
                result = Result(image=out)
            if callback is not None:
                callback(Progress(step=1, total=1, image=result.image, index=index))
            yield result


def _array(im: Any) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(im.convert("RGB"), np.float32).transpose(2, 0, 1)[None] / 255)
