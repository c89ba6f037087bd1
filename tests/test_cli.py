import hashlib
import os
import subprocess
import sys
from pathlib import Path

import torch
from PIL import Image

import impasto
from impasto import cli
from impasto.methods.gatys import engine as gatys

FAST = ["--size", "64", "--steps", "3", "--device", "cpu", "--quiet"]


def _digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_stylize_writes_output_and_prints_its_path(images, tmp_path, capsys):
    out = tmp_path / "out.jpg"
    before = {k: _digest(p) for k, p in images.items()}
    code = cli.main(["stylize", str(images["content"]), str(images["style"]), "-o", str(out), *FAST])
    assert code == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert Image.open(out).size == (64, 43)
    assert [p.name for p in tmp_path.iterdir()] == ["out.jpg"]  # no temporary files left
    assert {k: _digest(p) for k, p in images.items()} == before  # inputs untouched


def test_every_flag_is_accepted(images, tmp_path, monkeypatch):
    out = tmp_path / "all.png"
    init = tmp_path / "init.png"
    # The content's own aspect ratio: masks must match the picture's shape.
    Image.open(images["style"]).resize(Image.open(images["content"]).size).save(init)
    args = [
        "stylize",
        str(images["content"]),
        str(images["style"]),
        str(images["style2"]),
        "-o",
        str(out),
        "--method",
        "gatys",
        "--size",
        "48",
        "--max-size",
        "100",
        "--steps",
        "4",
        "--tol",
        "0",
        "--scales",
        "2",
        "--min-size",
        "16",
        "--scale-steps",
        "2,2",
        "--precision",
        "fp32",
        "--upsample",
        "bicubic",
        "--style-loss",
        "mean-cov",
        "--preserve-color",
        "histogram",
        "--mask",
        str(init),
        str(init),
        "--content-mask",
        str(init),
        "--content-weight",
        "2",
        "--style-weight",
        "5",
        "--tv-weight",
        "0.5",
        "--style-weights",
        "3,1",
        "--style-scale",
        "0.8",
        "--content-layers",
        "relu4_2",
        "--style-layers",
        "relu1_1,relu2_1,relu3_1",
        "--content-layer-weights",
        "1",
        "--style-layer-weights",
        "1",
        "2",
        "1",
        "--optimizer",
        "adam",
        "--learning-rate",
        "0.05",
        "--init",
        str(init),
        "--seed",
        "1",
        "--pooling",
        "avg",
        "--device",
        "cpu",
        "--weights",
        "caffe",
        "--weights-normalization",
        "caffe",
        "--save-every",
        "2",
        "--quiet",
    ]
    seen = {}
    real_run = gatys.GatysEngine.run
    monkeypatch.setattr(
        gatys.GatysEngine,
        "run",
        lambda self, c, s, o, **kw: seen.setdefault("options", o) and real_run(self, c, s, o, **kw),
    )
    assert cli.main(args) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "all.png",
        "all_step00002.png",
        "all_step00004.png",
        "init.png",
    ]
    assert Image.open(out).size == (48, 32)
    o = seen["options"]
    assert (o.size, o.max_size, o.steps, o.tol) == (48, 100, 4, 0)
    assert (o.scales, o.min_size, o.scale_steps, o.precision) == (2, 16, [2, 2], "fp32")
    assert (o.style_loss, o.preserve_color, o.upsample) == ("mean-cov", "histogram", "bicubic")
    assert len(o.masks) == 2 and o.content_mask is not None
    assert (o.content_weight, o.style_weight, o.tv_weight, o.style_scale) == (2, 5, 0.5, 0.8)
    assert o.style_weights == [3, 1] and o.style_layer_weights == [1, 2, 1] and o.content_layer_weights == [1]
    assert o.content_layers == ["relu4_2"] and o.style_layers == ["relu1_1", "relu2_1", "relu3_1"]
    assert (o.optimizer, o.learning_rate, o.init, o.seed, o.pooling, o.device) == (
        "adam",
        0.05,
        str(init),
        1,
        "avg",
        "cpu",
    )
    assert (o.weights, o.weights_normalization) == ("caffe", "caffe")


def test_stylize_defaults_are_the_library_defaults(capsys, monkeypatch):
    """The command line and the Python API must paint the same picture when given no options: an absent flag
    leaves the method's own default, and --help shows that default (per method where they differ)."""
    from impasto.cli.flags import values
    from impasto.methods import adain

    args = cli.build_parser().parse_args(["stylize", "c.png", "s.png", "-o", "o.png"])
    assert values(args, gatys.Options) == {} and values(args, adain.Options) == {}
    args = cli.build_parser().parse_args(["stylize", "c.png", "s.png", "-o", "o.png", "--style-weight", "3"])
    assert values(args, gatys.Options) == {"style_weight": 3.0}
    monkeypatch.setenv("COLUMNS", "300")
    assert cli.main(["stylize", "--help"]) == 0
    text = capsys.readouterr().out
    assert f"(default: {gatys.Options().style_weight})" in text and gatys.Options().style_weight == 8.0
    assert (
        "(default: 2048 for gatys, 4096 for adain, 8192 for" in text
    )  # --max-size no longer caps AdaIN at Gatys' value


def _bad_inputs(images, tmp: Path):
    (tmp / "adir").mkdir()
    (tmp / "text.png").write_text("not a picture")
    data = images["content"].read_bytes()
    (tmp / "cut.png").write_bytes(data[: len(data) // 3])
    (tmp / "init.png").write_bytes(data)
    c, s = str(images["content"]), str(images["style"])
    out = str(tmp / "out.png")
    return {
        "missing content": ([str(tmp / "none.jpg"), s, "-o", out], "no such file"),
        "directory": ([c, str(tmp / "adir"), "-o", out], "is a directory"),
        "not an image": ([c, str(tmp / "text.png"), "-o", out], "not an image"),
        "truncated": ([str(tmp / "cut.png"), s, "-o", out], "truncated"),
        "output dir missing": ([c, s, "-o", str(tmp / "no" / "out.png")], "does not exist"),
        "bad extension": ([c, s, "-o", str(tmp / "out.xyz")], "unsupported output extension"),
        "size zero": ([c, s, "-o", out, "--size", "0"], "--size"),
        "size negative": ([c, s, "-o", out, "--size", "-5"], "--size"),
        "size above cap": ([c, s, "-o", out, "--size", "9000"], "--max-size 9000"),
        "style weight count": ([c, s, "-o", out, "--style-weights", "1", "2"], "2 values for 1 style"),
        "negative weight": ([c, s, "-o", out, "--style-weight", "-1"], "style-weight"),
        "nan weight": ([c, s, "-o", out, "--content-weight", "nan"], "content-weight"),
        "nan blend weight": ([c, s, "-o", out, "--style-weights", "nan"], "weight"),
        "overwrite input": ([c, s, "-o", c], "overwrite an input"),
        "unknown layer": ([c, s, "-o", out, "--style-layers", "relu1_1,relu9_9"], "relu9_9"),
        "missing weights": ([c, s, "-o", out, "--weights", str(tmp / "w.pth")], "no such weights file"),
        "bad init": ([c, s, "-o", out, "--init", str(tmp / "text.png")], "not an image"),
        "unknown method": ([c, s, "-o", out, "--method", "magic"], "invalid choice"),
        "negative save-every": ([c, s, "-o", out, "--save-every", "-2"], "--save-every"),
        "huge seed": ([c, s, "-o", out, "--seed", str(2**70)], "--seed"),
        "init is the output": (
            [c, s, "-o", str(tmp / "init.png"), "--init", str(tmp / "init.png")],
            "overwrite an input",
        ),
        "style scale too big": ([c, s, "-o", out, "--style-scale", "200"], "--style-scale 200"),
    }


def test_bad_input_one_line_exit_2_no_output(images, tmp_path, capsys):
    for name, (args, message) in _bad_inputs(images, tmp_path).items():
        before = set(tmp_path.rglob("*"))
        code = cli.main(
            ["stylize", *args, "--steps", "2", "--size", "32"] if "--size" not in args else ["stylize", *args]
        )
        err = capsys.readouterr().err
        assert code == 2, name
        assert err.count("\n") == 1 and err.startswith("impasto: error:"), (name, err)
        assert message in err, (name, err)
        assert "Traceback" not in err
        assert set(tmp_path.rglob("*")) == before, name


def test_real_process_bad_input_and_success(images, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(Path(impasto.__file__).parents[1]))
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "impasto",
            "stylize",
            str(tmp_path / "nope.jpg"),
            str(images["style"]),
            "-o",
            str(tmp_path / "o.png"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "no such file" in bad.stderr
    assert not (tmp_path / "o.png").exists()
    version = subprocess.run([sys.executable, "-m", "impasto", "--version"], capture_output=True, text=True, env=env)
    assert version.returncode == 0 and version.stdout.startswith("impasto ")


def test_a_full_disk_is_one_line_naming_the_output_exit_2_and_nothing_written(images, tmp_path, capsys, monkeypatch):
    def disk_full(self, fp, *args, **kwargs):
        fp.write(b"partial")  # some bytes made it to the disk before it filled up
        raise OSError(28, "No space left on device")  # Pillow's own errors carry no file name

    monkeypatch.setattr(Image.Image, "save", disk_full)
    out = tmp_path / "o.png"
    code = cli.main(["stylize", str(images["content"]), str(images["style"]), "-o", str(out), *FAST])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "No space left on device" in err and str(out) in err, err
    assert list(tmp_path.iterdir()) == []  # neither the output nor the temporary file


def test_help_documents_every_flag_with_its_default(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert cli.main(["stylize", "--help"]) == 0
    text = capsys.readouterr().out
    for flag in (
        "--size",
        "--steps",
        "--content-weight",
        "--style-weight",
        "--tv-weight",
        "--optimizer",
        "--init",
        "--seed",
        "--style-weights",
        "--style-scale",
        "--pooling",
        "--device",
        "--weights",
        "--save-every",
        "--quiet",
        "--method",
        "--tol",
        "--max-size",
        "--content-layers",
        "--style-layers",
        "--learning-rate",
        "--scales",
        "--min-size",
        "--scale-steps",
        "--precision",
        "--style-loss",
        "--preserve-color",
        "--mask",
        "--content-mask",
        "--upsample",
    ):
        assert flag in text, flag
    assert "(default: 512)" in text and "(default: 70)" in text and "(default: lbfgs)" in text
    assert "(default: None)" not in text


def test_interrupt_keeps_last_iterate_only_with_save_every(images, tmp_path, capsys, monkeypatch):
    def interrupt_at_step_3(history, tol, window=10):
        if len(history) == 3:
            raise KeyboardInterrupt
        return False

    monkeypatch.setattr(gatys, "_converged", interrupt_at_step_3)
    iterates = []
    cli_stylize = cli.command("stylize")  # command modules load on demand
    real_save = cli_stylize.save_image
    monkeypatch.setattr(cli_stylize, "save_image", lambda im, p: iterates.append(im.clone()) or real_save(im, p))
    out = tmp_path / "kept.png"
    args = [
        "stylize",
        str(images["content"]),
        str(images["style"]),
        "--size",
        "64",
        "--steps",
        "10",
        "--device",
        "cpu",
        "-q",
    ]
    assert cli.main([*args, "-o", str(out), "--save-every", "2"]) == 130
    assert "interrupted at step 3" in capsys.readouterr().err
    assert out.exists() and (tmp_path / "kept_step00002.png").exists()
    assert len(iterates) == 2  # step 2, then the iterate after step 3 (not step 2's again)
    assert not torch.equal(iterates[0], iterates[1])
    from impasto.core.image import tensor_to_pil

    assert Image.open(out).tobytes() == tensor_to_pil(iterates[1]).tobytes()
    lost = tmp_path / "lost.png"
    assert cli.main([*args, "-o", str(lost)]) == 130
    assert "no output written" in capsys.readouterr().err
    assert not lost.exists()


def test_summary_unless_quiet_and_progress_bar_shows_losses(images, tmp_path, capsys, monkeypatch):
    base = ["stylize", str(images["content"]), str(images["style"]), "--size", "64", "--steps", "2", "--tol", "0"]
    assert cli.main([*base, "-o", str(tmp_path / "a.png")]) == 0
    err = capsys.readouterr().err
    assert "64x43, 2 steps (budget)" in err and "style" in err
    assert cli.main([*base, "-o", str(tmp_path / "b.png"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""

    bars = []

    class Bar:
        def __init__(self, **kw):
            self.kw, self.postfix = kw, []
            bars.append(self)

        def update(self, n):
            pass

        def set_postfix(self, **kw):
            self.postfix.append(kw)

        def close(self):
            pass

    monkeypatch.setattr(gatys, "tqdm", Bar)
    gatys.run(images["content"], [images["style"]], gatys.Options(size=64, steps=2, tol=0), progress=True)
    assert bars[0].kw["disable"] is None and bars[0].kw["total"] == 2  # shown on a terminal
    assert set(bars[0].postfix[-1]) == {"content", "style", "tv"}


def test_bad_masks_are_one_line_errors_before_any_work(images, tmp_path, capsys):
    wide = tmp_path / "wide.png"
    Image.new("L", (300, 40), 255).save(wide)
    out = tmp_path / "out.png"
    base = ["stylize", str(images["content"]), str(images["style"]), "-o", str(out), "--size", "64", "-q"]
    for method in ("gatys", "adain"):
        for extra, message in (
            (["--mask", str(tmp_path / "missing.png")], "missing.png"),
            (["--mask", str(wide)], "another shape than the picture"),
            (["--content-mask", str(wide)], "another shape than the picture"),
        ):
            assert cli.main(base + ["--method", method] + extra) == 2, (method, extra)
            err = capsys.readouterr().err
            assert message in err and len(err.strip().splitlines()) == 1, err
            assert not out.exists()
