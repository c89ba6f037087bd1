"""Train a fast network for paintings it has never seen: the network and a style predictor together (Ghiasi et al.
2017, "Exploring the structure of a real-time, arbitrary neural artistic stylization network").

A fast network paints a painting from its 32-number embedding (conditional instance norm). Here the embedding is not
learnt per painting but predicted from the painting's VGG-19 statistics (the channel means and log spreads of
relu1_1..relu4_1, :func:`impasto.nets.fast.painting_statistics`) by a linear map trained with the network: each
picture of a batch draws a painting and one of several views of it (the whole painting or a random crop, mirrored or
not), and the loss is the network's recipe against that painting. A painting never trained on then paints from its
statistics in one pass. --recolour adds copies of each painting with its hues turned (the same strokes in other
palettes), so that the predictor learns how colour moves the embedding from more than a few dozen palettes.

The network starts from a trained fast network (--init, default the built-in styles) and keeps its recipe (loss
weights, crop scale, VGG weights; the style weight times --style-scale). When --init holds embeddings learnt for
paintings of the same names (``impasto train fast-add`` makes such a file), the predictor starts from a ridge
regression onto them. On the shared training loop: checkpoints, exact --resume, Ctrl-C and SIGTERM save.

This module declares the settings and imports no torch; :mod:`.arbitrary_training` trains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ...errors import ImpastoError
from ...methods.fast import STATS_SIZE, UPSAMPLE
from ...options import option
from .. import RunSettings, check_settings

_DATA = "data"
_RUN = "run"
# The bounds of --stats-size (VGG-19's relu4_1 at 1/8 needs a few positions; above 512 a new painting costs seconds).
MIN_STATS_SIZE, MAX_STATS_SIZE = 64, 512


@dataclass
class Config(RunSettings):
    """Settings of an arbitrary-style training run; ``impasto train fast-arbitrary``'s flags come from here."""

    style: Sequence[str] = option(None, "paintings to train on (dozens or more)", "images", group=_DATA, required=True)
    content_dir: str = option(None, "folder of content photos", "str", group=_DATA, required=True)
    output: str = option(
        None,
        "model file to write (.safetensors): the network, its predictor and the training paintings",
        "str",
        flag="-o",
        group=_RUN,
        required=True,
    )
    names: Sequence[str] | None = option(
        None, "one name per painting, as --model FILE#NAME selects it (default: the files' names)", "names", group=_DATA
    )
    init: str | None = option(
        None,
        "the fast-network file to start from (default: the built-in styles); a file from impasto train fast-add "
        "with these paintings also starts the predictor",
        "str",
        group=_RUN,
    )
    preview_style: Sequence[str] | None = option(
        None, "paintings not trained on, shown in the preview grids (how the network paints unseen ones)", "images"
    )
    style_scale: float = option(
        1.0, "the style loss's weight as a multiple of --init's recipe (higher: bolder)", "float"
    )
    photo: float | None = option(
        None,
        "the photo's share in the network's output, a fixed skip past it (0 to below 1): keeps the photo's structure "
        "the style loss lets the network paint away (default: --init's; the built-in model for any painting has 0.25)",
        "float",
        minimum=0,
    )
    upsample: str | None = option(
        None,
        "how the network's decoder doubles its features (default: --init's): bilinear takes the strokes off the "
        "network's 4 px grid, so slowly drifting video flickers less (see impasto train fast --upsample)",
        "str",
        choices=UPSAMPLE,
    )
    stability_weight: float = option(
        0.0,
        "weight of the stability term (as impasto train fast's): the painting of a slightly moved photo must be the "
        "painting moved, so that video flickers less; with --upsample bilinear it takes the strokes off the 4 px grid",
        "float",
    )
    views: int = option(
        8, "views of each painting the predictor learns from: the whole painting and random crops", "int", group=_DATA
    )
    recolour: int = option(
        0,
        "recoloured copies of each painting (its hues turned at random) trained on too: more palettes for the "
        "predictor to learn from",
        "int",
        group=_DATA,
    )
    stats_size: int = option(
        STATS_SIZE,
        "longest side in pixels a painting is read at for its statistics, in training and by the model at run time "
        "(smaller: less time per new painting, coarser statistics)",
        "int",
        group=_DATA,
    )
    size: int | None = option(None, "training crop size in pixels (default: --init's)", "int", group=_DATA)
    batch: int = option(8, "images per step", "int", group=_DATA)
    steps: int = option(5000, "total steps (a resumed run continues up to this)", "int", group=_RUN)
    lr: float = option(5e-4, "Adam learning rate", "float")
    checkpoint_every: int = option(50, "steps between checkpoints", "int", group=_RUN)
    preview_every: int = option(250, "steps between preview grids (0 = never)", "int", group=_RUN)
    seed: int = option(0, "random seed of the crops, views and slider values", "int", group=_DATA)
    max_images: int | None = option(None, "use only the first N photos of the folder", "int", group=_DATA)

    @property
    def style_names(self) -> list[str]:
        """The paintings' names: --names, else the file names without folders and extensions."""
        return list(self.names) if self.names else [Path(str(p)).stem for p in self.style]

    def validate(self) -> None:
        """Raise ImpastoError naming the first bad setting."""
        from . import Config as FastConfig
        from . import check_upsample

        FastConfig(style=self.style, content_dir=self.content_dir, output=self.output, names=self.names).validate()
        check_settings(self, counts=("batch", "steps", "checkpoint_every", "views"), numbers=("lr", "stability_weight"))
        if not isinstance(self.recolour, int) or isinstance(self.recolour, bool) or self.recolour < 0:
            raise ImpastoError(f"--recolour must be a whole number >= 0, got {self.recolour}")
        if len(self.style) < 2:
            raise ImpastoError("--style: give at least two paintings (a predictor learns from many)")
        scale = self.style_scale
        if not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
            raise ImpastoError(f"--style-scale must be a finite number > 0, got {scale}")
        photo = self.photo
        if photo is not None and (not isinstance(photo, (int, float)) or not 0 <= photo < 1):
            raise ImpastoError(f"--photo must be a number from 0 to below 1, got {photo}")
        check_upsample(self.upsample)
        stats = self.stats_size
        if not isinstance(stats, int) or isinstance(stats, bool) or not MIN_STATS_SIZE <= stats <= MAX_STATS_SIZE:
            raise ImpastoError(
                f"--stats-size must be a whole number of pixels from {MIN_STATS_SIZE} to {MAX_STATS_SIZE}, got {stats}"
            )
        if self.size is not None and (not isinstance(self.size, int) or self.size < 32 or self.size % 4):
            raise ImpastoError(f"--size must be a multiple of 4 and at least 32, got {self.size}")


def train(
    cfg: Config,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    on_step: Callable[[int, dict], None] | None = None,
) -> dict:
    """Train the network and its predictor; see :func:`impasto.train.fast.arbitrary_training.train`."""
    from .arbitrary_training import train as run

    return run(cfg, resume=resume, overwrite=overwrite, progress=progress, on_step=on_step)
