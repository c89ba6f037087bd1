"""Bad input found by a probe of a fresh install: each case answers with one line naming the problem, the documented
exit code, no traceback, no foreign warning and no partial output."""

from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
import warnings
import zlib
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

import impasto
from impasto import cli


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("impasto: error:") and "Traceback" not in err, err
    return lines[0]


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels (a decompression bomb's first bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _corrupt_exif_jpeg(path: Path) -> Path:
    exif = Image.Exif()
    exif[0x0112] = 1
    Image.new("RGB", (96, 64), (200, 120, 40)).save(path, exif=exif.tobytes()[:10] + b"\xff" * 30)
    return path


def test_a_pickle_given_as_weights_is_one_complete_line(images, tmp_path, capsys):
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps(Counter(a=1), protocol=4))  # not tensors: torch's safe loader refuses it
    out = tmp_path / "o.png"
    args = ["stylize", str(images["content"]), str(images["style"]), "-o", str(out), "--weights", str(evil)]
    assert cli.main(args + ["--size", "32"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "refused for safety" in line and line.endswith(")") and "Warning" not in line
    assert not out.exists()


def test_a_corrupt_exif_block_prints_no_foreign_warning(images, tmp_path, capsys):
    photo = _corrupt_exif_jpeg(tmp_path / "exif.jpg")
    # A real process: its stderr is only impasto's one line (Pillow warns while reading the photo, first).
    env = dict(os.environ, PYTHONPATH=str(Path(impasto.__file__).parents[1]))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "impasto",
            "stylize",
            str(photo),
            str(tmp_path / "nope.png"),
            "-o",
            str(tmp_path / "o.png"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2 and _one_line(done.stderr).endswith("nope.png: no such file"), done.stderr
    # A whole run, in process: no warning reaches the user.
    out = tmp_path / "o.png"
    args = ["stylize", str(photo), str(images["style"]), "-o", str(out), "--method", "adain", "--size", "32", "-q"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cli.main(args) == 0 and out.exists()
        assert cli.main(["eval", str(out), "--content", str(photo)]) == 0
    assert capsys.readouterr().err == "" and [str(w.message) for w in caught] == []


def test_eval_says_which_half_it_did_not_measure(images, capsys):
    assert cli.main(["eval", str(images["content"]), "--content", str(images["content"]), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (
        result["content"] == 0 and result["style"] is None and result["not_measured"] == {"style": "no --style given"}
    )
    assert cli.main(["eval", str(images["content"]), "--style", str(images["style"])]) == 0
    text = capsys.readouterr().out
    assert "style distance:" in text and "content distance: not measured (no --content given)" in text
    assert cli.main(["eval", str(images["content"])]) == 2
    assert "--content and/or --style" in _one_line(capsys.readouterr().err)


@pytest.mark.parametrize("value", ["-5G", "-1", "-0.5M"])
def test_a_negative_size_names_the_bad_value(images, tmp_path, capsys, value):
    out = tmp_path / "o.png"
    args = ["stylize", str(images["content"]), str(images["style"]), "-o", str(out), "--max-memory", value]
    assert cli.main(args) == 2
    line = _one_line(capsys.readouterr().err)
    assert "--max-memory" in line and value in line and "expected one argument" not in line
    assert not out.exists()


def test_training_skips_bombs_and_broken_files_and_says_which(tmp_path, images, capsys):
    content, style = tmp_path / "content", tmp_path / "style"
    content.mkdir()
    style.mkdir()
    for i, name in enumerate(("content", "style2")):
        Image.open(images[name]).convert("RGB").save(content / f"c{i}.png")
    Image.open(images["style"]).convert("RGB").save(style / "s0.png")
    (content / "bomb.png").write_bytes(_png_header(100_000, 100_000))
    (content / "text.jpg").write_text("not a picture")
    data = (content / "c0.png").read_bytes()
    (content / "cut.png").write_bytes(data[: len(data) // 2])
    out = tmp_path / "d.safetensors"
    code = cli.main(
        [
            "train",
            "adain",
            "--content-dir",
            str(content),
            "--style-dir",
            str(style),
            "-o",
            str(out),
            "--size",
            "32",
            "--batch",
            "2",
            "--steps",
            "1",
            "--preview-every",
            "0",
            "--device",
            "cpu",
            "--precision",
            "fp32",
            "--workers",
            "0",
            "-q",
        ]
    )
    err = capsys.readouterr().err
    assert code == 0 and out.exists(), err
    assert "Traceback" not in err and "DecompressionBomb" not in err
    skipped = [line for line in err.splitlines() if "skipped" in line]
    assert len(skipped) == 1 and skipped[0].startswith("impasto: skipped 3 unreadable file(s)")
    for name, why in (("bomb.png", "too large"), ("text.jpg", "not an image"), ("cut.png", "corrupt or truncated")):
        assert f"{name} ({why}" in skipped[0], skipped[0]


def test_sigterm_stops_stylize_like_ctrl_c(images, tmp_path, capsys, monkeypatch):
    """`kill` (SIGTERM) keeps the last iterate with --save-every and exits with 130, as Ctrl-C does (it used to end
    the process with 143 and no output)."""
    import signal

    from impasto.methods.gatys import engine as gatys

    def terminate_at_step_3(history, tol, window=10):
        if len(history) == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return False

    monkeypatch.setattr(gatys, "_converged", terminate_at_step_3)
    before = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "kept.png"
    args = ["stylize", str(images["content"]), str(images["style"]), "--size", "48", "--steps", "6", "--tol", "0"]
    assert cli.main([*args, "--device", "cpu", "-q", "-o", str(out), "--save-every", "2"]) == 130
    assert "interrupted at step 3" in capsys.readouterr().err
    assert out.exists() and (tmp_path / "kept_step00002.png").exists()
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is the command's only while it runs


def test_the_default_memory_budget_never_refuses_a_run(images, monkeypatch):
    """On a small machine the smallest tiles run over the default budget, as they always did; only a --max-memory
    the user set is refused up front."""
    from impasto.methods.gatys import engine as gatys

    monkeypatch.setattr(gatys, "resolve_max_memory", lambda value, device=None: 1 if value is None else int(value))
    options = gatys.Options(size=64, steps=1, scales=1, device="cpu", precision="fp32")
    result = gatys.run(images["content"], iter([images["style"]]), options)  # any iterable of styles
    assert result.steps == 1 and result.image.shape[-1] == 64  # ran, over the (tiny) default budget
    with pytest.raises(impasto.ImpastoError, match="even tile by tile"):
        gatys.run(
            images["content"],
            [images["style"]],
            gatys.Options(
                max_memory=1, **{k: getattr(options, k) for k in ("size", "steps", "scales", "device", "precision")}
            ),
        )


def test_model_files_are_readable_by_others(tmp_path):
    from impasto.methods.adain.engine import save_decoder
    from impasto.nets.adain import Decoder

    path = save_decoder(Decoder(), tmp_path / "d.safetensors")
    assert path.stat().st_mode & 0o044 == 0o044  # like any file the user writes (umask 022), not mkstemp's 0600


def test_an_image_that_breaks_during_training_is_one_line(tmp_path, images, capsys, monkeypatch):
    """A file read fine at the start but unreadable later (moved, rewritten): one line even from a worker process,
    and the steps done so far are kept."""
    from impasto.errors import ImpastoError
    from impasto.train import data

    content, style = tmp_path / "c", tmp_path / "s"
    content.mkdir()
    style.mkdir()
    Image.open(images["content"]).save(content / "a.png")
    Image.open(images["style"]).save(style / "b.png")
    calls = {"n": 0}
    real = data.ImageFolder.__getitem__

    def breaks_later(self, index):
        calls["n"] += 1
        if calls["n"] > 8:  # calibration and the first steps read fine
            raise ImpastoError(f"{self.files[index]}: unreadable during training (OSError)")
        return real(self, index)

    monkeypatch.setattr(data.ImageFolder, "__getitem__", breaks_later)
    out = tmp_path / "d.safetensors"
    code = cli.main(
        [
            "train",
            "adain",
            "--content-dir",
            str(content),
            "--style-dir",
            str(style),
            "-o",
            str(out),
            "--size",
            "32",
            "--batch",
            "1",
            "--steps",
            "20",
            "--checkpoint-every",
            "100",
            "--preview-every",
            "0",
            "--device",
            "cpu",
            "--precision",
            "fp32",
            "--workers",
            "1",
            "-q",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "unreadable during training" in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1
    assert out.exists() and Path(str(out) + ".ckpt").exists()  # the steps done were saved


def _wait_in_a_worker() -> None:
    import signal
    import time

    from impasto.train.data import _leave_signals_to_the_trainer

    signal.signal(signal.SIGTERM, lambda *_: time.sleep(3600))  # what a handler inherited through fork may do
    _leave_signals_to_the_trainer(0)
    signal.pause()


def test_a_training_data_worker_ends_on_its_own_sigterm_so_the_process_can_exit():
    """A worker that ignored SIGTERM kept `multiprocessing`'s exit hook waiting forever (CI hung after the suite
    passed); it still leaves the trainer's process group, so a group-wide Ctrl-C or SIGTERM does not reach it."""
    import multiprocessing
    import signal

    worker = multiprocessing.get_context("fork").Process(target=_wait_in_a_worker, daemon=True)
    worker.start()
    try:
        for _ in range(200):  # until it has moved to its own group
            if os.getpgid(worker.pid) == worker.pid:
                break
            worker.join(0.05)
        assert os.getpgid(worker.pid) == worker.pid != os.getpgid(0)
        worker.terminate()
        worker.join(30)
        assert worker.exitcode == -signal.SIGTERM
    finally:
        if worker.is_alive():
            worker.kill()


def test_a_data_stream_stops_its_workers_whatever_ends_it(monkeypatch):
    """An interrupt raised while the trainer waits for a batch (inside the DataLoader, whose frames the traceback then
    keeps alive) ends the stream there: its workers must stop with it, or torch, still watching them, reports their
    deaths (a signal sent to the whole command) as errors later, in the middle of the interruption's checkpoint save."""
    import multiprocessing

    import torch
    from torch.utils.data.dataloader import _MultiProcessingDataLoaderIter as Loading

    from impasto.train.data import stream

    real, calls = Loading._next_data, []

    def waiting(self):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as a signal would, while the second batch is awaited
        return real(self)

    monkeypatch.setattr(Loading, "_next_data", waiting)
    batches = stream(lambda step: torch.full((1,), float(step)), 0, 100, workers=1)
    assert float(next(batches)) == 0.0
    assert multiprocessing.active_children()
    with pytest.raises(KeyboardInterrupt) as interrupted:
        next(batches)
    # The traceback still held (as the trainer's except clause holds it while it saves), and the workers gone.
    assert interrupted.traceback and not multiprocessing.active_children()
