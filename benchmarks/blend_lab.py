"""The video blend's error/style trade-off, offline: other ways to steady the fast method's frames, on the same frames.

Paints a clip once with the fast method (its frames as `impasto video` paints them, grid anchoring included, before
blending and before encoding), then runs each variant over those frames and reports the warping error (the measure
of `impasto eval-video`: DIS medium flow between the input frames, Ruder et al.'s consistency mask) and the content
and style distances of one frame in --every, against per-frame painting. The question each variant asks: does it
steady the frames at a lower style cost than the shipped blend (:class:`impasto.video.TemporalBlend`), i.e. does it
move the error/style line rather than move along it? Frames are not encoded, so the costs read higher than
benchmarks/video.py's (x264 takes texture from both); compare variants within one run.

Variants (``--variants``, default all):

- ``blend``: the shipped blend at --strengths.
- ``input``: the input frames steadied instead (each blended with the previous steadied input carried along the
  flow, at 0.5 and 0.8), painted, then the shipped blend at 0.3/0.5/0.7.
- ``select``: the carried output kept whole (weight 0.95) where it still matches the new painting broadly, the new
  painting where not (mismatch thresholds 100/300/1000): strokes carried, not averaged.
- ``canvas``: as ``select``, but carried through an accumulated coordinate map from a canvas re-anchored every K
  frames, so the strokes are resampled once per anchor instead of at every frame (K 8/16).
- ``morph``: the carried strokes aligned with the new ones (DIS between the two paintings) and met halfway in
  position and colour, at 0.5/0.7.
- ``gate``: the shipped blend only where the scene is still (flow under 0.5/1 px).
- ``photometric``: the shipped blend with a photometric reliability mask (one flow instead of two).

    python benchmarks/blend_lab.py [--size 640] [--clip real|pan] [--variants blend select ...]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from _common import DATA
from PIL import Image
from video import cut_real, make_motion_clip

import impasto
import impasto.video as V
from impasto.core import flow as F
from impasto.core.image import load_image
from impasto.metrics import Evaluator

PAINTING = DATA / "style" / "starry_night.jpg"
Motion = tuple[np.ndarray, np.ndarray] | None


def record(clip: Path, size: int, engine, model: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(input frames, painted frames before blending) as `impasto video` paints them."""
    painted: list[np.ndarray] = []
    apply = V.TemporalBlend.apply

    def keep(self, stylized, motion, previous_out):
        painted.append(stylized.copy())
        return apply(self, stylized, motion, previous_out)

    V.TemporalBlend.apply = keep
    try:
        with tempfile.TemporaryDirectory() as tmp:
            V.stylize_video(
                clip,
                Path(tmp) / "o.mp4",
                [],
                size=size,
                method="fast",
                engine=engine,
                model=model,
                temporal=0.7,
                workers=1,
            )
    finally:
        V.TemporalBlend.apply = apply
    h, w = painted[0].shape[:2]
    frames = [f[:h, :w] for f in V.frames_of(clip, size=max(h, w))][: len(painted)]
    return frames, painted


def chain(painted: list[np.ndarray], motions: list[Motion], step: Callable) -> list[np.ndarray]:
    """Each frame's output from its painting, its motion and the previous output."""
    outs: list[np.ndarray] = []
    for s, m in zip(painted, motions):
        outs.append(step(s, m, outs[-1] if outs else None))
    return outs


def shipped(strength: float) -> Callable:
    return V.TemporalBlend(strength).apply


def _usable(motion: Motion, previous) -> bool:
    return motion is not None and previous is not None and float(motion[1].mean()) >= V.CUT_RELIABLE


def _carry(s: np.ndarray, carried: np.ndarray, reliable: np.ndarray, threshold: float, keep: float) -> np.ndarray:
    """The new painting `s` replaced by `carried` (weight `keep`) where the two still match broadly (local mean
    square difference under `threshold`) and the flow is reliable; float32."""
    diff = carried - s
    mismatch = F.lowpass((diff * diff).mean(-1), 4.0)
    w = F.lowpass(keep * np.clip(1.5 - mismatch / threshold, 0, 1) * reliable, 1.5)
    return s + w[..., None] * diff


def select(threshold: float, keep: float = 0.95) -> Callable:
    def step(s8, motion, previous):
        if not _usable(motion, previous):
            return s8
        back, mask = motion
        s = s8.astype(np.float32)
        out = _carry(s, F.warp(previous.astype(np.float32), back, cubic=True), mask, threshold, keep)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)

    return step


def canvas(threshold: float, every: int) -> Callable:
    import cv2

    state: dict = {}

    def step(s8, motion, previous):
        s = s8.astype(np.float32)
        h, w = s.shape[:2]
        if not _usable(motion, previous):
            state.update(canvas=s, map=None, age=0)
            return s8
        back, mask = motion
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        here = np.dstack([gx, gy]) if state["map"] is None else state["map"]
        # where each pixel's stroke lies on the canvas: the previous map followed along the flow
        state["map"] = cv2.remap(
            here, gx + back[..., 0], gy + back[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        carried = cv2.remap(
            state["canvas"],
            state["map"][..., 0],
            state["map"][..., 1],
            cv2.INTER_CUBIC,
            borderMode=cv2.BORDER_REPLICATE,
        )
        rel = (
            mask
            if state["age"] == 0
            else np.minimum(mask, cv2.remap(state["rel"], gx + back[..., 0], gy + back[..., 1], cv2.INTER_LINEAR))
        )
        state["rel"] = rel
        out = _carry(s, carried, rel, threshold, 0.95)
        state["age"] += 1
        if state["age"] >= every:
            state.update(canvas=out, map=None, age=0)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)

    return step


def morph(strength: float) -> Callable:
    def step(s8, motion, previous):
        if not _usable(motion, previous):
            return s8
        back, mask = motion
        pull = F.warp(previous.astype(np.float32), back, cubic=True)
        s = s8.astype(np.float32)
        to_pull = F.flow(F.gray(s8), F.gray(np.clip(pull, 0, 255).astype(np.uint8)))
        to_pull *= mask[..., None]
        met = strength * F.warp(pull, (1 - strength) * to_pull, cubic=True)
        met += (1 - strength) * F.warp(s, -strength * to_pull, cubic=True)
        out = s + mask[..., None] * (met - s)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)

    return step


def gated(strength: float, still: float) -> Callable:
    blend = V.TemporalBlend(strength)

    def step(s8, motion, previous):
        if motion is None:
            return s8
        back, mask = motion
        speed = np.sqrt(back[..., 0] ** 2 + back[..., 1] ** 2)
        gate = F.lowpass(np.clip(1 - (speed - still) / 0.5, 0, 1).astype(np.float32), 2.0)
        return blend.apply(s8, (back, (mask * gate).astype(np.float32)), previous)

    return step


def photometric_motions(frames: list[np.ndarray], threshold: float) -> list[Motion]:
    """One flow a frame; reliable where the previous input carried along it matches (and off motion boundaries)."""
    out: list[Motion] = [None]
    for i in range(1, len(frames)):
        g, pg = F.gray(frames[i]), F.gray(frames[i - 1])
        back = F.flow(g, pg)
        d = F.lowpass(np.abs(g.astype(np.float32) - F.warp(pg.astype(np.float32), back)), 1.0)
        bu, bv = back[..., 0], back[..., 1]
        gy_u, gx_u = np.gradient(bu)
        gy_v, gx_v = np.gradient(bv)
        boundary = gx_u**2 + gy_u**2 + gx_v**2 + gy_v**2 > 0.01 * (bu * bu + bv * bv) + 0.002
        out.append((back, (~((d > threshold) | boundary)).astype(np.float32)))
    return out


def steadied_inputs(frames: list[np.ndarray], motions: list[Motion], strength: float) -> list[np.ndarray]:
    out, prev = [], None
    for f, m in zip(frames, motions):
        o = f.astype(np.float32)
        if m is not None and prev is not None:
            back, mask = m
            o += strength * mask[..., None] * (F.warp(prev, back, cubic=True) - o)
        prev = o
        out.append(np.clip(o + 0.5, 0, 255).astype(np.uint8))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=640, help="longest side of the frames")
    ap.add_argument("--clip", choices=("real", "pan"), default="real", help="the real clip or the pan and zoom")
    ap.add_argument("--frames", type=int, default=36)
    ap.add_argument("--every", type=int, default=3, help="distances over one frame in this many")
    ap.add_argument("--model", default="starry_night", help="the fast method's built-in style")
    ap.add_argument("--strengths", type=float, nargs="+", default=[0.5, 0.7], help="the shipped blend's")
    variants = ("blend", "input", "select", "canvas", "morph", "gate", "photometric")
    ap.add_argument("--variants", nargs="+", choices=variants, default=list(variants))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    engine = impasto.load("fast", model=args.model)
    painting = load_image(PAINTING)
    evaluate = Evaluator().evaluate
    with tempfile.TemporaryDirectory() as tmp:
        clip = (
            cut_real(Path(tmp) / "real.mp4", args.frames)
            if args.clip == "real"
            else make_motion_clip(Path(tmp) / "pan.mp4", args.size, args.frames)
        )
        frames, painted = record(clip, args.size, engine, args.model)
    # The blend's own motions (its flow preset for this size) and the measure's (medium flow, both directions).
    own = V.TemporalBlend(0.7)
    motions: list[Motion] = [None] + [own.motion(frames[i - 1], frames[i]) for i in range(1, len(frames))]
    measure = []
    for i in range(1, len(frames)):
        a, b = F.gray(frames[i]), F.gray(frames[i - 1])
        back = F.flow(a, b)
        measure.append((back, F.reliable(back, F.flow(b, a))))

    base: list[float] = []

    def report(name: str, outs: list[np.ndarray]) -> None:
        err = float(np.mean([F.warping_error(outs[i - 1], outs[i], *measure[i - 1]) for i in range(1, len(outs))]))
        rows = [
            evaluate(Image.fromarray(outs[i]), Image.fromarray(frames[i]), [painting])
            for i in range(0, len(outs), args.every)
        ]
        content, style = (float(np.mean([r[k] for r in rows])) for k in ("content", "style"))
        if not base:
            base[:] = [err, style]
        print(
            f"{name:36s} warping error {err:.5f} (/ {base[0] / err:.2f})  content {content:.3f}  "
            f"style {style:.4f} ({100 * (style / base[1] - 1):+.1f} %)",
            flush=True,
        )

    print(f"{args.clip} clip, {len(frames)} frames of {frames[0].shape[1]}x{frames[0].shape[0]} px, {args.model}")
    report("per frame", painted)
    if "blend" in args.variants:
        for t in args.strengths:
            report(f"shipped blend {t:g}", chain(painted, motions, shipped(t)))
    if "input" in args.variants:
        from impasto.api import get_method
        from impasto.options import make

        opts = make(get_method("fast").Options, {"model": args.model, "size": None}, "fast")

        def run(picture: np.ndarray) -> np.ndarray:
            return np.asarray(V._to_pil(engine.run(Image.fromarray(picture), [], opts).image))

        for b in (0.5, 0.8):
            # painted as impasto video paints: the frames padded to keep the stride grid on the scene
            h, w = frames[0].shape[:2]
            anchor = V.grid_anchor(engine, opts, 0.7, w, h)
            repainted = [
                run(f) if anchor is None else anchor.paint(f, anchor.shift(f), run)
                for f in steadied_inputs(frames, motions, b)
            ]
            for t in (0.0, 0.3, 0.5, 0.7):
                outs = repainted if t == 0 else chain(repainted, motions, shipped(t))
                report(f"input steadied {b:g}, blend {t:g}", outs)
    if "select" in args.variants:
        for threshold in (100, 300, 1000):
            report(f"select, mismatch {threshold}", chain(painted, motions, select(threshold)))
    if "canvas" in args.variants:
        for every in (8, 16):
            report(f"canvas, anchor every {every}", chain(painted, motions, canvas(1000, every)))
    if "morph" in args.variants:
        for t in (0.5, 0.7):
            report(f"morph {t:g}", chain(painted, motions, morph(t)))
    if "gate" in args.variants:
        for still in (0.5, 1.0):
            report(f"blend 0.7 where still (< {still:g} px)", chain(painted, motions, gated(0.7, still)))
    if "photometric" in args.variants:
        for threshold in (12, 24):
            report(
                f"blend 0.7, photometric mask {threshold}",
                chain(painted, photometric_motions(frames, threshold), shipped(0.7)),
            )


if __name__ == "__main__":
    main()
