"""Train an AdaIN decoder (Huang & Belongie 2017) on a folder of photos and a folder of paintings.

Content loss at relu4_1 against the AdaIN target, style loss on the channel means and standard deviations at
relu1_1..relu4_1 (:class:`impasto.losses.PerceptualLoss`), optionally an identity loss; on the shared training loop,
so checkpoints every --checkpoint-every steps (decoder, optimizer, step) and --resume continues from the exact step.

This module declares the trainer's settings and imports no torch; :mod:`.trainer` trains.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ...errors import ImpastoError
from ...options import option
from .. import RunSettings, check_settings

_DATA = "data"
_RUN = "run"


@dataclass
class Config(RunSettings):
    """Settings of a training run; ``impasto train adain``'s flags come from here."""

    content_dir: str = option(None, "folder of content photos", "str", group=_DATA, required=True)
    style_dir: str = option(None, "folder of style images", "str", group=_DATA, required=True)
    # The decoder file written at the end (and at every checkpoint).
    output: str = option(
        None, "decoder file to write (.safetensors, fp16)", "str", flag="-o", group=_RUN, required=True
    )
    size: int = option(256, "training crop size in pixels (multiple of 8)", "int", group=_DATA)
    # Shorter side the images are scaled to (with jitter down to 3/4) before cropping: the scale of the pictures the
    # decoder will see (512 px), so a small crop is a piece of a 512 px picture, not a shrunken whole scene.
    image_size: int = option(
        512,
        "shorter side the images are scaled to (jittered down to 3/4) before cropping: the size of the "
        "pictures the decoder is meant for",
        "int",
        group=_DATA,
    )
    batch: int = option(8, "images per step", "int", group=_DATA)
    steps: int = option(20000, "total steps (a resumed run continues up to this)", "int", group=_RUN)
    lr: float = option(1e-4, "Adam learning rate", "float")
    lr_decay: float = option(5e-5, "learning rate = lr / (1 + lr-decay * step)", "float")
    content_weight: float = option(1.0, "weight of the content loss", "float")
    style_weight: float = option(10.0, "weight of the style loss", "float")
    identity_weight: float = option(
        0.0,
        "weight of an identity loss: the pixel MSE between each photo and the decoder's reconstruction of it "
        "(0 = off, the paper's recipe); sharpens the decoder early in training",
        "float",
    )
    checkpoint_every: int = option(500, "steps between checkpoints", "int", group=_RUN)
    preview_every: int = option(1000, "steps between preview grids (0 = never)", "int", group=_RUN)
    seed: int = option(0, "random seed of the crops and augmentations", "int", group=_DATA)
    max_images: int | None = option(None, "use only the first N images of each folder", "int", group=_DATA)
    weights: str | None = option(
        None,
        "VGG-19 weights of the encoder: caffe (default, bundled), torchvision, or a file path; a decoder only "
        "works with the encoder it was trained with",
        "str",
    )

    def validate(self) -> None:
        """Raise ImpastoError naming the first bad setting."""
        for name in ("content_dir", "style_dir", "output"):
            if not getattr(self, name):
                flag = "-o/--output" if name == "output" else "--" + name.replace("_", "-")
                raise ImpastoError(f"{flag} is required")
        if not str(self.output).endswith(".safetensors"):
            raise ImpastoError(f"--output {self.output}: the decoder is written as .safetensors")
        check_settings(
            self,
            counts=("size", "batch", "steps", "checkpoint_every"),
            numbers=("lr", "lr_decay", "content_weight", "style_weight", "identity_weight"),
        )
        if self.size < 32 or self.size % 8:
            raise ImpastoError(f"--size must be a multiple of 8 and at least 32, got {self.size}")
        if not isinstance(self.image_size, int) or self.image_size < self.size:
            raise ImpastoError(f"--image-size must be a whole number >= --size ({self.size}), got {self.image_size}")


def train(
    cfg: Config,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    on_step: Callable[[int, dict], None] | None = None,
) -> dict:
    """Train (or continue training) a decoder; see :func:`impasto.train.adain.trainer.train`."""
    from .trainer import train as run

    return run(cfg, resume=resume, overwrite=overwrite, progress=progress, on_step=on_step)
