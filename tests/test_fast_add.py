"""``impasto train fast-add``: new paintings for a trained fast network, the network and its paintings untouched."""

from __future__ import annotations

import json
import shutil
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
    """A tiny fast network of two paintings, the photos, and two paintings to add."""
    root = tmp_path_factory.mktemp("fast_add")
    content = root / "content"
    content.mkdir()
    for i, name in enumerate(["content", "style"]):
        Image.open(images[name]).convert("RGB").save(content / f"c{i}.png")
    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[:, ::8] = (250, 200, 20)
    stripes[::6] = (20, 40, 220)
    Image.fromarray(stripes).save(root / "stripes.png")
    base = root / "base.safetensors"
    # A network whose conditioning matters (a freshly trained one starts as plain instance norm, deaf to its
    # embedding), with the recipe a trained file records.
    torch.manual_seed(0)
    net = TransformerNet(2, 4, 1)
    with torch.no_grad():
        net.cond[-1].weight.normal_(0, 1.0)
        net.cond[-1].bias.normal_(0, 0.3)
    recipe = {"steps": 2, "size": 32, "style_size": 64, "style_weight": 6.0, "content_weight": 1.0, "tv_weight": 0.0}
    tones = {"swirl": (0.2, 0.3), "dots": (0.1, 0.5)}
    save_model(net, ["swirl", "dots"], base, image_size=48, recipe=recipe, tones=tones)
    return {"base": base, "content": content, "new": [str(images["style2"]), str(root / "stripes.png")]}


def _cfg(setup, out: Path, steps: int, **kw) -> Config:
    settings = dict(
        style=setup["new"],
        names=["blocks", "stripes"],
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


def _losses(net, setup, cfg: Config) -> list[float]:
    """Each new painting's training loss (the recipe's content and scaled style terms, against that painting) on a
    fixed batch of photo crops."""
    inner = recipe_config(cfg, load_model(setup["base"]))
    paintings = [painting_tensor(p, inner.style_size) for p in setup["new"]]
    rows = [net.n_styles - 2, net.n_styles - 1]
    model = FastTrainer(net, load_weights(None), paintings, rows=rows)
    assert model.gram_index.tolist() == [0, 0, 0, 1]
    crops = sample_batch(ImageFolder(setup["content"], 48), 1, inner.size, 4, 123, 0.0, 48, 0)[0]
    out = []
    for row in rows:
        with torch.no_grad():
            content, style, _ = model(crops, torch.full((4,), row), torch.ones(4, len(STYLE_LAYERS)), [0.25] * 4)
        out.append(float((inner.content_weight * content + inner.style_weight * style).mean()))
    return out


def test_adding_learns_the_new_paintings_and_leaves_the_network_and_its_paintings_exactly_as_they_were(setup, tmp_path):
    out = tmp_path / "more.safetensors"
    cfg = _cfg(setup, out, 10, preview_every=5)
    summary = add(cfg)
    assert summary["step"] == 10
    base, grown = load_model(setup["base"]), load_model(out)
    assert grown.names == ["swirl", "dots", "blocks", "stripes"] and model_names(out) == grown.names
    a, b = base.net.state_dict(), grown.net.state_dict()
    for key in a:
        if key != "embedding":
            assert torch.equal(a[key], b[key]), key
    assert torch.equal(a["embedding"], b["embedding"][:2])
    # The new paintings started from the mean of the network's paintings and moved toward their own styles.
    start = extended(base, 2)
    assert torch.equal(start.embedding[2], a["embedding"].mean(0)) and torch.equal(
        start.embedding[3], start.embedding[2]
    )
    for after, before in zip(_losses(grown.net, setup, cfg), _losses(start, setup, cfg)):
        assert after < 0.98 * before
    # The file says what it is: the network's recipe, and the addition with its own settings.
    assert grown.image_size == base.image_size and grown.recipe["steps"] == base.recipe["steps"]
    (entry,) = grown.recipe["added"]
    assert entry["names"] == ["blocks", "stripes"] and entry["steps"] == 10 and entry["style_weight"] == 6.0 * 4
    assert model_tones(out)["dots"] == (0.1, 0.5) and set(model_tones(out)) == set(grown.names)
    assert sorted(p.name for p in (tmp_path / "more_previews").iterdir()) == ["step000005.jpg", "step000010.jpg"]

    # A second addition, to the file the first one wrote: the recipe's weight is scaled once, the record grows.
    again = tmp_path / "again.safetensors"
    add(_cfg(setup, again, 1, init=str(out), style=setup["new"][:1], names=["blocks2"], style_scale=2))
    third = load_model(again)
    assert third.names == [*grown.names, "blocks2"] and set(model_tones(again)) == set(third.names)
    assert [e["names"] for e in third.recipe["added"]] == [["blocks", "stripes"], ["blocks2"]]
    assert third.recipe["added"][1]["style_weight"] == 6.0 * 2
    assert torch.equal(third.net.state_dict()["embedding"][:4], b["embedding"])


def test_the_recipe_comes_from_the_network_file(setup):
    base = load_model(setup["base"])
    base.recipe.update(size=40, tv_weight=3.0, adjustable=0.25, deep_style_weight=0.5, style_layer_weights=[1, 2, 3, 4])
    inner = recipe_config(_cfg(setup, Path("x.safetensors"), 1), base)
    assert (inner.size, inner.image_size, inner.style_size) == (40, 48, 64)
    assert (inner.tv_weight, inner.adjustable, inner.deep_style_weight) == (3.0, 0.25, 0.5)
    assert list(inner.style_layer_weights) == [1, 2, 3, 4] and inner.style_weight == 24.0
    assert (inner.width, inner.blocks, tuple(inner.decoder)) == (4, 1, base.net.decoder)
    assert inner.stability_weight == 0 and inner.tune == ["blocks", "stripes"]
    assert recipe_config(_cfg(setup, Path("x.safetensors"), 1, size=32), base).size == 32


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


def test_resume_continues_exactly_and_refuses_other_runs(setup, tmp_path):
    straight = tmp_path / "straight.safetensors"
    add(_cfg(setup, straight, 4))
    out = tmp_path / "more.safetensors"
    add(_cfg(setup, out, 2))
    summary = add(_cfg(setup, out, 4), resume=True)
    assert (summary["step"], summary["steps_this_run"]) == (4, 2)
    assert load_model(out).recipe["added"][0]["steps"] == 4
    assert torch.equal(load_model(out).net.embedding, load_model(straight).net.embedding)
    with pytest.raises(ImpastoError, match="was learning the paintings blocks, stripes"):
        add(_cfg(setup, out, 5, names=["other", "more"]), resume=True)
    # The network file changed since the checkpoint (retrained, or the built-in styles upgraded): one line.
    mine = tmp_path / "mine.safetensors"
    shutil.copy(setup["base"], mine)
    grown = tmp_path / "grown.safetensors"
    add(_cfg(setup, grown, 1, init=str(mine)))
    base = load_model(mine)
    with torch.no_grad():
        base.net.conv_out[1].bias.add_(0.5)
    save_model(base.net, base.names, mine, image_size=48, recipe=base.recipe)
    # (the loop's check of the --init file's digest answers first; the trainer's own check of the network stays for
    # checkpoints made before the loop recorded digests)
    with pytest.raises(ImpastoError, match="mine.safetensors is not the (network|file) .*grown.safetensors.ckpt"):
        add(_cfg(setup, grown, 2, init=str(mine)), resume=True)


def test_bad_settings_are_one_line_errors(setup, tmp_path):
    with pytest.raises(ImpastoError, match="'swirl' is already a painting of"):
        add(_cfg(setup, tmp_path / "x.safetensors", 1, names=["swirl", "b"]))
    with pytest.raises(ImpastoError, match="not over --init"):
        add(_cfg(setup, setup["base"], 1), overwrite=True)
    with pytest.raises(ImpastoError, match="at most the network's training scale, 48"):
        add(_cfg(setup, tmp_path / "x.safetensors", 1, size=64))
    with pytest.raises(ImpastoError, match="--style-scale must be a finite number > 0"):
        _cfg(setup, tmp_path / "x.safetensors", 1, style_scale=0).validate()
    with pytest.raises(ImpastoError, match="--lr must be a finite number"):
        _cfg(setup, tmp_path / "x.safetensors", 1, lr=float("nan")).validate()
    with pytest.raises(ImpastoError, match="cannot be a style name"):
        _cfg(setup, tmp_path / "x.safetensors", 1, names=["a b", "c"]).validate()
    with pytest.raises(ImpastoError, match="--names: 1 names for 2 paintings"):
        _cfg(setup, tmp_path / "x.safetensors", 1, names=["a"]).validate()
    with pytest.raises(ImpastoError, match="--size must be a multiple of 4"):
        _cfg(setup, tmp_path / "x.safetensors", 1, size=30).validate()


def test_a_network_without_recorded_tones_gets_the_new_paintings_tone(setup, tmp_path):
    """Files made before impasto recorded tones: the new paintings' tones are recorded, the old ones stay unknown."""
    state, meta = read_tensors(setup["base"], "base")
    del meta["tone"]
    old = tmp_path / "old.safetensors"
    save_tensors(state, old, meta)
    out = tmp_path / "more.safetensors"
    add(_cfg(setup, out, 1, init=str(old)))
    assert set(model_tones(out)) == {"blocks", "stripes"}
    assert json.loads(read_tensors(out, "out")[1]["names"]) == ["swirl", "dots", "blocks", "stripes"]


def test_cli_adds_to_the_built_in_styles_by_default(setup, tmp_path, capsys):
    out = tmp_path / "gallery.safetensors"
    argv = [
        "train",
        "fast-add",
        "--style",
        setup["new"][0],
        "--names",
        "blocks",
        "--content-dir",
        str(setup["content"]),
    ]
    argv += ["-o", str(out), "--steps", "1", "--size", "32", "--batch", "1", "--workers", "0", "--precision", "fp32"]
    assert main([*argv, "--preview-every", "0", "-q"]) == 0
    names = model_names(out)
    assert names[-1] == "blocks" and names[:-1] == builtin_styles()
    for bad, word in [
        (["--init", str(tmp_path / "missing.safetensors")], "missing.safetensors"),
        (["--style", str(tmp_path / "nope.jpg")], "nope.jpg"),
        (["-o", str(tmp_path / "no" / "x.safetensors")], "does not exist"),
    ]:
        capsys.readouterr()
        assert main([*argv, *bad, "--overwrite", "-q"]) == 2, bad
        err = capsys.readouterr().err.strip()
        assert word in err and "\n" not in err and "Traceback" not in err, err
