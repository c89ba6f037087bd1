"""``impasto train fast-arbitrary``: a fast network and a style predictor trained together, so that paintings it
never saw paint from their VGG-19 statistics."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import impasto
from impasto.cli import main
from impasto.core.weights import load_weights
from impasto.errors import ImpastoError
from impasto.methods.fast.model import load_model, save_model
from impasto.nets.fast import STATS_DIM, STYLE_LAYERS, StylePredictor, TransformerNet, painting_statistics
from impasto.nets.vgg import VGGFeatures
from impasto.train.data import ImageFolder
from impasto.train.fast.arbitrary import Config
from impasto.train.fast.arbitrary_training import (
    fit_predictor,
    hue_turns,
    painting_views,
    turn_hues,
    view_statistics,
    with_recoloured,
)
from impasto.train.fast.arbitrary_training import train as train_arbitrary
from impasto.train.fast.trainer import FastTrainer, painting_tensor, sample_batch


def _picture(path, seed: int, period: int, colour) -> str:
    rng = np.random.default_rng(seed)
    a = (rng.random((64, 64, 3)) * 60).astype(np.uint8)
    a[:, ::period] = colour
    a[:: period + 1] = tuple(255 - c for c in colour)
    Image.fromarray(a).save(path)
    return str(path)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, images) -> dict:
    """Photos, four paintings to train on and one held out, and a tiny network whose conditioning matters, with
    learnt embeddings for three of the four paintings (as ``impasto train fast-add`` leaves them)."""
    root = tmp_path_factory.mktemp("fast_arbitrary")
    content = root / "content"
    content.mkdir()
    for i, name in enumerate(["content", "style"]):
        Image.open(images[name]).convert("RGB").save(content / f"c{i}.png")
    colours = [(250, 200, 20), (20, 40, 220), (200, 30, 30), (30, 180, 60), (240, 120, 200)]
    paintings = [_picture(root / f"p{i}.png", i, 4 + 2 * i, c) for i, c in enumerate(colours)]
    torch.manual_seed(0)
    net = TransformerNet(3, 4, 1)
    with torch.no_grad():
        net.cond[-1].weight.normal_(0, 1.0)
        net.cond[-1].bias.normal_(0, 0.3)
    recipe = {"steps": 2, "size": 32, "style_size": 64, "style_weight": 6.0, "content_weight": 1.0, "tv_weight": 0.0}
    base = root / "base.safetensors"
    save_model(net, ["p0", "p1", "p2"], base, image_size=48, recipe=recipe)
    return {"base": base, "content": content, "style": paintings[:4], "held": paintings[4]}


def _cfg(setup, out, steps: int, **kw) -> Config:
    settings = dict(
        style=setup["style"],
        content_dir=str(setup["content"]),
        output=str(out),
        init=str(setup["base"]),
        batch=4,
        views=3,
        steps=steps,
        lr=3e-3,
        checkpoint_every=1,
        preview_every=0,
        device="cpu",
        precision="fp32",
        workers=0,
        # Statistics of 64 px paintings: the test's paintings are that small (the file records the size, and the
        # engines read it from there: the tests below that paint through the predictor rely on it).
        stats_size=64,
    )
    settings.update(kw)
    return Config(**settings)


def test_statistics_are_channel_means_and_log_spreads():
    feats = {n: torch.rand(2, c, 5, 7) for n, c in zip(STYLE_LAYERS, (64, 128, 256, 512))}
    stats = painting_statistics(feats)
    assert stats.shape == (2, STATS_DIM)
    f = feats["relu2_1"][1].flatten(1)
    assert torch.allclose(stats[1, 128:256], f.mean(1))
    assert torch.allclose(stats[1, 256:384], torch.log(f.std(1) + 1e-3))


def test_the_predictor_starts_from_a_ridge_fit_of_the_learnt_embeddings():
    """The fitted map reaches its paintings' embeddings when barely penalized and moves toward them from their
    mean under the default penalty; without embeddings to fit it predicts the fallback whatever the painting."""
    g = torch.Generator().manual_seed(0)
    paintings = torch.randn(6, 1, STATS_DIM, generator=g) * 3 + 5
    stats = paintings + 0.1 * torch.randn(6, 3, STATS_DIM, generator=g)  # three views each
    targets = torch.randn(6, 32, generator=g)
    spread = ((targets - targets.mean(0)) ** 2).sum()
    p = StylePredictor()
    errors = []
    for lam in (1e-4, 10.0):
        fit_predictor(p, stats, targets, torch.zeros(32), lam=lam)
        with torch.no_grad():
            errors.append(float(((p(stats[:, 0]) - targets) ** 2).sum() / spread))
    assert errors[0] < 0.01 and errors[0] < errors[1] < 1
    fit_predictor(p, stats, None, torch.full((32,), 0.25))
    with torch.no_grad():
        assert torch.allclose(p(torch.randn(4, STATS_DIM)), torch.full((4, 32), 0.25))


def test_views_are_the_whole_painting_then_crops():
    picture = torch.rand(3, 40, 60)
    views = painting_views(picture, 4, torch.Generator().manual_seed(1))
    assert len(views) == 4 and views[0] is picture
    for v in views[1:]:
        assert 24 <= v.shape[1] <= 40 and 36 <= v.shape[2] <= 60


def test_recoloured_copies_keep_the_light_and_turn_the_hues():
    """A turned copy keeps the painting's luma and chroma strength and moves its hues; copies spread over the
    circle, none back at the original; the list holds the paintings first, then copy by copy."""
    from impasto.core.color import rgb_to_yiq

    # Mid-grey give or take 0.1 a channel: any turn of its chroma stays inside the gamut, so nothing is clipped.
    picture = torch.rand(3, 20, 30, generator=torch.Generator().manual_seed(0)) * 0.2 + 0.4
    turned = turn_hues(picture, 2.0)
    a, b = rgb_to_yiq(picture[None])[0], rgb_to_yiq(turned[None])[0]
    assert torch.allclose(a[0], b[0], atol=1e-5) and not torch.allclose(a[1:], b[1:], atol=0.05)
    assert torch.allclose(a[1:].norm(dim=0), b[1:].norm(dim=0), atol=1e-5)
    assert torch.allclose(turn_hues(picture, 0.0), picture, atol=1e-5)
    turns = hue_turns(5, 3, 0)
    assert turns.shape == (3, 5) and bool((turns > 0.3).all() and (turns < 2 * torch.pi - 0.3).all())
    assert bool((turns[1:] > turns[:-1]).all())
    out = with_recoloured([picture, 1 - picture], turns[:2, :2])
    assert len(out) == 6 and out[0] is picture and torch.allclose(out[3], turn_hues(1 - picture, float(turns[0, 1])))


def _loss(net: TransformerNet, setup) -> float:
    """The recipe's loss of the training paintings, each painted from its predicted embedding, on fixed crops."""
    weights = load_weights(None)
    paintings = [painting_tensor(p, 64) for p in setup["style"]]
    model = FastTrainer(net, weights, paintings)
    small = [painting_tensor(p, 64) for p in setup["style"]]
    stats = view_statistics(VGGFeatures(weights, STYLE_LAYERS).eval(), small, 1, 0)[:, 0]
    crops = sample_batch(ImageFolder(setup["content"], 48), 1, 32, 4, 123, 0.0, 48, 0)[0]
    layers = torch.ones(4, len(STYLE_LAYERS))
    total = 0.0
    for i in range(len(paintings)):
        with torch.no_grad():
            norms = net.statistics_parameters(stats[i : i + 1].expand(4, -1), layers)
            content, style, _ = model(crops, torch.full((4,), i), layers, [0.25] * 4, norms=norms)
        total += float((content + 6.0 * style).mean())
    return total / len(paintings)


def test_training_lowers_the_predicted_paintings_loss_and_the_file_paints_by_name(setup, tmp_path, images):
    out = tmp_path / "any.safetensors"
    summary = train_arbitrary(_cfg(setup, out, 30, lr=1e-3, checkpoint_every=30))
    assert summary["step"] == 30
    m = load_model(out)
    assert m.names == ["p0", "p1", "p2", "p3"] and m.net.predictor is not None
    assert m.recipe["arbitrary"]["stats_size"] == 64 and m.recipe["steps"] == 30
    # Step 0's network: --init's, with the predictor fitted to its three learnt embeddings (p3 has none).
    first = tmp_path / "first.safetensors"
    train_arbitrary(_cfg(setup, first, 1, lr=1e-12))
    start = load_model(first)
    assert torch.allclose(start.net.conv_in[0][1].weight, load_model(setup["base"]).net.conv_in[0][1].weight)
    before, after = _loss(start.net, setup), _loss(m.net, setup)
    assert after < 0.9 * before
    # The table holds each painting's predicted embedding, so FILE#NAME paints as the predictor does.
    weights = load_weights(None)
    small = painting_tensor(setup["style"][2], 64)
    stats = view_statistics(VGGFeatures(weights, STYLE_LAYERS).eval(), [small], 1, 0)[:, 0]
    with torch.no_grad():
        assert torch.allclose(m.net.predictor(stats), m.net.embedding[2:3], atol=2e-2)
    # A painting given as a style image paints as its row does: the same statistics, the same embedding.
    by_name, by_picture = tmp_path / "p2.png", tmp_path / "p2_picture.png"
    assert main(["stylize", str(images["content"]), "--method", "fast", "--model", f"{out}#p2", "-o",
                 str(by_name), "--runtime", "torch", "--size", "0", "--precision", "fp32"]) == 0  # fmt: skip
    assert main(["stylize", str(images["content"]), setup["style"][2], "--method", "fast", "--model", str(out),
                 "-o", str(by_picture), "--runtime", "torch", "--size", "0", "--palette", "0",
                 "--precision", "fp32"]) == 0  # fmt: skip
    a, b = (np.asarray(Image.open(p), np.float32) for p in (by_name, by_picture))
    assert np.abs(a - b).max() <= 2
    # A painting it never saw, as a style image.
    held = tmp_path / "held.png"
    assert main(["stylize", str(images["content"]), setup["held"], "--method", "fast", "--model", str(out),
                 "-o", str(held), "--runtime", "torch", "--size", "0"]) == 0  # fmt: skip
    painted = np.asarray(Image.open(held), np.float32)
    assert painted.shape == a.shape and np.abs(painted - np.asarray(Image.open(images["content"]))).mean() > 10
    assert np.abs(painted - a).mean() > 2  # not p2's look


def test_style_images_on_onnxruntime_match_pytorch(setup, tmp_path, images, monkeypatch):
    pytest.importorskip("onnx", reason="onnx is not installed (make dev)")
    from impasto.core.cache import graph_path

    monkeypatch.setenv("IMPASTO_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "any.safetensors"
    # With a photo share and bilinear doubling (from a nearest --init): the exported graphs carry both as PyTorch
    # runs them.
    cfg = _cfg(setup, out, 2, preview_every=2, photo=0.2, upsample="bilinear")
    train_arbitrary(cfg)  # the preview grid paints held-out paintings too
    assert load_model(out).net.photo == 0.2 and load_model(out).recipe["arbitrary"]["photo"] == 0.2
    assert load_model(out).net.upsample == "bilinear" and load_model(cfg.init).net.upsample == "nearest"
    assert (tmp_path / "any_previews" / "step000002.jpg").exists()
    alone = None
    for styles in ([setup["held"]], [setup["held"], setup["style"][0]]):  # one painting; two blended equally
        by = {}
        for runtime in ("torch", "onnx"):
            # At the picture's own size: above the working size the engines resize differently (Pillow, torch).
            kw = dict(size=None, work_size=0, device="cpu", precision="fp32")
            engine = impasto.load("fast", model=str(out), runtime=runtime, **kw)
            by[runtime] = np.asarray(engine.run(str(images["content"]), styles).image)
        assert by["onnx"].shape == by["torch"].shape
        assert np.abs(by["onnx"] - by["torch"]).max() < 1e-3
        alone = by["onnx"] if alone is None else alone
    assert engine._torch_engine is None  # the onnxruntime engine painted them itself
    assert graph_path("fast-code", out).exists() and graph_path("fast-paint", out).exists()
    # With the graphs in the cache, a style image through the command line never imports torch.
    code = (
        "import sys, os; os.environ['IMPASTO_CACHE'] = sys.argv[1]; from impasto.cli import main; "
        "rc = main(sys.argv[2:]); print('TORCH' if 'torch' in sys.modules else 'NO-TORCH'); sys.exit(rc)"
    )
    argv = ["stylize", str(images["content"]), setup["held"], "-o", str(tmp_path / "o.png"), "--method", "fast",
            "--model", str(out), "--size", "0", "-q"]  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "cache"), *argv], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.split()[-1] == "NO-TORCH", done.stderr
    saved = np.asarray(Image.open(tmp_path / "o.png"), np.float32) / 255
    engine = impasto.load("fast", model=str(out), size=None)  # the runtime auto picks, as the command line's
    again = engine.run(str(images["content"]), [setup["held"]]).image[0].transpose(1, 2, 0)
    assert np.abs(saved - again).max() <= 1 / 255 + 1e-6
    # Frames and batches: the style image's embedding is predicted once for the engine's calls.
    kept = engine._painted[1]
    engine.run(str(images["style"]), [setup["held"]])
    assert engine._painted[1] is kept
    # Where the CPU has 8-bit units, auto reads the painting with VGG-19 in int8: close to fp32, not the same graph.
    monkeypatch.setattr("impasto.core.cache.cpu_flags_say_fast_int8", lambda: True)
    eight = impasto.load("fast", model=str(out), runtime="onnx", size=None, work_size=0)
    got = np.asarray(eight.run(str(images["content"]), [setup["held"]]).image)
    assert graph_path("fast-code-int8", out).exists()
    kinds = {Path(g).name.rsplit("-", 2)[0] for g, *_ in eight._opening}
    assert kinds == {"fast-code-int8", "fast-paint"}
    # A command line opens the cached sessions in the background before it reads the pictures; the run uses them.
    ahead = impasto.load("fast", model=str(out), runtime="onnx", size=None, work_size=0)
    ahead.prepare(1)
    opening = dict(ahead._opening)
    assert {Path(g).name.rsplit("-", 2)[0] for g, *_ in opening} == kinds
    assert np.array_equal(np.asarray(ahead.run(str(images["content"]), [setup["held"]]).image), got)
    assert ahead._opening == opening
    # (This two-step network magnifies the encoder's rounding: 0.026 here against 0.0015 for the shipped model on
    # the benchmark pairs; another painting moves the picture ten times as far.)
    other = np.asarray(eight.run(str(images["content"]), [setup["style"][0]]).image)
    assert np.abs(got - alone).mean() < 0.2 * np.abs(other - alone).mean()


def test_a_network_with_a_predictor_takes_added_paintings_and_keeps_its_predictor(setup, tmp_path, images):
    from impasto.train.fast.add import Config as AddConfig
    from impasto.train.fast.adding import train as add

    out = tmp_path / "any.safetensors"
    train_arbitrary(_cfg(setup, out, 1))
    more = tmp_path / "more.safetensors"
    add(AddConfig(style=[setup["held"]], names=["held"], content_dir=str(setup["content"]), output=str(more),
                  init=str(out), batch=2, steps=1, checkpoint_every=1, preview_every=0, device="cpu",
                  precision="fp32", workers=0))  # fmt: skip
    grown = load_model(more)
    assert grown.names[-1] == "held" and grown.net.predictor is not None
    assert torch.equal(grown.net.predictor.linear.weight, load_model(out).net.predictor.linear.weight)


def test_style_images_need_a_model_with_a_predictor(images, tmp_path, capsys):
    out = tmp_path / "x.png"
    argv = ["stylize", str(images["content"]), str(images["style"]), "--method", "fast", "--model", "the_scream",
            "-o", str(out)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not style images" in err[0] and "--model any" in err[0]
    assert not out.exists()
    for spec in ("any", "any:1"):
        argv = ["stylize", str(images["content"]), "--method", "fast", "--model", spec, "-o", str(out)]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "style images" in err[0] and not out.exists()


def test_style_images_without_a_model_paint_through_the_built_in_model_for_any_painting(images, tmp_path):
    from impasto.methods.fast import ANY, DEFAULT_MODEL, Options, arbitrary_path, has_predictor, run_model

    assert has_predictor(arbitrary_path())
    assert run_model(Options(), 1) == ANY and run_model(Options(), 0) == DEFAULT_MODEL
    # Given, --model is kept (a trained style with style images is then refused by validate).
    assert run_model(Options(model="the_scream"), 1) == run_model(Options(model="the_scream"), 0) == "the_scream"
    assert run_model(Options(model=DEFAULT_MODEL), 1) == DEFAULT_MODEL
    photo = np.asarray(Image.open(images["content"]), np.float32)
    painted = {}
    for key in ("style", "style2"):
        out = tmp_path / f"{key}.png"
        argv = ["stylize", str(images["content"]), str(images[key]), "--method", "fast", "--runtime", "torch",
                "--size", "0", "--device", "cpu", "--precision", "fp32", "-o", str(out), "-q"]  # fmt: skip
        assert main(argv) == 0
        painted[key] = np.asarray(Image.open(out), np.float32)
        assert painted[key].shape == photo.shape and np.abs(painted[key] - photo).mean() > 10
    assert np.abs(painted["style"] - painted["style2"]).mean() > 5  # each painting its own look
    # --model any is the same model, said outright.
    engine = impasto.load("fast", model=ANY, runtime="torch", size=None, device="cpu", precision="fp32")
    again = engine.run(str(images["content"]), [str(images["style"])]).image[0].permute(1, 2, 0).numpy() * 255
    assert np.abs(again - painted["style"]).max() <= 1.0 + 1e-3


def test_the_palette_step_brings_the_any_models_colours_to_the_paintings(images):
    """--palette (default 1 with style images) on both engines; a trained style keeps its learnt palette."""
    painting = np.asarray(Image.open(images["style"]).convert("RGB"), np.float32) / 255
    gaps = {}
    for runtime in ("torch", "onnx"):
        if runtime == "onnx" and importlib.util.find_spec("onnx") is None:
            continue
        for amount in (0.0, 1.0):
            engine = impasto.load("fast", runtime=runtime, size=64, device="cpu", precision="fp32", palette=amount)
            out = np.asarray(engine.run(str(images["content"]), [str(images["style"])]).image)
            out = out[0].transpose(1, 2, 0)
            gaps[runtime, amount] = np.abs(out.reshape(-1, 3).mean(0) - painting.reshape(-1, 3).mean(0)).sum()
    for runtime in {r for r, _ in gaps}:
        assert gaps[runtime, 1.0] < 0.5 * gaps[runtime, 0.0] + 0.01, gaps
    # A trained style: the setting changes nothing.
    by = [
        np.asarray(impasto.load("fast", runtime="torch", size=64, palette=a).run(str(images["content"]), []).image)
        for a in (0.0, 1.0)
    ]
    assert np.array_equal(by[0], by[1])


def test_named_paintings_do_not_mix_with_style_images(setup, tmp_path, images, capsys):
    model = tmp_path / "any.safetensors"
    train_arbitrary(_cfg(setup, model, 1))
    argv = ["stylize", str(images["content"]), setup["held"], "--method", "fast", "--model", f"{model}#p1", "-o",
            str(tmp_path / "x.png")]  # fmt: skip
    assert main(argv) == 2
    assert "give the model file alone" in capsys.readouterr().err


def test_resume_continues_exactly_and_refuses_other_paintings(setup, tmp_path):
    straight = tmp_path / "straight.safetensors"
    train_arbitrary(_cfg(setup, straight, 4))
    out = tmp_path / "more.safetensors"
    train_arbitrary(_cfg(setup, out, 2))
    summary = train_arbitrary(_cfg(setup, out, 4), resume=True)
    assert (summary["step"], summary["steps_this_run"]) == (4, 2)
    a, b = load_model(out).net.state_dict(), load_model(straight).net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ImpastoError, match="trained on other paintings"):
        train_arbitrary(_cfg(setup, out, 5, style=setup["style"][:3]), resume=True)
    with pytest.raises(ImpastoError, match="views"):
        train_arbitrary(_cfg(setup, out, 5, views=2), resume=True)
    with pytest.raises(ImpastoError, match="recolour"):
        train_arbitrary(_cfg(setup, out, 5, recolour=1), resume=True)
    with pytest.raises(ImpastoError, match="stats-size"):
        train_arbitrary(_cfg(setup, out, 5, stats_size=96), resume=True)
    assert load_model(out).recipe["arbitrary"]["stats_size"] == 64
    # The --init file changed in place since the run began (its recipe is read again on resume): refused.
    init = tmp_path / "init.safetensors"
    shutil.copyfile(setup["base"], init)
    other = tmp_path / "other.safetensors"
    train_arbitrary(_cfg(setup, other, 1, init=str(init)))
    shutil.copyfile(straight, init)
    with pytest.raises(ImpastoError, match="has changed"):
        train_arbitrary(_cfg(setup, other, 2, init=str(init)), resume=True)


def test_recoloured_copies_train_with_the_paintings_and_stay_out_of_the_file(setup, tmp_path, monkeypatch):
    """--recolour 2: the loss reaches the copies' Gram matrices (batches draw from all twelve) while the file holds
    the four paintings only."""
    drawn = []
    real = FastTrainer.forward

    def spy(self, content, styles, *args, **kw):
        drawn.extend(styles.tolist())
        assert self.gram0.shape[0] == 12
        return real(self, content, styles, *args, **kw)

    monkeypatch.setattr(FastTrainer, "forward", spy)
    out = tmp_path / "recoloured.safetensors"
    train_arbitrary(_cfg(setup, out, 6, recolour=2))
    assert max(drawn) >= 4 and min(drawn) < 4
    m = load_model(out)
    assert m.names == ["p0", "p1", "p2", "p3"] and m.net.embedding.shape[0] == 4
    assert m.recipe["arbitrary"]["recolour"] == 2


def test_bad_settings_are_one_line_errors(setup, tmp_path, capsys):
    with pytest.raises(ImpastoError, match="at least two paintings"):
        _cfg(setup, tmp_path / "x.safetensors", 1, style=setup["style"][:1]).validate()
    with pytest.raises(ImpastoError, match="--views must be a whole number"):
        _cfg(setup, tmp_path / "x.safetensors", 1, views=0).validate()
    with pytest.raises(ImpastoError, match="--recolour must be a whole number"):
        _cfg(setup, tmp_path / "x.safetensors", 1, recolour=-1).validate()
    with pytest.raises(ImpastoError, match="--style-scale must be a finite number > 0"):
        _cfg(setup, tmp_path / "x.safetensors", 1, style_scale=-1).validate()
    for bad in (-0.1, 1.0):
        with pytest.raises(ImpastoError, match="--photo must be a number from 0 to below 1"):
            _cfg(setup, tmp_path / "x.safetensors", 1, photo=bad).validate()
    with pytest.raises(ImpastoError, match="--keep-every must be a whole number >= 0"):
        _cfg(setup, tmp_path / "x.safetensors", 1, keep_every=-1).validate()
    for bad in (32, 1000, 100.5):
        with pytest.raises(ImpastoError, match="--stats-size must be a whole number of pixels from 64 to 512"):
            _cfg(setup, tmp_path / "x.safetensors", 1, stats_size=bad).validate()
    with pytest.raises(ImpastoError, match="at most the network's training scale, 48"):
        train_arbitrary(_cfg(setup, tmp_path / "x.safetensors", 1, size=64))
    with pytest.raises(ImpastoError, match="not over --init"):
        train_arbitrary(_cfg(setup, setup["base"], 1), overwrite=True)
    argv = ["train", "fast-arbitrary", "--style", *setup["style"], "--content-dir", str(setup["content"]), "-o",
            str(tmp_path / "y.safetensors"), "--init", str(tmp_path / "missing.safetensors")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.safetensors" in err[0]
    assert not (tmp_path / "y.safetensors").exists()


def test_the_stability_term_trains_the_predicted_paintings_to_follow_motion(setup, tmp_path):
    """--stability-weight: as for impasto train fast, through the predicted statistics (the model for any painting)."""
    from impasto.core.weights import load_weights
    from impasto.train.data import ImageFolder
    from impasto.train.fast.trainer import FastTrainer, painting_tensor, sample_batch

    contents = ImageFolder(setup["content"], 48)
    batches = [sample_batch(contents, 4, 32, 4, 1, 0.0, 48, 10**6 + i, motion=True) for i in range(3)]
    paintings = [painting_tensor(str(p), 64) for p in setup["style"]]

    def stability_of(out) -> float:
        model = FastTrainer(load_model(out).net, load_weights(), paintings)  # paints by name: the predictor's table
        with torch.no_grad():
            return sum(float(model(c, s, lw, [0.25] * 4, (th, nz))[3]) for c, s, lw, th, nz in batches)

    runs = {}
    for weight in (0.0, 300.0):
        out = tmp_path / f"s{int(weight)}.safetensors"
        summary = train_arbitrary(_cfg(setup, out, 12, stability_weight=weight, recolour=0))
        assert ("stability" in summary["losses"]) == bool(weight)
        runs[weight] = stability_of(out)
    assert runs[300.0] < 0.5 * runs[0.0], runs  # measured: 0.09 x
