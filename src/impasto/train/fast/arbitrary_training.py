"""Training a fast network and its style predictor together (``impasto train fast-arbitrary``) on the shared loop.

Each painting is described by the statistics of several views (:func:`painting_views`: the whole painting, then
random crops, half of them mirrored), computed once at the start, and likewise for the paintings' recoloured copies
(--recolour); every picture of a batch draws a painting and one of its views, the predictor turns the view's
statistics into the embedding, and the network paints with it. The loss is the fast trainer's, against the whole
painting's Gram matrices.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from ...core.color import rgb_to_yiq, yiq_to_rgb
from ...core.device import resolve_device, resolve_precision
from ...core.image import tensor_to_pil
from ...core.weights import load_weights
from ...errors import ImpastoError
from ...methods.fast.model import FastModel
from ...nets.fast import STATS_DIM, STYLE_LAYERS, StylePredictor, TransformerNet, painting_statistics
from ...nets.vgg import VGGFeatures
from .. import loop
from ..data import ImageFolder, report_skipped, step_generator
from . import Config as FastConfig
from .adding import base_path, load_base, recipe_config
from .arbitrary import Config
from .trainer import PREVIEW_STEP, FastTask, FastTrainer, loss_style_layers, painting_tensor, sample_batch

# Settings a resumed run must keep (they decide the network, the views and the stream of batches).
RESUME_KEYS = ("init", "seed", "size", "batch", "max_images", "views", "recolour", "stats_size", "photo", "upsample")
RIDGE_LAMBDA = 10.0  # the predictor's starting fit (scripts/embedding_predictor.py: best of 0.1..100 out of fold)
PREVIEW_TRAINED = 4  # training paintings in a preview grid, before the --preview-style ones
_VIEW_STREAM = 7_777_777  # offset of the views' random stream from the batches'
_HUE_STREAM = 5_555_555  # offset of the recoloured copies' hue turns


def turn_hues(picture: torch.Tensor, angle: float) -> torch.Tensor:
    """A (3, H, W) painting with its chroma (YIQ's I and Q) turned by `angle` radians: the same strokes and light
    in another palette."""
    y, i, q = rgb_to_yiq(picture[None])[0]
    c, s = math.cos(angle), math.sin(angle)
    return yiq_to_rgb(torch.stack([y, c * i - s * q, s * i + c * q])[None])[0].clamp(0, 1)


def hue_turns(paintings: int, copies: int, seed: int) -> torch.Tensor:
    """(copies, paintings) angles: copy k of each painting turned by about (k + 1) / (copies + 1) of the circle,
    give or take a quarter of that step, so that the copies spread over the hues and none comes back to the
    original."""
    g = torch.Generator().manual_seed(seed + _HUE_STREAM)
    step = 2 * math.pi / (copies + 1)
    jitter = (torch.rand(copies, paintings, generator=g) - 0.5) * 0.5 * step
    return (torch.arange(1, copies + 1)[:, None] * step + jitter).double()


def with_recoloured(pictures: list[torch.Tensor], turns: torch.Tensor) -> list[torch.Tensor]:
    """The paintings, then each copy's recoloured paintings (turns: :func:`hue_turns`)."""
    return [*pictures, *(turn_hues(p, float(a)) for row in turns for p, a in zip(pictures, row))]


def painting_views(picture: torch.Tensor, n: int, g: torch.Generator) -> list[torch.Tensor]:
    """`n` views of a painting (3, H, W): the whole of it, then random crops of 60-100 % of each side, half of
    them mirrored (a painting's statistics should not hang on its framing)."""
    _, h, w = picture.shape
    out = [picture]
    for _ in range(n - 1):
        s = 0.6 + 0.4 * torch.rand(2, generator=g)
        ch, cw = max(16, int(h * s[0])), max(16, int(w * s[1]))
        y = int(torch.randint(0, max(1, h - ch + 1), (1,), generator=g))
        x = int(torch.randint(0, max(1, w - cw + 1), (1,), generator=g))
        c = picture[:, y : y + ch, x : x + cw]
        out.append(c.flip(-1) if float(torch.rand((), generator=g)) < 0.5 else c)
    return out


@torch.no_grad()
def view_statistics(vgg: VGGFeatures, pictures: Sequence[torch.Tensor], views: int, seed: int) -> torch.Tensor:
    """(P, views, STATS_DIM): the statistics of each painting's views (the first view: the whole painting)."""
    g = torch.Generator().manual_seed(seed)
    out = [torch.cat([painting_statistics(vgg(v[None])) for v in painting_views(p, views, g)]) for p in pictures]
    return torch.stack(out) if out else torch.zeros(0, views, STATS_DIM)


@torch.no_grad()
def fit_predictor(
    predictor: StylePredictor,
    stats: torch.Tensor,
    targets: torch.Tensor | None,
    fallback: torch.Tensor,
    lam: float = RIDGE_LAMBDA,
) -> None:
    """Standardize by the views' statistics (P, V, D) and start the map: ridge regression (penalty `lam`) onto
    `targets` (P, 32), the embeddings --init learnt for the same paintings, else the constant `fallback` (the mean
    embedding)."""
    flat = stats.reshape(-1, stats.shape[-1]).double()
    center, spread = flat.mean(0), flat.std(0)
    # Channels that never fire in the training paintings have no spread: a floor keeps another painting's
    # activity there from blowing up the map.
    scale = spread.clamp_min(0.1 * float(spread.median()) + 1e-6)
    predictor.center.copy_(center.float())
    predictor.scale.copy_(scale.float())
    if targets is None:
        predictor.linear.weight.zero_()
        predictor.linear.bias.copy_(fallback)
        return
    a = (flat - center) / scale
    y = targets.double().repeat_interleave(stats.shape[1], 0)
    ym = y.mean(0)
    # Dual (kernel) ridge: fewer views than statistics.
    d = a.shape[1]
    k = a @ a.T / d
    alpha = torch.linalg.solve(k + lam * torch.eye(len(k), dtype=k.dtype), y - ym)
    predictor.linear.weight.copy_((a.T @ alpha / d).T.float())
    predictor.linear.bias.copy_(ym.float())


def sample_views(
    contents: ImageFolder,
    n_styles: int,
    size: int,
    batch: int,
    seed: int,
    adjustable: float,
    image_size: int,
    views: int,
    step: int,
    motion: bool = False,
) -> tuple[torch.Tensor, ...]:
    """The fast trainer's batch of step `step` (:func:`.trainer.sample_batch`) and each picture's view of its
    painting (B,), from a stream of its own; with `motion`, then each crop's motion and noise."""
    crops, styles, layers, *moves = sample_batch(
        contents, n_styles, size, batch, seed, adjustable, image_size, step, motion=motion
    )
    g = step_generator(seed + _VIEW_STREAM, step)
    return crops, styles, layers, torch.randint(0, views, (batch,), generator=g), *moves


@torch.no_grad()
def predicted_grid(
    model: FastTrainer, contents: torch.Tensor, paintings: Sequence[torch.Tensor], stats: torch.Tensor
) -> Image.Image:
    """One row per painting: the painting, then each photo painted from its predicted embedding."""
    device = contents.device
    n, size = contents.shape[0], contents.shape[-1]
    lines = []
    for p, st in zip(paintings, stats):
        thumb = F.interpolate(p[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
        layers = torch.ones(n, len(STYLE_LAYERS), device=device)
        norms = model.net.statistics_parameters(st[None].expand(n, -1).to(device), layers)
        out = model.paint(contents.to(device), norms)
        lines.append(torch.cat([thumb, *out.clamp(0, 1).cpu()], dim=2))
    return tensor_to_pil(torch.cat(lines, dim=1))


class ArbitraryTask(FastTask):
    """The fast network's task with embeddings from the predictor."""

    def __init__(
        self,
        cfg: Config,
        inner: FastConfig,
        model: FastTrainer,
        contents: ImageFolder,
        paintings: list[torch.Tensor],
        stats: torch.Tensor,
        shown: list[torch.Tensor],
        shown_stats: torch.Tensor,
        device,
    ) -> None:
        """`paintings` and `stats` (their views' statistics): the training paintings, then their recoloured copies
        (drawn alike, painted from the predictor only)."""
        super().__init__(inner, model, contents, paintings, device)
        self.arb_cfg, self.stats, self.shown, self.shown_stats = cfg, stats.to(device), shown, shown_stats

    @property
    def batch(self) -> Callable[[int], tuple[torch.Tensor, ...]]:
        cfg = self.cfg
        return functools.partial(
            sample_views,
            self.contents,
            len(self.paintings),
            cfg.size,
            cfg.batch,
            cfg.seed,
            cfg.adjustable,
            cfg.image_size,
            self.arb_cfg.views,
            motion=bool(cfg.stability_weight),
        )

    def loss(self, batch, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        c, s, layers, v, *motion = (t.to(self.device) for t in batch)
        norms = self.model.net.statistics_parameters(self.stats[s, v], layers)
        return self.total(layers, *self.model(c, s, layers, self.layer_weights, motion or None, norms=norms))

    def sync_table(self) -> None:
        """The network's embedding table set to the predictor's embedding of each whole painting, so that the
        training paintings also paint by name (``--model FILE#NAME``) as the predictor paints them."""
        net = self.model.net
        with torch.no_grad():
            net.embedding.copy_(net.predictor(self.stats[: net.n_styles, 0]))

    def recipe(self, step: int) -> dict:
        cfg = self.arb_cfg
        recipe = super().recipe(step)
        recipe["arbitrary"] = {
            "init": str(base_path(cfg)),
            "views": cfg.views,
            "stats_size": cfg.stats_size,
            "style_scale": cfg.style_scale,
            "recolour": cfg.recolour,
            "photo": self.model.net.photo,
        }
        return recipe

    def save_output(self, step: int) -> None:
        self.sync_table()
        super().save_output(step)

    def preview(self, step: int) -> Image.Image:
        if self._preview is None:
            cfg = self.cfg
            size = min(256, cfg.image_size)
            self._preview = sample_batch(self.contents, 1, size, 3, cfg.seed, 0.0, cfg.image_size, PREVIEW_STEP)[0]
        k = min(PREVIEW_TRAINED, len(self.paintings))
        paintings = [*self.paintings[:k], *self.shown]
        stats = torch.cat([self.stats[:k, 0].cpu(), self.shown_stats])
        self.model.eval()
        try:
            return predicted_grid(self.model, self._preview.to(self.device), paintings, stats.to(self.device))
        finally:
            self.model.train()


def start_network(
    base: FastModel, names: list[str], stats: torch.Tensor, photo: float | None = None, upsample: str | None = None
) -> TransformerNet:
    """A network of `names` with a predictor: --init's network and conditioning; the predictor fitted to --init's
    embeddings of the same names where it has them (all but a few), else predicting its mean embedding. `photo`:
    the photo's share in the output, `upsample` the decoder's doubling (default --init's: the same weights either
    way)."""
    b = base.net
    net = TransformerNet(
        len(names), b.width, b.n_blocks, b.decoder, True, b.photo if photo is None else photo, upsample or b.upsample
    )
    state = {k: v for k, v in b.state_dict().items() if k != "embedding" and not k.startswith("predictor.")}
    net.load_state_dict(state, strict=False)
    emb = b.embedding.detach()
    known = [n in base.names for n in names]
    targets = None
    if sum(known) >= max(2, len(names) // 2):
        rows = [base.names.index(n) for n in names if n in base.names]
        targets = emb[rows]
        stats = stats[torch.tensor(known)]
    fit_predictor(net.predictor, stats, targets, emb.mean(0))
    return net


def train(
    cfg: Config,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    on_step: Callable[[int, dict], None] | None = None,
) -> dict:
    """Train the network and its predictor; returns the loop's summary. ``resume`` / ``overwrite`` as for
    :func:`impasto.train.fast.trainer.train`."""
    ckpt_path, state = loop.begin(cfg, resume, overwrite, RESUME_KEYS)
    base = load_base(cfg, "start from")
    if state is not None:
        stored = state.get("config") or {}
        names = stored.get("names") or [Path(str(p)).stem for p in stored.get("style") or []]
        if list(names) != cfg.style_names:
            raise ImpastoError(f"--resume: {ckpt_path} was trained on other paintings")
    inner = recipe_config(cfg, base)
    inner.tune = None
    inner.stability_weight = cfg.stability_weight
    inner.validate()
    done = loop.already_done(state, cfg)
    if done is not None:
        return done
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    dtype = resolve_precision(cfg.precision, device)
    weights = load_weights(inner.weights)
    turns = hue_turns(len(cfg.style), cfg.recolour, cfg.seed)
    paintings = with_recoloured([painting_tensor(p, inner.style_size) for p in cfg.style], turns)
    shown = [painting_tensor(p, inner.style_size) for p in cfg.preview_style or []]
    contents = ImageFolder(cfg.content_dir, inner.image_size, cfg.max_images, "content")
    report_skipped(contents, cfg.content_dir)

    vgg = VGGFeatures(weights, STYLE_LAYERS).eval()
    small = with_recoloured([painting_tensor(p, cfg.stats_size) for p in cfg.style], turns)
    stats = view_statistics(vgg, small, cfg.views, cfg.seed)
    shown_small = [painting_tensor(p, cfg.stats_size) for p in cfg.preview_style or []]
    shown_stats = view_statistics(vgg, shown_small, 1, 0)[:, 0]
    del vgg

    net = start_network(base, cfg.style_names, stats[: len(cfg.style)], cfg.photo, cfg.upsample)
    model = FastTrainer(net, weights, paintings, dtype, loss_style_layers(inner)).to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    task = ArbitraryTask(cfg, inner, model, contents, paintings, stats, shown, shown_stats, device)
    if state is None:
        task.sync_table()
    result = loop.run(task, cfg, resume=resume, workers=cfg.workers, progress=progress, on_step=on_step, state=state)
    result["skipped"] = {"content": contents.skipped}
    return result
