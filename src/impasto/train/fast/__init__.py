"""Train a fast per-style network (Johnson et al. 2016) for one or several paintings on a folder of photos.

One network learns every painting given (conditional instance norm, Dumoulin et al. 2017) and, at the same time, a
range of per-layer style weights (Babaeizadeh & Ghiasi 2020): each picture of a batch gets a painting and, half the
time, random weights for relu1_1..relu4_1, so the weights become sliders at run time. Content loss at relu2_2, Gram
style loss at relu1_1..relu4_1 (:class:`impasto.losses.PerceptualLoss`), on the shared training loop: checkpoints
every --checkpoint-every steps and --resume continues from the exact step.

This module declares the trainer's settings and imports no torch; :mod:`.trainer` trains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ...errors import ImpastoError
from ...methods.fast import UPSAMPLE
from ...options import option
from .. import RunSettings, check_settings

_DATA = "data"
_NET = "network"
_RUN = "run"
_LOSS = "loss weights"


def check_upsample(upsample: str | None) -> None:
    """--upsample: None (the model file's, or nearest for a new network) or one of the decoders' doublings."""
    if upsample is not None and upsample not in UPSAMPLE:
        raise ImpastoError(f"--upsample must be {' or '.join(UPSAMPLE)}, got {upsample!r}")


@dataclass
class Config(RunSettings):
    """Settings of a training run; ``impasto train fast``'s flags come from here."""

    style: Sequence[str] = option(
        None, "painting(s) to learn, one network for all", "images", group=_DATA, required=True
    )
    content_dir: str = option(None, "folder of content photos", "str", group=_DATA, required=True)
    output: str = option(None, "model file to write (.safetensors, fp16)", "str", flag="-o", group=_RUN, required=True)
    names: Sequence[str] | None = option(
        None, "one name per painting, as --model NAME:... selects it (default: the files' names)", "names", group=_DATA
    )
    width: int = option(
        16, "channels of the first layer (Johnson et al.: 32); run time grows as its square", "int", group=_NET
    )
    blocks: int = option(5, "residual blocks", "int", group=_NET)
    decoder: Sequence[int] | None = option(
        None,
        "channels of the two upsampling layers, as A,B (default: 2 x width, width); narrower is faster",
        "ints",
        group=_NET,
    )
    upsample: str | None = option(
        None,
        "how the decoder doubles its features: nearest ties the strokes to a 4 px grid (they flicker on slowly "
        "drifting video); bilinear lets them sit anywhere, at the same cost (default: --init's, a resumed run's, "
        "else bilinear, as the built-in network)",
        "str",
        group=_NET,
        choices=UPSAMPLE,
    )
    size: int = option(128, "training crop size in pixels (multiple of 4)", "int", group=_DATA)
    # The scale the network learns its strokes at: crops are pieces of photos scaled to this shorter side, and the
    # paintings are scaled to --style-size; at run time pictures larger than this are stylized at this scale.
    image_size: int = option(
        512,
        "shorter side the photos are scaled to (jittered down to 3/4) before cropping: the scale the strokes are "
        "learnt at",
        "int",
        group=_DATA,
    )
    style_size: int = option(512, "longest side the paintings are scaled to", "int", group=_DATA)
    batch: int = option(8, "images per step", "int", group=_DATA)
    steps: int = option(20000, "total steps (a resumed run continues up to this)", "int", group=_RUN)
    lr: float = option(1e-3, "Adam learning rate", "float")
    lr_decay: float = option(1e-4, "learning rate = lr / (1 + lr-decay * step)", "float")
    content_weight: float = option(1.0, "weight of the content loss (relu2_2)", "float", group=_LOSS)
    style_weight: float = option(4.0, "weight of the style loss (relu1_1..relu4_1)", "float", group=_LOSS)
    style_layer_weights: Sequence[float] | None = option(
        None, "the recipe's weight of each style layer, relu1_1..relu4_1 (default equal)", "floats", group=_LOSS
    )
    deep_style_weight: float = option(
        0.0,
        "weight of a relu5_1 style term (the largest shapes of the painting), as a share of one of the four layers; "
        "it follows the coarse slider (0 = off)",
        "float",
        group=_LOSS,
    )
    tv_weight: float = option(0.0, "weight of the total-variation (smoothness) loss", "float", group=_LOSS)
    stability_weight: float = option(
        0.0,
        "weight of the stability term: the painting of a slightly moved photo (a sub-pixel to 2 px shift, a slight "
        "rotation and zoom, faint noise) must be the painting moved the same way, so that video flickers less "
        "(Wang et al. 2020; 0 = off)",
        "float",
        group=_LOSS,
    )
    adjustable: float = option(
        0.5,
        "share of the pictures trained with random per-layer weights (0 = no run-time layer control)",
        "float",
        group=_LOSS,
    )
    init: str | None = option(
        None,
        "start from this model file's network and step count (a warm start: the optimizer starts afresh), e.g. "
        "to continue the built-in styles' training from the shipped file when the checkpoint is gone",
        "str",
        group=_RUN,
    )
    tune: Sequence[str] | None = option(
        None,
        "with --init: train only these paintings' looks (names, comma-separated), for instance a bolder one at a "
        "higher --style-weight; the network and the other paintings stay exactly as --init has them",
        "names",
        group=_RUN,
    )
    checkpoint_every: int = option(200, "steps between checkpoints", "int", group=_RUN)
    preview_every: int = option(500, "steps between preview grids (0 = never)", "int", group=_RUN)
    seed: int = option(0, "random seed of the network, crops and layer weights", "int", group=_DATA)
    max_images: int | None = option(None, "use only the first N photos of the folder", "int", group=_DATA)
    weights: str | None = option(
        None, "VGG-19 weights of the loss network: caffe (default, bundled), torchvision, or a file path", "str"
    )

    @property
    def style_names(self) -> list[str]:
        """The paintings' names: --names, else the file names without folders and extensions."""
        return list(self.names) if self.names else [Path(str(p)).stem for p in self.style]

    def validate(self) -> None:
        """Raise ImpastoError naming the first bad setting."""
        for name in ("style", "content_dir", "output"):
            if not getattr(self, name):
                flag = "-o/--output" if name == "output" else "--" + name.replace("_", "-")
                raise ImpastoError(f"{flag} is required")
        if not str(self.output).endswith(".safetensors"):
            raise ImpastoError(f"--output {self.output}: the model is written as .safetensors")
        names = self.style_names
        if len(names) != len(self.style):
            raise ImpastoError(f"--names: {len(names)} names for {len(self.style)} paintings")
        bad = [n for n in names if not n or any(c in n for c in ":,= ") or n != n.strip()]
        if bad:
            raise ImpastoError(f"--names: {bad[0]!r} cannot be a style name (no ':', ',', '=' or spaces)")
        if len(set(names)) != len(names):
            raise ImpastoError(
                f"two paintings share the name {next(n for n in names if names.count(n) > 1)!r}; use --names"
            )
        check_settings(
            self,
            counts=("size", "batch", "steps", "checkpoint_every", "width", "blocks", "style_size"),
            numbers=(
                "lr",
                "lr_decay",
                "content_weight",
                "style_weight",
                "tv_weight",
                "deep_style_weight",
                "stability_weight",
            ),
        )
        if self.size < 32 or self.size % 4:
            raise ImpastoError(f"--size must be a multiple of 4 and at least 32, got {self.size}")
        if self.width < 4:
            raise ImpastoError(f"--width must be at least 4, got {self.width}")
        if self.decoder is not None and (len(self.decoder) != 2 or min(self.decoder) < 3):
            raise ImpastoError(f"--decoder takes two channel counts of at least 3, as 16,8; got {self.decoder}")
        check_upsample(self.upsample)
        if self.style_size < 64:
            raise ImpastoError(f"--style-size must be at least 64, got {self.style_size}")
        if not isinstance(self.image_size, int) or self.image_size < self.size:
            raise ImpastoError(f"--image-size must be a whole number >= --size ({self.size}), got {self.image_size}")
        if not 0 <= self.adjustable <= 1:
            raise ImpastoError(f"--adjustable must be between 0 and 1, got {self.adjustable}")
        if self.tune is not None:
            unknown = [n for n in self.tune if n not in names]
            if unknown:
                raise ImpastoError(f"--tune: {unknown[0]!r} is not one of the paintings ({', '.join(names)})")
            if not self.tune:
                raise ImpastoError("--tune: name at least one painting")
        if self.style_layer_weights is not None:
            w = list(self.style_layer_weights)
            if len(w) != 4 or any(not math.isfinite(v) or v < 0 for v in w) or sum(w) <= 0:
                raise ImpastoError("--style-layer-weights: four finite weights >= 0 (relu1_1..relu4_1), not all 0")


def train(
    cfg: Config,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    on_step: Callable[[int, dict], None] | None = None,
) -> dict:
    """Train (or continue training) a fast network; see :func:`impasto.train.fast.trainer.train`."""
    from .trainer import train as run

    return run(cfg, resume=resume, overwrite=overwrite, progress=progress, on_step=on_step)
