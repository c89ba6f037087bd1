"""Training data streamed from disk: folders of images, random crops, and batches that depend only on (seed, step).

Nothing holds a whole folder in memory: a folder is a list of file names, and each batch decodes the few images it
draws. :class:`StepBatches` is a map-style dataset indexed by step, so a ``DataLoader`` with worker processes
prefetches the next batches while the model trains, and a resumed run sees exactly the batches an uninterrupted run
would have.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import struct
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ..core.color import rgb_to_yiq, yiq_to_rgb
from ..core.image import quiet_warnings, to_rgb
from ..errors import ImpastoError

log = logging.getLogger("impasto.train")
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


class ImageFolder:
    """The readable images of a folder, as file names; each is decoded when drawn, its shorter side capped at
    `max_side`. Files that cannot be decoded are skipped (these are large scraped folders) and listed in ``skipped``
    as "name (why)"."""

    def __init__(
        self, folder: str | os.PathLike, max_side: int, limit: int | None = None, what: str = "images"
    ) -> None:
        p = Path(folder)
        if not p.is_dir():
            raise ImpastoError(f"{what} folder {p}: not a directory")
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file())
        if limit is not None:
            files = files[:limit]
        self.max_side = max_side
        self.files: list[Path] = []
        self.skipped: list[str] = []
        for f in files:
            # Decoded once here (JPEGs at a reduced scale, which is cheap) so that a truncated file is caught now,
            # not in a worker process hours into the run.
            try:
                with quiet_warnings(), Image.open(f) as im:
                    if im.width < 1 or im.height < 1:
                        raise ValueError("zero size")
                    if im.format == "JPEG":
                        im.draft("RGB", (64, 64))
                    im.load()
                self.files.append(f)
            except Image.DecompressionBombError:
                self.skipped.append(f"{f.name} (too large to decode safely)")
            except UnidentifiedImageError:
                self.skipped.append(f"{f.name} (not an image)")
            except (OSError, ValueError, SyntaxError, EOFError, IndexError, KeyError, TypeError, struct.error):
                self.skipped.append(f"{f.name} (corrupt or truncated)")
        if not self.files:
            raise ImpastoError(f"{what} folder {p}: no readable images ({', '.join(sorted(IMAGE_EXTENSIONS))})")

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.files]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        """Image `index` as a (3, H, W) uint8 tensor, shorter side at most `max_side`."""
        try:
            with quiet_warnings(), Image.open(self.files[index]) as im:
                im = to_rgb(im)
                scale = self.max_side / min(im.size)
                if scale < 1:
                    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
                    im = im.resize(size, Image.LANCZOS)
                return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).contiguous()
        except (OSError, ValueError, SyntaxError, EOFError, struct.error) as e:
            # Read fine when the run started: removed or changed since. One line, whichever process reads it.
            raise ImpastoError(f"{self.files[index]}: unreadable during training ({type(e).__name__})") from None


def report_skipped(folder: ImageFolder, where: str | os.PathLike) -> None:
    """Say which files of a training folder were skipped and why (through logging: the command line shows it)."""
    if folder.skipped:
        n = len(folder.skipped)
        shown = ", ".join(folder.skipped[:10]) + (f" and {n - 10} more" if n > 10 else "")
        log.warning("skipped %d unreadable file(s) in %s: %s", n, where, shown)


def random_crop(
    image: torch.Tensor, size: int, g: torch.Generator, scale: tuple[float, float] = (1.0, 2.0)
) -> torch.Tensor:
    """A size x size crop (float in [0, 1]) after a random rescale (shorter side in scale x size) and flip."""
    _, h, w = image.shape
    target_short = size * (scale[0] + (scale[1] - scale[0]) * float(torch.rand((), generator=g)))
    s = target_short / min(h, w)
    # Crop the region that covers `size` pixels after rescaling, then resize only that region (cheap).
    region = max(1, min(h, w, round(size / s)))
    top = int(torch.randint(0, h - region + 1, (), generator=g))
    left = int(torch.randint(0, w - region + 1, (), generator=g))
    crop = image[:, top : top + region, left : left + region].float().div(255)[None]
    crop = F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False, antialias=region > size)[0]
    if float(torch.rand((), generator=g)) < 0.5:
        crop = crop.flip(-1)
    return crop.clamp(0, 1)


def augment_style(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Stretch a small set of paintings: quarter turns, and half the time a hue rotation and saturation change."""
    k = int(torch.randint(0, 4, (), generator=g))
    x = torch.rot90(x, k, dims=(-2, -1))
    if float(torch.rand((), generator=g)) < 0.5:
        yiq = rgb_to_yiq(x[None])
        angle = float(torch.rand((), generator=g)) * 2 * math.pi
        sat = 0.7 + 0.6 * float(torch.rand((), generator=g))
        c, s = math.cos(angle) * sat, math.sin(angle) * sat
        i, q = yiq[:, 1], yiq[:, 2]
        yiq = torch.stack([yiq[:, 0], c * i - s * q, s * i + c * q], dim=1)
        x = yiq_to_rgb(yiq)[0].clamp(0, 1)
    return x


def step_generator(seed: int, step: int) -> torch.Generator:
    """The random stream of one step: a pure function of (seed, step)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def sample_pairs(
    contents: Sequence[torch.Tensor] | ImageFolder,
    styles: Sequence[torch.Tensor] | ImageFolder,
    size: int,
    batch: int,
    seed: int,
    step: int,
    image_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The (content, style) crops of step `step`: a pure function of (seed, step).

    Crops come from the images rescaled to a shorter side of 3/4 to 1 x `image_size` (default 2 x `size`); the
    paintings are augmented (:func:`augment_style`).
    """
    g = step_generator(seed, step)
    ci = torch.randint(0, len(contents), (batch,), generator=g).tolist()
    si = torch.randint(0, len(styles), (batch,), generator=g).tolist()
    top = (image_size or 2 * size) / size
    scale = (max(1.0, 0.75 * top), top)
    c = torch.stack([random_crop(contents[i], size, g, scale) for i in ci])
    s = torch.stack([augment_style(random_crop(styles[i], size, g, scale), g) for i in si])
    return c, s


class StepBatches(torch.utils.data.Dataset):
    """A dataset whose item `step` is that step's batch, made by `make(step)` (a pure function of the step)."""

    def __init__(self, make: Callable[[int], object], steps: int) -> None:
        self.make, self.steps = make, steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> object:
        return self.make(step)


def _leave_signals_to_the_trainer(worker_id: int) -> None:
    """Workers leave the trainer's process group: Ctrl-C or SIGTERM sent to the whole group (a terminal, `timeout`,
    a job runner) would kill a worker mid-batch and crash the trainer, which instead saves a checkpoint and stops
    its workers itself. SIGTERM sent to the worker alone still ends it: the loader, and `multiprocessing` at exit,
    stop a worker that does not answer that way (one that ignored it made the process wait forever at exit)."""
    os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A handler inherited through fork (Ray installs one) would run Python code in a worker that may be stuck.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


# How PyTorch's DataLoader reports a worker process that a signal ended (or that died without a word).
WORKER_KILLED = "DataLoader worker ("


def stream(make: Callable[[int], object], start: int, stop: int, workers: int = 0) -> Iterator[object]:
    """Batches `start`..`stop - 1` in order, prepared by `workers` processes ahead of the training (0: inline)."""
    if workers <= 0:
        for step in range(start, stop):
            yield make(step)
        return
    loader = torch.utils.data.DataLoader(
        StepBatches(make, stop),
        batch_size=None,  # each item is already a batch
        sampler=range(start, stop),
        num_workers=workers,
        prefetch_factor=2,
        persistent_workers=False,
        worker_init_fn=_leave_signals_to_the_trainer,
    )
    batches = iter(loader)
    try:
        yield from batches
    finally:
        # The workers stop here, whatever ends the stream (an interrupt raised while waiting for a batch included):
        # until then torch watches them, and a death (a signal sent to the whole command) would be reported as an
        # error wherever the trainer is next, in the middle of its checkpoint's save say. A death reported while
        # they are being stopped is no news.
        shutdown = getattr(batches, "_shutdown_workers", None)
        if shutdown is not None:
            try:
                shutdown()
            except RuntimeError as e:
                if not str(e).startswith(WORKER_KILLED):
                    raise
