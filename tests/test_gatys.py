from pathlib import Path

import pytest
import torch
from PIL import Image

import impasto
from impasto.core.image import pil_to_tensor, tensor_to_pil
from impasto.errors import ImpastoError
from impasto.methods.gatys import engine as gatys
from impasto.metrics import content_distance, style_distance
from impasto.nets.vgg import VGGFeatures

EXAMPLES = Path(impasto.__file__).parent / "examples"


def run(images, styles=None, **kw):
    kw.setdefault("size", 64)
    kw.setdefault("steps", 8)
    kw.setdefault("tol", 0)
    kw.setdefault("device", "cpu")
    kw.setdefault("precision", "fp32")  # behaviour tests; bf16 has its own test
    return gatys.run(images["content"], styles or [images["style"]], gatys.Options(**kw))


def test_stylizing_moves_toward_the_style_and_keeps_the_content(images):
    result = run(images, size=96, steps=30)
    out = tensor_to_pil(result.image)
    assert out.size == (96, 64)
    photo_style = style_distance(images["content"], images["style"])
    painting_content = content_distance(Image.open(images["style"]).resize(out.size), images["content"])
    assert style_distance(out, images["style"]) < 0.5 * photo_style
    assert content_distance(out, images["content"]) < 0.7 * painting_content
    assert result.history[-1] < 0.5 * result.history[0]


def test_style_weight_trades_style_for_content(images):
    low = tensor_to_pil(run(images, steps=15, style_weight=1).image)
    high = tensor_to_pil(run(images, steps=15, style_weight=100).image)
    assert style_distance(high, images["style"]) < style_distance(low, images["style"])
    assert content_distance(low, images["content"]) < content_distance(high, images["content"])


def test_targets_are_computed_once(images, monkeypatch):
    calls = []
    original = VGGFeatures.forward
    monkeypatch.setattr(VGGFeatures, "forward", lambda self, x: calls.append(1) or original(self, x))
    run(images, [images["style"], images["style2"]], steps=5)
    assert len(calls) == 1 + 2 + 5  # content, two styles, one pass per step


def test_same_seed_same_output(images):
    a = run(images, init="noise", seed=3, steps=4).image
    b = run(images, init="noise", seed=3, steps=4).image
    c = run(images, init="noise", seed=4, steps=4).image
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_init_from_content_noise_or_file(images, tmp_path):
    content = run(images, steps=1, init="content", optimizer="adam", learning_rate=1e-6).image
    assert torch.allclose(content, pil_to_tensor(tensor_to_pil(content)), atol=1 / 255)
    reference = pil_to_tensor(Image.open(images["content"]).resize((64, 43), Image.LANCZOS))
    assert (content - reference).abs().mean() < 0.01
    noise = run(images, steps=1, init="noise", seed=0, optimizer="adam", learning_rate=1e-6).image
    assert (noise - reference).abs().mean() > 0.1
    from_file = run(images, steps=1, init=str(images["style"]), optimizer="adam", learning_rate=1e-6).image
    assert from_file.shape == reference.shape
    assert (from_file - reference).abs().mean() > 0.05
    with pytest.raises(ImpastoError, match="--init"):
        run(images, init=str(tmp_path / "missing.png"))


def test_adam_optimizer_reduces_the_loss_and_stays_in_range(images):
    result = run(images, optimizer="adam", steps=20, learning_rate=0.03)
    assert result.history[-1] < 0.7 * result.history[0]
    assert result.image.min() >= 0 and result.image.max() <= 1


def test_step_budget_and_convergence(images):
    assert run(images, steps=6).steps == 6
    converged = run(images, steps=200, tol=0.05)
    assert converged.stopped == "converged" and converged.steps < 200
    assert run(images, steps=12, tol=0).stopped == "budget"


def test_style_blend_weights(images):
    single = run(images, [images["style"]], steps=5).image
    blended_only_first = run(images, [images["style"], images["style2"]], steps=5, style_weights=[1, 0]).image
    assert torch.allclose(single, blended_only_first, atol=1e-5)
    mixed = run(images, [images["style"], images["style2"]], steps=5, style_weights=[1, 1]).image
    assert not torch.allclose(single, mixed, atol=1e-3)


def test_layer_choice_and_per_layer_weights(images):
    only_first = run(images, steps=5, style_layer_weights=[1, 0, 0, 0, 0]).image
    one_layer = run(images, steps=5, style_layers=["relu1_1"]).image
    assert torch.allclose(only_first, one_layer, atol=1e-5)
    two_content = run(images, steps=5, content_layers=["relu2_2", "relu4_2"], content_layer_weights=[0, 1]).image
    default = run(images, steps=5).image
    assert torch.allclose(two_content, default, atol=1e-5)


def test_style_scale_and_size(images):
    content, styles = gatys.prepare_images(images["content"], [images["style"]], 80, 0.5)
    assert content.shape[-2:] == (53, 80)
    area = styles[0].shape[-1] * styles[0].shape[-2]
    assert abs(area - 0.25 * 53 * 80) < 40
    full, _ = gatys.prepare_images(images["content"], [images["style"]], None, 1.0)
    assert full.shape[-2:] == (64, 96)
    a = run(images, steps=5, style_scale=0.5).image
    b = run(images, steps=5, style_scale=2.0).image
    assert not torch.allclose(a, b, atol=1e-3)


def test_loss_weights_mean_the_same_at_any_resolution():
    """Each loss term of the same picture pair stays of the same magnitude when the resolution doubles.

    Sums instead of means, or Grams not divided by the positions, would change the terms 4- to 16-fold.
    """
    from conftest import EXAMPLES

    content, style = EXAMPLES / "chelsea.png", EXAMPLES / "swirls.png"
    losses = {}
    for size in (128, 256):
        options = gatys.Options(
            size=size, steps=1, scales=1, init=str(style), optimizer="adam", learning_rate=1e-9, device="cpu"
        )
        losses[size] = gatys.run(content, [style], options).losses  # the painting, scored as an output
    for term in ("content", "style", "tv"):
        assert losses[128][term] > 0
        assert 0.5 < losses[256][term] / losses[128][term] < 2, term


def test_tv_weight_smooths_and_pooling_and_weights_matter(images):
    from impasto.losses import TVLoss

    plain = TVLoss()(run(images, steps=10).image)
    smooth = TVLoss()(run(images, steps=10, tv_weight=2000).image)
    assert smooth < 0.7 * plain
    avg = run(images, steps=3, pooling="avg").image
    assert not torch.allclose(avg, run(images, steps=3).image, atol=1e-3)
    other_norm = run(images, steps=3, weights_normalization="torchvision").image
    assert not torch.allclose(other_norm, run(images, steps=3).image, atol=1e-3)


def test_small_images(images, tmp_path):
    with pytest.raises(ImpastoError, match="too small"):
        run(images, size=12)
    narrow = tmp_path / "narrow.png"
    Image.open(images["style"]).resize((400, 5)).save(narrow)
    assert run(images, [narrow], steps=2).steps == 2  # enlarged to 16 px on its short side


def test_callback_and_interrupt_keep_the_last_iterate(images):
    seen = []

    def callback(p):
        seen.append((p.step, set(p.losses)))
        if p.step == 3:
            raise KeyboardInterrupt

    result = gatys.run(images["content"], [images["style"]], gatys.Options(size=64, steps=10), callback=callback)
    assert result.stopped == "interrupted" and result.steps == 3
    assert seen[0] == (1, {"content", "style", "tv", "total"})
    assert result.image.shape == (1, 3, 43, 64)


def test_fp16_gradients_do_not_underflow():
    # At 256 px half of an unscaled fp16 gradient underflows (cosine 0.5 to fp32's); loss scaling keeps it whole.
    from impasto.core.image import load_image

    photo = load_image(str(EXAMPLES / "chelsea.png"))
    painting = load_image(str(EXAMPLES / "swirls.png"))
    steps = {}
    for precision in ("fp32", "fp16"):
        opts = gatys.Options(size=256, steps=1, scales=1, tol=0, device="cpu", precision=precision)
        out = gatys.run(photo, [painting], opts)
        assert torch.isfinite(out.image).all() and out.losses["total"] > 0
        start = gatys.prepare_images(photo, [], 256, 1.0)[0]
        steps[precision] = (out.image - start).flatten()
    a, b = steps["fp32"], steps["fp16"]
    assert float(a @ b / (a.norm() * b.norm())) > 0.98


@pytest.mark.parametrize(
    "options, message",
    [
        ({"size": 0}, "--size"),
        ({"size": 5000}, "--max-size 5000"),
        ({"steps": 0}, "--steps"),
        ({"style_weight": -1.0}, "--style-weight"),
        ({"content_weight": float("nan")}, "--content-weight"),
        ({"style_weights": [1.0, 2.0]}, "2 values for 1 style"),
        ({"style_weights": [float("nan")]}, "finite"),
        ({"style_layer_weights": [1.0]}, "1 values for 5 style layers"),
        ({"optimizer": "sgd"}, "optimizer"),
        ({"style_layers": ["relu6_1"]}, "relu6_1"),
        ({"style_scale": 0.0}, "--style-scale"),
        ({"style_scale": 40.0}, "--style-scale 40"),
        ({"seed": -1}, "--seed"),
        ({"seed": 2**64}, "--seed"),
        ({"max_size": 0}, "--max-size"),
        ({"device": "cuda"}, "cuda") if not torch.cuda.is_available() else ({"device": "tpu"}, "device"),
        ({"device": "tpu"}, "unknown device"),
    ],
)
def test_bad_options(images, options, message):
    with pytest.raises(ImpastoError, match=message):
        run(images, **options)


def test_python_api_accepts_paths_pil_and_tensors(images):
    from_path = impasto.stylize(images["content"], images["style"], size=64, steps=3, tol=0, device="cpu")
    pil = Image.open(images["content"])
    tensor = pil_to_tensor(Image.open(images["style"]))
    from_objects = impasto.stylize(pil, [tensor[0]], size=64, steps=3, tol=0, device="cpu")
    assert isinstance(from_path, Image.Image) and from_path.size == (64, 43)
    assert from_path.tobytes() == from_objects.tobytes()
    with pytest.raises(ImpastoError, match="no option 'colour'"):
        impasto.stylize(pil, tensor, colour=True)
    with pytest.raises(ImpastoError, match="unknown method"):
        impasto.stylize(pil, tensor, method="magic")
    assert "gatys" in impasto.available_methods()


def test_scale_plans():
    o = gatys.Options
    assert gatys.plan_scales(512, o()) == [128, 256, 512]
    assert gatys.plan_scales(384, o()) == [192, 384]
    assert gatys.plan_scales(100, o()) == [100]
    assert gatys.plan_scales(512, o(scales=1)) == [512]
    assert gatys.plan_scales(1024, o(scales=2)) == [512, 1024]
    assert gatys.plan_scales(512, o(min_size=64)) == [64, 128, 256, 512]
    assert gatys.plan_scales(512, o(scale_steps=[10, 5])) == [256, 512]
    assert gatys.plan_steps(3, o(steps=270)) == [154, 77, 39]
    assert sum(gatys.plan_steps(4, o(steps=301))) == 301
    assert gatys.plan_steps(2, o(scale_steps=[7, 3])) == [7, 3]
    # The budgets add up to --steps exactly; fewer steps than scales keeps the finest scales.
    for steps in range(1, 12):
        sizes = gatys.plan_scales(512, o(steps=steps))
        budgets = gatys.plan_steps(len(sizes), o(steps=steps))
        assert sum(budgets) == steps and min(budgets) >= 1 and sizes[-1] == 512, steps
    assert gatys.plan_scales(512, o(steps=2)) == [256, 512]
    # No scale may take the shorter side below what VGG's deepest layer needs (16 px for relu5_1).
    assert gatys.plan_scales(512, o(), short=40) == [256, 512]
    with pytest.raises(ImpastoError, match="at most 6 fit"):
        gatys.plan_scales(512, o(scales=8, steps=100))
    with pytest.raises(ImpastoError, match="--scale-steps"):
        gatys.plan_scales(512, o(scale_steps=[1] * 4), short=64)
    with pytest.raises(ImpastoError, match="fewer than --scales"):
        gatys.plan_scales(512, o(scales=3, steps=2))


def test_a_picture_too_thin_for_vgg_is_a_one_line_error(tmp_path):
    thin = tmp_path / "thin.png"
    Image.new("RGB", (400, 10), "gray").save(thin)
    with pytest.raises(ImpastoError, match="shorter side must be at least 16 px"):
        gatys.run(thin, [thin], gatys.Options(size=400, device="cpu"))


def test_a_content_mask_does_not_change_how_styles_blend(images):
    from impasto.core.weights import load_weights

    opts = gatys.Options(style_weights=[3, 1])
    layers = list(dict.fromkeys([*opts.content_layers, *opts.style_layers]))
    net = VGGFeatures(load_weights(), layers)
    content = gatys.prepare_images(images["content"], [], 64, 1.0)[0]
    styles = [gatys.prepare_images(s, [], 64, 1.0)[0] for s in (images["style"], images["style2"])]
    x = (content + 0.1 * torch.randn(content.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    plain = gatys.perceptual_loss(net, opts).set_targets(content, styles, opts.style_weights)(x)[1]
    # A content mask that keeps nothing: the same objective as no mask at all.
    ones = [torch.ones(1, 1, *content.shape[-2:])]
    masked = gatys.perceptual_loss(net, opts).set_targets(content, styles, opts.style_weights, ones)(x)[1]
    for k in ("content", "style", "total"):
        assert masked[k] == pytest.approx(plain[k], rel=1e-4), k


def test_coarse_to_fine_runs_each_scale_with_its_own_targets(images, monkeypatch):
    calls = []
    original = VGGFeatures.forward
    monkeypatch.setattr(VGGFeatures, "forward", lambda self, x: calls.append(tuple(x.shape[-2:])) or original(self, x))
    result = run(images, size=96, min_size=32, scale_steps=[6, 3])
    assert result.scales == [48, 96]
    assert result.steps == 9 and result.image.shape == (1, 3, 64, 96)
    content_shapes = [s for s in calls if s in ((32, 48), (64, 96))]
    assert content_shapes.count((32, 48)) == 1 + 6 and content_shapes.count((64, 96)) == 1 + 3
    assert len(calls) == 2 * 2 + 9  # (content + style) per scale, one pass per step
    coarse_to_fine = tensor_to_pil(result.image)
    assert style_distance(coarse_to_fine, images["style"]) < 0.8 * style_distance(images["content"], images["style"])


def test_interrupt_at_a_coarse_scale_returns_the_final_size(images):
    def stop(p):
        if p.step == 2:
            raise KeyboardInterrupt

    options = gatys.Options(size=96, min_size=32, scale_steps=[5, 5], device="cpu")
    result = gatys.run(images["content"], [images["style"]], options, callback=stop)
    assert result.stopped == "interrupted" and result.steps == 2
    assert result.image.shape == (1, 3, 64, 96)


def test_bf16_precision_stays_close_to_fp32(images, monkeypatch):
    from impasto.core import device as D

    monkeypatch.setattr(D, "cpu_has_fast_bf16", lambda: True)
    assert D.resolve_precision("auto", torch.device("cpu")) == torch.bfloat16
    monkeypatch.setattr(D, "cpu_has_fast_bf16", lambda: False)
    assert D.resolve_precision("auto", torch.device("cpu")) is None
    assert D.resolve_precision("fp32", torch.device("cpu")) is None
    full = tensor_to_pil(run(images, size=64, steps=15, precision="fp32").image)
    half = tensor_to_pil(run(images, size=64, steps=15, precision="bf16").image)
    assert full.tobytes() != half.tobytes()  # autocast really changed the arithmetic
    for measure, ref in ((style_distance, images["style"]), (content_distance, images["content"])):
        a, b = measure(full, ref), measure(half, ref)
        assert abs(a - b) < 0.15 * a + 0.01


@pytest.mark.parametrize(
    "options, message",
    [
        ({"precision": "int8"}, "precision"),
        ({"scales": 0}, "--scales"),
        ({"min_size": 8}, "--min-size"),
        ({"scale_steps": [3, 0]}, "--scale-steps"),
        ({"scales": 3, "scale_steps": [3, 3]}, "2 values for 3 scales"),
        ({"upsample": "nearest"}, "--upsample"),
    ],
)
def test_bad_scale_and_precision_options(images, options, message):
    with pytest.raises(ImpastoError, match=message):
        run(images, **options)


def test_preserve_color_luminance_keeps_the_photos_chroma(images):
    from impasto.core.color import rgb_to_yiq

    content = pil_to_tensor(Image.open(images["content"]).resize((64, 43), Image.LANCZOS))
    plain = run(images, steps=8).image
    kept = run(images, steps=8, preserve_color="luminance").image
    chroma = lambda t: rgb_to_yiq(t)[:, 1:]  # noqa: E731
    assert (chroma(kept) - chroma(content)).abs().mean() < 0.02  # clamping to [0, 1] aside, identical
    assert (chroma(plain) - chroma(content)).abs().mean() > 2 * (chroma(kept) - chroma(content)).abs().mean()
    # The brightness is still stylized.
    assert (rgb_to_yiq(kept)[:, :1] - rgb_to_yiq(content)[:, :1]).abs().mean() > 0.02


def test_preserve_color_histogram_recolours_the_style(images):
    from impasto.core.color import match_histogram

    content = pil_to_tensor(Image.open(images["content"]))
    style = pil_to_tensor(Image.open(images["style"]))
    recoloured = match_histogram(style, content)
    flat = lambda t: t[0].reshape(3, -1).double()  # noqa: E731
    assert torch.allclose(flat(recoloured).mean(1), flat(content).mean(1), atol=0.02)
    assert torch.allclose(torch.cov(flat(recoloured)), torch.cov(flat(content)), atol=0.01)
    plain = run(images, steps=8).image
    kept = run(images, steps=8, preserve_color="histogram").image
    photo_mean = flat(content).mean(1)
    assert (flat(kept).mean(1) - photo_mean).abs().sum() < (flat(plain).mean(1) - photo_mean).abs().sum()


def test_mean_cov_style_loss_moves_toward_the_style(images):
    layers = ["relu1_1", "relu2_1", "relu3_1"]  # keeps the per-step eigendecompositions small in a test
    result = run(images, size=96, steps=12, style_loss="mean-cov", style_layers=layers)
    out = tensor_to_pil(result.image)
    assert style_distance(out, images["style"]) < 0.7 * style_distance(images["content"], images["style"])
    with pytest.raises(ImpastoError, match="--style-loss"):
        run(images, style_loss="wasserstein")


def _half_masks(tmp_path, size=(96, 64)):
    left = Image.new("L", size, 0)
    left.paste(255, (0, 0, size[0] // 2, size[1]))
    right = Image.eval(left, lambda v: 255 - v)
    left.save(tmp_path / "left.png")
    right.save(tmp_path / "right.png")
    return tmp_path / "left.png", tmp_path / "right.png"


def test_masks_put_each_style_in_its_region(images, tmp_path):
    left, right = _half_masks(tmp_path)
    out = run(images, [images["style"], images["style2"]], size=96, steps=25, masks=[left, right]).image[0]
    swapped = run(images, [images["style2"], images["style"]], size=96, steps=25, masks=[left, right]).image[0]
    blueness = lambda t: float((t[2] - t[0]).mean())  # noqa: E731  (style: blue swirls; style2: its warm inverse)
    half = out.shape[-1] // 2
    assert blueness(out[:, :, :half]) > blueness(out[:, :, half:]) + 0.05
    assert blueness(swapped[:, :, half:]) > blueness(swapped[:, :, :half]) + 0.05


def test_soft_masks_blend_the_styles_across_the_ramp(images, tmp_path):
    import numpy as np

    ramp = np.tile(np.linspace(255, 0, 96).astype(np.uint8)[None, :], (64, 1))  # white (style) left, black right
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    Image.fromarray(255 - ramp).save(tmp_path / "inverse.png")
    masks = [tmp_path / "ramp.png", tmp_path / "inverse.png"]
    out = run(images, [images["style"], images["style2"]], size=96, steps=25, masks=masks).image[0]
    swapped = run(images, [images["style2"], images["style"]], size=96, steps=25, masks=masks).image[0]
    # Blueness of out minus swapped: the photo's own colours cancel, what is left is where the blue painting went.
    d = [float((out[2] - out[0] - swapped[2] + swapped[0])[:, i * 32 : (i + 1) * 32].mean()) for i in range(3)]
    # It fades from left to right: the middle third is a mixture of both paintings.
    assert d[0] > d[1] + 0.03 and d[1] > d[2] + 0.03, d


def test_content_mask_keeps_the_photo(images, tmp_path):
    left, _ = _half_masks(tmp_path)
    out = run(images, size=96, steps=10, content_mask=left).image[0]
    photo = pil_to_tensor(Image.open(images["content"]))[0]
    assert (out[:, :, :40] - photo[:, :, :40]).abs().max() < 1e-3
    assert (out[:, :, 56:] - photo[:, :, 56:]).abs().mean() > 0.03
    with pytest.raises(ImpastoError, match="2 masks for 1 style"):
        run(images, masks=[left, left])


def test_detail_upsampling_starts_the_next_scale_sharp(images):
    content = gatys.prepare_images(images["content"], [], 96, 1.0)[0]
    coarse = gatys.resize_image(content, (32, 48))

    def error(x):
        return float((x - content).abs().mean())

    # The photo's own detail comes back: from the photo's coarse version, "detail" rebuilds the photo.
    assert error(gatys.upsample(coarse, content, "detail")) < 0.2 * error(gatys.upsample(coarse, content, "bicubic"))
    # A stylized coarse result keeps its own colours (only the finer band is the photo's).
    painted = 1 - coarse
    up = gatys.upsample(painted, content, "detail")
    assert float((up - gatys.resize_image(painted, (64, 96))).mean().abs()) < 0.02
    # Same size (no enlargement): nothing added.
    assert torch.equal(gatys.upsample(content, content, "detail"), gatys.resize_image(content, (64, 96)))
    a = run(images, size=96, min_size=32, scale_steps=[4, 2], upsample="detail")
    b = run(images, size=96, min_size=32, scale_steps=[4, 2], upsample="bicubic")
    assert not torch.equal(a.image, b.image)
