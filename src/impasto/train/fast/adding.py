"""Adding paintings to a trained fast network (``impasto train fast-add``) on the shared loop.

The network gets one embedding row per new painting (started at the mean of its paintings' rows), everything else
frozen (:func:`.trainer.learn_only_embeddings`); the batches draw only the new paintings, with the loss of the
network's own recipe (:func:`recipe_config`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from ...core.device import resolve_device, resolve_precision
from ...core.weights import load_weights
from ...errors import ImpastoError
from ...methods.fast import builtin_path, model_tones
from ...methods.fast.model import FastModel, load_model, save_model
from ...nets.fast import TransformerNet
from .. import loop
from ..data import ImageFolder, report_skipped
from . import Config as FastConfig
from .add import Config
from .trainer import (
    FastTask,
    FastTrainer,
    learn_only_embeddings,
    loss_style_layers,
    painting_tensor,
    painting_tones,
)

# Settings a resumed addition must keep (they decide the network and the stream of batches); --style-scale and --lr
# may change.
RESUME_KEYS = ("init", "seed", "size", "batch", "max_images")
PREVIEW_PAINTINGS = 12  # the preview grid shows the first new paintings (a grid of 71 rows helps no one)
# The recipe entries a new painting is learnt with, as the network's own paintings were (files lacking one get the
# fast trainer's default; the crop size, read apart, 256 or the training scale).
RECIPE_KEYS = (
    "content_weight",
    "style_weight",
    "style_layer_weights",
    "deep_style_weight",
    "tv_weight",
    "adjustable",
    "style_size",
    "weights",
)


def base_path(cfg: Config) -> Path:
    """The network file added to: --init, else the built-in styles."""
    return Path(cfg.init) if cfg.init else builtin_path()


def load_base(cfg, verb: str) -> FastModel:
    """The network a run starts from (--init, else the built-in styles), after the checks every such trainer makes:
    it exists, the output does not overwrite it, --size is within its training scale."""
    path = base_path(cfg)
    if cfg.init is None and not path.is_file():
        raise ImpastoError(f"this installation has no built-in styles to {verb}: give a fast-network file with --init")
    if Path(cfg.output).resolve() == path.resolve():
        raise ImpastoError(f"-o {cfg.output}: write to a new file, not over --init (it is read again on --resume)")
    base = load_model(path)
    if cfg.size is not None and cfg.size > base.image_size:
        raise ImpastoError(f"--size {cfg.size}: at most the network's training scale, {base.image_size}")
    return base


def recipe_config(cfg: Config, base: FastModel) -> FastConfig:
    """The fast trainer's settings for learning `cfg`'s paintings on `base`: its shape, scale and loss recipe, the
    style weight times --style-scale, no stability term (the embedding cannot steady a frozen network), and only the
    new paintings tuned."""
    r = base.recipe
    kept = {k: r[k] for k in RECIPE_KEYS if r.get(k) is not None}
    inner = FastConfig(
        style=list(cfg.style),
        content_dir=cfg.content_dir,
        output=cfg.output,
        names=cfg.style_names,
        width=base.net.width,
        blocks=base.net.n_blocks,
        decoder=list(base.net.decoder),
        upsample=base.net.upsample,
        size=cfg.size or min(int(r.get("size", 256)), base.image_size),
        image_size=base.image_size,
        batch=cfg.batch,
        steps=cfg.steps,
        lr=cfg.lr,
        lr_decay=0.0,
        seed=cfg.seed,
        max_images=cfg.max_images,
        tune=cfg.style_names,
        checkpoint_every=cfg.checkpoint_every,
        preview_every=cfg.preview_every,
        **kept,
    )
    inner.style_weight = float(inner.style_weight) * cfg.style_scale
    inner.stability_weight = 0.0
    return inner


def extended(base: FastModel, n_new: int) -> TransformerNet:
    """`base`'s network with `n_new` more paintings, their embeddings at the mean of its paintings' (a look between
    them, from which a new painting's embedding moves least far)."""
    # A network with a style predictor keeps it: the network is untouched, so it still paints any painting.
    b = base.net
    net = TransformerNet(
        len(base.names) + n_new, b.width, b.n_blocks, b.decoder, b.predictor is not None, b.photo, b.upsample
    )
    state = b.state_dict()
    emb = state["embedding"]
    state["embedding"] = torch.cat([emb, emb.mean(0, keepdim=True).expand(n_new, -1)])
    net.load_state_dict(state)
    return net


class _AddTask(FastTask):
    """The fast network's task, writing the whole gallery (old paintings and new) with the addition recorded."""

    def __init__(
        self,
        cfg: Config,
        inner: FastConfig,
        base: FastModel,
        tones: dict[str, tuple[float, float]],
        model: FastTrainer,
        contents: ImageFolder,
        paintings: list[torch.Tensor],
        device,
        rows: list[int],
    ) -> None:
        super().__init__(inner, model, contents, paintings, device, rows=rows)
        self.add_cfg, self.base, self.base_tones = cfg, base, tones
        self.preview_limit = PREVIEW_PAINTINGS

    def save_output(self, step: int) -> None:
        cfg, base = self.add_cfg, self.base
        added = {
            "names": cfg.style_names,
            "style": [str(p) for p in cfg.style],
            "init": str(base.path),
            "steps": step,
            "style_scale": cfg.style_scale,
            "style_weight": self.cfg.style_weight,
            "lr": cfg.lr,
            "size": self.cfg.size,
            "batch": cfg.batch,
            "seed": cfg.seed,
            "content_dir": str(cfg.content_dir),
            "max_images": cfg.max_images,
        }
        recipe = dict(base.recipe)
        recipe["added"] = [*base.recipe.get("added", []), added]
        tones = {**self.base_tones, **painting_tones(cfg.style_names, self.paintings)}
        names = [*base.names, *cfg.style_names]
        save_model(self.model.net, names, cfg.output, base.image_size, recipe, tones)


def check_base(state: dict, base: FastModel, cfg: Config, where: Path) -> None:
    """Refuse to resume a checkpoint of other paintings, or one whose network is no longer --init's (the file
    retrained, or the built-in styles changed with an upgrade): one line, not a shape error from deep in torch."""
    stored = state.get("config") or {}
    names = stored.get("names") or [Path(str(p)).stem for p in stored.get("style") or []]
    if list(names) != cfg.style_names:
        raise ImpastoError(f"--resume: {where} was learning the paintings {', '.join(names)}")
    net = state.get("net") or {}
    old = base.net.state_dict()
    n = len(base.names)
    same = set(net) == set(old) and net["embedding"].shape[0] == n + len(names)
    same = same and all(torch.equal(net[k][:n] if k == "embedding" else net[k], v) for k, v in old.items())
    if not same:
        raise ImpastoError(f"--resume: {base.path} is not the network {where} was started from")


def train(
    cfg: Config,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    on_step: Callable[[int, dict], None] | None = None,
) -> dict:
    """Learn the new paintings' embeddings; returns the loop's summary. ``resume`` / ``overwrite`` as for
    :func:`impasto.train.fast.trainer.train`."""
    ckpt_path, state = loop.begin(cfg, resume, overwrite, RESUME_KEYS)
    base = load_base(cfg, "add to")
    path = base_path(cfg)
    tones = model_tones(path)
    clash = [n for n in cfg.style_names if n in base.names]
    if clash:
        raise ImpastoError(f"{clash[0]!r} is already a painting of {path}; give the new one another name (--names)")
    if state is not None:
        check_base(state, base, cfg, ckpt_path)
    inner = recipe_config(cfg, base)
    inner.validate()
    done = loop.already_done(state, cfg)
    if done is not None:
        return done
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    dtype = resolve_precision(cfg.precision, device)
    paintings = [painting_tensor(p, inner.style_size) for p in cfg.style]
    contents = ImageFolder(cfg.content_dir, inner.image_size, cfg.max_images, "content")
    report_skipped(contents, cfg.content_dir)

    net = extended(base, len(paintings))
    rows = list(range(len(base.names), net.n_styles))
    model = FastTrainer(net, load_weights(inner.weights), paintings, dtype, loss_style_layers(inner), rows).to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    learn_only_embeddings(net, rows)
    task = _AddTask(cfg, inner, base, tones, model, contents, paintings, device, rows)
    result = loop.run(task, cfg, resume=resume, workers=cfg.workers, progress=progress, on_step=on_step, state=state)
    result["skipped"] = {"content": contents.skipped}
    return result
