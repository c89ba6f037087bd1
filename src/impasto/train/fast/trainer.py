"""Training a fast per-style network on the shared loop (:mod:`impasto.train.loop`).

Every picture of a batch draws a painting and its per-layer style weights from (seed, step): the recipe's weights
(all 1) or, for a share of the pictures (--adjustable), independent weights in [0, MAX_LAYER_WEIGHT]. The loss
weights each picture's style layers by its own weights, so the network learns what every setting of the sliders
should look like. The paintings' Gram matrices are computed once, at the start.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, replace
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from ...core.device import resolve_device, resolve_precision
from ...core.image import fit_longest_side, load_image, pil_to_tensor, tensor_to_pil
from ...core.tone import tone_stats
from ...core.weights import load_weights
from ...errors import ImpastoError
from ...losses import PerceptualLoss, TVLoss, gram_matrix, normalized_weights
from ...methods.fast.model import save_model
from ...nets.fast import CONTENT_LAYER, MAX_LAYER_WEIGHT, STYLE_LAYERS, TransformerNet
from ...nets.vgg import VGGFeatures
from .. import loop
from ..data import ImageFolder, random_crop, report_skipped, step_generator
from . import Config

# Settings a resumed run must keep: they decide the network's shape and the stream of batches. Loss weights and the
# learning rate may change (schedules).
RESUME_KEYS = (
    "seed",
    "size",
    "batch",
    "max_images",
    "weights",
    "width",
    "blocks",
    "decoder",
    "upsample",
    "image_size",
    "style_size",
    "tune",
)
PREVIEW_STEP = 10**9 + 2  # the fixed preview crops
DEEP_LAYER = "relu5_1"
# The stability term's motions (see :func:`sample_motion`): shifts of up to MOTION_SHIFT px (any fraction: the flicker
# of slowly drifting video is the network's answer to sub-pixel moves), rotations of up to MOTION_ANGLE degrees and
# zooms of up to MOTION_ZOOM, plus Gaussian noise of MOTION_NOISE (images in [0, 1]).
MOTION_SHIFT, MOTION_ANGLE, MOTION_ZOOM, MOTION_NOISE = 2.0, 1.0, 0.02, 0.01
MOTION_BORDER = 8  # px at the edges left out of the term: there the network sees the moved picture's padding


def sample_batch(
    contents: Sequence[torch.Tensor] | ImageFolder,
    n_styles: int,
    size: int,
    batch: int,
    seed: int,
    adjustable: float,
    image_size: int,
    step: int,
    motion: bool = False,
    paintings: Sequence[int] | None = None,
) -> tuple[torch.Tensor, ...]:
    """The (photo crops, painting indices, per-layer weights) of step `step`: a pure function of (seed, step); with
    `motion`, also each crop's small motion and noise (:func:`sample_motion`), drawn after the rest (so the crops,
    paintings and weights are those of the same step without it). `paintings` limits the paintings drawn to these
    indices (--tune)."""
    g = step_generator(seed, step)
    ci = torch.randint(0, len(contents), (batch,), generator=g).tolist()
    top = image_size / size
    crops = torch.stack([random_crop(contents[i], size, g, (max(1.0, 0.75 * top), top)) for i in ci])
    if paintings is None:
        styles = torch.randint(0, n_styles, (batch,), generator=g)
    else:
        styles = torch.tensor(list(paintings))[torch.randint(0, len(paintings), (batch,), generator=g)]
    random_weights = torch.rand(batch, len(STYLE_LAYERS), generator=g) * MAX_LAYER_WEIGHT
    adjusted = torch.rand(batch, generator=g) < adjustable
    layers = torch.where(adjusted[:, None], random_weights, torch.ones_like(random_weights))
    if motion:
        return crops, styles, layers, *sample_motion(batch, size, g)
    return crops, styles, layers


def sample_motion(batch: int, size: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random small camera motions of `size` px crops as affine matrices for ``F.affine_grid`` (batch, 2, 3): a
    sub-pixel to 2 px shift, a slight rotation and zoom; and the noise added to the moved crops (batch, 3, size,
    size). Wang et al. 2020 ("Consistent Video Style Transfer via Compound Regularization") train video stability
    from single pictures with such motions and noise."""
    u = torch.rand(batch, 4, generator=g) * 2 - 1
    shift = u[:, :2] * MOTION_SHIFT * 2 / size  # in affine_grid's [-1, 1] coordinates
    angle = torch.deg2rad(u[:, 2] * MOTION_ANGLE)
    zoom = 1 + u[:, 3] * MOTION_ZOOM
    cos, sin = torch.cos(angle) * zoom, torch.sin(angle) * zoom
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    noise = torch.randn(batch, 3, size, size, generator=g) * MOTION_NOISE
    return theta, noise


def move(x: torch.Tensor, theta: torch.Tensor, padding: str = "reflection") -> torch.Tensor:
    """Pictures (B, C, H, W) moved by affine matrices `theta` (B, 2, 3) (bilinear)."""
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode=padding, align_corners=False)


class FastTrainer(torch.nn.Module):
    """The network, the frozen VGG-19 loss network and the paintings' Gram matrices."""

    def __init__(
        self,
        net: TransformerNet,
        weights,
        paintings: Sequence[torch.Tensor],
        dtype=None,
        style_layers: Sequence[str] = STYLE_LAYERS,
        rows: Sequence[int] | None = None,
    ) -> None:
        """`rows`: the network's style input of each painting (default 0, 1, ...): a network extended with new
        paintings (``impasto train fast-add``) gets only the new ones' Gram matrices."""
        super().__init__()
        self.net, self.dtype = net, dtype
        # The loss may reach past the sliders' layers (relu5_1, --deep-style-weight): such a layer follows the coarse
        # slider.
        self.style_layers = tuple(style_layers)
        self.loss_net = VGGFeatures(weights, [*self.style_layers, CONTENT_LAYER])
        self.content_net = VGGFeatures(weights, [CONTENT_LAYER])  # stops early: the targets need no deeper layer
        self.tv = TVLoss()
        loss = self.loss_module([1.0] * len(self.style_layers))
        grams: dict[str, list[torch.Tensor]] = {n: [] for n in self.style_layers}
        for p in paintings:
            feats = loss.features(p[None], grad=False)
            for n in self.style_layers:
                grams[n].append(gram_matrix(feats[n])[0])
        for i, n in enumerate(self.style_layers):
            self.register_buffer(f"gram{i}", torch.stack(grams[n]))
        # network row -> Gram row (rows without one are not drawn); paintings past the table's rows (recoloured
        # copies, painted from predicted norms only) index their own Gram matrices
        index = torch.zeros(max(net.n_styles, len(paintings)), dtype=torch.long)
        index[list(range(len(paintings))) if rows is None else list(rows)] = torch.arange(len(paintings))
        self.register_buffer("gram_index", index)

    def loss_module(self, layer_weights: Sequence[float]) -> PerceptualLoss:
        return PerceptualLoss(
            self.loss_net,
            content_layers=[CONTENT_LAYER],
            style_layers=self.style_layers,
            style_layer_weights=layer_weights,
            style_loss="gram",
            dtype=self.dtype,
        )

    def stylize(self, x: torch.Tensor, style: torch.Tensor, layers: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
            return self.net(x, style, layers).float()

    def paint(self, x: torch.Tensor, norms: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """The network's picture with these norm parameters (:meth:`impasto.nets.fast.TransformerNet.paint`)."""
        if x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
            return self.net.paint(x, norms).float()

    def forward(
        self,
        content: torch.Tensor,
        styles: torch.Tensor,
        layers: torch.Tensor,
        layer_weights: Sequence[float],
        motion: tuple[torch.Tensor, torch.Tensor] | None = None,
        norms: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """Per picture: the content loss (B,), the weighted style loss (B,); and the batch's total variation; with
        `motion` (:func:`sample_motion`), also the stability term (:meth:`stability`). `norms`: the pictures' norm
        parameters when they come from elsewhere than the network's table (a predicted embedding); `styles` still
        picks each picture's Gram matrices.

        `layers` are the pictures' slider values (B, len(STYLE_LAYERS)); `layer_weights` the recipe's weight of each
        of ``self.style_layers``, applied as given."""
        loss = self.loss_module(layer_weights)
        with torch.no_grad():
            x = content.contiguous(memory_format=torch.channels_last) if content.device.type == "cpu" else content
            with torch.autocast(x.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
                target = self.content_net(x)[CONTENT_LAYER].float()
            g = self.gram_index[styles]
            grams = {n: getattr(self, f"gram{i}")[g] for i, n in enumerate(self.style_layers)}
            loss.set_feature_targets(content={CONTENT_LAYER: target}, grams=grams)
        onehot = F.one_hot(styles, self.net.n_styles).float() if norms is None else None
        out = self.stylize(content, onehot, layers) if norms is None else self.paint(content, norms)
        content_loss, style_layers = loss.sample_terms(out)
        w = torch.tensor(list(layer_weights), dtype=torch.float32, device=out.device)
        extra = len(self.style_layers) - layers.shape[1]
        if extra > 0:
            layers = torch.cat([layers, layers[:, -1:].expand(-1, extra)], dim=1)
        style_loss = (style_layers * layers * w).sum(1)
        if motion is None:
            return content_loss, style_loss, self.tv(out)
        return content_loss, style_loss, self.tv(out), self.stability(content, onehot, layers, out, *motion, norms)

    def stability(
        self,
        content: torch.Tensor,
        onehot: torch.Tensor,
        layers: torch.Tensor,
        out: torch.Tensor,
        theta: torch.Tensor,
        noise: torch.Tensor,
        norms: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> torch.Tensor:
        """Mean squared difference between the painting of the photo moved by `theta` (plus `noise`) and the painting
        `out` moved the same way, over the pixels both show (the edges left out): small when the strokes follow the
        picture instead of the network's grid. `norms`: as :meth:`forward`'s (then `onehot` is unused)."""
        shaken = move(content, theta) + noise
        moved = (
            self.stylize(shaken, onehot, layers[:, : len(STYLE_LAYERS)]) if norms is None else self.paint(shaken, norms)
        )
        target = move(out, theta)
        inside = move(torch.ones_like(out[:, :1]), theta, padding="zeros") > 0.999
        b = MOTION_BORDER
        inside[..., :b, :] = inside[..., -b:, :] = inside[..., :, :b] = inside[..., :, -b:] = False
        mask = inside.float()
        return ((moved - target) ** 2 * mask).sum() / (3 * mask.sum()).clamp(min=1)


def painting_tensor(path: str, style_size: int) -> torch.Tensor:
    """A painting as (3, H, W) in [0, 1], its longest side at `style_size`."""
    return pil_to_tensor(fit_longest_side(load_image(path), style_size))[0]


def painting_tones(names: Sequence[str], paintings: Sequence[torch.Tensor]) -> dict[str, tuple[float, float]]:
    """Each painting's tone (:func:`impasto.core.tone.tone_stats`), by name, for the model file's record."""
    return {n: tone_stats(p.permute(1, 2, 0).numpy()) for n, p in zip(names, paintings)}


@torch.no_grad()
def preview_grid(
    model: FastTrainer, contents: torch.Tensor, paintings: Sequence[torch.Tensor], rows: Sequence[int] | None = None
) -> Image.Image:
    """One row per painting (`rows`: their network inputs, default 0, 1, ...): the painting, then each photo in its
    style; a last row varies the layer weights of the first painting (fine layers only, recipe, coarse layers only)."""
    device = next(model.net.parameters()).device
    n, size = contents.shape[0], contents.shape[-1]
    index = list(range(len(paintings))) if rows is None else list(rows)
    lines = []
    for i, p in zip(index, paintings):
        thumb = F.interpolate(p[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
        style = F.one_hot(torch.full((n,), i), model.net.n_styles).float().to(device)
        out = model.stylize(contents.to(device), style, torch.ones(n, len(STYLE_LAYERS), device=device))
        lines.append(torch.cat([thumb, *out.clamp(0, 1).cpu()], dim=2))
    style = F.one_hot(torch.tensor([index[0]]), model.net.n_styles).float().to(device)
    cells = [contents[0]]
    for lw in ((MAX_LAYER_WEIGHT, MAX_LAYER_WEIGHT, 0, 0), (1, 1, 1, 1), (0, 0, MAX_LAYER_WEIGHT, MAX_LAYER_WEIGHT)):
        layers = torch.tensor([lw], dtype=torch.float32, device=device)
        cells.append(model.stylize(contents[:1].to(device), style, layers)[0].clamp(0, 1).cpu())
    cells += [torch.ones(3, size, size)] * (n + 1 - len(cells))
    lines.append(torch.cat(cells[: n + 1], dim=2))
    return tensor_to_pil(torch.cat(lines, dim=1))


class FastTask:
    """The fast network as a task of the shared loop."""

    def __init__(
        self,
        cfg: Config,
        model: FastTrainer,
        contents: ImageFolder,
        paintings: list[torch.Tensor],
        device,
        rows: Sequence[int] | None = None,
    ) -> None:
        """`rows`: each painting's network input (default 0, 1, ...; see :class:`FastTrainer`)."""
        self.cfg, self.model, self.contents, self.paintings, self.device = cfg, model, contents, paintings, device
        self.rows = list(range(len(paintings))) if rows is None else list(rows)
        self.layer_weights = loss_layer_weights(cfg)
        self.preview_limit: int | None = None  # rows of the preview grid at most (None: every painting)
        self._preview = None

    @property
    def batch(self) -> Callable[[int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """step -> that step's batch; a partial of module-level code over a file list (picklable, no model)."""
        cfg = self.cfg
        return functools.partial(
            sample_batch,
            self.contents,
            self.model.net.n_styles,
            cfg.size,
            cfg.batch,
            cfg.seed,
            cfg.adjustable,
            cfg.image_size,
            motion=bool(cfg.stability_weight),
            paintings=self.tuned,
        )

    @property
    def tuned(self) -> list[int] | None:
        """The indices of the paintings --tune trains (None: every painting and the whole network)."""
        names = self.cfg.style_names
        return None if self.cfg.tune is None else [self.rows[names.index(n)] for n in self.cfg.tune]

    def parameters(self):
        if self.tuned is None:
            return self.model.net.parameters()
        # Only the embedding, and train() masks its gradient to the tuned paintings' rows; everything else is frozen,
        # so every other painting's look stays exactly as it was.
        return [self.model.net.embedding]

    def start(self, resumed: bool) -> None:
        pass

    def lr(self, step: int) -> float:
        return self.cfg.lr / (1 + self.cfg.lr_decay * step)

    def loss(self, batch, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        c, s, layers, *motion = (t.to(self.device) for t in batch)
        return self.total(layers, *self.model(c, s, layers, self.layer_weights, motion or None))

    def total(
        self, layers: torch.Tensor, content_loss: torch.Tensor, style_loss: torch.Tensor, tv: torch.Tensor, *stable
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The recipe's weighted sum of :class:`FastTrainer`'s terms, and the terms to log."""
        cfg = self.cfg
        loss = (cfg.content_weight * content_loss + cfg.style_weight * style_loss).mean() + cfg.tv_weight * tv
        if stable:
            loss = loss + cfg.stability_weight * stable[0]
        # The style loss at the recipe's weights is what the previews show; log it apart from the random ones.
        plain = (layers == 1).all(1)
        terms = {"content": content_loss.mean().item(), "style": style_loss.mean().item()}
        if bool(plain.any()):
            terms["style_recipe"] = style_loss[plain].mean().item()
        if cfg.tv_weight:
            terms["tv"] = tv.item()
        if stable:
            terms["stability"] = stable[0].item()
        return loss, terms

    def state_dict(self) -> dict:
        return {"net": self.model.net.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.model.net.load_state_dict(state["net"])

    def recipe(self, step: int) -> dict:
        """The model file's record of how the network was made."""
        cfg = self.cfg
        recipe = {k: v for k, v in asdict(cfg).items() if k not in ("checkpoint", "preview_dir", "device", "threads")}
        recipe.update(
            steps=step, vgg=cfg.weights or "caffe", content_layer=CONTENT_LAYER, style_layers=self.model.style_layers
        )
        recipe["style"] = [str(p) for p in cfg.style]
        return recipe

    def save_output(self, step: int) -> None:
        cfg = self.cfg
        recipe = self.recipe(step)
        tones = painting_tones(cfg.style_names, self.paintings)
        save_model(self.model.net, cfg.style_names, cfg.output, cfg.image_size, recipe, tones)

    def preview(self, step: int) -> Image.Image:
        if self._preview is None:
            cfg = self.cfg
            size = min(256, cfg.image_size)
            self._preview = sample_batch(self.contents, 1, size, 3, cfg.seed, 0.0, cfg.image_size, PREVIEW_STEP)[0]
        self.model.eval()
        try:
            n = self.preview_limit
            return preview_grid(self.model, self._preview, self.paintings[:n], self.rows[:n])
        finally:
            self.model.train()


def learn_only_embeddings(net: TransformerNet, rows: Sequence[int]) -> None:
    """Freeze the whole network but these rows of its embedding: every other painting's look stays exactly as it
    is (Adam moves nothing whose gradient is always zero)."""
    for p in net.parameters():
        p.requires_grad_(p is net.embedding)
    keep = torch.zeros(net.n_styles, 1, dtype=torch.bool, device=net.embedding.device)
    keep[list(rows)] = True
    # where, not a product: a NaN in a frozen row's gradient must not reach Adam
    net.embedding.register_hook(lambda grad: torch.where(keep, grad, torch.zeros_like(grad)))


def loss_style_layers(cfg: Config) -> tuple[str, ...]:
    """The VGG layers of the style loss: the sliders' four, and relu5_1 when --deep-style-weight is on."""
    return (*STYLE_LAYERS, DEEP_LAYER) if cfg.deep_style_weight else STYLE_LAYERS


def loss_layer_weights(cfg: Config) -> list[float]:
    """The recipe's weight of each loss style layer: the sliders' layers sum to 1; relu5_1 counts as
    --deep-style-weight times an equal share of them."""
    w = normalized_weights(cfg.style_layer_weights, len(STYLE_LAYERS))
    return [*w, cfg.deep_style_weight / len(STYLE_LAYERS)] if cfg.deep_style_weight else w


def _decoder(cfg: Config) -> tuple[int, int]:
    return tuple(cfg.decoder) if cfg.decoder else (2 * cfg.width, cfg.width)


def _warm_start(cfg: Config) -> dict:
    """A loop state from a model file: its network and step count, no optimizer (see --init)."""
    from ...methods.fast.model import load_model

    m = load_model(cfg.init)
    if m.names != cfg.style_names:
        raise ImpastoError(
            f"--init {cfg.init} holds the paintings {', '.join(m.names)}, not {', '.join(cfg.style_names)}"
        )
    if (m.net.width, m.net.n_blocks, m.net.decoder) != (cfg.width, cfg.blocks, _decoder(cfg)):
        raise ImpastoError(
            f"--init {cfg.init} is a network of width {m.net.width}, {m.net.n_blocks} blocks and decoder "
            f"{','.join(map(str, m.net.decoder))}"
        )
    # A style predictor (impasto train fast-arbitrary) is left behind: it would not follow the retrained network. The
    # doubling may differ from --init's (the same weights: a nearest network trained on as a bilinear one).
    state = {k: v for k, v in m.net.state_dict().items() if not k.startswith("predictor.")}
    return {"step": int(m.recipe.get("steps", 0)), "net": state, "log": [], "upsample": m.net.upsample}


def _doubling(cfg: Config, state: dict | None) -> str:
    """--upsample, else the run's own (--init's file, or the resumed checkpoint's: nearest before the option), else
    bilinear, as the built-in network."""
    if cfg.upsample is not None:
        return cfg.upsample
    if state is None:
        return "bilinear"
    return state["upsample"] if "upsample" in state else (state.get("config") or {}).get("upsample", "nearest")


def train(
    cfg: Config,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    on_step: Callable[[int, dict], None] | None = None,
) -> dict:
    """Train (or continue training) a fast network; returns a summary with the final losses and timings.

    A fresh run refuses to replace an existing checkpoint unless `overwrite`; `resume` continues it. Ctrl-C (and SIGTERM
    in the command line) raises :class:`impasto.train.loop.TrainingInterrupted` after saving a checkpoint.
    """
    # Without --upsample a resumed run keeps its own doubling: the check leaves it out.
    keys = RESUME_KEYS if cfg.upsample is not None else tuple(k for k in RESUME_KEYS if k != "upsample")
    ckpt_path, state = loop.begin(cfg, resume, overwrite, keys)
    if state is not None:
        stored = state.get("config") or {}
        stored = Config(**{k: stored.get(k) for k in ("style", "names")}).style_names if stored.get("style") else []
        if stored and stored != cfg.style_names:
            raise ImpastoError(f"--resume: {ckpt_path} was trained on the paintings {', '.join(stored)}")
    if cfg.init is not None:
        if state is not None:
            raise ImpastoError("--init starts a run from a model file; --resume continues a checkpoint: not both")
        state = _warm_start(cfg)
    cfg = replace(cfg, upsample=_doubling(cfg, state))
    done = loop.already_done(state, cfg)
    if done is not None:
        return done
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    dtype = resolve_precision(cfg.precision, device)
    weights = load_weights(cfg.weights)
    paintings = [painting_tensor(p, cfg.style_size) for p in cfg.style]
    contents = ImageFolder(cfg.content_dir, cfg.image_size, cfg.max_images, "content")
    report_skipped(contents, cfg.content_dir)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)  # the same seed starts from the same network
        net = TransformerNet(len(paintings), cfg.width, cfg.blocks, _decoder(cfg), upsample=cfg.upsample)
    model = FastTrainer(net, weights, paintings, dtype, loss_style_layers(cfg)).to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    task = FastTask(cfg, model, contents, paintings, device)
    if task.tuned is not None:
        if state is None:
            raise ImpastoError("--tune changes paintings of a trained network: give it with --init")
        learn_only_embeddings(net, task.tuned)
    result = loop.run(task, cfg, resume=resume, workers=cfg.workers, progress=progress, on_step=on_step, state=state)
    result["skipped"] = {"content": contents.skipped}
    return result
