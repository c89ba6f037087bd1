"""``impasto train fast-add``: new paintings for a trained fast network, the network and its paintings untouched."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import impasto
from impasto.cli import main
from impasto.core.modelfile import read_tensors, save_tensors
from impasto.core.weights import load_weights
from impasto.errors import ImpastoError
from impasto.methods.fast import builtin_styles, model_names, model_tones
from impasto.methods.fast.model import load_model, save_model
from impasto.nets.fast import STYLE_LAYERS, TransformerNet
from impasto.train.data import ImageFolder
from impasto.train.fast.add import Config
from impasto.train.fast.adding import extended, recipe_config
from impasto.train.fast.adding import train as add
from impasto.train.fast.trainer import FastTrainer, painting_tensor, sample_batch


@pytest.fixture(scope="module")
def setup(tmp_path_factory, images) -> dict:
    """A tiny fast network of one painting, and the photos and the painting to add."""
    root = tmp_path_factory.mktemp("fast_add")
    content = root / "content"
    content.mkdir()
    for i, name in enumerate(["content", "style"]):
        Image.open(images[name]).convert("RGB").save(content / f"c{i}.png")
    base = root / "base.safetensors"
    # A network whose conditioning matters (a freshly trained one starts as plain instance norm, deaf to its
    # embedding), with the recipe a trained file records.
    torch.manual_seed(0)
    net = TransformerNet(1, 4, 1)
    with torch.no_grad():
        net.cond[-1].weight.normal_(0, 0.3)
        net.cond[-1].bias.normal_(0, 0.3)
    recipe = {"steps": 2, "size": 32, "style_size": 64, "style_weight": 6.0, "content_weight": 1.0, "tv_weight": 0.0}
    save_model(net, ["swirl"], base, image_size=48, recipe=recipe, tones={"swirl": (0.2, 0.3)})
    return {"base": base, "content": content, "new": str(images["style2"])}


def _cfg(setup, out: Path, steps: int, **kw) -> Config:
    settings = dict(
        style=[setup["new"]],
        names=["blocks"],
        content_dir=str(setup["content"]),
        output=str(out),
        init=str(setup["base"]),
        batch=2,
        steps=steps,
        checkpoint_every=1,
        preview_every=0,
        device="cpu",
        precision="fp32",
        workers=0,
    )
    settings.update(kw)
    return Config(**settings)


def _style_loss(net, setup, cfg: Config) -> float:
    """The new painting's recipe style loss on a fixed batch of photo crops."""
    base = load_model(setup["base"])
    inner = recipe_config(cfg, base)
    painting = painting_tensor(setup["new"], inner.style_size)
    model = FastTrainer(net, load_weights(None), [painting], rows=[net.n_styles - 1])
    crops = sample_batch(ImageFolder(setup["content"], 48), 1, inner.size, 4, 123, 0.0, 48, 0)[0]
    styles = torch.full((4,), net.n_styles - 1)
    with torch.no_grad():
        _, style, _ = model(crops, styles, torch.ones(4, len(STYLE_LAYERS)), [0.25] * 4)
    return float(style.mean())


def test_adding_learns_the_new_painting_and_leaves_the_network_and_its_paintings_exactly_as_they_were(setup, tmp_path):
    out = tmp_path / "more.safetensors"
    cfg = _cfg(setup, out, 8, preview_every=4)
    summary = add(cfg)
    assert summary["step"] == 8
    base, grown = load_model(setup["base"]), load_model(out)
    assert grown.names == ["swirl", "blocks"] and model_names(out) == ["swirl", "blocks"]
    a, b = base.net.state_dict(), grown.net.state_dict()
    for key in a:
        if key != "embedding":
            assert torch.equal(a[key], b[key]), key
    assert torch.equal(a["embedding"], b["embedding"][:1])
    # The new painting started from the mean of the network's paintings and moved toward its own style.
    start = extended(base, 1)
    assert torch.equal(start.embedding[1], a["embedding"].mean(0))
    assert _style_loss(grown.net, setup, cfg) < 0.95 * _style_loss(start, setup, cfg)
    # The file says what it is: the network's recipe, and the addition with its own settings.
    assert grown.image_size == base.image_size and grown.recipe["steps"] == base.recipe["steps"]
    (entry,) = grown.recipe["added"]
    assert entry["names"] == ["blocks"] and entry["steps"] == 8 and entry["style_weight"] == 6.0 * 4
    assert set(model_tones(out)) == {"swirl", "blocks"}
    assert sorted(p.name for p in (tmp_path / "more_previews").iterdir()) == ["step000004.jpg", "step000008.jpg"]


def test_the_new_painting_paints_through_the_fast_method_with_its_sliders(setup, tmp_path, images):
    out = tmp_path / "more.safetensors"
    add(_cfg(setup, out, 3))
    photo = Image.open(images["content"]).convert("RGB")
    old = np.asarray(impasto.stylize(photo, [], method="fast", model=f"{out}#swirl", tone=0), np.float32)
    same = np.asarray(impasto.stylize(photo, [], method="fast", model=f"{setup['base']}#swirl", tone=0), np.float32)
    new = np.asarray(impasto.stylize(photo, [], method="fast", model=f"{out}#blocks", tone=0), np.float32)
    fine = np.asarray(impasto.stylize(photo, [], method="fast", model=f"{out}#blocks", tone=0, coarse=3), np.float32)
    assert np.abs(old - same).max() <= 1  # the old painting as before (fp16 file, same network)
    assert np.abs(new - old).mean() > 2 and np.abs(fine - new).mean() > 0.5


def test_resume_refusals_and_bad_settings(setup, tmp_path):
    out = tmp_path / "more.safetensors"
    add(_cfg(setup, out, 2))
    summary = add(_cfg(setup, out, 4), resume=True)
    assert (summary["step"], summary["steps_this_run"]) == (4, 2)
    assert load_model(out).recipe["added"][0]["steps"] == 4
    with pytest.raises(ImpastoError, match="was learning the paintings blocks"):
        add(_cfg(setup, out, 5, names=["other"]), resume=True)
    with pytest.raises(ImpastoError, match="'swirl' is already a painting of"):
        add(_cfg(setup, tmp_path / "x.safetensors", 1, names=["swirl"]))
    with pytest.raises(ImpastoError, match="not over --init"):
        add(_cfg(setup, setup["base"], 1), overwrite=True)
    with pytest.raises(ImpastoError, match="--style-scale must be a finite number > 0"):
        _cfg(setup, tmp_path / "x.safetensors", 1, style_scale=0).validate()
    with pytest.raises(ImpastoError, match="cannot be a style name"):
        _cfg(setup, tmp_path / "x.safetensors", 1, names=["a b"]).validate()
    with pytest.raises(ImpastoError, match="--size must be a multiple of 4"):
        _cfg(setup, tmp_path / "x.safetensors", 1, size=30).validate()


def test_a_network_without_recorded_tones_gets_the_new_paintings_tone(setup, tmp_path):
    """Files made before impasto recorded tones: the new painting's tone is recorded, the old ones stay unknown."""
    state, meta = read_tensors(setup["base"], "base")
    del meta["tone"]
    old = tmp_path / "old.safetensors"
    save_tensors(state, old, meta)
    out = tmp_path / "more.safetensors"
    add(_cfg(setup, out, 1, init=str(old)))
    assert set(model_tones(out)) == {"blocks"}
    assert json.loads(read_tensors(out, "out")[1]["names"]) == ["swirl", "blocks"]


def test_cli_adds_to_the_built_in_styles_by_default(setup, tmp_path, capsys):
    out = tmp_path / "gallery.safetensors"
    argv = ["train", "fast-add", "--style", setup["new"], "--names", "blocks", "--content-dir", str(setup["content"])]
    argv += ["-o", str(out), "--steps", "1", "--size", "32", "--batch", "1", "--workers", "0", "--precision", "fp32"]
    assert main([*argv, "--preview-every", "0", "-q"]) == 0
    names = model_names(out)
    assert names[-1] == "blocks" and names[:-1] == builtin_styles()
    capsys.readouterr()
    assert main([*argv, "--init", str(tmp_path / "missing.safetensors"), "--overwrite", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "missing.safetensors" in err and "\n" not in err and "Traceback" not in err
