"""Fast-network model files: the network's weights (fp16) and its recipe, in one safetensors file.

The metadata names the paintings (in the order of the network's style inputs) and records how the network was made:
its shape, the training scale, the loss recipe, the VGG weights and the data, so that a file alone says what it is.
It also keeps each painting's tone (:func:`impasto.core.tone.tone_stats`), which the method's ``--tone`` matches.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ...core.modelfile import read_tensors, save_tensors
from ...errors import ImpastoError
from ...nets.fast import TransformerNet

FORMAT = "impasto-fast-1"


@dataclass
class FastModel:
    """A loaded model file: the network (fp32, eval mode), the paintings' names and the recipe."""

    net: TransformerNet
    names: list[str]
    image_size: int = 512  # the shorter side of the pictures the network was trained on
    recipe: dict = field(default_factory=dict)
    path: Path | None = None


def save_model(
    net: TransformerNet,
    names: list[str],
    path: str | os.PathLike,
    image_size: int,
    recipe: dict,
    tones: dict[str, Sequence[float]] | None = None,
) -> Path:
    """Write the network in fp16 with its names, recipe and paintings' tones (those given; atomically)."""
    if len(names) != net.n_styles:
        raise ValueError(f"{len(names)} names for a network of {net.n_styles} styles")
    state = {k: v.detach().to(torch.float16) for k, v in net.state_dict().items()}
    meta = {
        "format": FORMAT,
        "names": json.dumps(list(names)),
        "width": str(net.width),
        "blocks": str(net.n_blocks),
        "decoder": json.dumps(list(net.decoder)),
        "image_size": str(image_size),
        "recipe": json.dumps(recipe, sort_keys=True),
    }
    if net.photo:
        meta["photo"] = repr(net.photo)
    if net.upsample != "nearest":  # files before it: nearest
        meta["upsample"] = net.upsample
    if tones:
        # Paintings whose tone is unknown (added to a file made before impasto recorded tones) are painted as is.
        meta["tone"] = json.dumps({name: [round(float(v), 5) for v in tones[name]] for name in names if name in tones})
    return save_tensors(state, path, meta)


def load_model(path: str | os.PathLike) -> FastModel:
    """A model file, or a one-line ImpastoError naming what is wrong with it."""
    p = Path(path)
    what = f"model {p}"
    state, meta = read_tensors(p, what)
    if meta.get("format") != FORMAT:
        raise ImpastoError(f"{what}: not an impasto fast-network file (no {FORMAT!r} format tag)")
    try:
        names = json.loads(meta["names"])
        width, blocks, image_size = int(meta["width"]), int(meta["blocks"]), int(meta["image_size"])
        recipe = json.loads(meta.get("recipe", "{}"))
        decoder = json.loads(meta["decoder"]) if "decoder" in meta else None  # files before it: Johnson's shape
        predictor = any(k.startswith("predictor.") for k in state)  # an arbitrary-style network (train fast-arbitrary)
        photo = float(meta.get("photo", 0))
        upsample = meta.get("upsample", "nearest")
        net = TransformerNet(len(names), width, blocks, tuple(decoder) if decoder else None, predictor, photo, upsample)
        net.load_state_dict({k: v.float() for k, v in state.items()})
    except (KeyError, ValueError, RuntimeError, TypeError) as e:
        raise ImpastoError(f"{what}: damaged fast-network file ({type(e).__name__})") from None
    net.eval().requires_grad_(False)
    return FastModel(net, list(names), image_size, recipe, p)


def record_tones(path: str | os.PathLike, paintings: dict[str, str | os.PathLike]) -> Path:
    """Record the tone of each named painting (a picture file) in an existing model file, for ``--tone``."""
    from ...core.image import load_image
    from ...core.tone import tone_stats

    p = Path(path)
    state, meta = read_tensors(p, f"model {p}")
    names = json.loads(meta["names"])
    missing = [n for n in names if n not in paintings]
    if missing:
        raise ImpastoError(f"model {p}: no painting given for {', '.join(missing)}")
    tones = {n: tone_stats(np.asarray(load_image(paintings[n]), np.float32) / 255) for n in names}
    meta["tone"] = json.dumps({n: [round(float(v), 5) for v in tones[n]] for n in names})
    return save_tensors(state, p, meta)
