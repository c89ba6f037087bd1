"""AdaIN: the operation, the decoder file, the stylizer's controls, training and resuming, and the command line."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import impasto.methods.adain as adain_package
from impasto.cli import main
from impasto.core.color import rgb_to_yiq
from impasto.core.image import pil_to_tensor, tensor_to_pil
from impasto.errors import ImpastoError
from impasto.losses.stats import mean_std
from impasto.methods.adain import Options
from impasto.methods.adain.engine import AdaINEngine, load_decoder, save_decoder
from impasto.nets import adain as nets
from impasto.nets.adain import Decoder, target_features
from impasto.train.adain import Config as TrainConfig
from impasto.train.adain import train
from impasto.train.data import ImageFolder as ImageSet
from impasto.train.data import sample_pairs as sample_batch
from impasto.train.loop import load_checkpoint


@pytest.fixture(scope="module")
def decoder_file(tmp_path_factory) -> Path:
    """An untrained but deterministic decoder: the behaviours tested here do not depend on training."""
    torch.manual_seed(0)
    dec = Decoder(in_scale=0.002)
    with torch.no_grad():  # outputs around mid-grey with visible variation, so nothing is lost to clamping
        last = dec.net[-1]
        last.weight.mul_(20)
        last.bias.fill_(0.5)
    path = tmp_path_factory.mktemp("dec") / "decoder.safetensors"
    save_decoder(dec, path)
    return path


def _engine(decoder=None, **load) -> AdaINEngine:
    load.setdefault("device", "cpu")
    load.setdefault("precision", "fp32")
    return AdaINEngine(Options(decoder=None if decoder is None else str(decoder), **load))


def _run(engine: AdaINEngine, content, styles, **options) -> torch.Tensor:
    """One picture through a loaded engine, with run options on top of the ones it was loaded with."""
    styles = styles if isinstance(styles, list) else [styles]
    return engine.run(content, styles, replace(engine.options, **options)).image


@pytest.fixture(scope="module")
def stylizer(decoder_file) -> AdaINEngine:
    return _engine(decoder_file)


def _t(path) -> torch.Tensor:
    return pil_to_tensor(Image.open(path).convert("RGB"))


def test_the_torch_free_runtime_declares_the_networks_smallest_painting():
    from impasto.methods.adain import runtime
    from impasto.nets import adain as nets

    assert runtime.MIN_STYLE_SIDE == nets.MIN_STYLE_SIDE


def test_adain_gives_the_style_statistics():
    torch.manual_seed(1)
    content = torch.randn(2, 16, 9, 7) * 3 + 1
    style = torch.randn(2, 16, 5, 11) * 0.5 - 2
    out = nets.adain(content, *mean_std(style))
    m_out, s_out = mean_std(out)
    m_s, s_s = mean_std(style)
    assert torch.allclose(m_out, m_s, atol=1e-4)
    assert torch.allclose(s_out, s_s, atol=1e-3)


def test_masked_adain_restyles_only_the_region_statistics():
    torch.manual_seed(2)
    content = torch.randn(1, 8, 6, 6)
    mask = torch.zeros(1, 1, 6, 6)
    mask[..., :3] = 1
    style = torch.randn(1, 8, 4, 4) * 2 + 5
    out = nets.adain(content, *mean_std(style), mask)
    m, s = mean_std(out, mask)
    assert torch.allclose(m, mean_std(style)[0], atol=1e-4)
    assert torch.allclose(s, mean_std(style)[1], atol=1e-3)


def test_target_features_strength_weights_and_masks():
    torch.manual_seed(3)
    fc = torch.randn(1, 8, 4, 6)
    a = mean_std(torch.randn(1, 8, 3, 3) + 2)
    b = mean_std(torch.randn(1, 8, 3, 3) * 3 - 1)
    ta, tb = target_features(fc, [a]), target_features(fc, [b])
    # strength 0: the photo's features; 1: the AdaIN target; in between: linear.
    assert torch.allclose(target_features(fc, [a], strength=0.0), fc)
    assert torch.allclose(target_features(fc, [a], strength=0.25), 0.25 * ta + 0.75 * fc, atol=1e-5)
    # weights interpolate the targets; a zero weight removes a style.
    assert torch.allclose(target_features(fc, [a, b], style_weights=[3, 1]), 0.75 * ta + 0.25 * tb, atol=1e-5)
    assert torch.allclose(target_features(fc, [a, b], style_weights=[1, 0]), ta, atol=1e-5)
    # masks: left half style a, right half style b, each with its region's own content statistics.
    left = torch.zeros(1, 1, 4, 6)
    left[..., :3] = 1
    out = target_features(fc, [a, b], masks=[left, 1 - left])
    assert torch.allclose(out[..., :3], nets.adain(fc, *a, left)[..., :3], atol=1e-5)
    assert torch.allclose(out[..., 3:], nets.adain(fc, *b, 1 - left)[..., 3:], atol=1e-5)
    # where no mask covers, the photo's features stay.
    out = target_features(fc, [a], masks=[left])
    assert torch.allclose(out[..., 3:], fc[..., 3:])


def test_decoder_save_load_round_trip(tmp_path, decoder_file):
    dec = load_decoder(decoder_file)
    x = torch.randn(1, 512, 4, 5) * 300
    again = tmp_path / "again.safetensors"
    save_decoder(dec, again)
    dec2 = load_decoder(again)
    for (k, v), (k2, v2) in zip(dec.state_dict().items(), dec2.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    with torch.no_grad():
        assert torch.allclose(dec(x), dec2(x))
    # fp16 on disk: about 7 MB for 3.5 M parameters, under the 16 MB budget of a shipped model.
    assert again.stat().st_size < 8_000_000


def test_load_decoder_rejects_bad_files(tmp_path):
    with pytest.raises(ImpastoError, match="no such file"):
        load_decoder(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a tensor file")
    with pytest.raises(ImpastoError, match="not a readable"):
        load_decoder(junk)


def test_strength_zero_is_the_decoders_reconstruction(stylizer, images):
    content = _t(images["content"])
    out = _run(stylizer, content, images["style"], size=None, strength=0.0)
    m, (h, w) = nets.MARGIN, content.shape[-2:]
    padded = nets.pad_to_stride(torch.nn.functional.pad(content, (m,) * 4, mode="reflect"))
    with torch.no_grad():  # the network's own pieces: reflected margin, stride padding, encoder, decoder, crop
        recon = stylizer.net.decoder(stylizer.net.encoder(padded)["relu4_1"]).clamp(0, 1)[..., m : m + h, m : m + w]
    assert torch.allclose(out, recon, atol=1e-5)
    full = _run(stylizer, content, images["style"], size=None, strength=1.0)
    assert (full - recon).abs().mean() > 1e-3


def test_any_size_and_aspect_is_kept(stylizer, images):
    content = _t(images["content"])[..., :61, :45]  # neither side a multiple of 8
    out = _run(stylizer, content, images["style"], size=None)
    assert out.shape == (1, 3, 61, 45)
    tiny = _t(images["content"])[..., :5, :7]  # smaller than the margin reflected around it
    assert _run(stylizer, tiny, images["style"], size=None).shape == (1, 3, 5, 7)
    out = _run(stylizer, images["content"], images["style"], size=50)
    assert max(out.shape[-2:]) == 50 and out.shape[-1] > out.shape[-2]  # landscape stays landscape


def test_batch_matches_single_and_caches_the_style(decoder_file, images):
    s = _engine(decoder_file)
    outs = [
        r.image
        for r in s.run_many([images["content"], images["style2"]], [images["style"]], replace(s.options, size=64))
    ]
    assert len(outs) == 2 and len(s._cache) == 1  # one style code, computed once
    single = _run(s, images["style2"], images["style"], size=64)
    assert torch.allclose(outs[1], single)


def test_preserve_color_luminance_keeps_the_photos_chroma(stylizer, images):
    content = _t(images["content"])
    out = _run(stylizer, content, images["style2"], size=None, preserve_color="luminance")
    yiq_out, yiq_c = rgb_to_yiq(out), rgb_to_yiq(content)
    # Chroma equal up to clamping to the RGB cube.
    assert (yiq_out[:, 1:] - yiq_c[:, 1:]).abs().mean() < 0.02


def test_masks_and_content_mask(stylizer, images, tmp_path):
    content = _t(images["content"])
    h, w = content.shape[-2:]
    white = Image.new("L", (w, h), 255)
    black = Image.new("L", (w, h), 0)
    only_a = _run(stylizer, content, images["style"], size=None)
    masked = _run(stylizer, content, [images["style"], images["style2"]], size=None, masks=[white, black])
    assert torch.allclose(masked, only_a, atol=1e-5)
    keep = _run(stylizer, content, images["style"], size=None, content_mask=white)
    assert torch.allclose(keep, content, atol=1e-6)


def test_options_validation():
    with pytest.raises(ImpastoError, match="--strength"):
        Options(strength=1.5).validate(1)
    with pytest.raises(ImpastoError, match="--style-weights"):
        Options(style_weights=[1.0]).validate(2)
    with pytest.raises(ImpastoError, match="--mask"):
        Options(masks=["a.png"]).validate(2)
    with pytest.raises(ImpastoError, match="--size"):
        Options(size=0).validate(1)


# ---------------------------------------------------------------------------------------------------------------
# Training


@pytest.fixture(scope="module")
def train_dirs(tmp_path_factory, images) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("train")
    content, style = root / "content", root / "style"
    content.mkdir()
    style.mkdir()
    for i, name in enumerate(["content", "style2"]):
        Image.open(images[name]).convert("RGB").save(content / f"c{i}.png")
    Image.open(images["style"]).convert("RGB").save(style / "s0.png")
    (style / "notes.txt").write_text("ignored")
    return content, style


def _cfg(dirs, out: Path, steps: int) -> TrainConfig:
    return TrainConfig(
        content_dir=str(dirs[0]),
        style_dir=str(dirs[1]),
        output=str(out),
        size=32,
        batch=2,
        steps=steps,
        lr=1e-3,
        checkpoint_every=1,
        preview_every=2,
        device="cpu",
        precision="fp32",
        workers=0,
    )


def test_batches_depend_only_on_seed_and_step(train_dirs):
    contents = ImageSet(train_dirs[0], 64)
    styles = ImageSet(train_dirs[1], 64)
    a = sample_batch(contents, styles, 32, 2, 0, 5)
    b = sample_batch(contents, styles, 32, 2, 0, 5)
    c = sample_batch(contents, styles, 32, 2, 0, 6)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    assert a[0].shape == (2, 3, 32, 32) and 0 <= float(a[1].min()) and float(a[1].max()) <= 1


def test_image_size_sets_the_scale_of_the_crops(tmp_path):
    # A horizontal ramp: the spread of values in a crop tells how much of the picture's width it covers.
    ramp = np.tile(np.linspace(0, 255, 96).astype(np.uint8)[None, :, None], (64, 1, 3))
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    images = ImageSet(tmp_path, 64)

    def spread(image_size):
        crops = sample_batch(images, images, 32, 8, 0, 1, image_size=image_size)[0]
        return float((crops.amax(dim=(1, 2, 3)) - crops.amin(dim=(1, 2, 3))).mean())

    # Images scaled to a shorter side of 48-64 px: a 32 px crop is a piece of the picture; at 32 px, the whole height.
    assert spread(64) < 0.5 < spread(32)
    with pytest.raises(ImpastoError, match="--image-size"):
        TrainConfig(
            content_dir="c", style_dir="s", output=str(tmp_path / "d.safetensors"), size=64, image_size=32
        ).validate()


def test_training_runs_and_resume_continues_exactly(train_dirs, tmp_path):
    straight = tmp_path / "straight.safetensors"
    cfg = _cfg(train_dirs, straight, 3)
    cfg.workers = 1  # batches made in a worker process; the resumed run below makes them inline: the same batches
    summary = train(cfg)
    assert summary["step"] == 3 and straight.exists()
    assert (tmp_path / "straight_previews" / "step000002.jpg").exists()

    resumed = tmp_path / "resumed.safetensors"
    train(_cfg(train_dirs, resumed, 2))
    first = load_checkpoint(str(resumed) + ".ckpt")
    assert first["step"] == 2
    summary = train(_cfg(train_dirs, resumed, 3), resume=True)
    assert summary["steps_this_run"] == 1
    a = load_checkpoint(str(straight) + ".ckpt")
    b = load_checkpoint(str(resumed) + ".ckpt")
    assert b["step"] == 3
    for k in a["decoder"]:
        assert torch.allclose(a["decoder"][k], b["decoder"][k], atol=1e-6), k
    # The optimizer's moments carried over: Adam's step count and second moments agree.
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert float(sa[0]["step"]) == float(sb[0]["step"]) == 3
    assert torch.allclose(sa[0]["exp_avg_sq"], sb[0]["exp_avg_sq"], atol=1e-9)
    assert [r["step"] for r in b["log"]] == [1, 2, 3]
    # The written decoder is a working one.
    out = _engine(resumed).run(train_dirs[0] / "c0.png", [train_dirs[1] / "s0.png"]).image
    assert out.shape[1] == 3 and torch.isfinite(out).all()


# ---------------------------------------------------------------------------------------------------------------
# Command line


def test_cli_adain(images, tmp_path, decoder_file, capsys):
    out = tmp_path / "out.png"
    code = main(
        [
            "stylize",
            str(images["content"]),
            str(images["style"]),
            str(images["style2"]),
            "--method",
            "adain",
            "--decoder",
            str(decoder_file),
            "--strength",
            "0.7",
            "--style-weights",
            "2",
            "1",
            "--size",
            "80",
            "--precision",
            "fp32",
            "-o",
            str(out),
            "-q",
        ]
    )
    assert code == 0 and out.exists()
    assert Image.open(out).size == (80, 53)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--strength", "2"], "--strength"),
        (["--decoder", "missing.safetensors"], "no such file"),
    ],
)
def test_cli_adain_bad_input(images, tmp_path, decoder_file, capsys, extra, message):
    out = tmp_path / "out.png"
    args = ["stylize", str(images["content"]), str(images["style"]), "--method", "adain", "-o", str(out)]
    if "--decoder" not in extra:
        args += ["--decoder", str(decoder_file)]
    code = main(args + extra)
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_cli_train_bad_input(tmp_path, train_dirs, capsys):
    code = main(
        [
            "train",
            "adain",
            "--content-dir",
            str(tmp_path / "nope"),
            "--style-dir",
            str(train_dirs[1]),
            "-o",
            str(tmp_path / "d.safetensors"),
            "-q",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "not a directory" in err
    code = main(
        [
            "train",
            "adain",
            "--content-dir",
            str(train_dirs[0]),
            "--style-dir",
            str(train_dirs[1]),
            "-o",
            str(tmp_path / "d.safetensors"),
            "--resume",
            "-q",
        ]
    )
    assert code == 2 and "no checkpoint" in capsys.readouterr().err
    code = main(
        [
            "train",
            "adain",
            "--content-dir",
            str(train_dirs[0]),
            "--style-dir",
            str(train_dirs[1]),
            "-o",
            str(tmp_path / "d.safetensors"),
            "--size",
            "30",
            "-q",
        ]
    )
    assert code == 2 and "multiple of 8" in capsys.readouterr().err


def test_the_bundled_decoder_ships_and_is_trained(images, tmp_path):
    """The shipped decoder: fp16, at most 16 MB, used without --decoder, and trained (an untrained one fails here)."""
    from importlib import resources

    from safetensors import safe_open

    from impasto.core.image import fit_longest_side, load_image, tensor_to_pil
    from impasto.metrics import evaluate

    path = adain_package.bundled_decoder_path()
    assert path.is_file() and path.stat().st_size <= 16 * 2**20
    with safe_open(str(path), "pt") as f:
        assert f.metadata()["format"] == "impasto-adain-decoder"
        assert all(f.get_tensor(k).dtype == torch.float16 for k in f.keys() if k != "in_scale")
    out = tmp_path / "bundled.png"
    code = main(
        [
            "stylize",
            str(images["content"]),
            str(images["style"]),
            "--method",
            "adain",
            "--size",
            "64",
            "-o",
            str(out),
            "-q",
        ]
    )
    assert code == 0 and Image.open(out).size == (64, 43)

    examples = resources.files("impasto") / "examples"
    photo = fit_longest_side(load_image(str(examples / "chelsea.png")), 128)
    painting = load_image(str(examples / "swirls.png"))
    stylizer = AdaINEngine(Options())
    styled = tensor_to_pil(_run(stylizer, photo, painting, size=None, tone=0.0))  # the decoder's own output
    recon = tensor_to_pil(_run(stylizer, photo, painting, size=None, strength=0.0))
    before, after, back = (evaluate(x, photo, [painting]) for x in (photo, styled, recon))
    # Measured: styled 0.88 / 0.35 against the photo's own style distance 0.78; reconstruction content 0.40.
    # A random decoder gives about 1.3 / 0.63 and 1.3.
    assert after["style"] < 0.6 * before["style"] and after["content"] < 1.1
    assert back["content"] < 0.6


def test_the_bundled_compact_model_runs_by_name(images, tmp_path):
    from importlib import resources

    from safetensors import safe_open

    from impasto.core.image import fit_longest_side, load_image, tensor_to_pil
    from impasto.metrics import evaluate

    path = adain_package.decoder_path("compact")
    assert path.is_file() and path.stat().st_size <= 2 * 2**20
    with safe_open(str(path), "pt") as f:
        assert f.metadata()["format"] == "impasto-adain-student"
    out = tmp_path / "compact.png"
    argv = ["stylize", str(images["content"]), str(images["style"]), "--method", "adain", "--decoder", "compact"]
    assert main([*argv, "--size", "64", "-o", str(out), "-q"]) == 0 and Image.open(out).size == (64, 43)

    examples = resources.files("impasto") / "examples"
    photo = fit_longest_side(load_image(str(examples / "chelsea.png")), 128)
    painting = load_image(str(examples / "swirls.png"))
    styled = tensor_to_pil(_run(AdaINEngine(Options(decoder="compact")), photo, painting, size=None, tone=0.0))
    before, after = (evaluate(x, photo, [painting]) for x in (photo, styled))
    # Measured (step 3600): style 0.37 against the photo's own 0.78, content 1.12 (the VGG-19 model: 0.35 / 0.89).
    assert after["style"] < 0.6 * before["style"] and after["content"] < 1.4


def test_the_tone_step_brings_contrast_and_saturation_to_the_painting(images):
    from impasto.core.tone import MAX_GAIN, match_tone, tone_stats
    from impasto.metrics import tone

    engine = AdaINEngine(Options(device="cpu", precision="fp32", palette=0.0))  # the tone step alone
    flat = _run(engine, images["content"], images["style"], size=64, tone=0.0)
    toned = _run(engine, images["content"], images["style"], size=64)  # --tone 1, the default
    half = _run(engine, images["content"], images["style"], size=64, tone=0.5)
    off = [abs(1 - v) for v in tone(tensor_to_pil(flat), images["style"]).values()]
    on = [abs(1 - v) for v in tone(tensor_to_pil(toned), images["style"]).values()]
    assert on[0] < 0.7 * off[0] and on[1] < 0.7 * off[1], (off, on)  # measured: 0.63 and 0.68 of the distance
    assert 0 < float((half - flat).abs().mean()) < float((toned - flat).abs().mean())
    # The gains are bounded: a flat grey picture is not blown up to the painting's contrast.
    grey = np.full((8, 8, 3), 0.5, np.float32)
    grey[0, 0] = 0.52
    stretched = match_tone(grey, np.array([0.3, 0.9], np.float32))
    assert tone_stats(stretched)[0] <= MAX_GAIN * tone_stats(grey)[0] + 1e-4


def test_a_paintings_look_read_from_its_bytes_is_its_tone_and_palette():
    from impasto.core.tone import look_stats, palette_stats, tone_stats

    big = np.random.default_rng(1).integers(0, 256, (700, 900, 3), dtype=np.uint8)  # subsampled inside
    tone, palette = look_stats(big)
    as_float = big.astype(np.float32) / 255
    assert np.allclose(tone, tone_stats(as_float), atol=1e-6) and np.allclose(palette, palette_stats(as_float))
    assert np.allclose(look_stats(as_float)[1], palette)


def test_the_palette_step_moves_colours_to_the_paintings_mean_and_covariance(images):
    from impasto.core.tone import blended_stats, match_palette, palette_stats

    rng = np.random.default_rng(0)
    photo = (rng.random((40, 50, 3)) * 0.4 + 0.3).astype(np.float32)
    bluish = np.clip(rng.normal([0.2, 0.3, 0.7], [0.05, 0.08, 0.1], (30, 60, 3)), 0, 1).astype(np.float32)

    def mean_cov(x):
        s = palette_stats(x)
        return s[:3], s[3:].reshape(3, 3) - np.outer(s[:3], s[:3])

    target = palette_stats(bluish)
    moved = match_palette(photo, target)
    (m, c), (tm, tc) = mean_cov(moved), mean_cov(bluish)
    assert np.abs(m - tm).max() < 0.01 and np.abs(c - tc).max() < 0.002
    half = match_palette(photo, target, 0.5)
    assert 0.3 < np.abs(mean_cov(half)[0] - tm).max() / np.abs(mean_cov(photo)[0] - tm).max() < 0.7
    assert match_palette(photo, target, 0.0) is photo and photo.min() >= 0.3  # off: the input itself, untouched
    # Paintings blend as the mixture of their colours.
    reddish = np.clip(rng.normal([0.8, 0.3, 0.2], 0.1, (30, 60, 3)), 0, 1).astype(np.float32)
    mixture = palette_stats(np.concatenate([bluish, reddish]))
    assert np.abs(blended_stats([target, palette_stats(reddish)]) - mixture).max() < 1e-6
    # In the method: --palette 1 brings the result's mean colour nearer the painting's than --palette 0.
    engine = AdaINEngine(Options(device="cpu", precision="fp32"))
    painting = np.asarray(Image.open(images["style"]).convert("RGB"), np.float32) / 255
    gap = {}
    for amount in (0.0, 1.0):
        out = _run(engine, images["content"], images["style"], size=64, palette=amount)[0].permute(1, 2, 0).numpy()
        gap[amount] = np.abs(out.reshape(-1, 3).mean(0) - painting.reshape(-1, 3).mean(0)).sum()
    assert gap[1.0] < 0.5 * gap[0.0] + 0.01, gap


def test_a_missing_bundled_decoder_is_a_one_line_error(images, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(adain_package, "bundled_decoder_path", lambda: tmp_path / "gone.safetensors")
    out = tmp_path / "bundled.png"
    code = main(
        [
            "stylize",
            str(images["content"]),
            str(images["style"]),
            "--method",
            "adain",
            "--size",
            "64",
            "-o",
            str(out),
            "-q",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "bundled AdaIN decoder is missing" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_identity_loss_is_the_reconstruction_error_and_trains_it_down(train_dirs, tmp_path):
    from impasto.train.adain.trainer import AdaINTrainer

    torch.manual_seed(0)
    model = AdaINTrainer(Decoder())
    contents = ImageSet(train_dirs[0], 64)
    c, s = sample_batch(contents, ImageSet(train_dirs[1], 64), 32, 2, 0, 0)
    model.calibrate(c, s)
    content_loss, style_loss, identity = model(c, s, identity=True)
    with torch.no_grad():
        rebuilt = model.decoder(model.encode(c)[-1].float())
    assert float(identity.detach()) == pytest.approx(float(torch.nn.functional.mse_loss(rebuilt, c)), rel=1e-4)
    assert float(model(c, s)[2]) == 0  # off unless asked for
    assert torch.allclose(model(c, s)[0], content_loss) and torch.allclose(model(c, s)[1], style_loss)

    cfg = _cfg(train_dirs, tmp_path / "d.safetensors", 6)
    cfg.identity_weight, cfg.style_weight, cfg.content_weight, cfg.checkpoint_every = 1.0, 0.0, 0.0, 6
    seen = []
    train(cfg, on_step=lambda step, terms: seen.append(terms["identity"]))
    assert len(seen) == 6 and seen[-1] < seen[0]
    with pytest.raises(ImpastoError, match="--identity-weight"):
        TrainConfig(content_dir="c", style_dir="s", output="d.safetensors", identity_weight=-1).validate()


def test_cli_train_every_flag_reaches_the_config(tmp_path, train_dirs, monkeypatch, capsys):
    import impasto.train.adain as T

    seen = {}
    real = T.train
    monkeypatch.setattr(T, "train", lambda cfg, **kw: seen.setdefault("cfg", cfg) and real(cfg, **kw))
    out = tmp_path / "d.safetensors"
    code = main(
        [
            "train",
            "adain",
            "--content-dir",
            str(train_dirs[0]),
            "--style-dir",
            str(train_dirs[1]),
            "-o",
            str(out),
            "--size",
            "32",
            "--image-size",
            "48",
            "--batch",
            "2",
            "--steps",
            "2",
            "--lr",
            "1e-3",
            "--lr-decay",
            "1e-4",
            "--content-weight",
            "2",
            "--style-weight",
            "5",
            "--identity-weight",
            "10",
            "--checkpoint",
            str(tmp_path / "c.ckpt"),
            "--checkpoint-every",
            "1",
            "--preview-every",
            "2",
            "--preview-dir",
            str(tmp_path / "p"),
            "--seed",
            "3",
            "--max-images",
            "1",
            "--device",
            "cpu",
            "--precision",
            "fp32",
            "--log-every",
            "1",
            "-q",
        ]
    )
    assert code == 0 and out.exists() and (tmp_path / "c.ckpt").exists() and any((tmp_path / "p").iterdir())
    c = seen["cfg"]
    assert (c.size, c.image_size, c.batch, c.steps, c.lr, c.lr_decay) == (32, 48, 2, 2, 1e-3, 1e-4)
    assert (c.content_weight, c.style_weight, c.identity_weight, c.seed, c.max_images) == (2, 5, 10, 3, 1)
    assert (c.device, c.precision, c.checkpoint_every, c.preview_every) == ("cpu", "fp32", 1, 2)
    assert "identity" in capsys.readouterr().err  # --log-every prints the identity term when it is on


# ---------------------------------------------------------------------------------------------------------------
# Training safety, encoder checks, batch API


def test_a_fresh_run_does_not_replace_a_checkpoint_and_resume_keeps_the_data_settings(train_dirs, tmp_path, capsys):
    out = tmp_path / "d.safetensors"
    train(_cfg(train_dirs, out, 1))
    before = load_checkpoint(str(out) + ".ckpt")
    args = [
        "train",
        "adain",
        "--content-dir",
        str(train_dirs[0]),
        "--style-dir",
        str(train_dirs[1]),
        "-o",
        str(out),
        "--size",
        "32",
        "--batch",
        "2",
        "--steps",
        "2",
        "--preview-every",
        "0",
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "-q",
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "exists" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert torch.equal(
        load_checkpoint(str(out) + ".ckpt")["decoder"]["net.1.weight"], before["decoder"]["net.1.weight"]
    )
    # A resumed run must keep the seed (its batches) and the crop size...
    assert main(args + ["--resume", "--seed", "7"]) == 2
    assert "--seed 0 (now 7)" in capsys.readouterr().err
    # ...but may change the loss weights (schedules).
    assert main(args + ["--resume", "--style-weight", "3"]) == 0
    assert load_checkpoint(str(out) + ".ckpt")["step"] == 2
    # A finished run resumed to the same step does nothing and says so.
    summary = train(_cfg(train_dirs, out, 2), resume=True)
    assert summary["steps_this_run"] == 0 and summary["step"] == 2
    assert main(args + ["--overwrite", "--steps", "1"]) == 0
    assert load_checkpoint(str(out) + ".ckpt")["step"] == 1


def test_bad_output_paths_fail_before_any_image_is_read(tmp_path, capsys):
    # The image folders do not exist: an error about them would mean the paths were checked too late.
    base = ["train", "adain", "--content-dir", str(tmp_path / "none"), "--style-dir", str(tmp_path / "none"), "-q"]
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    cases = [
        (["-o", str(tmp_path / "missing" / "d.safetensors")], "does not exist"),
        (["-o", str(tmp_path / "d.safetensors"), "--checkpoint", str(tmp_path / "missing" / "c.ckpt")], "--checkpoint"),
        (["-o", str(tmp_path / "d.safetensors"), "--preview-dir", str(a_file / "p")], "not a folder"),
        (["-o", str(tmp_path / "d.safetensors"), "--max-images", "0"], "--max-images"),
    ]
    for extra, message in cases:
        assert main(base + extra) == 2, extra
        err = capsys.readouterr().err
        assert message in err and "not a directory" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "d.safetensors").exists()


def test_an_interrupted_run_saves_what_it_did(train_dirs, tmp_path):
    from impasto.train.loop import TrainingInterrupted

    def stop_after_two(step, terms):
        if step == 2:
            raise KeyboardInterrupt

    out = tmp_path / "d.safetensors"
    cfg = _cfg(train_dirs, out, 5)
    cfg.checkpoint_every = 100
    with pytest.raises(TrainingInterrupted) as e:
        train(cfg, on_step=stop_after_two)
    assert e.value.saved and e.value.step == 2
    assert load_checkpoint(str(out) + ".ckpt")["step"] == 2
    assert load_decoder(out).vgg == "caffe"  # the encoder it was trained with is recorded


def test_the_cli_says_when_an_interruption_saved_nothing(train_dirs, tmp_path, monkeypatch, capsys):
    import impasto.train.adain.trainer as T

    monkeypatch.setattr(T.AdaINTrainer, "forward", lambda self, *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    out = tmp_path / "d.safetensors"
    code = main(
        [
            "train",
            "adain",
            "--content-dir",
            str(train_dirs[0]),
            "--style-dir",
            str(train_dirs[1]),
            "-o",
            str(out),
            "--size",
            "32",
            "--batch",
            "2",
            "--steps",
            "2",
            "--device",
            "cpu",
            "--precision",
            "fp32",
            "-q",
        ]
    )
    assert code == 130
    assert "no checkpoint written" in capsys.readouterr().err
    assert not out.exists() and not Path(str(out) + ".ckpt").exists()


def test_a_decoder_refuses_an_encoder_it_was_not_trained_with(tmp_path, images):
    path = tmp_path / "d.safetensors"
    save_decoder(Decoder(), path, metadata={"vgg": "caffe"})
    # Refused before any weights are fetched (torchvision's would need the network).
    with pytest.raises(ImpastoError, match="trained with the caffe VGG-19 weights"):
        _engine(path, weights="torchvision")
    _engine(path, weights="caffe")


def test_the_stylizer_leaves_a_passed_decoder_alone():
    dec = Decoder()
    before = {k: v.clone() for k, v in dec.state_dict().items()}
    s = AdaINEngine(Options(device="cpu", precision="bf16"), decoder=dec)
    assert all(p.dtype == torch.float32 and p.requires_grad for p in dec.parameters())
    assert all(torch.equal(v, before[k]) for k, v in dec.state_dict().items())
    assert next(s.net.decoder.parameters()).dtype == torch.bfloat16


def test_bf16_inference_is_close_to_fp32(decoder_file, images):
    outs = [
        _run(_engine(decoder_file, precision=p), images["content"], images["style"], size=96) for p in ("fp32", "bf16")
    ]
    assert outs[0].shape == outs[1].shape
    diff = (outs[0] - outs[1]).abs()
    assert float(diff.mean()) < 0.02 and float(diff.max()) < 0.25


def test_style_weights_share_overlapping_regions():
    torch.manual_seed(3)
    content = torch.randn(1, 8, 6, 6)
    codes = [mean_std(torch.randn(1, 8, 4, 4) * s + m) for s, m in ((2, 5), (0.5, -1))]
    ones = torch.ones(1, 1, 6, 6)
    blended = target_features(content, codes, style_weights=[3, 1])
    masked = target_features(content, codes, style_weights=[3, 1], masks=[ones, ones])
    assert torch.allclose(blended, masked, atol=1e-4)
    # A style of weight 0 claims no pixels: its region keeps the photo's features.
    left = torch.zeros(1, 1, 6, 6)
    left[..., :3] = 1
    out = target_features(content, codes, style_weights=[0, 1], masks=[left, 1 - left])
    assert torch.allclose(out[..., :3], content[..., :3], atol=1e-5)


def test_stylize_batch_in_the_python_api(decoder_file, images):
    import impasto

    outs = impasto.stylize_batch(
        [images["content"], images["style2"]],
        images["style"],
        method="adain",
        decoder=str(decoder_file),
        size=64,
        precision="fp32",
        device="cpu",
    )
    one = impasto.stylize(
        images["style2"],
        images["style"],
        method="adain",
        decoder=str(decoder_file),
        size=64,
        precision="fp32",
        device="cpu",
    )
    assert len(outs) == 2 and all(isinstance(o, Image.Image) for o in outs)
    assert outs[1].tobytes() == one.tobytes()
    gatys_outs = impasto.stylize_batch(
        [images["content"]], images["style"], method="gatys", size=32, steps=2, scales=1, device="cpu"
    )
    assert len(gatys_outs) == 1 and max(gatys_outs[0].size) == 32


def test_the_onnxruntime_engine_matches_the_pytorch_one(images, decoder_file, tmp_path, monkeypatch):
    pytest.importorskip("onnx", reason="onnx is not installed (make dev)")
    import dataclasses

    import numpy as np

    import impasto
    from impasto.methods.adain import uses_onnxruntime
    from impasto.methods.adain.runtime import OrtAdaINEngine

    monkeypatch.setenv("IMPASTO_CACHE", str(tmp_path / "cache"))
    opts = Options(decoder=str(decoder_file), device="cpu", precision="fp32", runtime="onnx")
    ort_engine = impasto.load("adain", decoder=str(decoder_file), device="cpu", precision="fp32", runtime="onnx")
    assert isinstance(ort_engine, OrtAdaINEngine) and uses_onnxruntime(opts)
    assert not uses_onnxruntime(Options(runtime="torch")) and not uses_onnxruntime(Options(precision="bf16"))
    torch_engine = AdaINEngine(opts)  # the same load options: the PyTorch engine ignores the runtime
    code_session = ort_engine.session()[0]
    encoded, encode = [], code_session.run
    code_session.run = lambda *a, **k: (encoded.append(1), encode(*a, **k))[1]
    for kw in ({"size": 64, "strength": 1.0}, {"size": 50, "strength": 0.4}):
        run = dataclasses.replace(opts, **kw)
        a = ort_engine.run(images["content"], [images["style"]], run).image
        b = torch_engine.run(images["content"], [images["style"]], run).image
        assert a.shape == tuple(b.shape) and np.abs(a - b.numpy()).max() < 1e-3, kw
    assert len(encoded) == 1  # the painting was encoded once for both pictures (as for the frames of a video)
    # Blends go to PyTorch, with the same result.
    two = dataclasses.replace(opts, size=48, style_weights=[1, 1])
    a = ort_engine.run(images["content"], [images["style"], images["style2"]], two).image
    b = torch_engine.run(images["content"], [images["style"], images["style2"]], two).image
    assert torch.allclose(a, b)


def test_the_command_line_adain_method_never_imports_torch(decoder_file, images, tmp_path, monkeypatch):
    pytest.importorskip("onnx", reason="onnx is not installed (make dev)")
    import subprocess
    import sys

    import impasto.export as export_module
    from impasto.export import cached_adain_parts

    monkeypatch.setenv("IMPASTO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(export_module, "CALIBRATION_SIZE", 64)
    # The first use exports (with torch) and quantizes; later ones only read the graphs.
    cached_adain_parts(decoder_file, int8=True)
    code = (
        "import sys; from impasto.cli import main; rc = main(sys.argv[1:]); "
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH'); sys.exit(rc)"
    )
    for precision in ("fp32", "int8"):
        out = tmp_path / f"{precision}.png"
        argv = [str(images["content"]), str(images["style"]), "-o", str(out), "--size", "48", "-q"]
        argv = ["stylize", *argv, "--method", "adain", "--decoder", str(decoder_file), "--precision", precision]
        run = subprocess.run([sys.executable, "-c", code, *argv, "--runtime", "onnx"], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip().splitlines()[-1] == "NO-TORCH"
        assert max(Image.open(out).size) == 48


def test_int8_runs_in_onnxruntime_close_to_fp32_and_is_the_default_where_the_cpu_has_8_bit_units(
    images, decoder_file, monkeypatch
):
    pytest.importorskip("onnx", reason="onnx is not installed (make dev)")
    import impasto
    import impasto.core.cache as cache
    import impasto.export as export_module
    from impasto.methods.adain import onnx_int8, uses_onnxruntime
    from impasto.methods.adain.runtime import OrtAdaINEngine

    monkeypatch.setattr(export_module, "CALIBRATION_SIZE", 64)
    fp32 = impasto.load("adain", decoder=str(decoder_file), precision="fp32", runtime="onnx")
    int8 = impasto.load("adain", decoder=str(decoder_file), precision="int8")
    assert isinstance(int8, OrtAdaINEngine) and onnx_int8(int8.options) and not onnx_int8(fp32.options)
    a = fp32.run(images["content"], [images["style"]], replace(fp32.options, size=64)).image
    b = int8.run(images["content"], [images["style"]], replace(int8.options, size=64)).image
    assert a.shape == b.shape and 0 < np.abs(a - b).mean() < 0.05
    # What onnxruntime does not run (a blend) goes to PyTorch, which has no int8: its own precision then.
    blend_opts = replace(int8.options, size=64, style_weights=[1, 1])
    blend = int8.run(images["content"], [images["style"], images["style2"]], blend_opts)
    assert max(blend.image.shape[-2:]) == 64
    with pytest.raises(ImpastoError, match="--precision int8 runs in onnxruntime"):
        impasto.load("adain", decoder=str(decoder_file), precision="int8", runtime="torch")
    # auto: int8 where the CPU has 8-bit dot-product units; PyTorch's bf16 where it has bf16 units only.
    for bf16, vnni, onnx, eight in ((True, True, True, True), (True, False, False, False), (False, False, True, False)):
        monkeypatch.setattr(cache, "cpu_flags_say_fast_bf16", lambda bf16=bf16: bf16)
        monkeypatch.setattr(cache, "cpu_flags_say_fast_int8", lambda vnni=vnni: vnni)
        auto = Options(decoder=str(decoder_file))
        assert (uses_onnxruntime(auto), onnx_int8(auto)) == (onnx, eight), (bf16, vnni)
