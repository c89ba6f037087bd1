"""Training: the one loop (:mod:`.loop`), streamed data (:mod:`.data`) and one package per trainer.

A trainer module exposes ``Config`` (a dataclass declared with :func:`impasto.options.option`, with ``validate()``)
and ``train(config, *, resume, overwrite, progress, on_step)``; it is registered in :data:`impasto.api.TRAINERS`
and ``impasto train NAME`` derives its flags from ``Config``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import ImpastoError
from ..options import DEVICES, PRECISIONS, option

_RUN = "run"


@dataclass
class RunSettings:
    """The settings of a training run that every trainer's Config shares (the shared loop and data reader use them)."""

    checkpoint: str | None = option(None, "checkpoint file (default: OUTPUT.ckpt)", "str", group=_RUN)
    preview_dir: str | None = option(None, "folder for preview grids (default: OUTPUT_previews/)", "str", group=_RUN)
    device: str = option("auto", f"compute device: {', '.join(DEVICES)} (or cuda:N)", "str", group=_RUN)
    precision: str = option("auto", "autocast precision", "str", choices=PRECISIONS, group=_RUN)
    threads: int | None = option(None, "CPU threads for the model (default: torch's choice)", "int", group=_RUN)
    workers: int = option(
        1,
        "processes decoding and cropping the next batches while the model trains (0 = in the main process)",
        "int",
        group=_RUN,
    )
    keep_every: int = option(
        0,
        "also keep a copy of the model file every N steps, in OUTPUT_steps/ (0 = never): a long run can go back to a "
        "step before a loss spike",
        "int",
        group=_RUN,
    )


def check_settings(cfg: Any, counts: Sequence[str] = (), numbers: Sequence[str] = ()) -> None:
    """The checks every trainer's Config shares: `counts` whole numbers >= 1, `numbers` finite and >= 0, a positive
    --lr, --preview-every >= 0, --workers >= 0, and --max-images / --threads (when set) >= 1. ImpastoError names the
    first bad flag."""

    def flag(name: str) -> str:
        return "--" + name.replace("_", "-")

    for name in counts:
        v = getattr(cfg, name)
        if not isinstance(v, int) or v < 1:
            raise ImpastoError(f"{flag(name)} must be a whole number >= 1, got {v}")
    for name in numbers:
        v = getattr(cfg, name)
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ImpastoError(f"{flag(name)} must be a finite number >= 0, got {v}")
    if cfg.lr <= 0:
        raise ImpastoError(f"--lr must be positive, got {cfg.lr}")
    if cfg.preview_every < 0:
        raise ImpastoError(f"--preview-every must be >= 0, got {cfg.preview_every}")
    if not isinstance(cfg.workers, int) or cfg.workers < 0:
        raise ImpastoError(f"--workers must be a whole number >= 0, got {cfg.workers}")
    keep = getattr(cfg, "keep_every", 0)
    if not isinstance(keep, int) or isinstance(keep, bool) or keep < 0:
        raise ImpastoError(f"--keep-every must be a whole number >= 0, got {keep}")
    for name in ("max_images", "threads"):
        v = getattr(cfg, name)
        if v is not None and (not isinstance(v, int) or v < 1):
            raise ImpastoError(f"{flag(name)} must be a whole number >= 1, got {v}")
