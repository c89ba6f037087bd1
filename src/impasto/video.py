"""Stylizing a video: every frame through a method's engine (loaded once), made steady by optical flow, with the sound.

Temporal consistency (``temporal``, a strength from 0 to 1): each new stylized frame is blended with the previous
result warped into the current frame by the input's optical flow (OpenCV's DIS), only where the forward and backward
flows agree (Ruder et al. 2016's consistency check, which leaves out occlusions and motion boundaries). Strokes then
follow the motion instead of flickering; where nothing reliable comes from the previous frame, the new one shows as it
is. Broad colour changes are carried along further than strokes, and the strokes keep their energy where blending
would average it away (see TemporalBlend). A scene cut (few reliable pixels) starts afresh.

The measure of steadiness is the warping error (:func:`impasto.core.flow.warping_error`): the mean squared difference
between each output frame and the previous output warped by the input's flow, over the reliable pixels.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import shutil
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .api import get_method, takes_style_images
from .core import flow as flowlib
from .core import onnx
from .core.image import load_image, save_image
from .core.video import (
    DEFAULT_CRF,
    DEFAULT_MAX_PIXELS,
    PICTURE_BRANDS,
    check_crf,
    check_pixels,
    check_preset,
    probe,
    transcode,
)
from .engine import Progress
from .errors import ImpastoError
from .options import field_names, make

# --temporal's default where a method declares none of its own (VIDEO_TEMPORAL in its module: see default_temporal).
DEFAULT_TEMPORAL = 0.3
# One-pass methods: frames painted at once. Three on a 2-core CPU: while one waits (for the previous frame's output,
# or the interpreter), the others keep both cores busy (the 360 px pan, 72 frames: 38.3 frames/s against 36.4 with
# two, 2026-12-05; at 640 px and 720p the same within the noise).
PIPELINE_WORKERS = 3
CUT_RELIABLE = 0.35  # below this share of reliable pixels, a frame starts a new scene
# The distances of a stylized video are measured on every SAMPLE_EVERY-th frame. Sparse samples understate the
# temporal blend's style cost (its first frame is the per-frame one, and the blend builds up over a few frames): on
# the real clip at 640 px, every 8th frame measured +7.5 % against per-frame, every 2nd +15.8 % (2026-12-05).
SAMPLE_EVERY = 3


def check_temporal(strength: Any) -> None:
    """Raise ImpastoError unless `strength` is a --temporal strength: a number from 0 (off) to 1."""
    if isinstance(strength, bool) or not isinstance(strength, numbers.Real) or not 0 <= strength <= 1:
        raise ImpastoError(f"--temporal must be from 0 (off) to 1, got {strength}")


class _Temporal:
    """What both kinds of temporal consistency keep: the strength, the previous frame and result, the cuts seen."""

    def __init__(self, strength: float) -> None:
        check_temporal(strength)
        self.strength = strength
        self.prev_gray: np.ndarray | None = None
        self.prev_frame: np.ndarray | None = None
        self.prev_out: np.ndarray | None = None
        self.cuts = 0


class TemporalBlend(_Temporal):
    """Blends each stylized frame with the previous result carried along the flow (see the module's notes).

    Calling it does a frame's steps in order; a pipeline runs :meth:`motion` (input frames only) beside the painting
    and then :meth:`apply`, frame after frame.
    """

    # The optical flow's accuracy against its cost, by frame size: DIS's medium preset up to 480x270 px, the
    # "balanced" one (impasto.core.flow) up to 960x540, the fast one above. Measured with the built-in Starry Night at
    # the default 0.7 (2026-12-05, 36 frames, style over every 3rd frame; one thread): at 360x202 px medium (7.8 ms a
    # flow) divides the real clip's warping error by 2.22 at +7.7 % style, balanced (2.5 ms) by 1.65 at +7.4 %; at
    # 640x360 px fast (5.8 ms) by 1.91 at +10.5 %, balanced (8.0 ms) by 2.12 at +9.7 %, medium (28.6 ms) by 2.58 at
    # +10.2 % (the pan: / 4.57 at +7.6 % fast, / 5.00 at +6.3 % balanced); at 1280x720 px fast (22 ms) / 3.11 at +4.3 %,
    # balanced (38 ms) / 2.97 at +3.8 % (the pan / 5.31 and / 5.81): there fast's quarter resolution is fine enough.
    MEDIUM_FLOW_PIXELS = 480 * 270
    BALANCED_FLOW_PIXELS = 960 * 540
    # A network's flicker is partly broad (a patch's colour or brightness wavers) and partly strokes redrawn. Blending
    # the broad part costs no detail, so it (below LOW_SIGMA px) is blended as LOW_BLENDS blends of the strength in a
    # row would (0.7 -> 0.91, 0.5 -> 0.75); the strokes at the strength itself. Blending two sets of strokes that do
    # not line up (the network redraws them; the flow is not exact) averages them out: the picture softens and the
    # style distance rises. So where the blended strokes carry less energy than the frame's own (local mean square,
    # Gaussian ENERGY_SIGMA px), they are scaled back up, by at most MAX_GAIN (two unrelated sets averaged half and
    # half keep half their energy). Measured with the built-in Starry Night (2026-12-05, style over every 2nd frame):
    # the real clip at 360 px, 0.7 with the gain / 2.19 at +8.3 % against 0.5 without / 1.93 at +8.0 %; at 640 px
    # 0.7 / 1.88 at +12.3 % against / 2.05 at +15.8 % (see docs/BENCHMARKS.md for the sizes and clips together).
    # Where the cost lies (step-7497 network, real clip, 640 px, 0.7, 36 frames, 2026-12-06): VGG's relu3_1 and
    # relu4_1 style distances rise by 16 and 25 %, relu1_1's falls by 16 %: the cost is in the mid-sized marks, not
    # the grain. Other band splits move along the same error/style line (LOW_SIGMA 1: / 1.82 at +9.1 %; 2: / 2.01 at
    # +12.2 %; 4 or 8, ENERGY_SIGMA up to 16: / 2.06-2.13 at +13.5-15.0 %); a Lanczos warp gains a little (/ 2.00 at
    # +11.3 %) for ten times the warp's time (38 against 3.6 ms a 640 px frame). Measured offline on the painted frames
    # before encoding (the real clip at 640 px, 2026-12-07, `/tmp/w/blendlab.py`): the blend costs more there (0.5 /
    # 1.94 at +16.7 %, 0.7 / 2.55 at +27.8 %; x264 at crf 18 then takes away texture from both, so encoded the cost
    # reads +12 to +20 %); stronger blends cost more still (0.85 / 2.95 at +36.8 %, 1.0 / 2.17 at +55.9 %: strokes
    # carried whole blur at every resampling); a third band (2-6 px) blended at the broad part's strength with its
    # energy restored like the strokes' changed nothing (+27.7 %); painting at a smaller working scale (256 px on the
    # short side, enlarged) raises the style distance (0.299 against 0.215 per frame, encoded). benchmarks/blend_lab.py
    # (2026-12-07) tries six other mechanisms on the same frames: steadying the input frames, carrying strokes whole
    # (directly or through a coordinate map resampled once per anchor), morphing the carried strokes onto the new
    # ones, blending only still regions, a photometric mask: all lie on this blend's error/style line or above it
    # (docs/MODELS.md, "Other ways to steady the frames").
    LOW_SIGMA = 2.0
    LOW_BLENDS = 2
    ENERGY_SIGMA = 4.0
    MAX_GAIN = math.sqrt(2)

    def motion(self, previous: np.ndarray | None, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(flow from `frame` back to `previous`, reliable-pixel mask) of two input frames; None when off or first."""
        if self.strength <= 0 or previous is None:
            return None
        g, p = flowlib.gray(frame), flowlib.gray(previous)
        preset = (
            "medium"
            if g.size <= self.MEDIUM_FLOW_PIXELS
            else "balanced"
            if g.size <= self.BALANCED_FLOW_PIXELS
            else "fast"
        )
        back = flowlib.flow(g, p, preset)
        return back, flowlib.reliable(back, flowlib.flow(p, g, preset))

    def apply(
        self, stylized: np.ndarray, motion: tuple[np.ndarray, np.ndarray] | None, previous_out: np.ndarray | None
    ) -> np.ndarray:
        """The output frame: `stylized` blended with `previous_out` (the previous output frame) where `motion` (from
        :meth:`motion`) is reliable; a scene cut leaves it as it is."""
        if motion is None or previous_out is None:
            return stylized
        back, mask = motion
        if float(mask.mean()) < CUT_RELIABLE:
            self.cuts += 1
            return stylized
        # Bicubic: the previous output is resampled again at every frame, and bilinear's blur piles up along the
        # chain, softening the strokes (style distance +12 % against +10 % at the same error, 2026-12-03).
        pull = flowlib.warp(previous_out.astype(np.float32), back, cubic=True)
        s = stylized.astype(np.float32)
        # The mask and the gain as whole (H, W, 3) arrays: numpy's broadcasting over a last axis of 3 is several
        # times slower than multiplying contiguous arrays (with numpy's einsum for the energy, the blend took 5.2 ms a
        # 360 px frame, now 3.8; the same output, 2026-12-05).
        m = _channels(mask, s.shape[-1])
        hi, lo = self.strength, 1 - (1 - self.strength) ** self.LOW_BLENDS
        # pull: what carrying the previous output along would change, where that is reliable; split into its broad
        # part (low) and its strokes (pull). In place: a 720p frame's arrays are 11 MB each.
        pull -= s
        pull *= m
        low = flowlib.lowpass(pull, self.LOW_SIGMA)
        low *= m
        pull -= low
        base = flowlib.lowpass(s, self.LOW_SIGMA)
        strokes = s
        strokes -= base  # the frame's own strokes...
        own = flowlib.lowpass(_energy(strokes), self.ENERGY_SIGMA)
        pull *= hi
        strokes += pull  # ...blended with the carried ones
        gain = np.sqrt((own + 1) / (flowlib.lowpass(_energy(strokes), self.ENERGY_SIGMA) + 1))
        np.clip(gain, 1, self.MAX_GAIN, out=gain)
        gain -= 1
        gain *= mask  # (the energy measure spreads a little into occlusions, where the frame is left as it is)
        gain += 1
        # out = the frame's broad part + the broad correction + the blended strokes, their energy restored
        strokes *= _channels(gain, s.shape[-1])
        low *= lo
        strokes += low
        strokes += base
        strokes += 0.5
        return np.clip(strokes, 0, 255, out=strokes).astype(np.uint8)

    def __call__(self, frame: np.ndarray, stylized: np.ndarray) -> np.ndarray:
        """The output frame for input `frame` (H, W, 3 uint8) stylized as `stylized`."""
        out = self.apply(stylized, self.motion(self.prev_frame, frame), self.prev_out)
        self.prev_frame, self.prev_out = frame, out
        return out


def _energy(x: np.ndarray) -> np.ndarray:
    """(H, W) mean square over the channels of (H, W, C) float32 `x` (OpenCV's per-pixel transform: a fifth of
    numpy's einsum time)."""
    cv2 = flowlib._cv2()
    return cv2.transform(x * x, np.full((1, x.shape[-1]), 1 / x.shape[-1], np.float32))


def _channels(a: np.ndarray, n: int) -> np.ndarray:
    """(H, W) float32 `a` repeated into (H, W, n)."""
    return flowlib._cv2().merge([a] * n)


class GridAnchor:
    """Keeps a one-pass network's stride grid fixed to the scene while the camera pans.

    A network that downsamples by its stride (the fast networks: 4 px) paints the same texture on a picture shifted
    by a whole number of strides, and a different one on a picture shifted by anything else: a pan of 3 px a frame
    redraws every stroke every frame. Each frame is therefore padded so that the scene keeps its phase on the grid
    (the camera's shift from the previous frame by phase correlation), and the painting cropped back. Only shifts of
    at least MIN_SHIFT px a frame move the grid: a slow drift would otherwise make the strokes jump at whole pixels,
    and blending handles it better (measured on the real clip, 2026-12-04). Measured on the pan at 640 px with the
    built-in Starry Night: the per-frame warping error halves (0.0087 -> 0.0046) at no cost in style.
    """

    MIN_SHIFT = 0.75  # px a frame
    MIN_RESPONSE = 0.1  # phase correlation's peak below this: no trustworthy global shift (a cut, a busy scene)

    def __init__(self, period: float) -> None:
        self.period = float(period)
        self.margin = math.ceil(self.period)
        self.position = np.zeros(2)  # where the scene has moved in the frame since the scene began (x, y)
        self.offset = np.zeros(2)  # the position the grid was last set to
        self.prev: np.ndarray | None = None
        self.window: np.ndarray | None = None

    def shift(self, frame: np.ndarray) -> tuple[int, int]:
        """The (left, top) padding of `frame`, the next input frame (H, W, 3 uint8); frames come in order."""
        cv2 = flowlib._cv2()
        g = flowlib.gray(frame).astype(np.float32)
        if self.prev is not None and self.prev.shape == g.shape:
            if self.window is None or self.window.shape != g.shape:
                self.window = cv2.createHanningWindow(g.shape[::-1], cv2.CV_32F)
            (dx, dy), response = cv2.phaseCorrelate(self.prev, g, self.window)
            if response < self.MIN_RESPONSE:
                self.position[:] = self.offset  # the grid stays where it is; following starts again from there
            else:
                self.position += (dx, dy)
                moved = np.abs((dx, dy)) >= self.MIN_SHIFT
                self.offset = np.where(moved, self.position, self.offset)
        self.prev = g
        left, top = (self._pad(-v % self.period) for v in self.offset)
        return left, top

    def _pad(self, x: float) -> int:
        """The whole number of pixels nearest to `x` on the circle of the period (a period that is no whole number
        of pixels: 8.3 of 8.44 is nearer 0 than 8)."""
        nearest = round(x)
        return 0 if self.period - x < abs(x - nearest) else nearest % self.margin

    def pad(self, frame: np.ndarray, left: int, top: int) -> np.ndarray:
        """`frame` padded by reflection: `left`/`top` px before, the rest of the margin after (a constant size, so
        that a network painting at a working scale keeps one scale)."""
        m = self.margin
        return np.pad(frame, ((top, m - top), (left, m - left), (0, 0)), mode="reflect")

    def crop(self, painted: np.ndarray, left: int, top: int, shape: tuple[int, ...]) -> np.ndarray:
        """The painting of a padded frame, cut back to the frame (`shape`)."""
        return painted[top : top + shape[0], left : left + shape[1]]

    def paint(self, frame: np.ndarray, pad: tuple[int, int], run: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """`run`'s painting of `frame` padded by `pad` ((left, top), from :meth:`shift`), cut back to the frame;
        `run` takes and gives (H, W, 3) uint8 pictures."""
        return self.crop(run(self.pad(frame, *pad)), *pad, frame.shape)


def default_temporal(method: str, style_images: bool = False, longest: int | None = None) -> float:
    """--temporal's default for `method`: what its module declares (``VIDEO_TEMPORAL``: the strength at which its
    shipped models are measured steady enough), else DEFAULT_TEMPORAL. With `style_images`, a method that paints
    trained styles but also takes style images (fast) may declare another (``VIDEO_TEMPORAL_STYLE_IMAGES``). A method
    whose blend costs more style on larger frames declares lighter ones above a frame size (``VIDEO_TEMPORAL_ABOVE``:
    (longest side in px, strength) pairs, ascending), which apply where `longest`, the frames' longest side, is
    known."""
    module = get_method(method)
    value = getattr(module, "VIDEO_TEMPORAL", DEFAULT_TEMPORAL)
    if style_images:
        value = getattr(module, "VIDEO_TEMPORAL_STYLE_IMAGES", value)
    for side, strength in getattr(module, "VIDEO_TEMPORAL_ABOVE", ()):
        if longest is not None and longest > side:
            value = strength
    return float(value)


def temporal_defaults() -> str:
    """Each method's --temporal default, for help texts: "fast 0.7 (0.5 with style images), adain 0.6 (0.5 above
    480 px, 0.4 above 960 px), gatys 0.3"."""
    from .api import available_methods

    def one(name: str) -> str:
        plain, images = default_temporal(name), default_temporal(name, style_images=True)
        notes = [f"{images:g} with style images"] if images != plain else []
        notes += [f"{v:g} above {side} px" for side, v in getattr(get_method(name), "VIDEO_TEMPORAL_ABOVE", ())]
        return f"{name} {plain:g}" + (f" ({', '.join(notes)})" if notes else "")

    return ", ".join(one(name) for name in available_methods())


def grid_anchor(
    engine: Any, opts: Any, temporal: float, width: int, height: int, n_styles: int = 0
) -> GridAnchor | None:
    """A :class:`GridAnchor` for `width` x `height` frames painted with `n_styles` style images where temporal
    consistency is on and `engine` says its grid (``engine.grid_period``); None otherwise."""
    if temporal <= 0 or not callable(getattr(engine, "grid_period", None)):
        return None
    period = engine.grid_period(opts, width, height, n_styles)
    return GridAnchor(period) if period else None


GUIDE_WEIGHT = 2000.0  # the temporal loss weight of an iterative method at --temporal 1 (pixels in [0, 1])


class TemporalGuide(_Temporal):
    """For iterative methods (Gatys): the previous result warped into the current frame, as a starting point and a
    loss target where the flow is reliable (Ruder et al. 2016's warped initialization and short-term temporal
    loss)."""

    def guide(self, frame: np.ndarray):
        """(target, mask, weight) tensors for the engine, or None (first frame, a cut, or off)."""
        if self.strength <= 0 or self.prev_gray is None:
            return None
        import torch

        g = flowlib.gray(frame)
        back = flowlib.flow(g, self.prev_gray)
        mask = flowlib.reliable(back, flowlib.flow(self.prev_gray, g))
        if float(mask.mean()) < CUT_RELIABLE:
            self.cuts += 1
            return None
        warped = flowlib.warp(self.prev_out.astype(np.float32) / 255, back)
        target = torch.from_numpy(np.ascontiguousarray(warped)).permute(2, 0, 1)[None]
        return target, torch.from_numpy(mask)[None, None], GUIDE_WEIGHT * self.strength

    def record(self, frame: np.ndarray, out: np.ndarray) -> None:
        self.prev_gray, self.prev_out = flowlib.gray(frame), out


@dataclass
class VideoReport:
    """What a video run did."""

    output: str
    frames: int
    seconds: float  # of video written
    elapsed: float  # wall-clock seconds
    audio: str
    cuts: int
    method: str
    options: dict[str, Any] = field(default_factory=dict)
    resumed: int = 0  # frames taken from an interrupted run (--resume)

    @property
    def fps(self) -> float:
        return self.frames / self.elapsed if self.elapsed > 0 else 0.0


def kept_frames_dir(output: str | os.PathLike) -> Path:
    """Where an iterative method's finished frames wait beside `output` until the video is written (--resume)."""
    return Path(output).with_name(f".{Path(output).name}.frames")


def stylize_video(
    input: str | os.PathLike,
    output: str | os.PathLike,
    styles: Sequence[Any] = (),
    method: str = "fast",
    *,
    temporal: float | None = None,
    size: int | None = 512,
    start: float = 0.0,
    duration: float | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    crf: int = DEFAULT_CRF,
    preset: str | None = None,
    progress: bool = False,
    engine: Any = None,
    callback: Callable[[Progress], None] | None = None,
    method_options: Any = None,
    resume: bool = False,
    workers: int | None = None,
    **options: Any,
) -> VideoReport:
    """Stylize `input` into `output` (.mp4 or .webm) with `method` and its `options`, frame by frame.

    `temporal` is the strength of temporal consistency (None: the method's default, :func:`default_temporal`).
    `size` is the longest side of the output (None: the input's); `crf` and `preset` are the encoder's quality and
    speed (:func:`impasto.core.video.transcode`). The method is loaded once (or `engine`, already
    loaded, is used); `method_options` are its Options when already made (the server's). Iterative methods keep each
    finished frame beside the output until the end, and `resume` reuses them after an interruption. One-pass methods
    paint `workers` frames at once (default PIPELINE_WORKERS, 3) while the next frames decode and the finished ones
    encode.
    `callback` gets a :class:`impasto.engine.Progress` per frame, in order (raising from it stops the run). Raises
    ImpastoError (one line) on a bad input; no partial output is left behind.
    """
    module = get_method(method)
    if not math.isfinite(start) or start < 0:
        raise ImpastoError(f"--start must be a number of seconds >= 0, got {start:g}")
    if duration is not None and not 0 < duration < math.inf:
        raise ImpastoError(f"--duration must be a number of seconds > 0, got {duration:g}")
    if size is not None and size < 16:
        raise ImpastoError(f"--size must be at least 16 px, got {size}")
    check_crf(crf)
    check_preset(preset)
    style_images = [load_image(s) if isinstance(s, (str, os.PathLike)) else s for s in styles]
    if not style_images and takes_style_images(module):
        raise ImpastoError(f"--method {method} needs one or more style images")
    if method_options is not None:
        opts = dataclasses.replace(method_options, size=None)
    else:
        opts = make(module.Options, {**options, "size": None}, f"method {method!r}")
    opts.validate(len(style_images))
    cap = getattr(opts, "max_size", None)  # the method's own check sees no --size (each frame comes at its size)
    if size is not None and cap is not None and size > cap:
        raise ImpastoError(f"--size {size} is above the cap of {cap} px; pass --max-size {size} to allow it")
    info = probe(input)  # a bad file fails here, before the model loads
    check_pixels(info, max_pixels, input)
    if size is None and cap is not None and max(info.width, info.height) > cap:
        raise ImpastoError(
            f"{input}: the video is {info.width}x{info.height}, above the cap of {cap} px; pass --size {cap} to paint "
            f"it smaller or --max-size {max(info.width, info.height)} to allow it"
        )
    if temporal is None:
        temporal = default_temporal(method, bool(styles), size or max(info.width, info.height))
    iterative = "steps" in field_names(module.Options)
    blend = TemporalBlend(0.0 if iterative else temporal)
    guide = TemporalGuide(temporal if iterative else 0.0)
    # Iterative methods take seconds a frame: every finished frame is kept, so that --resume continues from there.
    frames_dir = kept_frames_dir(output) if iterative else None
    if frames_dir is not None:
        if not resume and frames_dir.exists():
            shutil.rmtree(frames_dir)
        frames_dir.mkdir(exist_ok=True)
    elif resume:
        raise ImpastoError("--resume is for iterative methods (gatys), whose finished frames are kept")
    resumed = [0]
    if engine is None:
        engine = module.load(opts)
    total = info.frames
    if total and (start or duration):
        end = info.duration if duration is None else min(info.duration or start + duration, start + duration)
        total = max(1, math.ceil(((end or 0) - start) * info.fps - 1e-6)) if end else None
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="frame", dynamic_ncols=True)

    def report(index: int, out: np.ndarray) -> None:
        if callback is not None:
            callback(Progress(step=index + 1, total=max(total or 0, index + 1), image=_to_tensor(out)))

    def paint(rgb: np.ndarray, index: int, t: float) -> np.ndarray:
        from PIL import Image

        kept = frames_dir / f"{index:06d}.png" if frames_dir is not None else None
        if kept is not None and kept.exists():
            out = np.asarray(Image.open(kept).convert("RGB"))
            resumed[0] += 1
        else:
            result = engine.run(Image.fromarray(rgb), style_images, opts, guide=guide.guide(rgb))
            if result.stopped == "interrupted":
                raise KeyboardInterrupt
            out = np.asarray(_to_pil(result.image))
            save_image(Image.fromarray(out), kept)
        guide.record(rgb, out)
        report(index, out)
        return out

    anchor: GridAnchor | None = None  # set on the first frame, for engines that say their grid

    def one_pass(
        rgb: np.ndarray, previous: np.ndarray | None, before: Any, index: int, pad: tuple[int, int] | None = None
    ) -> np.ndarray:
        """A frame of a one-pass method: painted (at its grid padding) and its motion found (beside other frames' in
        the pipeline), then blended with the previous output once that is done."""
        from PIL import Image

        def run(picture: np.ndarray) -> np.ndarray:
            return np.asarray(_to_pil(engine.run(Image.fromarray(picture), style_images, opts).image))

        stylized = run(rgb) if pad is None or anchor is None else anchor.paint(rgb, pad, run)
        motion = blend.motion(previous, rgb)
        previous_out = before.result() if isinstance(before, Future) else before
        out = blend.apply(stylized, motion, previous_out)
        report(index, out)
        return out

    n_workers = 0 if iterative else (PIPELINE_WORKERS if workers is None else workers)
    # Each worker's runs take its share of the cores, and all paint frames of one size (a runtime may compile its
    # graph for that size: impasto.core.onnx.OpenVinoSession); so does the first frame, run here, with the same share.
    budget = max(1, _cores() // n_workers) if n_workers > 1 else None
    pool = ThreadPoolExecutor(n_workers, "impasto-video", onnx.set_thread_budget, (budget, True)) if budget else None
    last: list[Any] = [None, None]  # the previous input frame, and its output (or the future of it)

    def pipelined(rgb: np.ndarray, index: int, t: float) -> Any:
        nonlocal anchor
        if index == 0:
            anchor = grid_anchor(engine, opts, temporal, rgb.shape[1], rgb.shape[0], len(style_images))
            if anchor is not None and cap is not None:  # the grid's padding is no part of --size
                opts.max_size = cap + anchor.margin
        pad = anchor.shift(rgb) if anchor is not None else None  # in order, here: each shift needs the last frame
        # The first frame runs here, so that the engine has loaded everything before two threads use it.
        if pool is None or index == 0:
            out: Any = one_pass(rgb, last[0], last[1], index, pad)
        else:
            out = pool.submit(one_pass, rgb, last[0], last[1], index, pad)
        last[:] = [rgb, out]
        return out

    t0 = time.perf_counter()
    try:
        with onnx.frames_in(budget):
            stats = transcode(
                input,
                output,
                paint if iterative else pipelined,
                size=size,
                start=start,
                duration=duration,
                max_pixels=max_pixels,
                crf=crf,
                preset=preset,
                on_frame=(lambda n: bar.update(1)) if bar is not None else None,
                in_flight=n_workers + 1 if pool is not None else 0,
                info=info,
            )
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()
    if frames_dir is not None:
        shutil.rmtree(frames_dir, ignore_errors=True)
    return VideoReport(
        str(output),
        stats.frames,
        stats.seconds,
        time.perf_counter() - t0,
        stats.audio,
        blend.cuts + guide.cuts,
        method,
        {k: v for k, v in options.items() if not isinstance(v, (bytes, bytearray))},
        resumed[0],
    )


def _cores() -> int:
    return onnx.usable_cores()


def _to_tensor(rgb: np.ndarray) -> np.ndarray:
    """A frame as a progress picture: (1, 3, H, W) float in [0, 1] (an array: no torch needed)."""
    return rgb.transpose(2, 0, 1)[None].astype(np.float32) / 255


def _to_pil(image: Any):
    from .core.image import tensor_to_pil

    return tensor_to_pil(image)


def frames_of(path: str | os.PathLike, size: int | None = None, limit: int | None = None) -> list[np.ndarray]:
    """The frames of a video as (H, W, 3) uint8 arrays (for measurements and tests)."""
    import av

    out = []
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24")
            if size is not None and max(rgb.shape[:2]) != size:
                from PIL import Image

                s = size / max(rgb.shape[:2])
                rgb = np.asarray(
                    Image.fromarray(rgb).resize((round(rgb.shape[1] * s), round(rgb.shape[0] * s)), Image.LANCZOS)
                )
            out.append(rgb)
            if limit is not None and len(out) >= limit:
                break
    return out


def temporal_error(output: str | os.PathLike, source: str | os.PathLike) -> dict[str, float]:
    """The warping error of `output` against the flow of `source` (both videos, same frames): mean over frame pairs,
    and the mean share of pixels the consistency check keeps."""
    outs = frames_of(output)
    if not outs:
        raise ImpastoError(f"{output}: no frames")
    h, w = outs[0].shape[:2]
    srcs = frames_of(source, size=max(h, w))
    n = min(len(outs), len(srcs))
    if n < 2:
        raise ImpastoError("the warping error needs at least two frames")
    errors, kept = [], []
    for i in range(1, n):
        a = flowlib.gray(srcs[i][:h, :w])
        b = flowlib.gray(srcs[i - 1][:h, :w])
        back, fwd = flowlib.flow(a, b), flowlib.flow(b, a)
        mask = flowlib.reliable(back, fwd)
        errors.append(flowlib.warping_error(outs[i - 1], outs[i], back, mask))
        kept.append(float(mask.mean()))
    return {"warping_error": float(np.mean(errors)), "reliable": float(np.mean(kept)), "frames": n}


def sampled_distances(
    output: str | os.PathLike,
    source: str | os.PathLike,
    styles: Sequence[Any],
    every: int = SAMPLE_EVERY,
    evaluate: Callable | None = None,
) -> dict[str, float]:
    """Mean content and style distances (`impasto eval`'s) of every `every`-th frame of `output` against the same frame
    of `source` and the paintings; `evaluate`: an :class:`impasto.metrics.Evaluator`'s, to reuse one already loaded.
    """
    from PIL import Image

    from .metrics import Evaluator

    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ImpastoError(f"--every must be a whole number of frames, at least 1, got {every}")
    outs = frames_of(output)
    srcs = frames_of(source, size=max(outs[0].shape[:2]))
    evaluate = evaluate or Evaluator().evaluate
    paintings = [load_image(s) if isinstance(s, (str, os.PathLike)) else s for s in styles]
    rows = [
        evaluate(Image.fromarray(outs[i]), Image.fromarray(srcs[i][: outs[i].shape[0], : outs[i].shape[1]]), paintings)
        for i in range(0, min(len(outs), len(srcs)), every)
    ]
    out = {"content": float(np.mean([r["content"] for r in rows])), "sampled_frames": len(rows)}
    if paintings:
        out["style"] = float(np.mean([r["style"] for r in rows]))
    return out


def check_output(path: str | os.PathLike, input: str | os.PathLike) -> Path:
    """Refuse an output that would replace the input or has no video extension, before any work."""
    from .core.video import VIDEO_FORMATS

    p = Path(path)
    if p.suffix.lower() not in VIDEO_FORMATS:
        raise ImpastoError(f"{p}: unsupported video extension; use one of {', '.join(sorted(VIDEO_FORMATS))}")
    if Path(input).resolve() == p.resolve() or (p.exists() and os.path.samefile(input, p)):
        raise ImpastoError(f"{p}: output would overwrite the input; choose another name")
    if p.is_dir():
        raise ImpastoError(f"{p}: is a folder; give the output video's file name")
    return p


_SIGNATURES = (
    (4, b"ftyp"),  # MP4, MOV, M4V, 3GP (and AVIF and HEIC pictures: told apart by their brand, PICTURE_BRANDS)
    # QuickTime files older than the ftyp atom start with one of these
    (4, b"moov"),
    (4, b"mdat"),
    (4, b"wide"),
    (4, b"free"),
    (4, b"skip"),
    (4, b"pnot"),
    (0, b"\x1aE\xdf\xa3"),  # Matroska, WebM
    (0, b"OggS"),
    (0, b"FLV"),
)


def _ts(data: bytes, start: int, packet: int) -> bool:
    """MPEG transport stream packets of `packet` bytes, their sync byte at `start`, `start` + packet, ..."""
    return len(data) > start + 2 * packet and all(data[start + k * packet] == 0x47 for k in range(3))


def looks_like_video(data: bytes) -> bool:
    """Whether uploaded bytes start like a video container (the server's choice between a photo and a clip)."""
    if data[4:8] == b"ftyp" and data[8:12] in PICTURE_BRANDS:
        return False
    if any(data[i : i + len(sig)] == sig for i, sig in _SIGNATURES):
        return True
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return True
    return _ts(data, 0, 188) or _ts(data, 4, 192)  # MPEG-TS; M2TS (AVCHD, Blu-ray: a 4-byte time code first)
