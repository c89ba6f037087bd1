"""Print sizes: --max-memory, tile planning, the tiled objective's exactness, and no seams."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from impasto import cli
from impasto.core import memory
from impasto.core import vgg_layers as geometry
from impasto.core.image import pil_to_tensor, tensor_to_pil
from impasto.core.weights import load_weights
from impasto.errors import ImpastoError
from impasto.losses import PerceptualLoss
from impasto.losses import tiled as tiles
from impasto.methods.gatys import engine as gatys
from impasto.methods.gatys import plan as planning
from impasto.nets.vgg import VGGFeatures

EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "impasto" / "examples"
DEFAULT_LAYERS = ["relu4_2", "relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
# Layers up to relu3_1 need only 12 px of context per tile, so small test images split into tiles whose windows are
# much smaller than the image, and every pass is cheap.
SHALLOW = dict(style_layers=("relu1_1", "relu2_1", "relu3_1"), content_layers=("relu3_1",))


@pytest.fixture(scope="module")
def weights():
    return load_weights()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("6G", 6 << 30),
        ("6GB", 6 << 30),
        ("6gib", 6 << 30),
        ("800M", 800 << 20),
        ("512k", 512 << 10),
        ("1.5G", 3 << 29),
        (" 2 g ", 2 << 30),
        ("123456", 123456),
        ("100B", 100),
        (123456, 123456),
        ("1T", 1 << 40),
    ],
)
def test_parse_size_accepts_bytes_and_units(text, expected):
    assert memory.parse_size(text) == expected


@pytest.mark.parametrize("text", ["lots", "", "6X", "6 G B", "-1G", "0", "0.1", "inf", "nan", "1e9", "GB", "6iB", True])
def test_parse_size_rejects_garbage_in_one_line(text):
    with pytest.raises(ImpastoError, match="--max-memory") as err:
        memory.parse_size(text)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("value", ["lots", "-5G", "0"])
def test_cli_bad_max_memory_is_one_line_exit_2_no_output(images, tmp_path, capsys, value):
    out = tmp_path / "out.png"
    args = ["stylize", str(images["content"]), str(images["style"]), "-o", str(out), "--size", "32", "--steps", "1"]
    assert cli.main([*args, f"--max-memory={value}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("impasto: error: --max-memory") and err.count("\n") == 1
    assert not out.exists()


def test_default_budget_leaves_small_images_whole(images):
    ram = memory.physical_memory()
    assert memory.default_max_memory(torch.device("cpu")) == min(8 << 30, int(0.6 * ram))
    assert memory.resolve_max_memory(None, torch.device("cpu")) == memory.default_max_memory(torch.device("cpu"))
    assert memory.resolve_max_memory("1G") == 1 << 30
    budget = memory.default_max_memory(torch.device("cpu"))
    for shape, dtype in (((384, 512), torch.bfloat16), ((384, 512), None), ((768, 1024), torch.bfloat16)):
        plan = planning.plan_scale(shape, [shape], 75, gatys.Options(), dtype, budget)
        if plan.estimate <= 0.6 * 4 * 2**30:  # i.e. on any machine with 4 GiB of RAM or more
            assert plan.tiles == [] and plan.history == tiles.DEFAULT_HISTORY, shape
    result = gatys.run(images["content"], [images["style"]], gatys.Options(size=64, steps=1, device="cpu"))
    assert result.tiles == [1]


def smallest_tiles_budget(content, styles, **options) -> int:
    """The least memory a run's final scale can run in: as --max-memory, it forces the smallest tiles (64 px cores);
    any less is refused."""
    opts = gatys.Options(**options)
    return gatys.GatysEngine(opts).minimum_memory(content, styles, opts)[0]


def _partition_ok(plan_tiles, h, w, margin, align):
    covered = torch.zeros(h, w, dtype=torch.int32)
    for t in plan_tiles:
        top, bottom, left, right = t.core
        covered[top:bottom, left:right] += 1
        wt, wb, wl, wr = t.window
        assert (wt, wb, wl, wr) == (
            max(0, top - margin),
            min(h, bottom + margin),
            max(0, left - margin),
            min(w, right + margin),
        )
        assert all(c % align == 0 or c in (h, w) for c in t.core)
    return bool((covered == 1).all())


def test_tiles_only_above_the_budget():
    opts = gatys.Options()
    h, w = 192, 256
    whole = planning.plan_scale((h, w), [(h, w)], 10, opts, None, 1 << 40)
    assert whole.tiles == [] and whole.count == 1
    assert planning.plan_scale((h, w), [(h, w)], 10, opts, None, whole.estimate).tiles == []
    tight = planning.plan_scale((h, w), [(h, w)], 10, opts, None, whole.estimate - 1)
    assert tight.count >= 2 and tight.estimate <= whole.estimate - 1
    assert _partition_ok(tight.tiles, h, w, 80, 16)
    # Far below what anything needs: the smallest tiles and the shortest history, over budget.
    tiny = planning.plan_scale((h, w), [(h, w)], 10, opts, None, 1)
    assert tiny.count == (h // tiles.MIN_CORE) * (w // tiles.MIN_CORE) and tiny.history == tiles.MIN_HISTORY
    assert tiny.estimate > 1 and _partition_ok(tiny.tiles, h, w, 80, 16)
    # An image whose passes fit but whose full L-BFGS history does not keeps running whole, with a shorter history.
    big = planning.plan_scale((768, 1024), [(768, 1024)], 100, opts, torch.bfloat16, 1 << 40)
    pair = 2 * 12 * 768 * 1024
    shorter = planning.plan_scale((768, 1024), [(768, 1024)], 100, opts, torch.bfloat16, big.estimate - 70 * pair)
    assert shorter.tiles == [] and tiles.MIN_HISTORY <= shorter.history < 100


def test_margin_is_the_receptive_field(weights):
    assert geometry.receptive_margin(DEFAULT_LAYERS) == 80
    assert geometry.receptive_margin(["relu3_1"]) == 12
    net = VGGFeatures(weights, ["relu5_1"])
    image = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole = net(image)["relu5_1"][:, :, 7:9, 7:9]  # the core 112..144 px at stride 16
        for margin, same in ((80, True), (64, False)):
            lo, hi = 112 - margin, 144 + margin
            window = net(image[:, :, lo:hi, lo:hi])["relu5_1"]
            core = window[:, :, margin // 16 : margin // 16 + 2, margin // 16 : margin // 16 + 2]
            assert torch.allclose(core, whole, rtol=1e-4, atol=1e-4) == same, margin


def _objectives(weights, size, grid, masked, **options):
    opts = gatys.Options(**options)
    layers = list(dict.fromkeys([*opts.content_layers, *opts.style_layers]))
    net = VGGFeatures(weights, layers).to(memory_format=torch.channels_last)
    h, w = size
    g = torch.Generator().manual_seed(0)
    content = pil_to_tensor(Image.open(EXAMPLES / "chelsea.png").convert("RGB").resize((w, h), Image.LANCZOS))
    styles = [torch.rand(1, 3, 80, 100, generator=g), torch.rand(1, 3, 96, 64, generator=g)]
    masks = None
    if masked:
        left = torch.zeros(1, 1, h, w)
        left[..., : w // 3] = 1
        # "content": a --content-mask alone, one region where the blend of both styles applies
        masks = [1 - left] if masked == "content" else [left, 1 - left]
    margin, align = geometry.receptive_margin(layers), geometry.alignment(layers)
    split = tiles.split_tiles(h, w, *grid, margin, align)
    whole = gatys.perceptual_loss(net, opts).set_targets(content, styles, opts.style_weights, masks)
    tiled = gatys.perceptual_loss(net, opts).set_targets(content, styles, opts.style_weights, masks, split)
    x = (content + 0.1 * torch.randn(content.shape, generator=g)).clamp(0, 1)
    return whole, tiled, x, split


@pytest.mark.parametrize(
    "size, grid, masked, options",
    [
        ((64, 96), (1, 2), False, {}),  # impasto's default layers and Gram loss
        ((128, 192), (2, 3), True, SHALLOW),  # windows much smaller than the image
        ((96, 128), (2, 2), True, {"style_loss": "mean-cov", **SHALLOW}),
        ((96, 128), (2, 2), "content", {"style_weights": [3, 1], **SHALLOW}),
    ],
    ids=["gram", "gram-masks-small-windows", "mean-cov-masks", "content-mask-blended-styles"],
)
def test_tiled_objective_equals_the_whole_image(weights, size, grid, masked, options):
    whole, tiled, x, split = _objectives(weights, size, grid, masked, **options)
    if "style_layers" in options:
        assert (
            max(t.window[3] - t.window[2] for t in split) < size[1]
            and max(t.window[1] - t.window[0] for t in split) < size[0]
        )
    results = []
    for objective in (whole, tiled):
        xi = x.clone().requires_grad_(True)
        total, terms = objective.backward(xi)
        assert terms["total"] == pytest.approx(float(total))
        results.append((terms, xi.grad.flatten()))
    (whole_terms, g_whole), (tiled_terms, g_tiled) = results
    for k in ("content", "style", "tv", "total"):
        assert tiled_terms[k] == pytest.approx(whole_terms[k], rel=1e-3), k
    cosine = float(g_whole @ g_tiled / (g_whole.norm() * g_tiled.norm()))
    assert cosine > 0.999
    assert float((g_whole - g_tiled).norm() / g_whole.norm()) < 0.01


def _seam_ratio(image: torch.Tensor, content: torch.Tensor, xs: list[int], ys: list[int]) -> float:
    """Mean |difference| of neighbouring pixels of (image - content) across the tile borders, over the same
    elsewhere. The stylization's own change is measured, so the photo's edges do not count; a seam is a jump
    between two neighbouring pixels, so the band is the pairs that straddle a border."""
    d = image - content
    dx = (d[..., :, 1:] - d[..., :, :-1]).abs().sum(1)[0]  # dx[:, j]: between columns j and j + 1
    dy = (d[..., 1:, :] - d[..., :-1, :]).abs().sum(1)[0]
    on_x = torch.zeros_like(dx, dtype=torch.bool)
    on_y = torch.zeros_like(dy, dtype=torch.bool)
    on_x[:, [x - 1 for x in xs]] = True
    on_y[[y - 1 for y in ys], :] = True
    border = torch.cat([dx[on_x], dy[on_y]]).mean()
    elsewhere = torch.cat([dx[~on_x], dy[~on_y]]).mean()
    return float(border / elsewhere)


def _stationary_photo(size: int, seed: int = 0) -> Image.Image:
    """Blurred colour noise: a 'photo' with the same statistics everywhere, so no line of it is special."""
    g = torch.Generator().manual_seed(seed)
    k = torch.exp(-(torch.arange(-9, 10.0) ** 2) / 18)
    k = k / k.sum()
    noise = torch.randn(3, 1, size + 18, size + 18, generator=g)
    blurred = F.conv2d(F.conv2d(noise, k.view(1, 1, 1, -1)), k.view(1, 1, -1, 1))
    return tensor_to_pil((0.5 + 0.2 * blurred / blurred.std()).clamp(0, 1).permute(1, 0, 2, 3))


def test_tiled_result_has_no_seam_and_independent_tiles_would(monkeypatch):
    """A tiny --max-memory splits the image into four 64 px tiles. Along their borders, the stylization's change
    is no stronger than elsewhere: under 1.1 times (an untiled run measured at the same two lines scatters by
    about 8 % with the noise seed of the photo: 0.92, 1.08, 0.93 for seeds 0-2), and equal to the untiled run's
    figure, since shared statistics make the tiled result the whole-image result up to rounding. Stylizing each
    tile on its own, with its own statistics, leaves seams that the same measure catches (1.7-1.8)."""
    content = _stationary_photo(128)
    style = Image.open(EXAMPLES / "swirls.png").convert("RGB").resize((128, 96), Image.LANCZOS)
    # Adam moves every pixel at a similar pace, so a few steps stylize the whole image and each lone tile alike.
    kw = dict(
        size=None,
        scales=1,
        steps=6,
        optimizer="adam",
        learning_rate=0.04,
        style_weight=100,
        tol=0,
        precision="fp32",
        device="cpu",
        seed=0,
        **SHALLOW,
    )
    made = []
    real_set = PerceptualLoss.set_targets
    monkeypatch.setattr(PerceptualLoss, "set_targets", lambda self, *a: made.append(real_set(self, *a)) or made[-1])
    tiled = gatys.run(content, [style], gatys.Options(max_memory=smallest_tiles_budget(content, [style], **kw), **kw))
    assert tiled.tiles == [4] and tiled.image.shape[-2:] == (128, 128)
    cores = [t.core for t in made[0].tiles]
    assert sorted(cores) == [(top, top + 64, left, left + 64) for top in (0, 64) for left in (0, 64)]
    photo = pil_to_tensor(content)
    whole = gatys.run(content, [style], gatys.Options(**kw))
    assert whole.tiles == [1]
    # Equal up to rounding: typical pixels differ by 1e-7; Adam divides each pixel's gradient by its own running
    # magnitude, so where the gradient is near zero a rounding-sized difference becomes a visible fraction of a step
    # (0.0022 at most on a 2-core AMX CPU, against a learning rate of 0.04).
    assert (tiled.image - whole.image).abs().median() < 1e-5
    assert (tiled.image - whole.image).abs().max() < 5e-3
    ratio, untiled = _seam_ratio(tiled.image, photo, [64], [64]), _seam_ratio(whole.image, photo, [64], [64])
    assert ratio < 1.1 and abs(ratio - untiled) < 0.01, (ratio, untiled)

    naive = torch.zeros_like(tiled.image)
    for top, bottom, left, right in cores:
        naive[:, :, top:bottom, left:right] = gatys.run(
            content.crop((left, top, right, bottom)), [style], gatys.Options(**kw)
        ).image
    assert _seam_ratio(naive, photo, [64], [64]) > 1.3


def test_cli_tiled_run_reports_tiles_and_writes_the_right_size(images, tmp_path, capsys):
    def stylize(name, budget):
        return cli.main(
            [
                "stylize",
                str(images["content"]),
                str(images["style"]),
                "-o",
                str(tmp_path / name),
                "--size",
                "128",
                "--scales",
                "1",
                "--steps",
                "2",
                "--max-memory",
                budget,
                "--style-layers",
                "relu1_1,relu2_1",
                "--content-layers",
                "relu2_1",
                "--device",
                "cpu",
                "--precision",
                "fp32",
            ]
        )

    least = smallest_tiles_budget(
        images["content"],
        [images["style"]],
        size=128,
        scales=1,
        steps=2,
        style_layers=("relu1_1", "relu2_1"),
        content_layers=("relu2_1",),
        device="cpu",
        precision="fp32",
    )
    assert stylize("tiled.png", str(least)) == 0
    assert Image.open(tmp_path / "tiled.png").size == (128, 85)
    assert "128x85, 2 steps (budget), tiles per scale 2 in" in capsys.readouterr().err
    assert stylize("whole.png", "8G") == 0
    assert "tiles" not in capsys.readouterr().err
    # Below what even the smallest tiles need: refused before any work, saying what it would take.
    assert stylize("refused.png", str(least - 1)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "needs at least" in err and "even tile by tile" in err, err
    assert not (tmp_path / "refused.png").exists()


def test_a_size_that_cannot_fit_even_tiled_is_refused_before_the_picture_is_made(images, tmp_path, monkeypatch):
    """--size 99999 used to grow past 9 GB (the picture itself at that size) before anything was refused."""
    made = []
    real = gatys.prepare_images
    monkeypatch.setattr(gatys, "prepare_images", lambda *a, **k: made.append(a[2]) or real(*a, **k))
    out = tmp_path / "huge.png"
    args = ["stylize", str(images["content"]), str(images["style"]), "-o", str(out), "--size", "99999"]
    assert cli.main([*args, "--max-size", "999999", "--max-memory", "1G", "--device", "cpu"]) == 2
    assert made == [] and not out.exists()


def test_help_documents_max_memory_and_its_default(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert cli.main(["stylize", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--max-memory BYTES" in text and "default: min(8 GiB, 60% of RAM)" in text


def test_each_scale_decides_on_its_own(images):
    """Coarse scales small enough to run whole do; only the final one is split (64 px cores)."""
    kw = dict(size=128, scale_steps=[1, 1], device="cpu", precision="fp32", **SHALLOW)
    budget = smallest_tiles_budget(images["content"], [images["style"]], **kw)
    options = gatys.Options(max_memory=budget, **kw)
    result = gatys.run(images["content"], [images["style"]], options)
    assert result.scales == [64, 128] and result.tiles == [1, 2]
    assert result.image.shape[-2:] == (85, 128)
