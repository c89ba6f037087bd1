"""Fast per-style networks (Johnson et al., "Perceptual Losses for Real-Time Style Transfer", 2016).

A small network trained for a painting repaints a photo in one pass: built-in styles ship with impasto (``impasto
styles`` lists them) and ``impasto train fast`` makes new ones. Styles of one model blend, and four sliders set the
weight of fine to coarse style features at run time, without retraining.

This module declares the method's options and imports no torch; :mod:`.engine` runs it.
"""

from __future__ import annotations

import json
import math
import os
import struct
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ...errors import ImpastoError
from ...options import DEVICES, PRECISIONS, PRESERVE_COLOR, check_declared, option

if TYPE_CHECKING:
    from ...engine import Engine

DEFAULT_MAX_SIZE = 8192
# Paints trained styles: no style images needed (see impasto.api.takes_style_images); a model with a style predictor
# (the built-in ANY, or a file from impasto train fast-arbitrary) also takes them.
STYLE_IMAGES = False
BUILTIN_FILE = "fast_styles.safetensors"
DEFAULT_MODEL = "starry_night"
# The built-in model that paints any painting given as a style image (a fast network with a style predictor, trained
# by impasto train fast-arbitrary): what --model means with style images when it is left at its default.
ANY = "any"
ARBITRARY_FILE = "fast_any.safetensors"
MAX_LAYER_WEIGHT = 3.0  # as trained (impasto.nets.fast.MAX_LAYER_WEIGHT; this module stays torch-free)
LAYER_OPTIONS = ("fine", "small", "medium", "coarse")  # relu1_1 .. relu4_1
RUNTIMES = ("auto", "onnx", "openvino", "torch")


def builtin_path() -> Path:
    """The model file of the built-in styles, shipped in the package."""
    return Path(str(resources.files("impasto") / "models" / BUILTIN_FILE))


def arbitrary_path() -> Path:
    """The model file of the built-in model that paints style images (--model any), shipped in the package."""
    return Path(str(resources.files("impasto") / "models" / ARBITRARY_FILE))


def run_model(opts: "Options", n_styles: int) -> str:
    """The ``--model`` a run with `n_styles` style images paints with: --model as given; left out, DEFAULT_MODEL, or
    with style images the built-in model that paints any painting (--model any)."""
    if opts.model is not None:
        return opts.model
    return ANY if n_styles and arbitrary_path().is_file() else DEFAULT_MODEL


def _header(path: str | Path) -> dict[str, Any]:
    """A safetensors file's JSON header: its tensors' names, shapes and offsets, and ``__metadata__``."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > 100_000_000:
            raise ValueError("header too large")
        return json.loads(f.read(n))


def model_metadata(path: str | Path) -> dict[str, str]:
    """A fast-network file's metadata, read from its header (no torch, no weights)."""
    p = Path(path)
    try:
        meta = _header(p)["__metadata__"]
        json.loads(meta["names"])
        int(meta["image_size"])
        return meta
    except FileNotFoundError:
        raise ImpastoError(f"model {p}: no such file") from None
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        raise ImpastoError(f"model {p}: not an impasto fast-network file") from None


def has_predictor(path: str | Path) -> bool:
    """Whether a fast-network file paints any painting from its picture (a style predictor, ``impasto train
    fast-arbitrary``), read from its header."""
    model_metadata(path)  # a one-line error for what is not a model file
    return any(k.startswith("predictor.") for k in _header(path))


def stats_size(path: str | Path) -> int:
    """The longest side a model with a style predictor reads style images at, as its file records it."""
    recipe = json.loads(model_metadata(path).get("recipe") or "{}")
    return int((recipe.get("arbitrary") or {}).get("stats_size", STATS_SIZE))


def style_images_key(styles: Sequence[Any]) -> tuple:
    """What identifies a run's style images, for engines that keep their statistics between calls (video frames,
    batches): files by path and modification time, pictures by identity (the caller keeps them alive)."""
    key = []
    for s in styles:
        if isinstance(s, (str, os.PathLike)):
            try:
                key.append(("file", str(s), os.stat(s).st_mtime_ns))
            except OSError:
                key.append(("file", str(s), None))
        else:
            key.append(("object", id(s)))
    return tuple(key)


def model_names(path: str | Path) -> list[str]:
    """The style names a fast-network file holds, in the order of the network's style input."""
    return list(json.loads(model_metadata(path)["names"]))


def model_tones(path: str | os.PathLike) -> dict[str, tuple[float, float]]:
    """Each painting's tone (luma spread, mean saturation) as the model file records it; {} for files made before
    impasto recorded it."""
    raw = model_metadata(path).get("tone")
    try:
        return {name: (float(v[0]), float(v[1])) for name, v in json.loads(raw).items()} if raw else {}
    except (ValueError, TypeError, IndexError, AttributeError):
        raise ImpastoError(f"model {path}: damaged tone record") from None


def painting_tone(items: Sequence[tuple[str, str, float]], shares: Sequence[float] | None = None):
    """The tone (:func:`impasto.core.tone.tone_stats`) a result of these ``--model`` items should have: the paintings'
    tones mixed by blend weight, or by `shares` (each mask's share of the picture); None when a file lacks it."""
    from ...core.tone import blended_stats

    stats = []
    for path, name, _ in items:
        tone = model_tones(path).get(name)
        if tone is None:
            return None
        stats.append(np.asarray(tone, np.float32))
    return blended_stats(stats, list(shares) if shares is not None else [w for _, _, w in items])


def builtin_styles() -> list[str]:
    """The names of the built-in styles ([] when the package ships none)."""
    p = builtin_path()
    return model_names(p) if p.is_file() else []


def parse_model(spec: str) -> list[tuple[str, str, float]]:
    """``--model`` -> [(file, style name, weight)]: a built-in name, a model file (its first style, or
    FILE#NAME), or several such items as ITEM:WEIGHT,ITEM:WEIGHT (weights default to 1)."""
    items = [s.strip() for s in str(spec).split(",")]
    if not spec or not all(items):
        raise ImpastoError(f"--model {spec!r}: empty style name")
    out = []
    builtin = builtin_styles()
    for item in items:
        weight = 1.0
        head, sep, tail = item.rpartition(":")
        if sep and _is_number(tail):
            item, weight = head, float(tail)
            if not math.isfinite(weight) or weight < 0:
                raise ImpastoError(f"--model {spec!r}: a weight must be a finite number >= 0, got {tail}")
        if item in builtin:
            out.append((str(builtin_path()), item, weight))
            continue
        if item == ANY and arbitrary_path().is_file():
            out.append((str(arbitrary_path()), model_names(arbitrary_path())[0], weight))
            continue
        path, _, name = item.partition("#")
        if not Path(path).is_file():
            known = ", ".join(builtin) or "none installed"
            raise ImpastoError(f"--model {item!r}: not a built-in style ({known}) nor a model file")
        names = model_names(path)
        if name and name not in names:
            raise ImpastoError(f"--model {item!r}: {path} holds {', '.join(names)}, not {name!r}")
        out.append((path, name or names[0], weight))
    if sum(w for _, _, w in out) <= 0:
        raise ImpastoError(f"--model {spec!r}: at least one weight must be positive")
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _layer_option(label: str, layer: str) -> Any:
    return option(
        1.0,
        f"weight of the {layer} style features ({label.lower()}): 0 = off, 1 = as trained, up to {MAX_LAYER_WEIGHT:g}",
        "float",
        http=True,
        minimum=0,
        maximum=MAX_LAYER_WEIGHT,
        label=label,
        step=0.1,
        group="style layers",
    )


@dataclass
class Options:
    """Settings of a fast-network run: the command line's flags, HTTP fields and web page controls come from here."""

    model: str | None = option(
        None,
        "a built-in style (impasto styles lists them), a model file from impasto train fast (FILE or FILE#NAME), "
        "or several blended as STYLE:WEIGHT,STYLE:WEIGHT (default: starry_night); with style images: any (the "
        "default then: the built-in model that paints any painting) or a file from impasto train fast-arbitrary",
        "str",
        http=True,
        label="Style",
    )
    size: int | None = option(
        512,
        "longest side of the output in pixels (0 = the photo's own size)",
        "int",
        http=True,
        minimum=0,
        label="Size",
        zero_is_none=True,
    )
    strength: float = option(
        1.0,
        "style strength from 0 (the photo) to 1 (the network's result): a mix of the two",
        "float",
        http=True,
        minimum=0,
        maximum=1,
        label="Strength",
        step=0.05,
    )
    tone: float = option(
        1.0,
        "bring the result's contrast and saturation this far (0 to 1) to the painting's, as the model file records "
        "it (files made before impasto recorded it are left as they are)",
        "float",
        http=True,
        minimum=0,
        maximum=1,
        label="Painting's tone",
        step=0.05,
    )
    palette: float = option(
        1.0,
        "with style images (--model any): bring the result's colours this far (0 to 1) to the paintings' palette, "
        "their colour mean and covariance (the network paints an unseen painting's strokes better than its "
        "colours); a trained style keeps the palette it learnt",
        "float",
        minimum=0,
        maximum=1,
    )  # not on the page, whose fast method paints the built-in styles (HTTP jobs with style images get the default)
    fine: float = _layer_option("Fine detail", "relu1_1")
    small: float = _layer_option("Small strokes", "relu2_1")
    medium: float = _layer_option("Medium strokes", "relu3_1")
    coarse: float = _layer_option("Large shapes", "relu4_1")
    work_size: int | None = option(
        None,
        "shorter side the network paints at; larger pictures are painted at this size, enlarged, and get the photo's "
        "fine detail back, so strokes keep their size relative to the picture (default: the scale the model was "
        "trained at; 0 = always at the output size)",
        "int",
        minimum=0,
        zero_is_none=False,
    )
    detail: float = option(
        0.5,
        "how much of the photo's fine detail returns when a picture is larger than --work-size (0 to 1)",
        "float",
        minimum=0,
        maximum=1,
    )
    masks: Sequence[Any] | None = option(
        None,
        "one mask image per style of --model: each style paints where its mask is white",
        "images",
        flag="--mask",
        metavar="PATH",
    )
    content_mask: Any = option(None, "mask image: white where the photo is kept unstylized", "image", metavar="PATH")
    preserve_color: str = option(
        "none",
        "keep the photo's colours: luminance = keep the photo's chroma; histogram = match the result's colour "
        "statistics to the photo's",
        "str",
        choices=PRESERVE_COLOR,
        http=True,
        label="Keep colours",
    )
    precision: str = option(
        "auto",
        "precision of the network pass; auto = bf16 on CUDA and on CPUs with bf16 units, else fp32 (onnxruntime: fp32, "
        "and with style images the painting's VGG-19 pass in int8 on CPUs with VNNI or AMX; OpenVINO: bf16 on CPUs "
        "with bf16 units)",
        "str",
        choices=PRECISIONS,
        load=True,
    )
    device: str = option("auto", f"compute device: {', '.join(DEVICES)} (or cuda:N)", "str", load=True)
    runtime: str = option(
        "auto",
        "what runs the network: onnx = onnxruntime (no PyTorch start-up; exported to the cache on first use), "
        "openvino = the same graph on OpenVINO (the openvino extra; bf16 on CPUs with bf16 units: about 1.5x as "
        "fast once compiled for the pictures' size), torch = PyTorch; auto = onnx on a CPU when onnxruntime is "
        "installed, with a video's and the camera's frames on openvino where the CPU has bf16 units and it is "
        "installed",
        "str",
        choices=RUNTIMES,
        load=True,
    )
    max_size: int = option(DEFAULT_MAX_SIZE, "refuse --size above this (raise it to go bigger)", "int")

    @property
    def layer_weights(self) -> list[float]:
        """The four per-layer style weights, fine to coarse."""
        return [float(getattr(self, n)) for n in LAYER_OPTIONS]

    def validate(self, n_styles: int) -> None:
        """Raise ImpastoError naming the first bad setting."""
        if self.size == 0:
            self.size = None  # 0 = the photo's own size, as on the command line
        if self.size is not None and (not isinstance(self.size, int) or self.size < 0):
            raise ImpastoError(f"--size must be a positive number of pixels, got {self.size}")
        if self.size is not None and self.size > self.max_size:
            raise ImpastoError(
                f"--size {self.size} is above the cap of {self.max_size} px; pass --max-size {self.size} to allow it"
            )
        if self.work_size is not None and (not isinstance(self.work_size, int) or 0 < self.work_size < 16):
            raise ImpastoError(f"--work-size must be 0 (off) or at least 16 px, got {self.work_size}")
        check_declared(self)
        model = run_model(self, n_styles)
        styles = parse_model(model)
        if not n_styles and any(Path(path) == arbitrary_path() for path, _, _ in styles):
            raise ImpastoError("--model any paints the paintings given as style images: give one or more")
        if n_styles:
            files = {path for path, _, _ in styles}
            if len(files) != 1 or not has_predictor(next(iter(files))):
                if self.model is None:
                    raise ImpastoError(
                        f"no built-in model for any painting is installed ({arbitrary_path()} is missing; reinstall "
                        "impasto), so the fast method cannot paint style images: give --model FILE from impasto "
                        "train fast-arbitrary, or drop them to paint a trained style"
                    )
                raise ImpastoError(
                    f"--model {model} paints its trained styles, not style images: leave --model out (or give "
                    "--model any) to paint the style images, or drop them to paint the trained style"
                )
            if self.masks is not None:
                raise ImpastoError("--mask places the styles of --model; it does not take style images")
            if len(styles) > 1 or "#" in str(model):
                raise ImpastoError(
                    f"--model {model}: with style images give the model file alone (its own paintings do not "
                    "blend with them)"
                )
        if self.masks is not None and len(self.masks) != len(styles):
            raise ImpastoError(f"--mask: got {len(self.masks)} masks for {len(styles)} styles in --model (one each)")


# impasto video's --temporal default for this method. The built-in network trained with the stability term steadies
# well, and the blend restores the strokes' energy (TemporalBlend), so it takes a strong blend: at 0.7 the real clip's
# warping error is divided by 2.2 at 360 px at +8 % style distance (2026-12-05; 0.5: by 1.9 at the same cost).
VIDEO_TEMPORAL = 0.7
# The same with style images, painted by the model for any painting (--model any, or a file from impasto train
# fast-arbitrary): its strokes move more from frame to frame, and a strong blend costs it more style. At 0.5 the
# video target (half the per-frame warping error within +10 % style distance) is met in 5 of 6 cells of the video
# benchmark, against 3 of 6 at 0.7: at 720p the real clip / 2.79 at +6.8 % (0.7: +14.3 %), the pan / 8.29 at +7.2 %;
# at 640 px the real clip / 1.92 at +7.9 % (0.7: / 2.87 at +25.7 %) (2026-12-07, docs/MODELS.md).
VIDEO_TEMPORAL_STYLE_IMAGES = 0.5
STATS_SIZE = 256  # a style image's longest side for the style predictor (impasto.nets.fast.STATS_SIZE)
GRID = 4  # the networks' stride (impasto.nets.fast.STRIDE; this module stays torch-free)
UPSAMPLE = ("nearest", "bilinear")  # the decoders' doublings (impasto.nets.fast.UPSAMPLE)


def grid_period(opts: Options, training_scale: int, width: int, height: int) -> float | None:
    """The period in output pixels of the network's stride grid on `width` x `height` frames padded by about a period
    (as :class:`impasto.video.GridAnchor` paints them; larger pictures are painted at the working scale, where the
    grid is coarser), or None where there is no grid to keep: regions, or a frame that the padding would tip over the
    working size (it would then be painted smaller than without)."""
    if opts.masks is not None:
        return None
    work = training_scale if opts.work_size is None else opts.work_size
    short = min(width, height)
    if not work or short + GRID <= work:
        return float(GRID)
    if short <= work:
        return None
    return GRID * (short + math.ceil(GRID * short / work)) / work


def model_grid_period(opts: Options, width: int, height: int, n_styles: int = 0) -> float | None:
    """:func:`grid_period` for the model file a run with `n_styles` style images paints with (None for styles from
    several files), read from its header: what both engines tell :mod:`impasto.video`."""
    files = {path for path, _, _ in parse_model(run_model(opts, n_styles))}
    if len(files) != 1:
        return None
    return grid_period(opts, int(model_metadata(next(iter(files)))["image_size"]), width, height)


def load(options: Options | None = None) -> "Engine":
    """The fast-network engine: models loaded once and kept, for many pictures and frames.

    On a CPU with onnxruntime installed, the engine runs the networks exported to ONNX and never imports PyTorch
    (:mod:`.runtime`); frames of one size (a video, the camera) on OpenVINO in bf16 where the CPU has bf16 units and
    OpenVINO is installed; with a GPU, an explicit --device or a --precision the graphs cannot run in, the PyTorch
    engine does (see :func:`graph_runtimes`).
    """
    opts = options or Options()
    runtimes = graph_runtimes(opts)
    if runtimes is not None:
        from .runtime import OrtFastEngine

        return OrtFastEngine(opts, runtime=runtimes[0], stream_runtime=runtimes[1])
    from .engine import FastEngine

    return FastEngine(opts)


def graph_runtimes(opts: Options) -> tuple[str, str] | None:
    """What :func:`load` runs the exported graphs on for these options, ("onnx" or "openvino") for single pictures
    and for frames of one size (:func:`impasto.core.onnx.set_thread_budget`), or None: PyTorch runs the networks.

    OpenVINO compiles a graph for each picture size (0.1-0.2 s) and then runs it in bf16 about 1.5x as fast as
    onnxruntime's fp32 (docs/MODELS.md, "OpenVINO in bf16"): a gain for a video's or a camera's frames, a loss for a
    single picture (a whole 512 px command 0.58-0.70 s against 0.42-0.46 s), so auto keeps pictures on onnxruntime.
    A --runtime that cannot run the options raises ImpastoError naming the problem."""
    from ...core.cache import cpu_flags_say_fast_bf16
    from ...core.onnx import openvino_installed
    from .runtime import available

    on_cpu = opts.device in ("auto", "cpu")
    if opts.runtime == "onnx":
        if not on_cpu or opts.precision not in ("auto", "fp32"):
            raise ImpastoError("--runtime onnx runs on the CPU in fp32; use --runtime torch for --device/--precision")
    elif opts.runtime == "openvino":
        if not on_cpu or opts.precision not in ("auto", "fp32", "bf16"):
            raise ImpastoError(
                "--runtime openvino runs on the CPU in bf16 or fp32; use --runtime torch for --device/--precision"
            )
        if not openvino_installed():
            raise ImpastoError("--runtime openvino needs OpenVINO: pip install 'impasto[openvino]'")
    if opts.runtime in ("onnx", "openvino"):
        if not available(parse_model(run_model(opts, 0))):
            raise ImpastoError(f"--runtime {opts.runtime} needs onnxruntime and onnx: pip install 'impasto[export]'")
        return opts.runtime, opts.runtime
    if opts.runtime == "torch" or not on_cpu or opts.precision == "fp16":
        return None
    if opts.device == "auto" and (os.path.exists("/dev/nvidia0") or "torch.cuda" in sys.modules and _cuda()):
        return None  # a GPU may be there: PyTorch uses it
    if not available(parse_model(run_model(opts, 0))):
        return None
    bf16_here = bool(cpu_flags_say_fast_bf16()) and openvino_installed()
    if opts.precision == "bf16":  # asked for: OpenVINO's bf16 where the CPU has the units, else PyTorch's autocast
        return ("openvino", "openvino") if bf16_here else None
    return "onnx", "openvino" if opts.precision == "auto" and bf16_here else "onnx"


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
