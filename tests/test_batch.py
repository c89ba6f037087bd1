"""impasto batch: many pictures in one call, resumable, bad inputs recorded, manifests with per-row options."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import impasto
from impasto import cli

FAST = ["--method", "adain", "--size", "32", "-q"]


@pytest.fixture
def album(images, tmp_path) -> Path:
    """Two photos (one in a sub-folder), a truncated one, a text file named .jpg, and a note that is no picture."""
    root = tmp_path / "album"
    (root / "trip").mkdir(parents=True)
    Image.open(images["content"]).save(root / "cat.png")
    Image.open(images["style2"]).save(root / "trip" / "blocks.jpg")
    data = (root / "cat.png").read_bytes()
    (root / "broken.png").write_bytes(data[: len(data) // 3])
    (root / "fake.jpg").write_text("not a picture")
    (root / "notes.txt").write_text("a note")
    return root


def _report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def test_a_folder_keeps_its_layout_records_bad_files_and_goes_on(album, images, tmp_path, capsys):
    out = tmp_path / "out"
    code = cli.main(["batch", str(album), "-o", str(out), "--style", str(images["style"]), "--recursive", *FAST])
    err = capsys.readouterr().err
    assert code == 1  # something failed
    report = _report(out)
    assert sorted(report["done"]) == ["cat.png", "trip/blocks.png"]
    assert sorted(Path(f["input"]).name for f in report["failed"]) == ["broken.png", "fake.jpg"]
    assert all("\n" not in f["error"] for f in report["failed"])
    assert report["ignored"] == [str(album / "notes.txt")] and report["interrupted"] is False
    assert max(Image.open(out / "trip" / "blocks.png").size) == 32
    assert "2 done, 0 skipped (already there), 2 failed, 1 ignored" in err
    assert "failed: " in err and "fake.jpg: not an image" in err and "Traceback" not in err
    assert sorted(p.name for p in out.rglob("*")) == ["blocks.png", "cat.png", "report.json", "trip"]  # no temp files


def test_a_rerun_continues_where_the_last_one_stopped(album, images, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["batch", str(album / "cat.png"), str(album / "trip"), "-o", str(out), "--style", str(images["style"])]
    assert cli.main([*args, *FAST]) == 0
    first = (out / "cat.png").stat().st_mtime_ns
    (out / "blocks.png").unlink()  # as if interrupted before this one
    assert cli.main([*args, *FAST]) == 0
    report = _report(out)
    assert report["done"] == ["blocks.png"] and report["skipped"] == ["cat.png"]
    assert (out / "cat.png").stat().st_mtime_ns == first
    assert cli.main([*args, *FAST, "--no-skip-existing"]) == 0
    assert sorted(_report(out)["done"]) == ["blocks.png", "cat.png"]
    assert "0 failed" in capsys.readouterr().err


def test_a_manifest_gives_each_row_its_own_paintings_options_and_name(album, images, tmp_path):
    manifest = tmp_path / "jobs.csv"
    manifest.write_text(
        "content,style,output,strength\n"
        f"{album / 'cat.png'},,cat-photo.png,0\n"
        f"{album / 'cat.png'},{images['style']},cat-full.png,1\n"
        f"{album / 'cat.png'},{images['style']};{images['style2']},cat-blend.png,\n"
        f"{album / 'cat.png'},,cat-bad.png,7\n"
    )
    out = tmp_path / "out"
    report = impasto.batch(manifest, out, images["style2"], method="adain", size=32, precision="fp32", device="cpu")
    assert sorted(report["done"]) == ["cat-blend.png", "cat-full.png", "cat-photo.png"]
    assert len(report["failed"]) == 1 and "--strength must be between 0 and 1" in report["failed"][0]["error"]
    photo = np.asarray(Image.open(album / "cat.png").convert("RGB").resize((32, 21)), dtype=float)
    near, far = (np.asarray(Image.open(out / n), dtype=float) for n in ("cat-photo.png", "cat-full.png"))
    assert np.abs(near - photo).mean() < np.abs(far - photo).mean()  # strength 0 stays closest to the photo

    lines = tmp_path / "jobs.jsonl"
    lines.write_text(json.dumps({"content": str(album / "cat.png"), "output": "deep/one.png", "strength": 0.5}) + "\n")
    report = impasto.batch(lines, out, images["style"], method="adain", size=32, device="cpu")
    assert report["done"] == ["deep/one.png"] and (out / "deep" / "one.png").exists()


def test_globs_and_bad_arguments(album, images, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["batch", str(album / "*.png"), "-o", str(out), "--style", str(images["style"]), *FAST]) == 1
    report = _report(out)
    assert report["done"] == ["cat.png"] and [Path(f["input"]).name for f in report["failed"]] == ["broken.png"]
    capsys.readouterr()
    for args, message in (
        ([str(tmp_path / "nothing-*.png")], "no file matches"),
        ([str(tmp_path / "missing")], "no such file, folder or matching pattern"),
        ([str(album / "cat.png")], "no style images"),
    ):
        style = [] if message == "no style images" else ["--style", str(images["style"])]
        assert cli.main(["batch", *args, "-o", str(tmp_path / "o2"), *style, *FAST]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and message in err, err


def test_the_same_batch_on_a_local_ray_gives_the_same_pictures_and_account(album, images, tmp_path):
    """Two Ray actors on this machine (the `ray` extra; `make test` installs it)."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'impasto[ray]'; make test installs it)")
    from impasto.batch import RaySettings, run_batch

    kw = dict(method="adain", size=32, precision="fp32", device="cpu", recursive=True)
    local = run_batch([album], tmp_path / "local", [images["style"]], **kw)
    # A Ray started for the job is shut down after it: this one is kept for both batches below (it starts in seconds).
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = run_batch([album], tmp_path / "ray", [images["style"]], ray=RaySettings(workers=2), **kw)
        again = run_batch([album], tmp_path / "ray", [images["style"]], ray=RaySettings(workers=2), **kw)
    finally:
        ray.shutdown()
    assert sorted(on_ray.done) == sorted(local.done) == ["cat.png", "trip/blocks.png"]
    assert sorted(f["error"] for f in on_ray.failed) == sorted(f["error"] for f in local.failed)
    for name in local.done:
        a = np.asarray(Image.open(tmp_path / "local" / name), dtype=int)
        b = np.asarray(Image.open(tmp_path / "ray" / name), dtype=int)
        assert np.abs(a - b).max() <= 1, name  # the same engine in each actor
    # Resumable in the same way: a rerun on Ray skips what is there.
    assert sorted(again.skipped) == ["cat.png", "trip/blocks.png"] and not again.done
    assert json.loads((tmp_path / "ray" / "report.json").read_text())["skipped"] == again.skipped


def test_ray_flags_need_ray(album, images, tmp_path, capsys):
    out = tmp_path / "out"
    code = cli.main(["batch", str(album), "-o", str(out), "--style", str(images["style"]), "--workers", "3", *FAST])
    assert code == 2 and "--workers and --gpus-per-worker are for --ray" in capsys.readouterr().err
