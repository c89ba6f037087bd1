"""Train a compact arbitrary-style model: a slim encoder distilled from VGG-19 and a decoder for it (issue: a model
that runs in a fraction of VGG's time).

Each step: the student encoder's four stages are mapped onto VGG-19's relu1_1..relu4_1 through learnt 1x1
projections and held to them (distillation loss, Wang et al. CVPR 2020), AdaIN restyles the student's bottleneck, and
the student decoder paints from it under the AdaIN training's own losses measured by VGG-19 (content at relu4_1
against VGG's AdaIN target, channel mean and std at relu1_1..relu4_1) and, with ``--teacher-weight``, held to the
picture the bundled VGG-19 model paints for the same pair (output distillation: a dense per-pixel signal, and without
the VGG losses no backward pass through VGG). Encoder, decoder and projections train together on the shared loop;
the file written holds the encoder and decoder, and ``--method adain --decoder FILE`` runs it.

This module declares the trainer's settings and imports no torch; :mod:`.trainer` trains.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from ...errors import ImpastoError
from ...options import option
from .. import check_settings
from ..adain import Config as AdaINConfig

_NET = "network"


@dataclass
class Config(AdaINConfig):
    """Settings of a distillation run; ``impasto train distill``'s flags come from here."""

    widths: Sequence[int] = option(
        (16, 32, 64, 128),
        "channels of the student's four stages (VGG-19: 64,128,256,512); run time grows as their squares",
        "ints",
        group=_NET,
    )
    skip: bool = option(
        False,
        "a decoder with a skip: the student's relu3_1 stage, restyled by AdaIN with the painting's relu3_1 "
        "statistics, is added after the decoder's first doubling (starts at zero: an --init model without one "
        "starts unchanged)",
        "bool",
        group=_NET,
    )
    skip_lr: float = option(
        1.0,
        "learning-rate multiplier for the skip's 1x1 convolution (with --skip): it starts at zero and learns slowly "
        "at the run's rate",
        "float",
        group=_NET,
    )
    distill_weight: float = option(1.0, "weight of the distillation loss (student features onto VGG's)", "float")
    teacher_weight: float = option(
        0.0,
        "weight of the output distillation: mean absolute difference between the student's picture and the bundled "
        "VGG-19 AdaIN model's for the same pair (0 = off); with --content-weight 0 --style-weight 0 a step skips "
        "VGG's backward pass and costs about two thirds",
        "float",
    )
    texture_weight: float = option(
        0.0,
        "weight of a texture term: the channel means and spreads of VGG's relu1_1 and relu2_1 on the student's "
        "picture held to the painting's (AdaIN's style loss at its two finest layers, for crisp strokes at about a "
        "quarter of the full loss's cost); 0 = off",
        "float",
    )
    laplacian_weight: float = option(
        0.0,
        "weight of a Laplacian term (Li et al. 2017): the Laplacian of the student's picture's luminance, at half "
        "and a quarter of its size, held to the photo's, so that edges stay where the photo has them (no light rims "
        "along dark-light edges, no buildings melted into the sky); 0 = off",
        "float",
    )
    lr: float = option(5e-4, "Adam learning rate", "float")
    init: str | None = option(
        None,
        "start from this compact model file's encoder, decoder and step count (a warm start: the optimizer and the "
        "projections start afresh), when the checkpoint is gone",
        "str",
    )

    def validate(self) -> None:
        """Raise ImpastoError naming the first bad setting."""
        super().validate()
        widths = list(self.widths or ())
        if len(widths) != 4 or any(not isinstance(w, int) or w < 4 for w in widths):
            raise ImpastoError(f"--widths takes four channel counts of at least 4, as 16,32,64,128; got {self.widths}")
        check_settings(
            self, numbers=("distill_weight", "teacher_weight", "texture_weight", "laplacian_weight", "skip_lr")
        )


def train(
    cfg: Config,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    on_step: Callable[[int, dict], None] | None = None,
) -> dict:
    """Train (or continue training) a compact model; see :func:`impasto.train.distill.trainer.train`."""
    from .trainer import train as run

    return run(cfg, resume=resume, overwrite=overwrite, progress=progress, on_step=on_step)
