"""The architecture's promises: declared options drive the interfaces, a new trainer is one module plus one registry
line, engines load once, the core never imports the interfaces, and the command line starts without torch."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import impasto
from impasto import api, cli
from impasto.options import check_declared, declared, describe, load_key, option, parse_text

SRC = Path(impasto.__file__).parent


def _run_python(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(SRC.parent))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize(
    "argv",
    [
        ["--version"],
        ["--help"],
        ["stylize", "--help"],
        ["stylize", "missing.jpg", "s.jpg", "-o", "o.png"],
        ["stylize", "c.jpg", "s.jpg", "-o", "o.png", "--size", "many"],
    ],
)
def test_the_command_line_answers_without_importing_torch(argv):
    done = _run_python(
        "import sys\nfrom impasto.cli import main\ntry:\n    code = main(%r)\nexcept SystemExit as e:\n"
        "    code = e.code\nprint('torch' in sys.modules, code, file=sys.stderr)" % argv
    )
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("False "), done.stderr
    assert last.split()[1] in ("0", "2")


def _imports(path: Path) -> set[str]:
    """The impasto modules a source file imports (relative imports resolved)."""
    package = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
    if path.name == "__init__.py":
        package = package.rsplit(".", 1)[0] + ".__init__"
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: -node.level]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.add(name)
            out.update(f"{name}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.startswith("impasto")}


@pytest.mark.parametrize(
    "layer, forbidden",
    [
        (
            "core",
            ("impasto.nets", "impasto.losses", "impasto.methods", "impasto.train", "impasto.cli", "impasto.serve"),
        ),
        ("nets", ("impasto.losses.perceptual", "impasto.methods", "impasto.train", "impasto.cli", "impasto.serve")),
        ("losses", ("impasto.methods", "impasto.train", "impasto.cli", "impasto.serve")),
        ("methods", ("impasto.train", "impasto.cli", "impasto.serve")),
        ("train", ("impasto.cli", "impasto.serve")),
    ],
)
def test_dependencies_point_one_way(layer, forbidden):
    for path in sorted((SRC / layer).rglob("*.py")):
        for name in _imports(path):
            assert not name.startswith(forbidden), f"{path.relative_to(SRC)} imports {name}"


def test_core_modules_never_import_the_interfaces():
    for name in ("api.py", "engine.py", "options.py", "metrics.py", "errors.py"):
        for imported in _imports(SRC / name):
            assert not imported.startswith(("impasto.cli", "impasto.serve")), (name, imported)


def test_no_private_name_is_used_across_modules():
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or node.level):
                for a in node.names:
                    assert not (a.name.startswith("_") and not a.name.startswith("__")), (path, a.name)


def test_declared_options_parse_describe_and_check():
    from dataclasses import dataclass

    @dataclass
    class Opts:
        level: float = option(0.5, "how much", "float", minimum=0, maximum=1, http=True, label="Level", step=0.1)
        mode: str = option("a", "which", "str", choices=("a", "b"))
        count: int = option(3, "how many", "int", minimum=1, load=True)

    d = {x.name: x for x in declared(Opts)}
    assert parse_text(d["level"], "0.25") == 0.25 and parse_text(d["count"], "4") == 4
    with pytest.raises(impasto.ImpastoError, match="--count: expected a whole number"):
        parse_text(d["count"], "four")
    assert describe(d["level"]) == {
        "name": "level",
        "type": "number",
        "label": "Level",
        "description": "how much",
        "default": 0.5,
        "minimum": 0,
        "maximum": 1,
        "step": 0.1,
    }
    check_declared(Opts())
    for bad, message in (
        (Opts(level=2), "--level must be between 0 and 1"),
        (Opts(mode="c"), "unknown --mode 'c'"),
        (Opts(count=0), "--count must be at least 1"),
    ):
        with pytest.raises(impasto.ImpastoError, match=message):
            check_declared(bad)
    assert load_key(Opts()) == (("count", 3),) and load_key(Opts(level=0.9)) == load_key(Opts())


def test_a_new_trainer_is_one_module_and_one_registry_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(api.TRAINERS, "toy", "toy_trainer")
    monkeypatch.setenv("COLUMNS", "200")
    assert cli.main(["train", "--help"]) == 0
    assert "toy" in capsys.readouterr().out
    assert cli.main(["train", "toy", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--target TARGET" in text and "(default: 3.0)" in text and "--resume" in text
    out = tmp_path / "fit.txt"
    # The shared loop: checkpoints, an exact resume, and the refusal to overwrite a checkpoint.
    assert cli.main(["train", "toy", "-o", str(out), "--steps", "3", "-q"]) == 0
    assert (tmp_path / "fit.txt.ckpt").exists()
    assert cli.main(["train", "toy", "-o", str(out), "--steps", "6", "-q"]) == 2
    assert "--resume continues it" in capsys.readouterr().err
    assert cli.main(["train", "toy", "-o", str(out), "--steps", "6", "--resume", "-q"]) == 0
    resumed = float(out.read_text())
    straight = tmp_path / "straight.txt"
    assert cli.main(["train", "toy", "-o", str(straight), "--steps", "6", "-q"]) == 0
    assert float(straight.read_text()) == resumed  # batches depend only on (seed, step)
    assert abs(resumed - 3.0) < 0.5
    # --keep-every: copies of the output at the first save past each multiple, beside it, across a resume too.
    kept = tmp_path / "kept.txt"
    assert cli.main(["train", "toy", "-o", str(kept), "--steps", "5", "--keep-every", "2", "-q"]) == 0
    assert cli.main(["train", "toy", "-o", str(kept), "--steps", "7", "--keep-every", "2", "--resume", "-q"]) == 0
    copies = sorted(p.name for p in (tmp_path / "kept_steps").iterdir())
    assert copies == ["step000002.txt", "step000004.txt", "step000006.txt"]
    fits = [float((tmp_path / "kept_steps" / name).read_text()) for name in copies]
    assert fits[0] != fits[1] != fits[2]  # each the model of its step, not the last one


def test_a_data_worker_killed_by_a_signal_stops_the_run_as_ctrl_c_does(tmp_path, capsys, monkeypatch):
    # `pkill -f` on a training command signals its DataLoader workers too (same command line); the trainer then
    # sees the worker's death first: a clean checkpointed stop, not a traceback.
    from impasto.train import loop

    monkeypatch.setitem(api.TRAINERS, "toy", "toy_trainer")

    def dying(make, start, stop, workers=0):
        yield make(start)
        yield make(start + 1)
        raise RuntimeError("DataLoader worker (pid 4242) is killed by signal: Terminated. ")

    monkeypatch.setattr(loop, "stream", dying)
    out = tmp_path / "fit.txt"
    code = cli.main(["train", "toy", "-o", str(out), "--steps", "6", "--checkpoint-every", "100", "-q"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_INTERRUPTED and "interrupted at step 2" in err and "--resume continues" in err, err
    assert "Traceback" not in err and loop.load_checkpoint(str(out) + ".ckpt")["step"] == 2

    # Stopped with Ctrl-C (or SIGTERM) while the workers die of the same signal: their deaths, reported in the middle
    # of the checkpoint's save, still end the run cleanly; the workers are stopped before the save.
    closed = []

    class CtrlC:  # a batch the step trips over while the stream waits at its next batch, as with a real signal
        def __rsub__(self, other):
            raise KeyboardInterrupt

    def interrupted(make, start, stop, workers=0):
        try:
            yield make(start)
            yield make(start + 1)
            yield CtrlC()
            yield make(start + 3)
        finally:
            closed.append(True)

    real_save, attempts = loop.save_checkpoint, []

    def save_hit_by_a_worker_death(path, state):
        attempts.append(bool(closed))
        if len(attempts) == 1:
            raise RuntimeError("DataLoader worker (pid 4243) is killed by signal: Terminated. ")
        real_save(path, state)

    monkeypatch.setattr(loop, "stream", interrupted)
    monkeypatch.setattr(loop, "save_checkpoint", save_hit_by_a_worker_death)
    out = tmp_path / "fit2.txt"
    code = cli.main(["train", "toy", "-o", str(out), "--steps", "6", "--checkpoint-every", "100", "-q"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_INTERRUPTED and "interrupted at step 2" in err and "Traceback" not in err, err
    assert attempts == [True, True] and loop.load_checkpoint(str(out) + ".ckpt")["step"] == 2
    monkeypatch.setattr(loop, "save_checkpoint", real_save)

    # Any other error from the data still propagates as itself.
    def failing(make, start, stop, workers=0):
        yield make(start)
        raise RuntimeError("disk full")

    monkeypatch.setattr(loop, "stream", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        cli.main(["train", "toy", "-o", str(tmp_path / "other.txt"), "-q"])


def test_an_engine_loads_its_network_once_for_many_pictures(images, monkeypatch):
    from impasto.nets import vgg

    built = []
    real = vgg.VGGFeatures.__init__
    monkeypatch.setattr(vgg.VGGFeatures, "__init__", lambda self, *a, **k: built.append(1) or real(self, *a, **k))
    engine = impasto.load("gatys", size=32, steps=2, scales=1, device="cpu", precision="fp32", seed=0)
    results = list(engine.run_many([images["content"], images["style2"]], [images["style"]]))
    assert len(results) == 2 and len(built) == 1
    again = engine.run(images["content"], [images["style"]])
    assert len(built) == 1
    assert (again.image - results[0].image).abs().max() == 0  # same seed, same picture
    with pytest.raises(impasto.ImpastoError, match="pooling"):  # another network needs another engine
        from dataclasses import replace

        engine.run(images["content"], [images["style"]], replace(engine.options, pooling="avg"))


def test_progress_and_cancellation_share_one_callback(images):
    seen = []

    def stop_at_two(p: impasto.Progress) -> None:
        seen.append((p.step, p.total, p.index, p.image is not None))
        if p.step == 2:
            raise impasto.Cancelled

    engine = impasto.load("gatys", size=32, steps=5, scales=1, tol=0, device="cpu", precision="fp32")
    with pytest.raises(impasto.Cancelled):
        engine.run(images["content"], [images["style"]], callback=stop_at_two)
    assert seen == [(1, 5, 0, True), (2, 5, 0, True)]
