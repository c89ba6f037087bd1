"""The bad-input corpus (tests/corpus.py) through every interface that takes files: stylize, eval, train, the HTTP API.

Each case asserts the documented outcome: taken (exit 0 / HTTP 200) or refused with one line naming the problem
(exit 2 / HTTP 400 with a JSON error), no traceback, no partial output, and inputs unchanged.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import corpus
import pytest
from PIL import Image

from impasto import cli

# Pictures VGG-19 cannot measure up to relu5_1 (16 px a side): eval refuses them, whatever made them.
TOO_SMALL_TO_MEASURE = {"one-pixel.png", "sliver.png"}


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> dict[str, tuple[Path, corpus.Case]]:
    return corpus.images(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def model_files(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    return corpus.models(tmp_path_factory.mktemp("models"))


def _digests(paths) -> dict[str, str]:
    return {str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


def _refused(err: str, why: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("impasto: error:") and "Traceback" not in err, err
    assert why in lines[0], (why, lines[0])


def test_stylize_takes_or_refuses_each_picture(pictures, images, tmp_path, capsys):
    before = _digests([p for p, _ in pictures.values()])
    for name, (path, case) in pictures.items():
        out = tmp_path / f"out-{len(name)}.png"
        for role, args in (
            ("content", [str(path), str(images["style"])]),
            ("style", [str(images["content"]), str(path)]),
        ):
            code = cli.main(["stylize", *args, "-o", str(out), "--method", "adain", "--size", "32", "-q"])
            err = capsys.readouterr().err
            if case.ok:
                assert code == 0 and err == "" and out.exists(), (name, role, err)
                assert Image.open(out).mode == "RGB"
                out.unlink()
            else:
                assert code == 2, (name, role)
                _refused(err, case.why)
            assert list(tmp_path.iterdir()) == [], (name, role)  # no output, no temporary file
    assert _digests([p for p, _ in pictures.values()]) == before


def test_eval_takes_or_refuses_each_picture(pictures, images, capsys):
    for name, (path, case) in pictures.items():
        code = cli.main(["eval", str(path), "--style", str(images["style"]), "--json"])
        out, err = capsys.readouterr()
        if case.ok and name not in TOO_SMALL_TO_MEASURE:
            assert code == 0 and err == "" and '"style"' in out, (name, err)
        else:
            assert code == 2, name
            _refused(err, case.why if not case.ok else "too small")


def test_training_takes_the_good_pictures_and_names_the_rest(pictures, images, tmp_path, capsys):
    content, style, only_bad = tmp_path / "content", tmp_path / "style", tmp_path / "bad"
    for folder in (content, style, only_bad):
        folder.mkdir()
    for name, (path, case) in pictures.items():
        (content / name).write_bytes(path.read_bytes())
        if not case.ok:
            (only_bad / name).write_bytes(path.read_bytes())
    Image.open(images["style"]).save(style / "s.png")
    base = [
        "train",
        "adain",
        "--style-dir",
        str(style),
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
    out = tmp_path / "d.safetensors"
    assert cli.main([*base, "--content-dir", str(content), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    bad = [name for name, (_, case) in pictures.items() if not case.ok]
    assert f"skipped {len(bad)} unreadable file(s)" in err and all(name in err for name in bad), err
    assert "Traceback" not in err and out.exists()
    assert cli.main([*base, "--content-dir", str(only_bad), "-o", str(tmp_path / "e.safetensors")]) == 2
    _refused(capsys.readouterr().err, "no readable images")
    assert not (tmp_path / "e.safetensors").exists()


@pytest.mark.parametrize(
    "flag, expected",
    [
        (
            "--decoder",
            {
                "wrong-shapes.safetensors": "not an AdaIN decoder",
                "pickle.pth": "not a readable",
                "empty.pth": "not a readable",
            },
        ),
        ("--weights", {"wrong-shapes.safetensors": "not a VGG-19", "empty.pth": "not a readable"}),
    ],
)
def test_broken_model_files_are_one_line(model_files, images, tmp_path, capsys, flag, expected):
    out = tmp_path / "o.png"
    for name, (path, word) in model_files.items():
        word = expected.get(name, word)
        args = ["stylize", str(images["content"]), str(images["style"]), "-o", str(out), "--size", "32", "-q"]
        if flag == "--decoder":
            args += ["--method", "adain"]
        assert cli.main([*args, flag, str(path)]) == 2, (flag, name)
        _refused(capsys.readouterr().err, word)
        assert not out.exists()


def test_an_output_that_aliases_an_input_is_refused(images, tmp_path, capsys):
    photo = tmp_path / "photo.png"
    photo.write_bytes(images["content"].read_bytes())
    before = _digests([photo])
    (tmp_path / "via-symlink.png").symlink_to(photo)
    os.link(photo, tmp_path / "via-hardlink.png")
    for alias in ("via-symlink.png", "via-hardlink.png"):
        args = ["stylize", str(photo), str(images["style"]), "-o", str(tmp_path / alias), "--method", "adain"]
        assert cli.main([*args, "--size", "32", "-q"]) == 2, alias
        _refused(capsys.readouterr().err, "overwrite an input")
    assert _digests([photo]) == before


def test_the_http_api_takes_or_refuses_each_picture(pictures, images):
    fastapi_testclient = pytest.importorskip("fastapi.testclient")
    from impasto.serve import ServeSettings, create_app

    style = images["style"].read_bytes()
    client = fastapi_testclient.TestClient(create_app(ServeSettings()), base_url="http://127.0.0.1:8000")
    with client as c:
        for name, (path, case) in pictures.items():
            files = [("content", (name, path.read_bytes(), "image/png")), ("styles", ("s.png", style, "image/png"))]
            r = c.post("/api/jobs?wait=true", files=files, data={"method": "adain", "size": "32"})
            if case.ok:
                assert r.status_code == 200 and r.headers["content-type"] == "image/png", (name, r.text[:200])
                assert Image.open(io.BytesIO(r.content)).mode == "RGB"
            else:
                assert r.status_code == 400, (name, r.status_code)
                body = r.json()
                assert set(body) == {"error"} and "\n" not in body["error"], (name, body)


def test_a_read_only_target_is_refused_before_any_work(images, tmp_path, capsys, monkeypatch):
    """A folder the user may not write to (simulated: the suite may run as root, who may write anywhere)."""
    target = tmp_path / "locked"
    target.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == target else real_access(p, mode))
    for args in (
        ["stylize", str(images["content"]), str(images["style"]), "-o", str(target / "o.png"), "--size", "32"],
        [
            "train",
            "adain",
            "--content-dir",
            str(tmp_path),
            "--style-dir",
            str(tmp_path),
            "-o",
            str(target / "d.safetensors"),
        ],
    ):
        assert cli.main([*args, "-q"]) == 2, args[0]
        _refused(capsys.readouterr().err, "not writable")
    assert list(target.iterdir()) == []
