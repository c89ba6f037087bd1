"""Training an AdaIN decoder (Huang & Belongie 2017): content loss at relu4_1 against the AdaIN target, style loss on
the channel means and standard deviations at relu1_1..relu4_1.

Runs are resumable: a checkpoint holds the decoder, the optimizer state and the step, and every step's batch is drawn
from a generator seeded by (seed, step), so a resumed run sees exactly the batches an uninterrupted run would have.
Feature magnitudes of the Caffe VGG-19 differ by orders of magnitude between layers; each layer is divided by its
mean activation on the first batch (as in the "normalised" VGG the original paper used), frozen for the whole run.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from .adain import BOTTLENECK, STYLE_LAYERS, Decoder, adain, encoder, mean_std, save_decoder
from .color import rgb_to_yiq, yiq_to_rgb
from .device import resolve_device, resolve_precision
from .errors import ImpastoError
from .image import tensor_to_pil, to_rgb
from .weights import load_weights

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


@dataclass
class TrainConfig:
    """Settings of a training run (the command line's flags)."""

    content_dir: str
    style_dir: str
    output: str  # the decoder file written at the end (and at every checkpoint)
    size: int = 256  # crop size
    # Shorter side the images are scaled to (with jitter down to 3/4) before cropping: the scale of the pictures the
    # decoder will see (512 px), so a small crop is a piece of a 512 px picture, not a shrunken whole scene.
    image_size: int = 512
    batch: int = 8
    steps: int = 20000  # total steps of the run (a resumed run continues up to this)
    lr: float = 1e-4
    lr_decay: float = 5e-5  # lr / (1 + lr_decay * step), as in the reference implementation
    content_weight: float = 1.0
    style_weight: float = 10.0
    identity_weight: float = 0.0  # weight of the pixel MSE between the photo and its own reconstruction (0: off)
    checkpoint: str | None = None  # default: OUTPUT + ".ckpt"
    checkpoint_every: int = 500
    preview_every: int = 1000  # 0: never
    preview_dir: str | None = None  # default: next to OUTPUT
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    max_images: int | None = None  # use only the first N images of each folder (tests, quick trials)
    threads: int | None = None
    weights: str | None = None  # VGG-19 weights of the encoder (None: the default Caffe weights); stored in the file

    def validate(self) -> None:
        """Raise ImpastoError naming the first bad setting."""
        for name in ("size", "batch", "steps", "checkpoint_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ImpastoError(f"--{name.replace('_', '-')} must be a whole number >= 1, got {v}")
        if self.size < 32 or self.size % 8:
            raise ImpastoError(f"--size must be a multiple of 8 and at least 32, got {self.size}")
        if not isinstance(self.image_size, int) or self.image_size < self.size:
            raise ImpastoError(f"--image-size must be a whole number >= --size ({self.size}), got {self.image_size}")
        for name in ("lr", "lr_decay", "content_weight", "style_weight", "identity_weight"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ImpastoError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {v}")
        if self.lr <= 0:
            raise ImpastoError(f"--lr must be positive, got {self.lr}")
        if self.preview_every < 0:
            raise ImpastoError(f"--preview-every must be >= 0, got {self.preview_every}")
        for name in ("max_images", "threads"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ImpastoError(f"--{name.replace('_', '-')} must be a whole number >= 1, got {v}")

    @property
    def checkpoint_path(self) -> Path:
        """The checkpoint file: --checkpoint, else OUTPUT.ckpt."""
        return Path(self.checkpoint) if self.checkpoint else Path(self.output + ".ckpt")

    @property
    def preview_path(self) -> Path:
        """The folder of preview grids: --preview-dir, else OUTPUT_previews/ next to the output."""
        return Path(self.preview_dir) if self.preview_dir else Path(self.output).with_suffix("").with_name(
            Path(self.output).stem + "_previews"
        )


# ---------------------------------------------------------------------------------------------------------------
# Data


class ImageSet:
    """A folder of images held in memory as uint8 tensors, shorter side capped at `max_side` (decoded once)."""

    def __init__(self, folder: str | os.PathLike, max_side: int, limit: int | None = None, what: str = "images") -> None:
        p = Path(folder)
        if not p.is_dir():
            raise ImpastoError(f"{what} folder {p}: not a directory")
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file())
        if limit is not None:
            files = files[:limit]
        self.images: list[torch.Tensor] = []
        self.names: list[str] = []  # the file of each loaded image (unreadable files are skipped)
        for f in files:
            try:
                with Image.open(f) as im:
                    im = to_rgb(im)
                    scale = max_side / min(im.size)
                    if scale < 1:
                        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.LANCZOS)
                    self.images.append(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).contiguous())
                    self.names.append(f.name)
            except (OSError, ValueError):
                continue  # an unreadable file is skipped, not fatal: these are large scraped folders
        if not self.images:
            raise ImpastoError(f"{what} folder {p}: no readable images ({', '.join(sorted(IMAGE_EXTENSIONS))})")

    def __len__(self) -> int:
        return len(self.images)


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


def sample_batch(
    contents: ImageSet,
    styles: ImageSet,
    size: int,
    batch: int,
    seed: int,
    step: int,
    image_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch of step `step`: a pure function of (seed, step), so a resumed run sees the same data.

    Crops come from the images rescaled to a shorter side of 3/4 to 1 x `image_size` (default 2 x `size`).
    """
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    ci = torch.randint(0, len(contents), (batch,), generator=g).tolist()
    si = torch.randint(0, len(styles), (batch,), generator=g).tolist()
    top = (image_size or 2 * size) / size
    scale = (max(1.0, 0.75 * top), top)
    c = torch.stack([random_crop(contents.images[i], size, g, scale) for i in ci])
    s = torch.stack([augment_style(random_crop(styles.images[i], size, g, scale), g) for i in si])
    return c, s


# ---------------------------------------------------------------------------------------------------------------
# Model and loss


class AdaINTrainer(torch.nn.Module):
    """Encoder (frozen) + decoder + the AdaIN losses."""

    def __init__(self, decoder: Decoder, weights=None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.encoder = encoder(weights if weights is not None else load_weights(), STYLE_LAYERS)
        self.decoder = decoder
        self.dtype = dtype
        self.register_buffer("layer_scale", torch.ones(len(STYLE_LAYERS)))

    def _autocast(self, device: torch.device):
        return torch.autocast(device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast(x.device):
            feats = self.encoder(x)
        return [feats[name] for name in STYLE_LAYERS]

    @torch.no_grad()
    def calibrate(self, content: torch.Tensor, style: torch.Tensor) -> None:
        """Fix each layer's normalizer (1 / mean activation) and the decoder's input scale from one batch."""
        feats = self.encode(torch.cat([content, style]))
        means = torch.stack([f.float().mean() for f in feats]).clamp_min(1e-6)
        self.layer_scale.copy_(1 / means)
        self.decoder.in_scale.fill_(float(self.layer_scale[-1]))

    def forward(
        self, content: torch.Tensor, style: torch.Tensor, identity: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(content loss, style loss, identity loss) of one batch, fp32 scalars; identity is 0 unless asked for.

        The identity loss (as in SANet, Park & Lee 2019) decodes the photo's own features and compares the result with
        the photo, pixel by pixel: a dense signal that teaches the decoder to invert the encoder far sooner than the
        relu4_1 content loss alone, which many blotchy pictures satisfy. Both decodes run as one batch.
        """
        with torch.no_grad():
            feats = self.encode(torch.cat([content, style]))
            feats = [f.float() * k for f, k in zip(feats, self.layer_scale)]
            b = content.shape[0]
            style_stats = [mean_std(f[b:]) for f in feats]
            target = adain(feats[-1][:b], *style_stats[-1])
            dec_in = target if not identity else torch.cat([target, feats[-1][:b]])
        dec_in = dec_in / self.layer_scale[-1]  # back to raw feature units; the decoder rescales on entry
        if dec_in.device.type == "cpu":
            dec_in = dec_in.contiguous(memory_format=torch.channels_last)
        with self._autocast(dec_in.device):
            decoded = self.decoder(dec_in)
        out = decoded[:b]
        out_feats = [f.float() * k for f, k in zip(self.encode(out.float()), self.layer_scale)]
        content_loss = F.mse_loss(out_feats[-1], target)
        style_loss = out_feats[0].new_zeros(())
        for f, (m_s, s_s) in zip(out_feats, style_stats):
            m, s = mean_std(f)
            style_loss = style_loss + F.mse_loss(m, m_s) + F.mse_loss(s, s_s)
        identity_loss = F.mse_loss(decoded[b:].float(), content) if identity else content_loss.new_zeros(())
        return content_loss, style_loss, identity_loss


# ---------------------------------------------------------------------------------------------------------------
# The loop


def _lr_at(cfg: TrainConfig, step: int) -> float:
    return cfg.lr / (1 + cfg.lr_decay * step)


def _save_checkpoint(path: Path, model: AdaINTrainer, optimizer, step: int, cfg: TrainConfig, log: list) -> None:
    state = {
        "step": step,
        "decoder": model.decoder.state_dict(),
        "layer_scale": model.layer_scale.detach().cpu(),
        "optimizer": optimizer.state_dict(),
        "config": asdict(cfg),
        "log": log,
    }
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """A training checkpoint (decoder, optimizer, step, config, log), or a one-line ImpastoError."""
    p = Path(path)
    if not p.is_file():
        raise ImpastoError(f"--resume: no checkpoint at {p}")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise ImpastoError(f"--resume: {p} is not a readable checkpoint ({e.__class__.__name__})") from None


@torch.no_grad()
def preview_grid(model: AdaINTrainer, contents: torch.Tensor, styles: torch.Tensor) -> Image.Image:
    """Rows: style (first column), then each content stylized with it; first row: the contents."""
    device = next(model.decoder.parameters()).device
    n, size = contents.shape[0], contents.shape[-1]
    cells = [torch.ones(3, size, size)] + list(contents)
    c_feats = model.encode(contents.to(device))[-1].float()
    for s in styles:
        s_feats = model.encode(s[None].to(device))[-1].float()
        target = adain(c_feats, *mean_std(s_feats))
        with model._autocast(device):
            out = model.decoder(target).float().clamp(0, 1).cpu()
        cells += [s] + list(out)
    grid = torch.stack(cells).reshape(len(styles) + 1, n + 1, 3, size, size)
    grid = grid.permute(2, 0, 3, 1, 4).reshape(3, (len(styles) + 1) * size, (n + 1) * size)
    return tensor_to_pil(grid)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C or SIGTERM; `saved` says whether a checkpoint of `step` was written."""

    def __init__(self, step: int, saved: bool, checkpoint: Path) -> None:
        super().__init__(f"interrupted at step {step}")
        self.step, self.saved, self.checkpoint = step, saved, checkpoint


# Settings a resumed run must keep: they decide which encoder the decoder inverts and the stream of batches, so changing
# them silently continues a different experiment. Loss weights, lr and --image-size may change (schedules, curricula).
RESUME_KEYS = ("seed", "size", "batch", "max_images", "weights")


def _check_writable(folder: Path, what: str) -> None:
    # The nearest existing ancestor must be writable (folders below it are created).
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ImpastoError(f"{what} {folder}: {existing} is not a folder")
    if not os.access(existing, os.W_OK):
        raise ImpastoError(f"{what} {folder}: {existing} is not writable")


def _check_paths(cfg: TrainConfig, resume: bool, overwrite: bool) -> None:
    """Fail in the first second, not hours later at the first checkpoint."""
    out = Path(cfg.output)
    if not out.parent.is_dir():
        raise ImpastoError(f"output folder {out.parent} does not exist")
    _check_writable(out.parent, "output folder")
    ckpt = cfg.checkpoint_path
    if not ckpt.parent.is_dir():
        raise ImpastoError(f"--checkpoint {ckpt}: folder {ckpt.parent} does not exist")
    _check_writable(ckpt.parent, "--checkpoint folder")
    if cfg.preview_every:
        _check_writable(cfg.preview_path, "--preview-dir")
    if not resume and ckpt.exists() and not overwrite:
        raise ImpastoError(
            f"checkpoint {ckpt} exists: --resume continues it, --overwrite starts a new run over it"
        )


def _check_resumable(state: dict, cfg: TrainConfig, where: Path) -> None:
    stored = state.get("config") or {}
    changed = [
        f"--{k.replace('_', '-')} {stored[k]} (now {getattr(cfg, k)})"
        for k in RESUME_KEYS
        if k in stored and stored[k] != getattr(cfg, k)
    ]
    if changed:
        raise ImpastoError(f"--resume: {where} was trained with " + ", ".join(changed) + "; use the same settings")


def _decoder_metadata(cfg: TrainConfig, step: int) -> dict[str, str]:
    """What a decoder file records of its making (safetensors metadata is str -> str)."""
    keys = (
        "size", "image_size", "batch", "lr", "lr_decay", "content_weight", "style_weight", "identity_weight", "seed",
        "max_images",
    )
    meta = {"steps": str(step), "vgg": cfg.weights or "caffe", "data": f"{cfg.content_dir} | {cfg.style_dir}"}
    meta.update({k: str(getattr(cfg, k)) for k in keys if getattr(cfg, k) is not None})
    return meta


def train(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    on_step: Callable[[int, dict], None] | None = None,
) -> dict:
    """Train (or continue training) a decoder; returns a summary with the final losses and timings.

    A fresh run refuses to replace an existing checkpoint unless `overwrite`; `resume` continues it. Ctrl-C (and SIGTERM
    in the command line) raises :class:`TrainingInterrupted` after saving a checkpoint of the steps done this run.
    """
    cfg.validate()
    _check_paths(cfg, resume, overwrite)
    ckpt_path = cfg.checkpoint_path
    state = load_checkpoint(ckpt_path) if resume else None
    if state is not None:
        _check_resumable(state, cfg, ckpt_path)
        if int(state["step"]) >= cfg.steps:  # nothing to do (e.g. a finished phase of a scripted schedule)
            return _summary(int(state["step"]), 0.0, 0, list(state.get("log", [])), cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    dtype = resolve_precision(cfg.precision, device)
    weights = load_weights(cfg.weights)
    contents = ImageSet(cfg.content_dir, cfg.image_size, cfg.max_images, "content")
    styles = ImageSet(cfg.style_dir, cfg.image_size, cfg.max_images, "style")
    out = Path(cfg.output)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)  # the same seed starts from the same decoder
        decoder = Decoder()
    model = AdaINTrainer(decoder, weights=weights, dtype=dtype).to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=cfg.lr)
    log: list[dict] = []
    start_step = 0
    if state is not None:
        decoder.load_state_dict(state["decoder"])
        model.layer_scale.copy_(state["layer_scale"])
        optimizer.load_state_dict(state["optimizer"])
        start_step = int(state["step"])
        log = list(state.get("log", []))
    else:
        c, s = sample_batch(contents, styles, cfg.size, cfg.batch, cfg.seed, 10**9 + 1, cfg.image_size)
        model.calibrate(c.to(device), s.to(device))

    def save(step: int) -> None:
        _save_checkpoint(ckpt_path, model, optimizer, step, cfg, log)
        save_decoder(decoder, out, metadata=_decoder_metadata(cfg, step))

    # Fixed preview pairs, independent of the training batches.
    pc, ps = sample_batch(contents, styles, cfg.size, 4, cfg.seed, 10**9 + 2, cfg.image_size)
    bar = tqdm(
        total=cfg.steps, initial=start_step, disable=True if not progress else None, unit="step", dynamic_ncols=True
    )
    t0 = time.perf_counter()
    step = start_step
    try:
        while step < cfg.steps:
            c, s = sample_batch(contents, styles, cfg.size, cfg.batch, cfg.seed, step, cfg.image_size)
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(cfg, step)
            content_loss, style_loss, identity_loss = model(c.to(device), s.to(device), cfg.identity_weight > 0)
            loss = cfg.content_weight * content_loss + cfg.style_weight * style_loss
            if cfg.identity_weight > 0:
                loss = loss + cfg.identity_weight * identity_loss
            if not torch.isfinite(loss):
                raise ImpastoError(f"the loss became NaN or infinite at step {step}; lower --lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            terms = {"step": step, "content": content_loss.item(), "style": style_loss.item(), "loss": loss.item()}
            if cfg.identity_weight > 0:
                terms["identity"] = identity_loss.item()
            log.append(terms)
            bar.update(1)
            bar.set_postfix({k: f"{v:.3f}" for k, v in terms.items() if k in ("content", "style", "identity")})
            if on_step is not None:
                on_step(step, terms)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                save(step)
            if cfg.preview_every and (step % cfg.preview_every == 0 or step == cfg.steps):
                cfg.preview_path.mkdir(parents=True, exist_ok=True)
                model.eval()
                preview_grid(model, pc, ps[:2]).save(cfg.preview_path / f"step{step:06d}.jpg", quality=90)
                model.train()
    except KeyboardInterrupt:
        # Nothing new to save when interrupted before the first step of this run: the old checkpoint stands.
        if step > start_step:
            save(step)
        raise TrainingInterrupted(step, step > start_step or ckpt_path.exists(), ckpt_path) from None
    finally:
        bar.close()
    return _summary(step, time.perf_counter() - t0, step - start_step, log, cfg)


def _summary(step: int, seconds: float, steps_this_run: int, log: list[dict], cfg: TrainConfig) -> dict:
    recent = log[-min(len(log), 100) :] if log else []
    return {
        "step": step,
        "seconds": seconds,
        "steps_this_run": steps_this_run,
        "content": float(np.mean([r["content"] for r in recent])) if recent else None,
        "style": float(np.mean([r["style"] for r in recent])) if recent else None,
        "output": str(cfg.output),
        "checkpoint": str(cfg.checkpoint_path),
    }


def write_log(log: Sequence[dict], path: str | os.PathLike) -> None:
    """The per-step losses as JSON lines (for the training record in docs/MODELS.md)."""
    with open(path, "w") as f:
        for row in log:
            f.write(json.dumps(row) + "\n")
