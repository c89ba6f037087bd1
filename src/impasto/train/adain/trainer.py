"""Training an AdaIN decoder on the shared loop (:mod:`impasto.train.loop`).

Feature magnitudes of the Caffe VGG-19 differ by orders of magnitude between layers; each layer is divided by its
mean activation on the first batch (as in the "normalised" VGG the original paper used), frozen for the whole run.
Checkpoints written before the loop was shared (decoder, layer scales, optimizer, step, config, log) resume as they
are.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from ...core.device import resolve_device, resolve_precision
from ...core.image import tensor_to_pil
from ...core.weights import load_weights
from ...losses import PerceptualLoss
from ...losses.stats import mean_std
from ...methods.adain.engine import save_decoder
from ...nets.adain import BOTTLENECK, STYLE_LAYERS, Decoder, adain
from ...nets.vgg import VGGFeatures
from .. import loop
from ..data import ImageFolder, report_skipped, sample_pairs
from . import Config

# Settings a resumed run must keep: they decide which encoder the decoder inverts and the stream of batches, so
# changing them silently continues a different experiment. Loss weights, lr and --image-size may change (schedules,
# curricula).
RESUME_KEYS = ("seed", "size", "batch", "max_images", "weights")
CALIBRATION_STEP = 10**9 + 1  # the batch that fixes the layer normalizers, apart from the training batches
PREVIEW_STEP = 10**9 + 2  # the fixed preview pairs


class AdaINTrainer(torch.nn.Module):
    """Encoder (frozen) + decoder + the AdaIN losses."""

    def __init__(self, decoder: Decoder, weights=None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.encoder = VGGFeatures(weights if weights is not None else load_weights(), STYLE_LAYERS)
        self.decoder = decoder
        self.dtype = dtype
        self.register_buffer("layer_scale", torch.ones(len(STYLE_LAYERS)))

    def _autocast(self, device: torch.device):
        return torch.autocast(device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None)

    def loss_module(self, scaled: bool = True) -> PerceptualLoss:
        """The perceptual loss in the normalized feature units (plain MSE terms, layers summed); unscaled, its
        features are the encoder's raw ones."""
        return PerceptualLoss(
            self.encoder,
            content_layers=[BOTTLENECK],
            style_layers=STYLE_LAYERS,
            normalize_layer_weights=False,
            style_loss="mean-std",
            relative_content=False,
            feature_scale=dict(zip(STYLE_LAYERS, self.layer_scale)) if scaled else None,
            dtype=self.dtype,
        )

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features at STYLE_LAYERS (raw units, in the autocast precision)."""
        feats = self.loss_module(scaled=False).features(x)
        return [feats[name] for name in STYLE_LAYERS]

    @torch.no_grad()
    def calibrate(self, content: torch.Tensor, style: torch.Tensor) -> None:
        """Fix each layer's normalizer (1 / mean activation) and the decoder's input scale from one batch."""
        feats = self.loss_module(scaled=False).features(torch.cat([content, style]), grad=False)
        means = torch.stack([feats[n].float().mean() for n in STYLE_LAYERS]).clamp_min(1e-6)
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
        loss = self.loss_module()
        with torch.no_grad():
            feats = loss.features(torch.cat([content, style]), grad=False)
            b = content.shape[0]
            target = adain(feats[BOTTLENECK][:b], *mean_std(feats[BOTTLENECK][b:]))
            dec_in = target if not identity else torch.cat([target, feats[BOTTLENECK][:b]])
            loss.set_feature_targets({BOTTLENECK: target}, {n: feats[n][b:] for n in STYLE_LAYERS})
        dec_in = dec_in / self.layer_scale[-1]  # back to raw feature units; the decoder rescales on entry
        if dec_in.device.type == "cpu":
            dec_in = dec_in.contiguous(memory_format=torch.channels_last)
        with self._autocast(dec_in.device):
            decoded = self.decoder(dec_in)
        out = decoded[:b]
        content_loss, style_loss = loss.terms(out.float())
        identity_loss = F.mse_loss(decoded[b:].float(), content) if identity else content_loss.new_zeros(())
        return content_loss, style_loss, identity_loss


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


class PairTask:
    """The AdaIN decoder as a task of the shared loop."""

    def __init__(
        self, cfg: Config, model: AdaINTrainer, contents: ImageFolder, styles: ImageFolder, device: torch.device
    ) -> None:
        self.cfg, self.model, self.contents, self.styles, self.device = cfg, model, contents, styles, device
        self._preview = None

    @property
    def batch(self) -> Callable[[int], tuple[torch.Tensor, torch.Tensor]]:
        """step -> that step's crops. A partial of module-level code over file lists, so that worker processes get
        no model when they are started by pickling (spawn, on macOS and Windows)."""
        cfg = self.cfg
        return functools.partial(
            sample_pairs, self.contents, self.styles, cfg.size, cfg.batch, cfg.seed, image_size=cfg.image_size
        )

    def parameters(self):
        return self.model.decoder.parameters()

    def start(self, resumed: bool) -> None:
        if not resumed:
            c, s = self.batch(CALIBRATION_STEP)
            self.model.calibrate(c.to(self.device), s.to(self.device))

    def lr(self, step: int) -> float:
        return self.cfg.lr / (1 + self.cfg.lr_decay * step)

    def loss(self, batch, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.cfg
        c, s = batch
        content_loss, style_loss, identity_loss = self.model(
            c.to(self.device), s.to(self.device), cfg.identity_weight > 0
        )
        loss = cfg.content_weight * content_loss + cfg.style_weight * style_loss
        terms = {"content": content_loss.item(), "style": style_loss.item()}
        if cfg.identity_weight > 0:
            loss = loss + cfg.identity_weight * identity_loss
            terms["identity"] = identity_loss.item()
        return loss, terms

    def state_dict(self) -> dict:
        return {"decoder": self.model.decoder.state_dict(), "layer_scale": self.model.layer_scale.detach().cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.model.decoder.load_state_dict(state["decoder"])
        self.model.layer_scale.copy_(state["layer_scale"])

    def save_output(self, step: int) -> None:
        save_decoder(self.model.decoder, self.cfg.output, metadata=decoder_metadata(self.cfg, step))

    def preview(self, step: int) -> Image.Image:
        if self._preview is None:  # fixed preview pairs, independent of the training batches
            self._preview = sample_pairs(
                self.contents, self.styles, self.cfg.size, 4, self.cfg.seed, PREVIEW_STEP, self.cfg.image_size
            )
        pc, ps = self._preview
        self.model.eval()
        try:
            return preview_grid(self.model, pc, ps[:2])
        finally:
            self.model.train()


def decoder_metadata(cfg: Config, step: int) -> dict[str, str]:
    """What a decoder file records of its making (safetensors metadata is str -> str)."""
    keys = (
        "size",
        "image_size",
        "batch",
        "lr",
        "lr_decay",
        "content_weight",
        "style_weight",
        "identity_weight",
        "seed",
        "max_images",
    )
    meta = {"steps": str(step), "vgg": cfg.weights or "caffe", "data": f"{cfg.content_dir} | {cfg.style_dir}"}
    meta.update({k: str(getattr(cfg, k)) for k in keys if getattr(cfg, k) is not None})
    return meta


def train(
    cfg: Config,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    on_step: Callable[[int, dict], None] | None = None,
) -> dict:
    """Train (or continue training) a decoder; returns a summary with the final losses and timings.

    A fresh run refuses to replace an existing checkpoint unless `overwrite`; `resume` continues it. Ctrl-C (and SIGTERM
    in the command line) raises :class:`impasto.train.loop.TrainingInterrupted` after saving a checkpoint.
    """

    def make_task(weights, dtype, device, contents, styles) -> PairTask:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)  # the same seed starts from the same decoder
            decoder = Decoder()
        model = AdaINTrainer(decoder, weights=weights, dtype=dtype).to(device)
        return PairTask(cfg, model, contents, styles, device)

    return run_pairs(cfg, make_task, resume=resume, overwrite=overwrite, progress=progress, on_step=on_step)


def run_pairs(
    cfg: Config,
    make_task: Callable[..., PairTask],
    *,
    resume: bool,
    overwrite: bool,
    progress: bool,
    on_step: Callable[[int, dict], None] | None,
    resume_keys: Sequence[str] = RESUME_KEYS,
    state: dict | None = None,
) -> dict:
    """The run of a trainer on photo-and-painting pairs (this one and the distillation): settings, folders, device,
    then `make_task(weights, dtype, device, contents, styles)` on the shared loop, from `state` (a warm start) when
    given and not resuming."""
    _, loaded = loop.begin(cfg, resume, overwrite, resume_keys)
    state = loaded if loaded is not None else state  # `state`: a warm start's, when not resuming
    done = loop.already_done(state, cfg)
    if done is not None:
        return done
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    dtype = resolve_precision(cfg.precision, device)
    weights = load_weights(cfg.weights)
    contents = ImageFolder(cfg.content_dir, cfg.image_size, cfg.max_images, "content")
    styles = ImageFolder(cfg.style_dir, cfg.image_size, cfg.max_images, "style")
    for folder, what in ((contents, cfg.content_dir), (styles, cfg.style_dir)):
        report_skipped(folder, what)
    task = make_task(weights, dtype, device, contents, styles)
    if device.type == "cpu":
        task.model = task.model.to(memory_format=torch.channels_last)
    result = loop.run(task, cfg, resume=resume, workers=cfg.workers, progress=progress, on_step=on_step, state=state)
    result["skipped"] = {"content": contents.skipped, "style": styles.skipped}
    for key in ("content", "style"):  # present, as before the shared loop, even when no step ran
        result.setdefault(key, None)
    return result


def write_log(log: Sequence[dict], path: str | os.PathLike) -> None:
    """The per-step losses as JSON lines (for the training record in docs/MODELS.md)."""
    with open(Path(path), "w") as f:
        for row in log:
            f.write(json.dumps(row) + "\n")
