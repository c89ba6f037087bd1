"""The compact arbitrary-style model: `impasto train distill` lowers its losses on tiny data, writes one file with
its encoder and decoder, and that file runs through the AdaIN method, the CLI and export like the VGG model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import impasto
from impasto.cli import main
from impasto.errors import ImpastoError
from impasto.methods.adain.engine import load_decoder
from impasto.nets.student import STAGES, StudentEncoder
from impasto.train.distill import Config
from impasto.train.distill.trainer import train

WIDTHS = [4, 8, 8, 16]  # tiny: these tests check the plumbing, not the looks
SKIP_WIDTHS = [8, 16, 16, 16]


@pytest.fixture(scope="module")
def dirs(tmp_path_factory, images) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("distill")
    content, style = root / "content", root / "style"
    content.mkdir()
    style.mkdir()
    for i, name in enumerate(["content", "style2"]):
        Image.open(images[name]).convert("RGB").save(content / f"c{i}.png")
    Image.open(images["style"]).convert("RGB").save(style / "s0.png")
    return content, style


def _cfg(dirs, out: Path, steps: int, **kw) -> Config:
    settings = dict(
        content_dir=str(dirs[0]),
        style_dir=str(dirs[1]),
        output=str(out),
        size=32,
        image_size=48,
        batch=2,
        steps=steps,
        lr=3e-3,
        checkpoint_every=steps,
        preview_every=0,
        device="cpu",
        precision="fp32",
        workers=0,
        widths=WIDTHS,
    )
    settings.update(kw)
    return Config(**settings)


def test_the_student_keeps_vgg_strides_and_lowers_its_losses(dirs, tmp_path):
    enc = StudentEncoder(WIDTHS)
    feats = enc(torch.rand(1, 3, 64, 48))
    assert [tuple(feats[n].shape[1:]) for n in STAGES] == [(4, 64, 48), (8, 32, 24), (8, 16, 12), (16, 8, 6)]

    # On one fixed batch (each training step sees new crops, too noisy to compare), steps lower both losses.
    from impasto.train.adain.trainer import sample_pairs
    from impasto.train.data import ImageFolder
    from impasto.train.distill.trainer import DistillTrainer

    torch.manual_seed(0)
    model = DistillTrainer(WIDTHS)
    c, s = sample_pairs(ImageFolder(dirs[0], 48), ImageFolder(dirs[1], 48), 32, 2, 0, 0)
    model.calibrate(c, s)
    params = [*model.student.parameters(), *model.projections.parameters(), *model.decoder.parameters()]
    optimizer = torch.optim.Adam(params, lr=3e-3)
    seen = []
    for _ in range(25):
        terms = model(c, s)
        loss = terms["content"] + terms["style"] + terms["distill"]
        seen.append((terms["distill"].item(), (terms["content"] + terms["style"]).item()))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert seen[-1][0] < 0.9 * seen[0][0], seen[::5]  # the student's features move towards VGG's
    assert seen[-1][1] < 0.9 * seen[0][1], seen[::5]  # and its pictures towards the AdaIN target

    out = tmp_path / "student.safetensors"
    result = train(_cfg(dirs, out, 3))
    assert result["step"] == 3 and out.exists() and {"content", "style", "distill"} <= set(result["losses"])

    # A warm start from the file (when the checkpoint is gone) continues from its step with its networks.
    warm = tmp_path / "warm.safetensors"
    result = train(_cfg(dirs, warm, 5, init=str(out)))
    assert result["steps_this_run"] == 2 and result["step"] == 5
    with pytest.raises(ImpastoError, match="widths"):
        train(_cfg(dirs, tmp_path / "w2.safetensors", 5, init=str(out), widths=[4, 8, 8, 8]))

    decoder = load_decoder(out)
    assert decoder.student_encoder.widths == tuple(WIDTHS) and decoder.vgg is None
    assert float(decoder.in_scale) != 1.0  # calibrated on the first batch


def test_output_distillation_holds_the_student_to_the_vgg_models_pictures(dirs, tmp_path):
    from impasto.train.adain.trainer import sample_pairs
    from impasto.train.data import ImageFolder
    from impasto.train.distill.trainer import DistillTrainer, _teacher

    torch.manual_seed(0)
    model = DistillTrainer(WIDTHS, teacher=_teacher(Config()))
    c, s = sample_pairs(ImageFolder(dirs[0], 96), ImageFolder(dirs[1], 96), 80, 2, 0, 0)
    model.calibrate(c, s)
    # The teacher's picture is the bundled VGG model's for the pair, at its inner pixels (the crop's edges excluded).
    with torch.no_grad():
        terms = model(c, s, perceptual=False)
    first = terms["teacher"]
    assert float(terms["content"]) == float(terms["style"]) == float(terms["texture"]) == 0.0 and float(first) > 0
    optimizer = torch.optim.Adam([*model.student.parameters(), *model.decoder.parameters()], lr=3e-3)
    for _ in range(20):
        loss = model(c, s, perceptual=False)["teacher"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.8 * float(first)
    assert all(p.grad is None for p in model.teacher.parameters())  # the teacher stays as shipped

    # The texture term: VGG's two finest layers on the student's picture (VGG stops there), held to the painting's.
    x = torch.rand(2, 3, 40, 40)
    full, fine = model.encoder(x), model.encoder(x, layers=["relu1_1", "relu2_1"])
    assert set(fine) == {"relu1_1", "relu2_1"} and all(torch.equal(fine[n], full[n]) for n in fine)
    seen = []
    for _ in range(15):
        loss = model(c, s, perceptual=False, texture=True)["texture"]
        seen.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert seen[0] > 0 and seen[-1] < 0.8 * seen[0], seen[::5]

    # Without VGG's losses the run logs the teacher's and texture terms and no content or style.
    out = tmp_path / "student.safetensors"
    cfg = _cfg(
        dirs,
        out,
        2,
        size=40,
        teacher_weight=10.0,
        texture_weight=1.0,
        laplacian_weight=5.0,
        content_weight=0.0,
        style_weight=0.0,
    )
    result = train(cfg)
    assert {"teacher", "texture", "laplacian", "distill"} <= set(result["losses"])
    assert "content" not in result["losses"]
    assert out.exists()
    with pytest.raises(ImpastoError, match="--weights"):
        train(_cfg(dirs, tmp_path / "t2.safetensors", 1, teacher_weight=1.0, weights="torchvision"))


def test_the_laplacian_term_holds_the_students_edges_to_the_photos(dirs):
    from impasto.train.adain.trainer import sample_pairs
    from impasto.train.data import ImageFolder
    from impasto.train.distill.trainer import DistillTrainer

    torch.manual_seed(0)
    # SKIP_WIDTHS: WIDTHS' 4-channel stage starts dead at this seed (a constant picture, no edges to move).
    model = DistillTrainer(SKIP_WIDTHS)
    c, s = sample_pairs(ImageFolder(dirs[0], 96), ImageFolder(dirs[1], 96), 80, 2, 0, 0)
    model.calibrate(c, s)
    optimizer = torch.optim.Adam([*model.student.parameters(), *model.decoder.parameters()], lr=3e-3)
    seen = []
    for _ in range(20):
        terms = model(c, s, perceptual=False, laplacian=True)
        seen.append(terms["laplacian"].item())
        optimizer.zero_grad()
        terms["laplacian"].backward()
        optimizer.step()
    assert float(terms["content"]) == float(terms["texture"]) == 0.0
    assert seen[0] > 0 and min(seen[10:]) < 0.85 * seen[0], seen[::5]  # (Adam at this rate swings a little)


def test_a_compact_model_runs_through_the_adain_method_cli_and_export(dirs, images, tmp_path, capsys):
    model = tmp_path / "student.safetensors"
    train(_cfg(dirs, model, 2))
    # In PyTorch, and through onnxruntime (the graph exported into the cache on first use): the same picture.
    kw = dict(decoder=str(model), device="cpu", precision="fp32", size=64)
    by_torch = impasto.load("adain", runtime="torch", **kw).run(images["content"], [images["style"]]).image
    by_ort = impasto.load("adain", runtime="onnx", **kw).run(images["content"], [images["style"]]).image
    by_torch, by_ort = np.asarray(by_torch), np.asarray(by_ort)
    assert by_torch.shape == by_ort.shape == (1, 3, 43, 64)
    assert np.abs(by_torch - by_ort).max() < 1e-3 and by_torch.std() > 0

    out = tmp_path / "cli.png"
    args = ["stylize", str(images["content"]), str(images["style"]), "--method", "adain", "--decoder", str(model)]
    assert main([*args, "--size", "48", "--precision", "fp32", "--runtime", "torch", "-o", str(out)]) == 0
    assert Image.open(out).size == (48, 32)

    onnx = tmp_path / "student.onnx"
    assert main(["export", f"adain:{model}", "-o", str(onnx), "--format", "onnx"]) == 0
    report = capsys.readouterr()
    assert onnx.exists() and "largest difference to PyTorch" in report.err, report


def test_distill_settings_are_checked(dirs, tmp_path):
    for kw, message in [
        ({"widths": [8, 8]}, "--widths"),
        ({"distill_weight": -1.0}, "--distill-weight"),
        ({"teacher_weight": -1.0}, "--teacher-weight"),
        ({"texture_weight": float("nan")}, "--texture-weight"),
        ({"laplacian_weight": -0.5}, "--laplacian-weight"),
    ]:
        with pytest.raises(ImpastoError, match=message):
            _cfg(dirs, tmp_path / "m.safetensors", 1, **kw).validate()


def test_a_relu3_1_skip_starts_at_the_model_it_warm_starts_from_and_runs_everywhere(dirs, images, tmp_path):
    from impasto.nets.student import StudentDecoder

    # Wider than WIDTHS: 4-channel stages die (all-zero ReLUs) within two steps, and a dead decoder passes no
    # gradient back to the skip.

    plain = tmp_path / "plain.safetensors"
    train(_cfg(dirs, plain, 2, widths=SKIP_WIDTHS))
    before = load_decoder(plain)
    # The joint bottleneck: relu4_1 and relu3_1 folded to 1/8 resolution, even where relu3_1 has an odd row.
    joint = StudentEncoder(SKIP_WIDTHS, ["relu4_1"], joint=True)
    joint.load_state_dict(before.student_encoder.state_dict())
    x = torch.rand(1, 3, 70, 54)
    features = joint(x)["relu4_1"]
    assert tuple(features.shape) == (1, SKIP_WIDTHS[3] + 4 * SKIP_WIDTHS[2], 8, 6)
    assert torch.equal(features[:, : SKIP_WIDTHS[3]], before.student_encoder(x)["relu4_1"])
    # The skip's convolution starts at zero: the same pictures as the model without it.
    skipped = StudentDecoder(SKIP_WIDTHS, skip=True)
    missing, _ = skipped.load_state_dict(before.state_dict(), strict=False)
    assert sorted(missing) == ["skip.bias", "skip.weight"]
    with torch.no_grad():
        assert torch.allclose(skipped(features), before(features[:, : SKIP_WIDTHS[3]]), atol=1e-6)

    # Trained on from the plain file with --skip, then run in PyTorch and through onnxruntime alike.
    model = tmp_path / "skip.safetensors"
    result = train(_cfg(dirs, model, 4, init=str(plain), skip=True, widths=SKIP_WIDTHS))
    assert result["steps_this_run"] == 2
    decoder = load_decoder(model)
    assert decoder.skip is not None and decoder.student_encoder.joint
    assert float(decoder.skip.weight.detach().abs().sum()) > 0  # it learnt something
    # Two steps leave the skip faint: made strong enough to matter (and zeroed, to see that it does), then run in
    # PyTorch and through onnxruntime alike, with a painting whose sides are not multiples of 8.
    from impasto.methods.adain.engine import save_student

    style = Image.open(images["style"]).convert("RGB").resize((70, 54))
    pictures = {}
    for gain in (0.0, 300.0):
        variant = load_decoder(model)
        with torch.no_grad():
            variant.skip.weight.mul_(gain)
            variant.skip.bias.mul_(gain)
        path = save_student(variant.student_encoder, variant, tmp_path / f"skip{gain:g}.safetensors")
        kw = dict(decoder=str(path), device="cpu", precision="fp32", size=64, style_size=None)
        pictures[gain] = [
            np.asarray(impasto.load("adain", runtime=rt, **kw).run(images["content"], [style]).image)
            for rt in ("torch", "onnx")
        ]
    (plain_torch, _), (by_torch, by_ort) = pictures[0.0], pictures[300.0]
    assert by_torch.shape == by_ort.shape == (1, 3, 43, 64) and np.abs(by_torch - by_ort).max() < 1e-3
    assert np.abs(by_torch - plain_torch).mean() > 0.01  # the skip shows in the picture
    # A sliver of a painting (12 px high: one relu4_1 row, too few for the encoder's reflection padding) is enlarged.
    for rt in ("torch", "onnx"):
        sliver = impasto.load("adain", runtime=rt, **kw).run(images["content"], [style.resize((40, 12))]).image
        assert np.asarray(sliver).shape == (1, 3, 43, 64)

    # --skip-lr: the skip's own learning rate (a parameter group of its own on the shared loop) moves it faster.
    fast = tmp_path / "fast_skip.safetensors"
    train(_cfg(dirs, fast, 4, init=str(plain), skip=True, widths=SKIP_WIDTHS, skip_lr=20.0))
    moved = {f: float(load_decoder(f).skip.weight.detach().abs().mean()) for f in (model, fast)}
    assert moved[fast] > 5 * moved[model], moved
    with pytest.raises(ImpastoError, match="--skip-lr"):
        train(_cfg(dirs, fast, 5, skip=True, widths=SKIP_WIDTHS), resume=True)

    # A checkpoint continues only with the same network; a skip model cannot warm-start a run without one.
    with pytest.raises(ImpastoError, match="--skip"):
        train(_cfg(dirs, model, 5, skip=False, widths=SKIP_WIDTHS), resume=True)
    with pytest.raises(ImpastoError, match="add --skip"):
        train(_cfg(dirs, tmp_path / "back.safetensors", 5, init=str(model), widths=SKIP_WIDTHS))
