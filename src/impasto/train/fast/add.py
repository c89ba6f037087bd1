"""Add new paintings to a trained fast network in minutes: the network stays exactly as it is and each new painting
learns only its own 32-number embedding, the input of the conditional instance norms (as the network's paintings
were learnt, Dumoulin et al. 2017). The file written holds the network's paintings, which paint exactly as before,
and the new ones beside them, with the per-layer sliders working for every one.

The loss is the network's own recipe (read from its file: content and style layers, their weights, TV, the
training scale, the share of pictures drawn with random slider values), with the style weight raised by
--style-scale: a frozen network reaches less of a new painting's style than it learnt for its own paintings, so the
same weight gives a milder look (docs/MODELS.md, the embedding probe). On the shared training loop: checkpoints,
exact --resume, Ctrl-C and SIGTERM save.

This module declares the settings and imports no torch; :mod:`.adding` trains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ...errors import ImpastoError
from ...options import option
from .. import RunSettings, check_settings

_DATA = "data"
_RUN = "run"


@dataclass
class Config(RunSettings):
    """Settings of an addition; ``impasto train fast-add``'s flags come from here."""

    style: Sequence[str] = option(None, "painting(s) to add", "images", group=_DATA, required=True)
    content_dir: str = option(None, "folder of content photos", "str", group=_DATA, required=True)
    output: str = option(
        None,
        "model file to write (.safetensors): the network's paintings and the new ones",
        "str",
        flag="-o",
        group=_RUN,
        required=True,
    )
    names: Sequence[str] | None = option(
        None,
        "one name per new painting, as --model FILE#NAME selects it (default: the files' names)",
        "names",
        group=_DATA,
    )
    init: str | None = option(None, "the fast-network file to add to (default: the built-in styles)", "str", group=_RUN)
    style_scale: float = option(
        4.0,
        "the style loss's weight as a multiple of the network's own recipe (higher: a bolder new painting)",
        "float",
    )
    size: int | None = option(None, "training crop size in pixels (default: the network's)", "int", group=_DATA)
    batch: int = option(4, "images per step", "int", group=_DATA)
    steps: int = option(200, "total steps (a resumed run continues up to this)", "int", group=_RUN)
    lr: float = option(0.05, "Adam learning rate of the embeddings", "float")
    checkpoint_every: int = option(50, "steps between checkpoints", "int", group=_RUN)
    preview_every: int = option(100, "steps between preview grids (0 = never)", "int", group=_RUN)
    seed: int = option(0, "random seed of the crops and slider values", "int", group=_DATA)
    max_images: int | None = option(None, "use only the first N photos of the folder", "int", group=_DATA)

    @property
    def style_names(self) -> list[str]:
        """The new paintings' names: --names, else the file names without folders and extensions."""
        return list(self.names) if self.names else [Path(str(p)).stem for p in self.style]

    def validate(self) -> None:
        """Raise ImpastoError naming the first bad setting."""
        from . import Config as FastConfig

        # The required flags and the names' rules are the fast trainer's.
        FastConfig(style=self.style, content_dir=self.content_dir, output=self.output, names=self.names).validate()
        check_settings(self, counts=("batch", "steps", "checkpoint_every"), numbers=("lr",))
        scale = self.style_scale
        if not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
            raise ImpastoError(f"--style-scale must be a finite number > 0, got {scale}")
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
    """Add the paintings; see :func:`impasto.train.fast.adding.train`."""
    from .adding import train as run

    return run(cfg, resume=resume, overwrite=overwrite, progress=progress, on_step=on_step)
