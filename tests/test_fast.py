"""Fast per-style networks: the network, training on the shared loop, model files, the method and its commands."""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import impasto
from impasto.api import make_options
from impasto.cli import main
from impasto.core.image import pil_to_tensor
from impasto.errors import ImpastoError
from impasto.methods import fast as fast_method
from impasto.methods.fast import Options, builtin_path, builtin_styles, model_names, parse_model
from impasto.methods.fast.engine import FastEngine
from impasto.methods.fast.model import load_model, save_model
from impasto.nets.fast import MAX_LAYER_WEIGHT, STYLE_LAYERS, TransformerNet
from impasto.train.fast import Config
from impasto.train.fast.trainer import FastTrainer, painting_tensor, sample_batch, train
from impasto.train.loop import load_checkpoint


def _perturbed_net(n_styles: int = 2, width: int = 4, seed: int = 0, upsample: str = "nearest") -> TransformerNet:
    """A network whose conditioning is not the identity (a fresh one ignores its style and layer inputs)."""
    torch.manual_seed(seed)
    net = TransformerNet(n_styles, width, 1, upsample=upsample)
    with torch.no_grad():
        net.cond[-1].weight.normal_(0, 0.3)
        net.cond[-1].bias.normal_(0, 0.3)
    return net.eval()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fast") / "two.safetensors"
    save_model(_perturbed_net(), ["swirl", "blocks"], path, image_size=48, recipe={"steps": 0})
    return path


@pytest.fixture(scope="module")
def train_dirs(tmp_path_factory, images) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("fast_train")
    content = root / "content"
    content.mkdir()
    for i, name in enumerate(["content", "style2"]):
        Image.open(images[name]).convert("RGB").save(content / f"c{i}.png")
    (content / "notes.txt").write_text("ignored")
    return content, [str(images["style"]), str(images["style2"])]


def _cfg(dirs, out: Path, steps: int, **kw) -> Config:
    settings = dict(
        style=dirs[1],
        content_dir=str(dirs[0]),
        output=str(out),
        width=4,
        blocks=1,
        size=32,
        image_size=48,
        style_size=64,
        batch=2,
        steps=steps,
        lr=3e-3,
        checkpoint_every=1,
        preview_every=2,
        device="cpu",
        precision="fp32",
        workers=0,
    )
    settings.update(kw)
    return Config(**settings)


# ---------------------------------------------------------------------------------------------------------------
# The network


@pytest.mark.parametrize("h,w", [(64, 48), (37, 50), (8, 9), (5, 7), (1, 3)])
def test_the_network_keeps_any_size(h, w):
    from impasto.nets.fast import pad_to_min_side

    net = _perturbed_net()
    x = torch.rand(2, 3, h, w)
    y = net(pad_to_min_side(x), torch.tensor([[1.0, 0.0], [0.3, 0.7]]), torch.ones(2, 4))[..., :h, :w]
    assert y.shape == (2, 3, h, w) and 0 <= float(y.detach().min()) and float(y.detach().max()) <= 1


def test_style_and_layer_inputs_change_the_output_and_styles_blend_linearly_in_the_norms():
    net = _perturbed_net()
    x = torch.rand(1, 3, 32, 32)
    one, two = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    a, b = net(x, one, torch.ones(1, 4)), net(x, two, torch.ones(1, 4))
    assert float((a - b).abs().mean()) > 1e-3
    coarse = net(x, one, torch.tensor([[0.0, 0.0, 3.0, 3.0]]))
    assert float((a - coarse).abs().mean()) > 1e-3
    # A half-and-half blend mixes each norm's parameters half and half.
    half = net.norm_parameters(torch.tensor([[0.5, 0.5]]), torch.ones(1, 4))
    pa, pb = net.norm_parameters(one, torch.ones(1, 4)), net.norm_parameters(two, torch.ones(1, 4))
    for (s, t), (sa, ta), (sb, tb) in zip(half, pa, pb):
        assert torch.allclose(s, (sa + sb) / 2, atol=1e-6) and torch.allclose(t, (ta + tb) / 2, atol=1e-6)


def test_a_painting_given_as_an_embedding_paints_as_its_row_of_the_table():
    """embedding_parameters + paint: a painting outside the table (found or predicted apart) as if it were in it."""
    net = _perturbed_net()
    x, layers = torch.rand(2, 3, 20, 28), torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 2.0, 1.0, 3.0]])
    rows = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    expected = net(x, rows, layers)
    got = net.paint(x, net.embedding_parameters(net.embedding[[1, 0]], layers))
    assert got.shape == x.shape and torch.allclose(got, expected, atol=1e-6)
    other = net.paint(x, net.embedding_parameters(net.embedding[[1, 0]] + 1, layers))
    assert float((other - expected).abs().mean()) > 1e-3


def test_the_photo_share_mixes_the_photo_into_the_output_and_the_file_keeps_it(tmp_path):
    net = _perturbed_net()
    shared = TransformerNet(2, 4, 1, photo=0.25)
    shared.load_state_dict(net.state_dict())
    x, style, layers = torch.rand(1, 3, 20, 28), torch.tensor([[1.0, 0.0]]), torch.ones(1, 4)
    plain = net(x, style, layers)
    assert torch.allclose(shared(x, style, layers), 0.75 * plain + 0.25 * x, atol=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as bf16 training and inference run it
        assert torch.allclose(shared(x, style, layers).float(), 0.75 * plain + 0.25 * x, atol=0.03)
    back = load_model(save_model(shared, ["a", "b"], tmp_path / "p.safetensors", 48, {})).net
    assert back.photo == 0.25
    assert load_model(save_model(net, ["a", "b"], tmp_path / "n.safetensors", 48, {})).net.photo == 0
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="photo share"):
            TransformerNet(2, 8, 1, photo=bad)


def test_a_fresh_network_is_plain_instance_norm_and_has_no_transposed_convolution():
    net = TransformerNet(3, 4, 1)
    for scale, shift in net.norm_parameters(torch.eye(3)[:1], torch.rand(1, 4)):
        assert torch.equal(scale, torch.ones_like(scale)) and torch.equal(shift, torch.zeros_like(shift))
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in net.modules())


def test_output_and_upsampling_layers_run_in_2x2_blocks_as_the_plain_layers_would():
    from impasto.nets.blocks import conv_in_blocks
    from impasto.nets.fast import ConvLayer, UpConv
    from impasto.nets.student import StudentDecoder

    torch.manual_seed(1)
    out, up = ConvLayer(5, 3, 9), UpConv(6, 4)
    x = torch.rand(2, 5, 12, 18, requires_grad=True)
    plain = torch.nn.Sequential.forward(out, x)  # reflection padding, then the 9x9 convolution
    blocked = conv_in_blocks(x, out[1], out[0].padding[0])
    assert blocked.shape == plain.shape and torch.allclose(blocked, plain, atol=1e-5)
    # Training goes through the same form: the gradients reach the plain layer's weights unchanged.
    (g_plain,) = torch.autograd.grad(plain.square().sum(), out[1].weight)
    (g_blocked,) = torch.autograd.grad(blocked.square().sum(), out[1].weight)
    assert torch.allclose(g_blocked, g_plain, atol=1e-4)
    # Nearest-neighbour doubling then a 3x3 convolution with reflected edges, including the edges.
    z = torch.rand(2, 6, 5, 7)
    doubled, plain_up = up(z), torch.nn.Sequential.forward(up, z)
    assert torch.allclose(doubled, plain_up, atol=1e-5)
    (g_plain,) = torch.autograd.grad(plain_up.square().sum(), up[1][1].weight)
    (g_doubled,) = torch.autograd.grad(doubled.square().sum(), up[1][1].weight)
    assert torch.allclose(g_doubled, g_plain, atol=1e-4)
    # Bilinear doubling (a network's `upsample`), its edge repeated, then the 3x3 convolution: the same cost.
    smooth = UpConv(6, 4, smooth=True)
    ref = smooth[1][1](torch.nn.functional.pad(smooth[0](z), (1, 1, 1, 1), mode="replicate"))
    assert torch.allclose(smooth(z), ref, atol=1e-5)
    # The compact AdaIN model's decoder: its RGB output in blocks too.
    decoder, f = StudentDecoder((4, 4, 8, 8)).eval(), torch.rand(1, 8, 3, 5)
    assert torch.allclose(decoder(f), decoder.net(f), atol=1e-5)


def test_bilinear_doubling_lets_the_strokes_follow_a_picture_moved_by_a_pixel():
    """The built-in network doubles bilinearly, so its strokes follow a picture moved by one pixel (about as well as
    one moved by its stride, 4 px). The same weights with nearest-neighbour doubling tie the strokes to the 4 px grid:
    a picture moved by one pixel is painted anew."""
    m = load_model(builtin_path())
    assert m.net.upsample == "bilinear"
    img = Image.open(Path(fast_method.__file__).parents[2] / "examples" / "chelsea.png").convert("RGB")
    x = torch.from_numpy(np.asarray(img.resize((136, 96)), np.float32) / 255).permute(2, 0, 1)[None]
    style, layers = torch.eye(len(m.names))[:1], torch.ones(1, 4)

    def moved_error(net: TransformerNet, d: int) -> float:
        with torch.no_grad():
            a = net(x[..., 8:-8], style, layers)  # the picture, and the picture moved right by d px
            b = net(x[..., 8 - d : x.shape[-1] - 8 - d], style, layers)
        return float((a[..., 12:-12, 12:-20] - b[..., 12:-12, 12 + d : b.shape[-1] - 20 + d]).square().mean())

    nearest, bilinear = (
        TransformerNet(len(m.names), m.net.width, m.net.n_blocks, m.net.decoder, upsample=kind)
        for kind in ("nearest", "bilinear")
    )
    for net in (nearest, bilinear):
        net.load_state_dict(m.net.state_dict())
        net.eval()
    near1, near4, bi1, bi4 = (moved_error(net, d) for net in (nearest, bilinear) for d in (1, 4))
    # (a move of 4 px is not painted exactly alike either: the instance norms see a slightly different crop)
    assert near1 > 5 * near4 and bi1 < near1 / 4 and bi1 < 2 * bi4
    with pytest.raises(ValueError, match="bad upsampling"):
        TransformerNet(1, 4, 1, upsample="cubic")


def test_the_torch_free_declarations_match_the_network():
    assert fast_method.MAX_LAYER_WEIGHT == MAX_LAYER_WEIGHT
    assert len(fast_method.LAYER_OPTIONS) == len(STYLE_LAYERS)
    from impasto.nets.fast import STATS_SIZE, STRIDE, UPSAMPLE

    assert fast_method.GRID == STRIDE and fast_method.STATS_SIZE == STATS_SIZE and fast_method.UPSAMPLE == UPSAMPLE
    from impasto.train.fast import arbitrary

    assert arbitrary.Config.stats_size == STATS_SIZE


# ---------------------------------------------------------------------------------------------------------------
# Model files


def test_model_file_round_trip_and_names_without_torch(model_file, tmp_path):
    m = load_model(model_file)
    assert m.names == ["swirl", "blocks"] and m.image_size == 48 and m.recipe == {"steps": 0}
    assert model_names(model_file) == ["swirl", "blocks"]
    ref = _perturbed_net()
    x = torch.rand(1, 3, 24, 24)
    style, layers = torch.tensor([[1.0, 0.0]]), torch.ones(1, 4)
    # Stored in fp16: the same network up to half precision.
    assert float((m.net(x, style, layers) - ref(x, style, layers)).abs().max()) < 2e-2

    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a model")
    with pytest.raises(ImpastoError, match="not a readable safetensors"):
        load_model(bad)
    with pytest.raises(ImpastoError, match="not an impasto fast-network file"):
        model_names(bad)
    with pytest.raises(ImpastoError, match="no such file"):
        load_model(tmp_path / "missing.safetensors")

    # A narrower decoder (the faster shape) is recorded in the file and comes back the same.
    lean = TransformerNet(2, 8, 1, decoder=(8, 4))
    assert lean.up[1][1][1].out_channels == 4 and lean.conv_out[1].in_channels == 4
    lean_file = save_model(lean, ["a", "b"], tmp_path / "lean.safetensors", 48, {})
    back = load_model(lean_file).net
    assert back.decoder == (8, 4)
    assert float((back(x, style, layers) - lean(x, style, layers)).abs().max()) < 2e-2
    # So is bilinear doubling; files without the record are nearest-neighbour ones.
    assert m.net.upsample == "nearest"
    smooth = TransformerNet(2, 4, 1, upsample="bilinear")
    back = load_model(save_model(smooth, ["a", "b"], tmp_path / "smooth.safetensors", 48, {})).net
    assert back.upsample == "bilinear" and back.up[0].smooth
    assert float((back(x, style, layers) - smooth(x, style, layers)).abs().max()) < 2e-2


def test_model_specs(model_file):
    assert parse_model(str(model_file)) == [(str(model_file), "swirl", 1.0)]
    assert parse_model(f"{model_file}#blocks:0.3,{model_file}#swirl:0.7") == [
        (str(model_file), "blocks", 0.3),
        (str(model_file), "swirl", 0.7),
    ]
    for spec, message in [
        ("no_such_style", "not a built-in style"),
        (f"{model_file}#nope", "holds swirl, blocks"),
        (f"{model_file}:-1", "finite number >= 0"),
        (f"{model_file}:0", "at least one weight"),
        ("", "empty style name"),
    ]:
        with pytest.raises(ImpastoError, match=message):
            parse_model(spec)


# ---------------------------------------------------------------------------------------------------------------
# The method


@pytest.fixture(scope="module")
def engine(model_file) -> FastEngine:
    # The PyTorch engine (impasto.load picks onnxruntime on a CPU when it is installed: tested apart below).
    return FastEngine(Options(model=str(model_file), device="cpu", precision="fp32"))


def _run(engine, content, **options) -> torch.Tensor:
    opts = make_options("fast", device="cpu", precision="fp32", **options)
    return engine.run(content, [], opts).image


def test_strength_zero_gives_the_photo_back(engine, images, model_file):
    photo = pil_to_tensor(Image.open(images["content"]).convert("RGB"))
    out = _run(engine, images["content"], model=str(model_file), size=None, strength=0.0)
    assert torch.allclose(out, photo, atol=1e-6)
    full = _run(engine, images["content"], model=str(model_file), size=None)
    half = _run(engine, images["content"], model=str(model_file), size=None, strength=0.5)
    assert torch.allclose(half, (full + photo) / 2, atol=1e-5)


def test_any_size_blends_and_layer_sliders(engine, images, model_file):
    a = _run(engine, images["content"], model=f"{model_file}#swirl", size=80)
    assert a.shape == (1, 3, 53, 80)
    b = _run(engine, images["content"], model=f"{model_file}#blocks", size=80)
    blend = _run(engine, images["content"], model=f"{model_file}#swirl:1,{model_file}#blocks:1", size=80)
    assert float((a - b).abs().mean()) > 1e-3
    assert float((blend - a).abs().mean()) > 1e-4 and float((blend - b).abs().mean()) > 1e-4
    coarse = _run(engine, images["content"], model=f"{model_file}#swirl", size=80, fine=0.0, coarse=3.0)
    assert float((coarse - a).abs().mean()) > 1e-3


def test_large_pictures_are_painted_at_the_working_scale(engine, images, model_file):
    """Strokes keep their size relative to the picture: a picture 3x the model's scale, shrunk back, looks like
    the picture painted at the model's scale; painted at full size (--work-size 0) it does not."""
    spec = f"{model_file}#swirl"
    small = _run(engine, images["content"], model=spec, size=72)  # 72x48: the model's scale (shorter side 48)
    big = _run(engine, images["content"], model=spec, size=216, detail=0.0)
    direct = _run(engine, images["content"], model=spec, size=216, work_size=0)
    assert big.shape == direct.shape == (1, 3, 144, 216)

    def shrunk(t):
        return F.interpolate(t, size=small.shape[-2:], mode="area")

    assert float((shrunk(big) - small).abs().mean()) < 0.5 * float((shrunk(direct) - small).abs().mean())
    with_detail = _run(engine, images["content"], model=spec, size=216, detail=1.0)
    assert float((with_detail - big).abs().mean()) > 1e-3  # the photo's fine detail came back


def test_preserve_color_masks_and_content_mask(engine, images, model_file, tmp_path):
    from impasto.core.color import rgb_to_yiq

    photo = pil_to_tensor(Image.open(images["content"]).convert("RGB"))
    out = _run(engine, images["content"], model=str(model_file), size=None, preserve_color="luminance")
    assert torch.allclose(rgb_to_yiq(out)[:, 1:], rgb_to_yiq(photo)[:, 1:], atol=0.02)
    left = np.zeros((64, 96), np.uint8)
    left[:, :48] = 255
    Image.fromarray(left).save(tmp_path / "left.png")
    Image.fromarray(255 - left).save(tmp_path / "right.png")
    spec = f"{model_file}#swirl,{model_file}#blocks"
    regions = _run(
        engine, images["content"], model=spec, size=None, masks=[tmp_path / "left.png", tmp_path / "right.png"]
    )
    a = _run(engine, images["content"], model=f"{model_file}#swirl", size=None)
    b = _run(engine, images["content"], model=f"{model_file}#blocks", size=None)
    assert torch.allclose(regions[..., :40], a[..., :40], atol=1e-5)
    assert torch.allclose(regions[..., 56:], b[..., 56:], atol=1e-5)
    kept = _run(engine, images["content"], model=str(model_file), size=None, content_mask=tmp_path / "left.png")
    assert torch.allclose(kept[..., :40], photo[..., :40], atol=1e-6)


def test_the_paintings_tone_recorded_in_the_model_is_matched(model_file, images, tmp_path, monkeypatch):
    from impasto.core.tone import tone_stats
    from impasto.methods.fast import model_tones, painting_tone, parse_model

    # A file without the record is left as the network paints it, whatever --tone says.
    engine = FastEngine(Options(model=str(model_file), device="cpu", precision="fp32"))
    plain = _run(engine, images["content"], model=f"{model_file}#swirl", size=None)
    assert torch.allclose(plain, _run(engine, images["content"], model=f"{model_file}#swirl", size=None, tone=0.0))
    own = tone_stats(plain[0].permute(1, 2, 0).numpy())
    target = {"swirl": (round(float(own[0]) * 1.3, 4), round(float(own[1]) * 0.85, 4)), "blocks": (0.1, 0.2)}
    net = load_model(model_file).net
    toned_file = save_model(net, ["swirl", "blocks"], tmp_path / "toned.safetensors", 48, {}, tones=target)
    assert model_tones(toned_file) == target and model_tones(model_file) == {}
    spec = f"{toned_file}#swirl"
    toned = _run(engine, images["content"], model=spec, size=None)

    def gap(t):
        return np.abs(tone_stats(t[0].permute(1, 2, 0).numpy()) - np.array(target["swirl"])).sum()

    assert gap(toned) < 0.2 * gap(plain)
    half = _run(engine, images["content"], model=spec, size=None, tone=0.5)
    assert gap(toned) < gap(half) < gap(plain)
    # Blends and regions aim at the paintings' tones mixed by weight or by each mask's share of the picture.
    items = parse_model(f"{toned_file}#swirl:3,{toned_file}#blocks:1")
    swirl = np.array(target["swirl"])
    assert np.allclose(painting_tone(items), 0.75 * swirl + 0.25 * np.array([0.1, 0.2]))
    assert np.allclose(painting_tone(items, [0.5, 0.5]), 0.5 * swirl + 0.5 * np.array([0.1, 0.2]))
    if importlib.util.find_spec("onnx") is not None:
        from impasto.methods.fast.runtime import OrtFastEngine

        monkeypatch.setenv("IMPASTO_CACHE", str(tmp_path / "cache"))
        ort_engine = OrtFastEngine(Options(model=str(toned_file), device="cpu", precision="fp32"))
        a = _run(ort_engine, images["content"], model=spec, size=None)
        assert np.abs(a - toned.numpy()).mean() < 0.01  # resizing differs slightly: Pillow


def test_options_validation(model_file):
    with pytest.raises(ImpastoError, match="not style images"):
        Options(model=str(model_file)).validate(1)
    with pytest.raises(ImpastoError, match="--fine"):
        Options(model=str(model_file), fine=4.0).validate(0)
    with pytest.raises(ImpastoError, match="--strength"):
        Options(model=str(model_file), strength=1.5).validate(0)
    with pytest.raises(ImpastoError, match="--mask: got 1 masks for 2 styles"):
        Options(model=f"{model_file}#swirl,{model_file}#blocks", masks=["m.png"]).validate(0)
    with pytest.raises(ImpastoError, match="--work-size"):
        Options(model=str(model_file), work_size=8).validate(0)


# ---------------------------------------------------------------------------------------------------------------
# Training


def test_batches_depend_only_on_seed_and_step(train_dirs):
    from impasto.train.data import ImageFolder

    contents = ImageFolder(train_dirs[0], 48)
    a = sample_batch(contents, 2, 32, 4, 0, 0.5, 48, 5)
    b = sample_batch(contents, 2, 32, 4, 0, 0.5, 48, 5)
    c = sample_batch(contents, 2, 32, 4, 0, 0.5, 48, 6)
    assert all(torch.equal(x, y) for x, y in zip(a, b)) and not torch.equal(a[0], c[0])
    crops, styles, layers = a
    assert crops.shape == (4, 3, 32, 32) and styles.shape == (4,) and layers.shape == (4, 4)
    assert set(styles.tolist()) <= {0, 1} and float(layers.min()) >= 0 and float(layers.max()) <= MAX_LAYER_WEIGHT
    fixed = sample_batch(contents, 2, 32, 4, 0, 0.0, 48, 5)[2]
    assert torch.equal(fixed, torch.ones(4, 4))


def test_training_lowers_the_loss_and_writes_a_working_model(train_dirs, tmp_path):
    out = tmp_path / "m.safetensors"
    cfg = _cfg(train_dirs, out, 20)
    from impasto.core.weights import load_weights
    from impasto.train.data import ImageFolder

    paintings = [painting_tensor(p, cfg.style_size) for p in cfg.style]
    batches = [sample_batch(ImageFolder(train_dirs[0], 48), 2, 32, 4, 1, 0.0, 48, 10**6 + i) for i in range(3)]

    def loss_of(net) -> float:
        model = FastTrainer(net, load_weights(), paintings)
        with torch.no_grad():
            total = 0.0
            for c, s, lw in batches:
                content, style, _ = model(c, s, lw, [0.25] * 4)
                total += float((cfg.content_weight * content + cfg.style_weight * style).mean())
        return total

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)  # the trainer's own starting point
        start = TransformerNet(2, cfg.width, cfg.blocks)
    before = loss_of(start)
    summary = train(cfg)
    assert summary["step"] == 20
    after = loss_of(load_model(out).net)
    assert after < 0.9 * before, (before, after)  # measured: 0.76 x
    assert (tmp_path / "m_previews" / "step000020.jpg").exists()
    m = load_model(out)
    assert m.names == [Path(p).stem for p in train_dirs[1]] and m.recipe["steps"] == 20
    assert m.recipe["content_layer"] == "relu2_2" and m.recipe["vgg"] == "caffe"
    from impasto.core.tone import tone_stats
    from impasto.methods.fast import model_tones

    recorded = model_tones(out)
    assert list(recorded) == m.names
    assert np.allclose(recorded[m.names[0]], tone_stats(paintings[0].permute(1, 2, 0).numpy()), atol=1e-4)


def test_a_deep_style_term_adds_relu5_1_following_the_coarse_slider(train_dirs, tmp_path):
    from impasto.core.weights import load_weights
    from impasto.train.data import ImageFolder
    from impasto.train.fast.trainer import loss_layer_weights

    cfg = _cfg(train_dirs, tmp_path / "deep.safetensors", 2, deep_style_weight=2.0)
    assert loss_layer_weights(cfg) == [0.25, 0.25, 0.25, 0.25, 0.5]
    paintings = [painting_tensor(p, cfg.style_size) for p in cfg.style]
    c, s, _ = sample_batch(ImageFolder(train_dirs[0], 48), 2, 32, 3, 1, 0.0, 48, 7)
    sliders = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 3.0], [1.0, 1.0, 1.0, 0.0]])
    torch.manual_seed(0)
    net = TransformerNet(2, 4, 1)
    four = FastTrainer(net, load_weights(), paintings)
    five = FastTrainer(net, load_weights(), paintings, style_layers=(*four.style_layers, "relu5_1"))
    with torch.no_grad():
        content4, style4, _ = four(c, s, sliders, [0.25] * 4)
        content5, style5, _ = five(c, s, sliders, loss_layer_weights(cfg))
        alone = five.loss_module([1.0] * 5)
        alone.set_feature_targets(grams={n: getattr(five, f"gram{i}")[s] for i, n in enumerate(five.style_layers)})
        deep = alone.sample_terms(five.stylize(c, torch.nn.functional.one_hot(s, 2).float(), sliders))[1][:, 4]
    assert torch.allclose(content4, content5)
    extra = style5 - style4
    assert torch.allclose(extra, 0.5 * deep * sliders[:, 3], rtol=1e-4, atol=1e-6)  # scaled by the coarse slider
    assert float(extra[0]) > 0 and float(extra[2]) == 0
    train(cfg)
    assert load_model(cfg.output).recipe["style_layers"] == ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]


class _Follows(torch.nn.Module):
    """A "network" whose painting follows any motion exactly (the photo itself), or, with a fixed pattern added, one
    that keeps its own grid as strided networks do."""

    n_styles = 2

    def __init__(self, grid: bool) -> None:
        super().__init__()
        pattern = torch.zeros(1, 3, 32, 32)
        pattern[..., ::4, :] = 0.3 if grid else 0.0
        self.register_buffer("pattern", pattern)

    def forward(self, x, style, layers):
        return x + self.pattern


def test_the_stability_term_measures_whether_the_painting_follows_a_moved_photo(train_dirs):
    from impasto.core.weights import load_weights
    from impasto.train.data import ImageFolder

    contents = ImageFolder(train_dirs[0], 48)
    plain = sample_batch(contents, 2, 32, 4, 0, 0.5, 48, 5)
    moved = sample_batch(contents, 2, 32, 4, 0, 0.5, 48, 5, motion=True)
    assert all(torch.equal(x, y) for x, y in zip(plain, moved[:3]))  # the same step's crops, paintings and sliders
    c, s, layers, theta, noise = moved
    assert theta.shape == (4, 2, 3) and noise.shape == (4, 3, 32, 32)
    assert float((theta[:, :, :2] - torch.eye(2)).abs().max()) < 0.05  # a slight rotation and zoom
    assert 0 < float(theta[:, :, 2].abs().max()) <= 2 * 2 / 32  # shifts of at most 2 px
    paintings = [painting_tensor(p, 64) for p in train_dirs[1]]
    still = torch.zeros_like(noise)
    with torch.no_grad():
        follows = FastTrainer(_Follows(grid=False), load_weights(), paintings)
        own_grid = FastTrainer(_Follows(grid=True), load_weights(), paintings)
        onehot = F.one_hot(s, 2).float()
        assert float(follows.stability(c, onehot, layers, follows.stylize(c, onehot, layers), theta, still)) < 1e-10
        with_noise = float(follows.stability(c, onehot, layers, follows.stylize(c, onehot, layers), theta, noise))
        assert with_noise == pytest.approx(float((noise**2).mean()), rel=0.3)  # only the noise is left
        gridded = own_grid.stability(c, onehot, layers, own_grid.stylize(c, onehot, layers), theta, still)
        assert float(gridded) > 100 * with_noise


def test_training_with_the_stability_term_makes_the_network_follow_motion(train_dirs, tmp_path):
    from impasto.core.weights import load_weights
    from impasto.train.data import ImageFolder

    contents = ImageFolder(train_dirs[0], 48)
    batches = [sample_batch(contents, 2, 32, 4, 1, 0.0, 48, 10**6 + i, motion=True) for i in range(3)]
    paintings = [painting_tensor(p, 64) for p in train_dirs[1]]

    def stability_of(out: Path) -> float:
        model = FastTrainer(load_model(out).net, load_weights(), paintings)
        with torch.no_grad():
            return sum(float(model(c, s, lw, [0.25] * 4, (th, nz))[3]) for c, s, lw, th, nz in batches)

    runs = {}
    for weight in (0.0, 300.0):
        out = tmp_path / f"s{int(weight)}.safetensors"
        summary = train(_cfg(train_dirs, out, 12, stability_weight=weight))
        assert ("stability" in summary["losses"]) == bool(weight)
        runs[weight] = stability_of(out)
    assert runs[300.0] < 0.5 * runs[0.0], runs  # measured: 0.07 x


def test_resume_continues_exactly(train_dirs, tmp_path):
    straight = tmp_path / "straight.safetensors"
    train(_cfg(train_dirs, straight, 3, workers=1))
    resumed = tmp_path / "resumed.safetensors"
    train(_cfg(train_dirs, resumed, 2))
    summary = train(_cfg(train_dirs, resumed, 3), resume=True)
    assert summary["steps_this_run"] == 1
    a, b = load_checkpoint(str(straight) + ".ckpt"), load_checkpoint(str(resumed) + ".ckpt")
    for k in a["net"]:
        assert torch.allclose(a["net"][k], b["net"][k], atol=1e-6), k
    with pytest.raises(ImpastoError, match="--width"):
        train(_cfg(train_dirs, resumed, 4, width=8), resume=True)
    with pytest.raises(ImpastoError, match="trained on the paintings"):
        train(_cfg(train_dirs, resumed, 4, names=["x", "y"]), resume=True)
    with pytest.raises(ImpastoError, match="exists"):
        train(_cfg(train_dirs, resumed, 4))


def test_training_config_errors(train_dirs, tmp_path):
    out = str(tmp_path / "m.safetensors")
    for kw, message in [
        ({"names": ["a"]}, "--names: 1 names for 2 paintings"),
        ({"names": ["a", "a"]}, "share the name"),
        ({"names": ["a:b", "c"]}, "cannot be a style name"),
        ({"size": 30}, "--size"),
        ({"adjustable": 2.0}, "--adjustable"),
        ({"style_layer_weights": [1, 1]}, "--style-layer-weights"),
        ({"output": str(tmp_path / "m.pt")}, ".safetensors"),
        ({"decoder": [8]}, "--decoder takes two"),
        ({"upsample": "cubic"}, "--upsample must be nearest or bilinear"),
    ]:
        with pytest.raises(ImpastoError, match=message):
            _cfg(train_dirs, Path(out), 1, **kw).validate()


# ---------------------------------------------------------------------------------------------------------------
# Command line


def test_cli_stylize_styles_and_sheet(images, tmp_path, model_file, capsys):
    out = tmp_path / "out.png"
    code = main(
        [
            "stylize",
            str(images["content"]),
            "-o",
            str(out),
            "--method",
            "fast",
            "--model",
            f"{model_file}#blocks",
            "--size",
            "48",
            "--coarse",
            "2",
            "-q",
        ]
    )
    assert code == 0 and Image.open(out).size == (48, 32)
    # --size 0: the photo's own size (the flag is shared with methods where 0 is no size: it once gave 1x1).
    own = tmp_path / "own.png"
    assert main(["stylize", str(images["content"]), "-o", str(own), "--method", "fast", "--size", "0", "-q"]) == 0
    assert Image.open(own).size == Image.open(images["content"]).size
    h, w = impasto.load("fast", size=0).run(images["content"]).image.shape[-2:]  # the Python API likewise
    assert (w, h) == Image.open(images["content"]).size
    assert main(["styles", "--model", str(model_file)]) == 0
    assert capsys.readouterr().out.split()[-2:] == ["swirl", "blocks"]
    sheet = tmp_path / "sheet.png"
    assert (
        main(
            [
                "styles",
                "--model",
                str(model_file),
                "--sheet",
                str(images["content"]),
                "-o",
                str(sheet),
                "--size",
                "40",
                "--columns",
                "3",
            ]
        )
        == 0
    )
    # One row of three 40 px cells, as tall as the landscape photo's 40 px-wide copy plus its label line.
    pw, ph = Image.open(images["content"]).size
    width, height = Image.open(sheet).size
    assert width == 120 and abs(height - (40 * ph / pw + 20)) <= 1, (width, height)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--model", "nope"], "not a built-in style"),
        (["--fine", "5"], "--fine"),
        (["STYLE", "--model", "the_scream"], "not style images"),
    ],
)
def test_cli_stylize_bad_input(images, tmp_path, capsys, argv, message):
    argv = [str(images["style"]) if a == "STYLE" else a for a in argv]
    out = tmp_path / "out.png"
    code = main(
        [
            "stylize",
            str(images["content"]),
            *[a for a in argv if a.endswith(".png")],
            "-o",
            str(out),
            "--method",
            "fast",
            *[a for a in argv if not a.endswith(".png")],
        ]
    )
    assert code == 2 and message in capsys.readouterr().err and not out.exists()


def test_cli_train_fast(train_dirs, tmp_path, capsys):
    out = tmp_path / "cli.safetensors"
    argv = [
        "train",
        "fast",
        "--style",
        *train_dirs[1],
        "--names",
        "a,b",
        "--content-dir",
        str(train_dirs[0]),
        "-o",
        str(out),
        "--steps",
        "1",
        "--width",
        "4",
        "--blocks",
        "1",
        "--size",
        "32",
        "--image-size",
        "48",
        "--batch",
        "1",
        "--workers",
        "0",
        "--preview-every",
        "0",
        "-q",
        "--precision",
        "fp32",
    ]
    assert main(argv) == 0
    assert model_names(out) == ["a", "b"]
    assert load_model(out).recipe["batch"] == 1
    assert (
        main(
            [
                "train",
                "fast",
                "--style",
                str(tmp_path / "missing.png"),
                "--content-dir",
                str(train_dirs[0]),
                "-o",
                str(tmp_path / "x.safetensors"),
            ]
        )
        == 2
    )
    assert "missing.png" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------
# Built-in styles


def test_builtin_styles_ship_and_run(images, tmp_path, capsys):
    names = builtin_styles()
    assert len(names) >= 8 and {"starry_night", "the_scream", "great_wave"} <= set(names)
    assert builtin_path().stat().st_size <= 40 * 2**20
    recipe = load_model(builtin_path()).recipe
    assert recipe["steps"] >= 100 and recipe["vgg"] == "caffe"
    assert main(["styles"]) == 0 and capsys.readouterr().out.split() == names
    out = _run(FastEngine(Options(device="cpu", precision="fp32")), images["content"], model="starry_night", size=64)
    photo = pil_to_tensor(Image.open(images["content"]).convert("RGB").resize((64, 43), Image.LANCZOS))
    assert out.shape == (1, 3, 43, 64) and float((out - photo).abs().mean()) > 0.03  # painted, not the photo


# ---------------------------------------------------------------------------------------------------------------
# Export


def test_export_onnx_torchscript_and_int8_match_pytorch(model_file, tmp_path, images, capsys):
    pytest.importorskip("onnx", reason="onnx is not installed (make dev)")
    import onnxruntime as ort

    from impasto.export import TOLERANCE, export

    report = export(str(model_file), tmp_path / "m.onnx")
    assert report["max_difference"] <= TOLERANCE and report["styles"] == ["swirl", "blocks"]
    # Any size: the graph pads to its stride and the caller crops, as the engine does.
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    image = np.random.default_rng(0).random((1, 3, 30, 41), dtype=np.float32)
    style, layers = np.array([[0.0, 1.0]], np.float32), np.ones((1, 4), np.float32)
    got = session.run(None, {"image": image, "style": style, "layers": layers})[0][..., :30, :41]
    with torch.no_grad():
        ref = load_model(model_file).net(*(torch.from_numpy(a) for a in (image, style, layers)))[..., :30, :41]
    assert np.abs(got - ref.numpy()).max() < TOLERANCE

    assert export(str(model_file), tmp_path / "m.pt", "torchscript")["max_difference"] <= TOLERANCE
    smooth = save_model(_perturbed_net(upsample="bilinear"), ["a", "b"], tmp_path / "smooth.safetensors", 48, {})
    assert export(str(smooth), tmp_path / "smooth.onnx")["max_difference"] <= TOLERANCE
    photos = [Image.open(images["content"]).convert("RGB"), Image.open(images["style"]).convert("RGB")]
    q = export(str(model_file), tmp_path / "q.onnx", int8=True, calibration=photos)
    assert q["int8"] and 0 < q["mean_difference_on_photos"] < 0.1
    with pytest.raises(ImpastoError, match="--int8 is for --format onnx"):
        export(str(model_file), tmp_path / "x.pt", "torchscript", int8=True)
    code = main(["export", str(model_file), "-o", str(tmp_path / "cli.onnx"), "--json"])
    assert code == 0 and (tmp_path / "cli.onnx").exists() and not list(tmp_path.glob(".*.tmp"))
    assert main(["export", "no_such_style", "-o", str(tmp_path / "y.onnx")]) == 2
    assert "not a built-in style" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------
# The runtime without PyTorch


def test_the_onnxruntime_engine_matches_the_pytorch_one(model_file, images, tmp_path, monkeypatch):
    pytest.importorskip("onnx", reason="onnx is not installed (make dev)")
    from impasto.methods.fast.runtime import OrtFastEngine, ensure_onnx, onnx_path

    monkeypatch.setenv("IMPASTO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("impasto.core.onnx.openvino_installed", lambda: False)
    assert impasto.load("fast", model=str(model_file)).__class__ is OrtFastEngine  # a CPU with onnxruntime
    assert impasto.load("fast", model=str(model_file), precision="bf16").__class__ is FastEngine
    ort_engine = OrtFastEngine(Options(model=str(model_file), device="cpu", precision="fp32"))
    torch_engine = FastEngine(Options(model=str(model_file), device="cpu", precision="fp32"))
    for extra in ({"size": 80}, {"size": 160, "fine": 2.0, "strength": 0.7}, {"size": 7}):
        spec = f"{model_file}#swirl:1,{model_file}#blocks:2"
        a = _run(ort_engine, images["content"], model=spec, **extra)
        b = _run(torch_engine, images["content"], model=spec, **extra).numpy()
        assert a.shape == b.shape and np.abs(a - b).mean() < 0.01, extra  # resizing differs slightly: Pillow
    assert onnx_path(model_file).exists() and ensure_onnx(model_file) == onnx_path(model_file)
    # Masks and colour preservation go to the PyTorch engine, with the same result.
    a = _run(ort_engine, images["content"], model=str(model_file), size=None, preserve_color="luminance")
    b = _run(torch_engine, images["content"], model=str(model_file), size=None, preserve_color="luminance")
    assert torch.allclose(a, b)


def test_a_session_keeps_the_graph_optimized_for_this_cpu_and_opens_it_next_time(model_file, tmp_path, monkeypatch):
    pytest.importorskip("onnx", reason="onnx is not installed (make dev)")
    import onnxruntime as ort

    from impasto.core.onnx import cpu_session, optimized_path
    from impasto.methods.fast.runtime import ensure_onnx

    monkeypatch.setenv("IMPASTO_CACHE", str(tmp_path / "cache"))
    graph = ensure_onnx(model_file)
    opened = []
    real = ort.InferenceSession
    monkeypatch.setattr(ort, "InferenceSession", lambda path, *a, **k: opened.append(path) or real(path, *a, **k))
    kept = optimized_path(graph)
    assert kept is not None and not kept.exists()
    first = cpu_session(graph, 1)
    assert opened == [str(graph)] and kept.exists() and not list(kept.parent.glob(".*"))  # no temporary left
    second = cpu_session(graph, 1)
    assert opened[-1] == str(kept)
    rng = np.random.default_rng(0)
    feeds = {
        "image": rng.random((1, 3, 40, 56), dtype=np.float32),
        "style": np.full((1, 2), 0.5, np.float32),
        "layers": np.ones((1, 4), np.float32),
    }
    assert np.array_equal(first.run(None, feeds)[0], second.run(None, feeds)[0])  # the same to the bit
    kept.write_bytes(b"not a graph")  # damaged: optimized afresh and kept again
    third = cpu_session(graph, 1)
    assert opened[-2:] == [str(kept), str(graph)] and kept.stat().st_size > 1000
    assert np.array_equal(first.run(None, feeds)[0], third.run(None, feeds)[0])
    # Each use marks the kept graph as used; a new one written removes those unused for 30 days (another CPU's, an
    # older onnxruntime's, a replaced model's), never a recent one.
    old, recent = kept.with_name("other-cpu.onnx"), kept.with_name("recent.onnx")
    old.write_bytes(b"x")
    recent.write_bytes(b"x")
    for p, days in ((old, 31), (recent, 29), (kept, 40)):
        os.utime(p, (time.time() - days * 86400,) * 2)
    cpu_session(graph, 1)
    assert time.time() - kept.stat().st_mtime < 3600 and old.exists()  # a use marks it; nothing new written
    os.utime(graph, ns=(1, 1))  # a changed graph file is another entry
    assert optimized_path(graph) != kept
    cpu_session(graph, 1)
    assert optimized_path(graph).exists() and kept.exists() and recent.exists() and not old.exists()


@pytest.mark.parametrize(
    "bf16_units, openvino, options, expected",
    [
        # (single pictures, frames of one size): OpenVINO compiles for each size, so auto keeps pictures on onnxruntime
        (True, True, {}, ("onnx", "openvino")),
        (True, True, {"precision": "bf16"}, ("openvino", "openvino")),
        (True, True, {"precision": "fp32"}, ("onnx", "onnx")),
        (True, True, {"runtime": "onnx"}, ("onnx", "onnx")),
        (True, True, {"runtime": "openvino"}, ("openvino", "openvino")),
        (True, True, {"runtime": "torch"}, None),
        (True, True, {"precision": "fp16"}, None),
        (True, False, {}, ("onnx", "onnx")),
        (True, False, {"precision": "bf16"}, None),  # PyTorch's bf16 autocast
        (False, True, {}, ("onnx", "onnx")),  # no bf16 units: onnxruntime's fp32
        (False, True, {"precision": "bf16"}, None),  # ... and bf16 asked for: PyTorch's autocast, as before
        (False, True, {"runtime": "openvino"}, ("openvino", "openvino")),  # asked for: OpenVINO in fp32
    ],
)
def test_auto_runs_frames_of_one_size_on_openvino_where_the_cpu_has_bf16_units(
    model_file, monkeypatch, bf16_units, openvino, options, expected
):
    pytest.importorskip("onnx", reason="onnx is not installed (make dev)")
    from impasto.methods.fast import graph_runtimes

    monkeypatch.setattr("impasto.core.cache.cpu_flags_say_fast_bf16", lambda: bf16_units)
    monkeypatch.setattr("impasto.core.onnx.openvino_installed", lambda: openvino)
    assert graph_runtimes(Options(model=str(model_file), device="cpu", **options)) == expected


def test_runtime_openvino_errors_name_the_problem(model_file, monkeypatch):
    from impasto.methods.fast import graph_runtimes as graph_runtime

    monkeypatch.setattr("impasto.core.onnx.openvino_installed", lambda: False)
    with pytest.raises(ImpastoError, match=r"pip install 'impasto\[openvino\]'"):
        graph_runtime(Options(model=str(model_file), runtime="openvino"))
    monkeypatch.setattr("impasto.core.onnx.openvino_installed", lambda: True)
    with pytest.raises(ImpastoError, match="bf16 or fp32"):
        graph_runtime(Options(model=str(model_file), runtime="openvino", precision="fp16"))
    with pytest.raises(ImpastoError, match="runs on the CPU"):
        graph_runtime(Options(model=str(model_file), runtime="openvino", device="cuda"))


def test_a_thread_marked_as_painting_frames_of_one_size_is_itself_again_afterwards():
    from impasto.core import onnx

    assert not onnx.frames_of_one_size() and onnx.thread_budget(7) == 7
    with onnx.frames_in(1):
        assert onnx.frames_of_one_size() and onnx.thread_budget(7) == 1
        onnx.set_thread_budget(2)  # a budget alone leaves the mark as it is
        assert onnx.frames_of_one_size() and onnx.thread_budget() == 2
        with onnx.frames_in(None):
            assert onnx.frames_of_one_size() and onnx.thread_budget(7) == 7
        assert onnx.thread_budget() == 2
    assert not onnx.frames_of_one_size() and onnx.thread_budget(7) == 7


def test_openvino_runs_the_exported_graph_as_onnxruntime_does(model_file, images, tmp_path, monkeypatch):
    pytest.importorskip("onnx", reason="onnx is not installed (make dev)")
    pytest.importorskip("openvino", reason="openvino is not installed (make dev)")
    import threading
    from types import SimpleNamespace

    from impasto.core.onnx import OpenVinoSession, cpu_session, frames_in
    from impasto.methods.fast.runtime import OrtFastEngine, ensure_onnx

    monkeypatch.setenv("IMPASTO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("impasto.core.onnx._OV_CORE", [])  # its compiled-model cache in this test's folder
    graph = ensure_onnx(model_file)
    # OpenVINO does not mark the compiled graphs it reads: those made 30 days ago go when the next process starts.
    blobs = tmp_path / "cache" / "openvino"
    blobs.mkdir(parents=True)
    stale, recent = blobs / "1.blob", blobs / "2.blob"
    for p, days in ((stale, 31), (recent, 29)):
        p.write_bytes(b"x")
        os.utime(p, (time.time() - days * 86400,) * 2)
    rng = np.random.default_rng(0)

    def feeds(h: int, w: int) -> dict:
        return {
            "image": rng.random((1, 3, h, w), dtype=np.float32),
            "style": np.array([[0.3, 0.7]], np.float32),
            "layers": np.array([[1, 2, 0.5, 1]], np.float32),
        }

    ort_session = cpu_session(graph, 1)
    monkeypatch.setattr(OpenVinoSession, "MAX_SHAPES", 4)
    fp32, bf16 = OpenVinoSession(graph, 1, bf16=False), OpenVinoSession(graph, 1, bf16=True)
    sizes = [(40, 56), (36, 36), (44, 28), (40, 60), (48, 52)]
    inputs = [feeds(h, w) for h, w in sizes]
    for f in inputs:
        want = ort_session.run(None, f)[0]
        got32, got16 = fp32.run(None, f)[0], bf16.run(None, f)[0]
        assert got32.shape == want.shape == (1, 3, *f["image"].shape[2:]) and got32.dtype == np.float32
        assert np.abs(got32 - want).max() < 1e-4  # the same graph
        assert np.abs(got16 - want).mean() < 0.01  # bf16 (on CPUs with bf16 units): close
    # One compiled model per input shape, the latest MAX_SHAPES kept; the output is the caller's, not a buffer the
    # next run overwrites.
    assert len(fp32._compiled) == 4
    first = fp32.run([fp32._outputs[0]], inputs[0])[0]
    kept = first.copy()
    fp32.run(None, inputs[1])
    assert np.array_equal(first, kept)
    assert len(list(blobs.glob("*.blob"))) > 1 and recent.exists() and not stale.exists()  # for the next process
    # Several threads at once (a video's frames in flight): each gets what it would alone.
    alone = [bf16.run(None, f)[0] for f in inputs[:2]]
    got: dict[int, list] = {}

    def work(i: int) -> None:
        got[i] = [bf16.run(None, inputs[(i + k) % 2])[0] for k in range(4)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(out, alone[(i + k) % 2]) for i, outs in got.items() for k, out in enumerate(outs))
    # The engine on OpenVINO paints as the onnxruntime one does, within bf16's rounding.
    spec = f"{model_file}#swirl:1,{model_file}#blocks:2"
    a = impasto.load("fast", model=spec, size=80, runtime="onnx", precision="fp32").run(images["content"]).image
    engine = impasto.load("fast", model=spec, size=80, runtime="openvino", precision="bf16")
    b = engine.run(images["content"]).image
    assert engine.__class__ is OrtFastEngine and engine.runtime == "openvino"
    assert a.shape == b.shape and np.abs(a - b).mean() < 0.01
    assert all(isinstance(f.result(), OpenVinoSession) for f in engine._opening.values())
    # Mixed (auto on a CPU with bf16 units): a picture on onnxruntime, frames of one size on OpenVINO.
    mixed = OrtFastEngine(Options(model=spec, size=80), runtime="onnx", stream_runtime="openvino")
    assert np.array_equal(mixed.run(images["content"]).image, a)
    with frames_in(1):
        frame = mixed.run(images["content"]).image
    assert np.abs(frame - a).mean() < 0.01
    opened = {k[1:]: f.result().__class__.__name__ for k, f in mixed._opening.items()}
    assert opened == {(1, "openvino"): "OpenVinoSession", (None, "onnx"): "InferenceSession"}
    # Where OpenVINO fails (a broken install, a graph it cannot compile), auto's runs go to onnxruntime instead;
    # an explicit --runtime openvino says so.
    import impasto.core.onnx as onnx_module

    working = onnx_module._openvino_core
    monkeypatch.setattr(onnx_module, "_openvino_core", lambda: 1 / 0)
    for runtime in ("auto", "openvino"):
        broken = OrtFastEngine(Options(model=spec, size=80, runtime=runtime), runtime="onnx", stream_runtime="openvino")
        with frames_in(1):
            if runtime == "auto":
                with pytest.warns(UserWarning, match="onnxruntime"):
                    assert np.allclose(broken.run(images["content"]).image, a, atol=1e-5)
            else:
                with pytest.raises(ZeroDivisionError):
                    broken.run(images["content"])
    monkeypatch.setattr(onnx_module, "_openvino_core", working)
    session = OpenVinoSession(graph, 1, fallback=lambda: ort_session)
    session._core = SimpleNamespace(compile_model=lambda *a, **k: 1 / 0)
    with pytest.warns(UserWarning, match="could not compile"):
        assert np.array_equal(session.run(None, inputs[0])[0], ort_session.run(None, inputs[0])[0])


def test_a_new_export_removes_the_graphs_older_layouts_left(model_file, tmp_path, monkeypatch):
    pytest.importorskip("onnx", reason="onnx is not installed (make dev)")
    from impasto.core.cache import graph_path
    from impasto.methods.fast.runtime import ensure_onnx

    monkeypatch.setenv("IMPASTO_CACHE", str(tmp_path / "cache"))
    path = graph_path("fast", model_file)
    stem = path.name.rsplit("-g", 1)[0]
    path.parent.mkdir(parents=True)
    old = [path.with_name(f"{stem}.onnx"), path.with_name(f"{stem}-g1.onnx")]
    others = [path.with_name("fast-0123456789abcdef.onnx"), path.with_name(f"{stem}-int8-g1.onnx")]
    for p in old + others:
        p.write_bytes(b"an old graph")
    assert ensure_onnx(model_file) == path and path.exists()
    assert not any(p.exists() for p in old) and all(p.exists() for p in others)


def test_the_command_line_fast_method_never_imports_torch(model_file, images, tmp_path):
    pytest.importorskip("onnx", reason="onnx is not installed (make dev)")
    import subprocess
    import sys

    from impasto.methods.fast.runtime import ensure_onnx

    env = {**__import__("os").environ, "IMPASTO_CACHE": str(tmp_path / "cache")}
    code = (
        "import sys, os; os.environ['IMPASTO_CACHE'] = sys.argv[1]; from impasto.cli import main; "
        "rc = main(sys.argv[2:]); print('TORCH' if 'torch' in sys.modules else 'NO-TORCH'); sys.exit(rc)"
    )
    argv = [
        "stylize",
        str(images["content"]),
        "-o",
        str(tmp_path / "o.png"),
        "--method",
        "fast",
        "--model",
        str(model_file),
        "--size",
        "48",
        "-q",
    ]
    import os

    os.environ["IMPASTO_CACHE"] = str(tmp_path / "cache")
    try:
        ensure_onnx(model_file)  # the first use exports (with torch); later ones only read the graph
    finally:
        os.environ.pop("IMPASTO_CACHE")
    run = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "cache"), *argv], capture_output=True, text=True, env=env
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "NO-TORCH"
    assert Image.open(tmp_path / "o.png").size == (48, 32)


def test_export_the_arbitrary_style_model_in_fp32_and_int8(tmp_path, monkeypatch):
    pytest.importorskip("onnx", reason="onnx is not installed (make dev)")
    import onnx

    import impasto.export as export_module
    from impasto.export import TOLERANCE, edge_convs, export

    report = export("adain", tmp_path / "adain.onnx")
    assert report["max_difference"] <= TOLERANCE and (tmp_path / "adain.onnx").stat().st_size > 10**7
    # The convolutions next to a picture: each encoder pass's first (content and style) and the decoder's last.
    graph = onnx.load(str(tmp_path / "adain.onnx"))
    convs = [n.name for n in graph.graph.node if n.op_type == "Conv"]
    edges = edge_convs(graph)
    assert len(edges) == 3 and convs[0] in edges and convs[-1] in edges
    monkeypatch.setattr(export_module, "CALIBRATION_SIZE", 64)  # the bundled examples, small: a quick calibration
    q = export("adain", tmp_path / "q.onnx", int8=True)
    assert q["int8"] and q["bytes"] < report["bytes"] / 3 and 0 < q["mean_difference_on_photos"] < 0.05
    quantized = {n.input[0] for n in onnx.load(str(tmp_path / "q.onnx")).graph.node if n.op_type == "Conv"}
    assert sum(name.endswith("DequantizeLinear_Output") for name in quantized) == len(convs) - len(edges)


def test_a_run_can_start_from_a_model_file(train_dirs, tmp_path):
    """--init: the network and step count of a shipped file, for when the checkpoint is gone (a fresh machine)."""
    first = tmp_path / "first.safetensors"
    train(_cfg(train_dirs, first, 2, preview_every=0))
    warm = tmp_path / "warm.safetensors"
    summary = train(_cfg(train_dirs, warm, 3, preview_every=0, init=str(first)))
    assert (summary["step"], summary["steps_this_run"]) == (3, 1) and load_model(warm).recipe["steps"] == 3
    with pytest.raises(ImpastoError, match="holds the paintings"):
        train(_cfg(train_dirs, tmp_path / "x.safetensors", 3, init=str(first), names=["p", "q"]))
    with pytest.raises(ImpastoError, match="not both"):
        train(_cfg(train_dirs, warm, 4, init=str(first)), resume=True)
    # Resumed without --init, as it must be: the checkpoint holds what the file gave.
    summary = train(_cfg(train_dirs, warm, 4, preview_every=0), resume=True)
    assert (summary["step"], summary["steps_this_run"]) == (4, 1)
    # From scratch the decoder doubles bilinearly (as the built-in network's), --init keeps its file's doubling and
    # --upsample changes it (the same weights); a resume keeps the run's own, and refuses another.
    assert load_model(first).net.upsample == "bilinear" and load_model(warm).net.upsample == "bilinear"
    near = tmp_path / "near.safetensors"
    train(_cfg(train_dirs, near, 3, preview_every=0, init=str(first), upsample="nearest"))
    train(_cfg(train_dirs, near, 4, preview_every=0), resume=True)
    assert load_model(near).net.upsample == "nearest"
    again = tmp_path / "again.safetensors"
    train(_cfg(train_dirs, again, 5, preview_every=0, init=str(near)))
    assert load_model(again).net.upsample == "nearest"
    with pytest.raises(ImpastoError, match="--upsample"):
        train(_cfg(train_dirs, near, 5, preview_every=0, upsample="bilinear"), resume=True)


def test_tune_trains_one_paintings_look_and_leaves_the_network_and_the_others_as_they_were(train_dirs, tmp_path):
    """--tune: only the named painting's embedding learns (a bolder Starry Night without retraining the rest)."""
    first = tmp_path / "first.safetensors"
    train(_cfg(train_dirs, first, 2, preview_every=0))
    names = ["style", "style2"]
    tuned = tmp_path / "tuned.safetensors"
    train(_cfg(train_dirs, tuned, 5, preview_every=0, init=str(first), names=names, tune=["style2"], style_weight=50))
    a, b = load_model(first).net.state_dict(), load_model(tuned).net.state_dict()
    assert set(a) == set(b)
    for key in a:
        if key != "embedding":
            assert torch.equal(a[key], b[key]), key
    assert torch.equal(a["embedding"][0], b["embedding"][0])
    assert not torch.equal(a["embedding"][1], b["embedding"][1])
    with pytest.raises(ImpastoError, match="give it with --init"):
        train(_cfg(train_dirs, tmp_path / "x.safetensors", 3, names=names, tune=["style2"]))
    with pytest.raises(ImpastoError, match="--tune: 'nope' is not one of the paintings"):
        _cfg(train_dirs, tmp_path / "x.safetensors", 3, names=names, tune=["nope"]).validate()
