"""Video: tiny clips made here (a pan across a photo, so the motion is known, with a tone for sound)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

av = pytest.importorskip("av", reason="PyAV is not installed (make dev)")
pytest.importorskip("cv2", reason="OpenCV is not installed (make dev)")

from impasto.cli import main  # noqa: E402
from impasto.core.video import probe, transcode  # noqa: E402
from impasto.errors import ImpastoError  # noqa: E402
from impasto.methods.fast.model import save_model  # noqa: E402
from impasto.nets.fast import TransformerNet  # noqa: E402
from impasto.video import frames_of, stylize_video, temporal_error  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "impasto" / "examples"


def make_clip(
    path: Path, frames: int = 12, size=(64, 48), fps: int = 10, audio: bool = True, step: int = 2, options=None
) -> Path:
    """A pan: a window sliding `step` px per frame across the example photo, with a 440 Hz tone (`options`: the
    muxer's)."""
    photo = np.asarray(Image.open(EXAMPLES / "chelsea.png").convert("RGB").resize((160, 120), Image.LANCZOS))
    w, h = size
    with av.open(str(path), "w", options=options or {}) as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        a = None
        if audio:
            a = out.add_stream("aac", rate=16000)
            a.layout = "mono"
        for i in range(frames):
            crop = np.ascontiguousarray(photo[20 : 20 + h, 10 + step * i : 10 + step * i + w])
            for p in v.encode(av.VideoFrame.from_ndarray(crop, "rgb24")):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
        if a is not None:
            n = int(16000 * frames / fps)
            t = np.arange(n) / 16000
            tone = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)[None]
            for start in range(0, n, 1024):
                f = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, start : start + 1024]), "s16", "mono")
                f.sample_rate = 16000
                f.pts = start
                f.time_base = Fraction(1, 16000)
                for p in a.encode(f):
                    out.mux(p)
            for p in a.encode():
                out.mux(p)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("video") / "pan.mp4")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    torch.manual_seed(0)
    net = TransformerNet(1, 4, 1)
    with torch.no_grad():
        net.cond[-1].weight.normal_(0, 0.3)
        net.cond[-1].bias.normal_(0, 0.3)
        for conv in net.conv_in:
            conv[1].weight.mul_(3)  # a busy texture that changes with the content: flickers frame to frame
    path = tmp_path_factory.mktemp("model") / "m.safetensors"
    save_model(net, ["x"], path, image_size=48, recipe={})
    return str(path)


def _audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(audio=0) if p.size]


def test_frames_rate_and_sound_are_kept(clip, model, tmp_path):
    out = tmp_path / "out.mp4"
    report = stylize_video(clip, out, method="fast", model=model, size=None, device="cpu", precision="fp32")
    assert report.frames == 12 and report.audio == "copied"
    info, source = probe(out), probe(clip)
    assert (info.width, info.height) == (64, 48) and info.fps == pytest.approx(source.fps)
    assert len(frames_of(out)) == 12
    assert info.audio == "aac"
    assert _audio_packets(out) == _audio_packets(clip)  # the sound copied byte for byte


def test_temporal_consistency_lowers_the_warping_error(clip, model, tmp_path):
    plain, steady = tmp_path / "plain.mp4", tmp_path / "steady.mp4"
    kw = dict(method="fast", model=model, size=None, device="cpu", precision="fp32")
    stylize_video(clip, plain, temporal=0.0, **kw)
    stylize_video(clip, steady, temporal=0.8, **kw)
    a, b = temporal_error(plain, clip), temporal_error(steady, clip)
    assert b["warping_error"] < 0.5 * a["warping_error"], (a, b)
    assert a["reliable"] > 0.5  # the pan is easy to follow: most pixels are checked


def test_the_blend_carries_broad_colour_further_than_strokes_keeps_their_energy_and_leaves_unreliable_pixels_alone():
    from impasto.video import TemporalBlend

    h, w = 40, 60
    previous = np.full((h, w, 3), 100, np.uint8)
    checker = (np.indices((h, w)).sum(0) % 2 * 40 - 20)[..., None]  # strokes: +-20 from pixel to pixel
    stylized = (140 + checker).repeat(3, -1).astype(np.uint8)  # and the whole patch 40 brighter: broad flicker
    mask = np.ones((h, w), np.float32)
    mask[:, 40:] = 0  # the right third was occluded
    still = np.zeros((h, w, 2), np.float32)
    blend = TemporalBlend(0.5)
    out = blend.apply(stylized, (still, mask), previous).astype(float)
    inner = out[8:-8, 8:32]  # away from the border and from the occlusion
    lo = 1 - (1 - 0.5) ** TemporalBlend.LOW_BLENDS
    assert lo > 0.5
    assert abs(inner.mean() - (140 - 40 * lo)) < 1.5  # the broad part pulled further back than the strength
    amplitude = np.abs(inner - inner.mean()).mean()
    # Blended half-way with a frame without strokes, the strokes keep half their amplitude, a quarter of their
    # energy; the gain gives back what it may (a single strength without it would flatten them to 10).
    assert abs(amplitude - 20 * 0.5 * TemporalBlend.MAX_GAIN) < 1.5
    assert (out[:, 40:] == stylized[:, 40:]).all()  # nothing reliable came from there
    # The same strokes carried along (the previous output lines up): nothing to restore, nothing amplified.
    same = blend.apply(stylized, (still, mask), (100 + checker).repeat(3, -1).astype(np.uint8)).astype(float)
    inner = same[8:-8, 8:32]
    assert abs(np.abs(inner - inner.mean()).mean() - 20) < 1.5
    assert (TemporalBlend(0.0).apply(stylized, (still, mask), previous) == stylized).all()


def test_frames_painted_two_at_once_come_out_as_one_at_a_time_in_order(clip, model, tmp_path):
    kw = dict(method="fast", model=model, size=None, device="cpu", precision="fp32", temporal=0.8)
    painted, steps = {}, {}
    for workers in (1, 2):
        seen: list[int] = []
        frames: list[np.ndarray] = []

        def callback(p, seen=seen, frames=frames):
            seen.append(p.step)
            frames.append(np.asarray(p.image[0]).transpose(1, 2, 0) * 255)

        report = stylize_video(clip, tmp_path / f"w{workers}.mp4", workers=workers, callback=callback, **kw)
        assert report.frames == 12 and len(frames_of(tmp_path / f"w{workers}.mp4")) == 12
        steps[workers], painted[workers] = seen, frames
    assert steps[1] == steps[2] == list(range(1, 13))  # progress in frame order, one report per frame
    # The same frames, blended in the same order, before encoding: two single-threaded runs may round differently
    # from one two-threaded run (x264 then decides differently on the encoded frames, by up to 17 levels on a CPU
    # with AVX-512, so those are not compared).
    assert max(np.abs(a - b).max() for a, b in zip(painted[1], painted[2])) <= 3


def test_a_videos_frames_all_run_on_the_engines_runtime_for_frames_of_one_size(clip, model, tmp_path):
    pytest.importorskip("openvino", reason="openvino is not installed (make dev)")
    from impasto.core.onnx import OpenVinoSession
    from impasto.methods.fast import Options
    from impasto.methods.fast.runtime import OrtFastEngine
    from impasto.video import _cores

    # As auto makes it on a CPU with bf16 units: pictures on onnxruntime, frames of one size on OpenVINO.
    engine = OrtFastEngine(Options(model=model, size=None), runtime="onnx", stream_runtime="openvino")
    for workers in (1, 2):
        report = stylize_video(clip, tmp_path / f"w{workers}.mp4", method="fast", model=model, size=None,
                               engine=engine, workers=workers)  # fmt: skip
        assert report.frames == 12
    sessions = {key: future.result() for key, future in engine._opening.items()}
    # The first frame (run by the caller) shares the workers' thread budget: one session, one compiled frame size.
    budget = max(1, _cores() // 2)  # two workers' share each
    assert {(threads, runtime) for _, threads, runtime in sessions} == {(None, "openvino"), (budget, "openvino")}
    assert all(isinstance(s, OpenVinoSession) and len(s._compiled) == 1 for s in sessions.values())
    assert engine.runtime_here() == "onnx"  # the caller's thread is itself again afterwards


def test_a_failing_frame_stops_a_pipelined_run_and_leaves_nothing(clip, model, tmp_path):
    out = tmp_path / "stopped.mp4"

    def fail_at_five(p):
        if p.step == 5:
            raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        stylize_video(clip, out, method="fast", model=model, size=None, workers=2, callback=fail_at_five)
    assert list(tmp_path.iterdir()) == []


def test_a_part_webm_and_a_size(clip, model, tmp_path):
    out = tmp_path / "part.webm"
    report = stylize_video(clip, out, method="fast", model=model, size=32, start=0.3, duration=0.5, device="cpu")
    assert report.frames == 5 and report.audio == "re-encoded to opus"
    info = probe(out)
    assert (info.width, info.height) == (32, 24) and info.audio == "opus"


def test_bad_inputs_are_one_line_errors_and_leave_nothing(clip, model, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(clip.read_bytes()[:600])
    silent = tmp_path / "sound.m4a"
    with av.open(str(silent), "w") as c:
        a = c.add_stream("aac", rate=16000)
        a.layout = "mono"
        f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.int16), "s16", "mono")
        f.sample_rate = 16000
        for p in [*a.encode(f), *a.encode()]:
            c.mux(p)
    out = tmp_path / "out.mp4"
    kw = dict(method="fast", model=model, device="cpu")
    for src, extra, message in [
        (text, {}, "not a video"),
        (truncated, {}, "video"),
        (silent, {}, "no video stream"),
        (tmp_path / "missing.mp4", {}, "no such file"),
        (clip, {"max_pixels": 1000}, "above the cap"),
        (clip, {"start": 60.0}, "no video frames"),
        (clip, {"crf": 52}, "--crf"),
        (clip, {"preset": "quick"}, "--preset"),
    ]:
        with pytest.raises(ImpastoError, match=message):
            stylize_video(src, out, **kw, **extra)
        assert not out.exists()
        assert not list(tmp_path.glob(".out.mp4*")), "a temporary file was left behind"
    with pytest.raises(ImpastoError, match="unsupported video extension"):
        transcode(clip, tmp_path / "out.avi", lambda f, i, t: f)


def test_truncated_files_pictures_folders_and_odd_numbers_are_refused(clip, model, tmp_path, capsys):
    # Cut where FFmpeg still reads what is left: an MP4 with its index first, a Matroska file.
    faststart = make_clip(tmp_path / "fs.mp4", frames=30, options={"movflags": "faststart"})
    mkv = make_clip(tmp_path / "clip.mkv", frames=30)
    out = tmp_path / "out.mp4"
    kw = dict(method="fast", model=model, device="cpu", size=32)
    for whole in (faststart, mkv):
        cut = tmp_path / f"cut{whole.suffix}"
        cut.write_bytes(whole.read_bytes()[: len(whole.read_bytes()) * 6 // 10])
        assert stylize_video(whole, out, **kw).frames == 30  # the whole file is fine
        out.unlink()
        with pytest.raises(ImpastoError, match="truncated"):
            stylize_video(cut, out, **kw)
        with pytest.raises(ImpastoError, match="truncated"):  # found before any work, whatever part is asked for
            stylize_video(cut, out, duration=0.3, **kw)
    # Whole files that look short to a naive count: a raw stream (no times, no length), Matroska starting at 10 s
    # (its header states the end's time), a second audio track longer than the first.
    assert stylize_video(make_clip(tmp_path / "raw.h264", audio=False), out, **kw).frames == 12
    out.unlink()
    late = tmp_path / "late.mkv"
    with av.open(str(late), "w") as c:
        v = c.add_stream("libx264", rate=10)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        for i in range(12):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i, np.uint8), "rgb24")
            f.pts, f.time_base = 100 + i, Fraction(1, 10)
            for p in v.encode(f):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
    assert probe(late).duration > 10  # (the case in point)
    assert stylize_video(late, out, **kw).frames == 12
    out.unlink()
    two = tmp_path / "two.mkv"
    with av.open(str(clip)) as src, av.open(str(two), "w") as c:
        streams = {s.index: c.add_stream_from_template(s) for s in src.streams}
        second = c.add_stream("aac", rate=16000)
        second.layout = "mono"
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                c.mux(packet)
        for start in range(0, 16000 * 3, 1024):  # 3 s of silence, against the clip's 1.2 s
            f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.int16), "s16", "mono")
            f.sample_rate, f.pts, f.time_base = 16000, start, Fraction(1, 16000)
            for p in second.encode(f):
                c.mux(p)
        for p in second.encode():
            c.mux(p)
    assert stylize_video(two, out, **kw).frames == 12
    out.unlink()
    # MPEG-TS starts its times later than 0: --duration counts from the first frame.
    ts = make_clip(tmp_path / "clip.ts")
    assert stylize_video(ts, out, duration=0.5, **kw).frames == 5
    out.unlink()
    # ... and where FFmpeg's seek lands nowhere (one keyframe), the part is read from the beginning.
    plain = {**kw, "size": None, "temporal": 0.0}
    stylize_video(ts, tmp_path / "whole.mp4", **plain)
    whole = [np.asarray(f, float) for f in frames_of(tmp_path / "whole.mp4")]
    assert stylize_video(ts, out, start=0.3, duration=0.3, **plain).frames == 3
    first = np.asarray(frames_of(out)[0], float)
    assert int(np.argmin([np.abs(first - f).mean() for f in whole])) == 3
    out.unlink()
    picture = tmp_path / "photo.png"
    Image.open(EXAMPLES / "chelsea.png").save(picture)
    avif = tmp_path / "photo.avif"  # an MP4-like box structure, but a photo
    Image.open(EXAMPLES / "chelsea.png").convert("RGB").save(avif)
    folder = tmp_path / "folder.mp4"
    folder.mkdir()
    for src, dst, extra, message in [
        (picture, out, {}, "a still picture, not a video"),
        (avif, out, {}, "a still picture, not a video"),
        (tmp_path, out, {}, "is a folder, not a video"),
        (clip, folder, {}, "is a folder"),
        (clip, out, {"start": float("nan")}, "--start"),
        (clip, out, {"duration": float("inf")}, "--duration"),
        (clip, out, {"size": 9000}, "--size 9000 is above the cap of 8192 px; pass --max-size 9000"),
        (clip, out, {"size": None, "max_size": 32}, "above the cap of 32 px; pass --size 32"),
    ]:
        with pytest.raises(ImpastoError, match=message):
            stylize_video(src, dst, **{**kw, **extra})
        assert not out.exists() and not list(tmp_path.glob(".out.mp4*"))
    # At the cap: the grid's padding around each frame is no part of --size.
    assert stylize_video(clip, out, **{**kw, "size": 40, "max_size": 40, "temporal": 0.5}).frames == 12
    assert main(["video", str(clip), "-o", str(out), "--model", model, "--max-megapixels", "0.001"]) == 2
    assert "pass --max-megapixels 0.01 to allow it" in capsys.readouterr().err


def test_cli_video_and_eval(clip, model, tmp_path, capsys):
    out = tmp_path / "cli.mp4"
    code = main(["video", str(clip), "-o", str(out), "--model", model, "--size", "48", "--temporal", "0.5", "-q"])
    assert code == 0 and probe(out).width == 48
    assert main(["eval-video", str(out), "--source", str(clip), "--json", "--style", str(EXAMPLES / "swirls.png")]) == 0
    measured = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"warping_error", "reliable", "content", "style", "sampled_frames"} <= set(measured)
    assert measured["sampled_frames"] == 4 and measured["content"] > 0  # every 3rd of 12 frames
    assert main(["eval-video", str(out), "--source", str(clip), "--json", "--every", "6"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["sampled_frames"] == 2
    assert main(["eval-video", str(out), "--source", str(clip), "--every", "6"]) == 0
    assert "(every 6th frame: 2 frames)" in capsys.readouterr().out
    assert main(["eval-video", str(out), "--source", str(clip), "--every", "0"]) == 2
    assert "--every" in capsys.readouterr().err
    painted = tmp_path / "painting.mp4"  # a style image after -o, as well as before
    style = str(EXAMPLES / "swirls.png")
    assert main(["video", str(clip), "-o", str(painted), style, "--model", model, "--size", "32", "-q"]) == 2
    assert "paints its trained styles, not style images" in capsys.readouterr().err
    assert main(["video", str(clip), "-o", str(clip), "--model", model]) == 2
    assert "overwrite the input" in capsys.readouterr().err
    assert main(["video", str(clip), "-o", str(tmp_path / "x.mp4"), "--temporal", "2", "--model", model]) == 2
    assert "--temporal" in capsys.readouterr().err


def test_a_lower_crf_keeps_the_painted_frames_closer_in_a_larger_file(clip, model, tmp_path):
    kw = dict(method="fast", model=model, size=None, device="cpu", precision="fp32", temporal=0.0)
    outs = {crf: tmp_path / f"crf{crf}.mp4" for crf in (0, 10, 40)}
    for crf, out in outs.items():
        stylize_video(clip, out, crf=crf, **kw)
    frames = {crf: np.stack(frames_of(out)).astype(float) for crf, out in outs.items()}
    assert outs[10].stat().st_size > outs[40].stat().st_size
    assert np.abs(frames[10] - frames[0]).mean() < np.abs(frames[40] - frames[0]).mean()
    assert main(["video", str(clip), "-o", str(tmp_path / "x.mp4"), "--crf", "-1", "--model", model]) == 2
    stylize_video(clip, tmp_path / "coarsest.webm", crf=51, **kw)  # (VP9's scale is shifted and ends at 63)
    assert len(frames_of(tmp_path / "coarsest.webm")) == len(frames[0])


def test_the_encoder_preset_reaches_x264_and_vp9(clip, model, tmp_path, capsys):
    kw = dict(method="fast", model=model, size=48, device="cpu", precision="fp32", temporal=0.0)
    # x264 writes its settings into the stream: faster by default (subme=4), ultrafast's and veryslow's when asked.
    for preset, subme in [(None, b"subme=4 "), ("ultrafast", b"subme=0 "), ("veryslow", b"subme=10 ")]:
        out = tmp_path / f"{preset}.mp4"
        stylize_video(clip, out, preset=preset, **kw)
        assert subme in out.read_bytes(), preset
    stylize_video(clip, tmp_path / "fast.webm", preset="ultrafast", **kw)  # VP9: cpu-used 8
    assert len(frames_of(tmp_path / "fast.webm")) == len(frames_of(clip))
    args = ["video", str(clip), "-o", str(tmp_path / "x.mp4"), "--model", model, "--size", "48", "-q"]
    assert main([*args, "--preset", "ultrafast"]) == 0 and b"subme=0 " in (tmp_path / "x.mp4").read_bytes()
    assert main([*args, "--preset", "quick"]) == 2
    assert "--preset must be one of ultrafast" in capsys.readouterr().err


def test_a_video_job_over_http_returns_an_mp4_with_the_sound(clip, model, tmp_path):
    from fastapi.testclient import TestClient

    from impasto.serve import ServeSettings
    from impasto.serve.app import create_app

    settings = ServeSettings(max_size=64, default_size=48, job_defaults={"device": "cpu", "precision": "fp32"})
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as c:
        files = {"content": ("pan.mp4", clip.read_bytes(), "video/mp4")}
        r = c.post("/api/jobs?wait=true", files=files, data={"method": "fast", "model": model, "temporal": "0.5"})
        assert r.status_code == 200 and r.headers["content-type"] == "video/mp4", r.text
        out = tmp_path / "job.mp4"
        out.write_bytes(r.content)
        info = probe(out)
        assert info.width == 48 and info.audio == "aac" and len(frames_of(out)) == 12
        job = c.get(f"/api/jobs/{r.headers['X-Job-Id']}").json()
        assert (job["step"], job["total"], job["status"]) == (12, 12, "done")
        assert not list(c.app.state.jobs.results_dir.glob("upload-*"))  # the uploaded clip is gone with its job
        bad = c.post(
            "/api/jobs",
            files={"content": ("x.mp4", clip.read_bytes()[:700], "video/mp4")},
            data={"method": "fast", "model": model},
        )
        assert bad.status_code == 400 and bad.json()["error"].startswith("video:"), bad.text
        # Cut short where the header still reads: the job fails, and its message names no path of the server's.
        whole = make_clip(tmp_path / "fs.mp4", frames=30, options={"movflags": "faststart"}).read_bytes()
        cut = {"content": ("cut.mp4", whole[: len(whole) * 6 // 10], "video/mp4")}
        r = c.post("/api/jobs?wait=true", files=cut, data={"method": "fast", "model": model})
        assert r.status_code >= 400 and r.json()["error"].startswith("video: the file ends"), r.text
        photo = c.post(
            "/api/jobs",
            files={"content": ("p.png", (EXAMPLES / "chelsea.png").read_bytes(), "image/png")},
            data={"method": "fast", "model": model, "temporal": "0.5"},
        )
        assert photo.status_code == 400 and "only for a video" in photo.json()["error"]
        # crf: the encoder's quality, as impasto video --crf
        sizes = []
        for crf in ("0", "45"):
            r = c.post("/api/jobs?wait=true", files=files, data={"method": "fast", "model": model, "crf": crf})
            assert r.status_code == 200 and r.headers["content-type"] == "video/mp4", r.text
            sizes.append(len(r.content))
        assert sizes[1] < sizes[0] / 2
        # temporal left out: the method's default, lighter for paintings sent as styles (the model for any painting)
        from impasto.methods import fast

        job = c.get(f"/api/jobs/{r.headers['X-Job-Id']}").json()
        assert job["video"]["temporal"] == fast.VIDEO_TEMPORAL
        painting = ("s.png", (EXAMPLES / "swirls.png").read_bytes(), "image/png")
        r = c.post("/api/jobs?wait=true", files={**files, "styles": painting}, data={"method": "fast"})
        assert r.status_code == 200 and r.headers["content-type"] == "video/mp4", r.text
        job = c.get(f"/api/jobs/{r.headers['X-Job-Id']}").json()
        assert job["video"]["temporal"] == fast.VIDEO_TEMPORAL_STYLE_IMAGES
        described = next(m for m in c.get("/api/methods").json() if m["name"] == "fast")
        assert (described["video_temporal"], described["video_temporal_style_images"]) == (
            fast.VIDEO_TEMPORAL,
            fast.VIDEO_TEMPORAL_STYLE_IMAGES,
        )
        from impasto.methods import adain

        described = next(m for m in c.get("/api/methods").json() if m["name"] == "adain")
        assert described["video_temporal_above"] == [list(p) for p in adain.VIDEO_TEMPORAL_ABOVE]
        for crf in ("52", "x", "1.5"):
            r = c.post("/api/jobs", files=files, data={"method": "fast", "model": model, "crf": crf})
            assert r.status_code == 400 and r.json()["error"].startswith("crf: a whole number"), r.text
        photo = c.post(
            "/api/jobs",
            files={"content": ("p.png", (EXAMPLES / "chelsea.png").read_bytes(), "image/png")},
            data={"method": "fast", "model": model, "crf": "20"},
        )
        assert photo.status_code == 400 and photo.json()["error"] == "crf: only for a video upload"
        # preset: the encoder's speed, as impasto video --preset
        r = c.post("/api/jobs?wait=true", files=files, data={"method": "fast", "model": model, "preset": "ultrafast"})
        assert r.status_code == 200 and b"subme=0 " in r.content, r.text[:200]
        r = c.post("/api/jobs", files=files, data={"method": "fast", "model": model, "preset": "quick"})
        assert r.status_code == 400 and r.json()["error"].startswith("preset: one of ultrafast"), r.text


def test_gatys_video_follows_the_flow_and_resumes_from_its_last_frame(tmp_path, images):
    clip = make_clip(tmp_path / "short.mp4", frames=4, size=(48, 32), audio=False, step=1)
    kw = dict(method="gatys", size=None, steps=4, scales=1, seed=0, device="cpu", precision="fp32", tol=0)
    style = [images["style"]]
    plain, steady = tmp_path / "plain.mp4", tmp_path / "steady.mp4"
    stylize_video(clip, plain, style, temporal=0.0, **kw)
    stylize_video(clip, steady, style, temporal=1.0, **kw)
    a, b = temporal_error(plain, clip), temporal_error(steady, clip)
    assert b["warping_error"] < a["warping_error"], (a, b)

    # Interrupted after three frames: they are kept beside the output, and --resume paints only the rest.
    resumed = tmp_path / "resumed.mp4"
    calls = []

    def stop_after_three(p):
        calls.append(p.step)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stylize_video(clip, resumed, style, temporal=1.0, callback=stop_after_three, **kw)
    frames_dir = tmp_path / ".resumed.mp4.frames"
    assert not resumed.exists() and len(list(frames_dir.glob("*.png"))) == 3
    report = stylize_video(clip, resumed, style, temporal=1.0, resume=True, **kw)
    assert report.resumed == 3 and report.frames == 4 and not frames_dir.exists()
    for x, y in zip(frames_of(resumed), frames_of(steady)):
        assert np.abs(x.astype(int) - y.astype(int)).mean() < 2  # the same frames as the run without a break
    with pytest.raises(ImpastoError, match="--resume is for iterative"):
        stylize_video(clip, tmp_path / "f.mp4", method="fast", resume=True)


def test_rotation_and_variable_frame_rate_are_kept(tmp_path, model):
    """A phone's portrait clip (landscape frames plus a display matrix) comes out upright, and irregular frame times
    stay as they were."""
    src = tmp_path / "phone.mp4"
    times = [0, 1, 2, 5, 6, 10]  # in tenths of a second: a variable rate
    with av.open(str(src), "w") as out:
        v = out.add_stream("libx264", rate=10)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        v.time_base = Fraction(1, 10)
        v.set_display_rotation(90)
        img = np.zeros((48, 64, 3), np.uint8)
        img[:16, :16] = 255  # a white block at the stored frame's top-left corner
        for t in times:
            f = av.VideoFrame.from_ndarray(img, "rgb24")
            f.pts = t
            f.time_base = Fraction(1, 10)
            for p in v.encode(f):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
    info = probe(src)
    assert (info.width, info.height, info.rotation) == (48, 64, 90)
    out = tmp_path / "upright.mp4"
    seen = []

    def keep(rgb, index, t):
        seen.append((rgb.copy(), round(t, 3)))
        return rgb

    transcode(src, out, keep)
    frame, _ = seen[0]
    # Turned a quarter counter-clockwise: the stored top-left corner is now at the bottom left.
    assert frame.shape == (64, 48, 3) and frame[-8:, :8].mean() > 200 and frame[:8, :8].mean() < 50
    assert [t for _, t in seen] == [t / 10 for t in times]
    with av.open(str(out)) as c:
        pts = [float(f.pts * f.time_base) for f in c.decode(video=0)]
    assert pts == pytest.approx([t / 10 for t in times])


def test_a_batch_sends_its_videos_through_impasto_video(clip, model, tmp_path, images):
    from impasto.batch import run_batch

    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "pan.mp4").write_bytes(clip.read_bytes())
    Image.open(images["content"]).save(folder / "cat.png")
    report = run_batch([folder], tmp_path / "out", [], "fast", model=model, size=48, device="cpu", precision="fp32")
    assert sorted(report.done) == ["cat.png", "pan.mp4"] and not report.failed
    info = probe(tmp_path / "out" / "pan.mp4")
    assert info.width == 48 and info.audio == "aac" and len(frames_of(tmp_path / "out" / "pan.mp4")) == 12
    # impasto video's --temporal and --crf reach the batch's videos
    opts = dict(model=model, size=48, device="cpu", precision="fp32")
    run_batch([folder / "pan.mp4"], tmp_path / "lossless", [], "fast", crf=0, temporal=0, **opts)
    run_batch([folder / "pan.mp4"], tmp_path / "small", [], "fast", crf=45, temporal=0, **opts)
    assert (tmp_path / "small" / "pan.mp4").stat().st_size < (tmp_path / "lossless" / "pan.mp4").stat().st_size / 2
    per_frame = temporal_error(tmp_path / "lossless" / "pan.mp4", folder / "pan.mp4")["warping_error"]
    run_batch([folder / "pan.mp4"], tmp_path / "steady", [], "fast", crf=0, temporal=0.8, **opts)
    assert temporal_error(tmp_path / "steady" / "pan.mp4", folder / "pan.mp4")["warping_error"] < per_frame
    for kw, message in [
        ({"crf": 52}, "--crf must be"),
        ({"temporal": 1.5}, "--temporal must be"),
        ({"preset": "quick"}, "--preset must be"),
    ]:
        with pytest.raises(ImpastoError, match=message):
            run_batch([folder], tmp_path / "bad", [], "fast", **kw, **opts)
        assert not (tmp_path / "bad").exists()


def test_every_flow_preset_follows_a_known_shift_and_frames_get_a_finer_one_the_smaller_they_are(monkeypatch):
    from impasto import video
    from impasto.core import flow as flowlib

    photo = np.asarray(Image.open(EXAMPLES / "chelsea.png").convert("L").resize((320, 200)))
    # in b, the scene has moved 3 px right and 2 px down
    a, b = (np.ascontiguousarray(x) for x in (photo[12:-8, 20:-10], photo[10:-10, 17:-13]))
    for preset in flowlib.PRESETS:
        f = flowlib.flow(a, b, preset)[30:-30, 30:-30]
        assert np.median(f[..., 0]) == pytest.approx(3, abs=0.25) and np.median(f[..., 1]) == pytest.approx(2, abs=0.25)
    with pytest.raises(ValueError, match="preset"):
        flowlib.flow(a, b, "slow")
    used = []

    def still(a: np.ndarray, b: np.ndarray, preset: str = "medium") -> np.ndarray:
        used.append(preset)
        return np.zeros((*a.shape, 2), np.float32)

    monkeypatch.setattr(flowlib, "flow", still)
    blend = video.TemporalBlend(0.5)
    for w, h in [(360, 202), (640, 360), (1280, 720)]:
        frame = np.zeros((h, w, 3), np.uint8)
        blend.motion(frame, frame)
    assert used == ["medium", "medium", "balanced", "balanced", "fast", "fast"]


def test_the_grid_follows_a_pan_in_whole_strides_and_ignores_a_slow_drift():
    from impasto.video import GridAnchor

    rng = np.random.default_rng(0)
    scene = (rng.random((72, 200, 3)) * 255).astype(np.uint8)
    scene = np.asarray(Image.fromarray(scene).resize((400, 144), Image.BICUBIC).resize((200, 72), Image.BILINEAR))
    pan = GridAnchor(4)
    for i in range(8):  # the camera moves 3 px right a frame: the scene 3 px left
        left, top = pan.shift(np.ascontiguousarray(scene[:, 3 * i : 3 * i + 96]))
        assert (left - 3 * i) % 4 == 0 and top == 0  # the scene keeps its place on the network's 4 px grid
        padded = pan.pad(scene[:, 3 * i : 3 * i + 96], left, top)
        assert padded.shape == (76, 100, 3)  # one size for every frame
    noise = (rng.random((72, 96, 3)) * 255).astype(np.uint8)  # nothing to follow (a cut, a blur): the grid stays
    assert pan.shift(noise) == (left, top)
    drift = GridAnchor(4)
    big = np.asarray(Image.fromarray(scene).resize((2000, 720), Image.BICUBIC))
    for i in range(8):  # 0.3 px a frame: the grid stays
        crop = np.asarray(Image.fromarray(big[:, 3 * i : 3 * i + 960]).resize((96, 72), Image.BOX))
        assert drift.shift(crop) == (0, 0)


def test_keeping_the_grid_on_the_scene_steadies_a_pan(clip, model, tmp_path, monkeypatch):
    import impasto.video as video

    # work_size 0: painted at the frame's own size (the tiny model was trained at the clip's 48 px)
    kw = dict(method="fast", model=model, size=None, device="cpu", precision="fp32", temporal=0.01, work_size=0)
    anchored, loose = tmp_path / "anchored.mp4", tmp_path / "loose.mp4"
    stylize_video(clip, anchored, **kw)
    monkeypatch.setattr(video.GridAnchor, "MIN_SHIFT", float("inf"))  # the grid never moves
    stylize_video(clip, loose, **kw)
    a, b = temporal_error(anchored, clip), temporal_error(loose, clip)
    assert a["warping_error"] < 0.5 * b["warping_error"], (a, b)


def test_each_method_has_its_own_default_temporal_strength(clip, model, tmp_path, monkeypatch):
    import impasto.video as video
    from impasto.methods import adain, fast

    assert video.default_temporal("fast") == fast.VIDEO_TEMPORAL
    assert video.default_temporal("adain") == adain.VIDEO_TEMPORAL
    assert video.default_temporal("gatys") == video.DEFAULT_TEMPORAL  # declares none
    # Style images painted by the model for any painting take their own (lighter) blend.
    assert video.default_temporal("fast", style_images=True) == fast.VIDEO_TEMPORAL_STYLE_IMAGES
    assert fast.VIDEO_TEMPORAL_STYLE_IMAGES != fast.VIDEO_TEMPORAL
    assert video.default_temporal("adain", style_images=True) == adain.VIDEO_TEMPORAL
    assert f"fast {fast.VIDEO_TEMPORAL:g} ({fast.VIDEO_TEMPORAL_STYLE_IMAGES:g} with style images)" in (
        video.temporal_defaults()
    )
    strengths = []
    real_init = video.TemporalBlend.__init__

    def init(self, strength):
        strengths.append(strength)
        real_init(self, strength)

    monkeypatch.setattr(video.TemporalBlend, "__init__", init)
    stylize_video(clip, tmp_path / "o.mp4", method="fast", model=model, size=None, device="cpu", precision="fp32")
    stylize_video(clip, tmp_path / "p.mp4", method="fast", model=model, size=None, temporal=0.2)
    stylize_video(clip, tmp_path / "q.mp4", [EXAMPLES / "swirls.png"], method="fast", size=None, precision="fp32")
    assert strengths == [fast.VIDEO_TEMPORAL, 0.2, fast.VIDEO_TEMPORAL_STYLE_IMAGES]
    # AdaIN's blend costs more style on larger frames: lighter defaults above a size (the output's longest side,
    # or the video's own where --size is left out).
    assert [side for side, _ in adain.VIDEO_TEMPORAL_ABOVE] == sorted(side for side, _ in adain.VIDEO_TEMPORAL_ABOVE)
    (small, lighter), (large, lightest) = adain.VIDEO_TEMPORAL_ABOVE
    assert adain.VIDEO_TEMPORAL > lighter > lightest
    assert video.default_temporal("adain", True, longest=small) == adain.VIDEO_TEMPORAL
    assert video.default_temporal("adain", True, longest=small + 1) == lighter
    assert video.default_temporal("adain", True, longest=large + 1) == lightest
    assert video.default_temporal("fast", longest=4000) == fast.VIDEO_TEMPORAL  # (declares none)
    assert f"adain {adain.VIDEO_TEMPORAL:g} ({lighter:g} above {small} px, {lightest:g} above {large} px)" in (
        video.temporal_defaults()
    )

    class Stop(Exception):
        pass

    def init_and_stop(self, strength):  # the strength is all this asks: no painting
        strengths.append(strength)
        raise Stop

    monkeypatch.setattr(video.TemporalBlend, "__init__", init_and_stop)
    strengths.clear()
    for size in (None, small + 8, large + 8):
        with pytest.raises(Stop):
            stylize_video(clip, tmp_path / "a.mp4", [EXAMPLES / "swirls.png"], method="adain", size=size)
    assert strengths == [adain.VIDEO_TEMPORAL, lighter, lightest]  # (the clip itself is 64 px wide)


def test_arbitrary_style_keeps_its_encoders_grid_on_the_scene_too(clip, tmp_path, monkeypatch):
    import impasto.video as video
    from impasto.methods.adain import GRID, Options, grid_period
    from impasto.nets.adain import STRIDE

    assert GRID == STRIDE and grid_period(Options(), 640, 360) == 8
    assert grid_period(Options(content_mask="m.png"), 640, 360) is None
    kw = dict(method="adain", decoder="compact", size=None, temporal=0.01)
    anchored, loose = tmp_path / "anchored.mp4", tmp_path / "loose.mp4"
    stylize_video(clip, anchored, [EXAMPLES / "swirls.png"], **kw)
    monkeypatch.setattr(video.GridAnchor, "MIN_SHIFT", float("inf"))  # the grid never moves
    stylize_video(clip, loose, [EXAMPLES / "swirls.png"], **kw)
    a, b = temporal_error(anchored, clip), temporal_error(loose, clip)
    assert a["warping_error"] < 0.5 * b["warping_error"], (a, b)  # measured: 0.31 x


def test_a_painting_through_the_fast_method_makes_a_video(clip, tmp_path, monkeypatch):
    """impasto video CLIP PAINTING (the fast method by default): the built-in model for any painting paints it, and
    the grid the video keeps is that model's."""
    from impasto.methods import fast

    out = tmp_path / "any.mp4"
    painting = str(EXAMPLES / "swirls.png")
    argv = ["video", str(clip), painting, "-o", str(out), "--size", "64", "--runtime", "torch", "-q"]
    assert main(argv) == 0
    painted, source = frames_of(out), frames_of(clip)
    assert len(painted) == 12 and painted[0].shape == source[0].shape
    assert np.abs(painted[5].astype(np.float32) - source[5]).mean() > 10
    asked: list[Path] = []
    real = fast.model_metadata
    monkeypatch.setattr(fast, "model_metadata", lambda p: asked.append(Path(p)) or real(p))
    assert fast.model_grid_period(fast.Options(), 640, 360, n_styles=1) == 4
    assert asked[-1] == fast.arbitrary_path()
    fast.model_grid_period(fast.Options(), 640, 360)
    assert asked[-1] == fast.builtin_path()


def test_the_grid_period_of_the_fast_networks():
    from impasto.methods.fast import GRID, Options, grid_period
    from impasto.nets.fast import STRIDE

    assert GRID == STRIDE
    opts = Options(model="starry_night")
    assert grid_period(opts, 512, 640, 360) == 4  # painted at its own size
    # painted at half size: the grid is twice as wide (the padded frame's: 1024 + 8 px)
    assert grid_period(opts, 512, 1280, 1024) == pytest.approx(4 * 1032 / 512)
    assert grid_period(opts, 512, 600, 510) is None  # the padding would tip it over the working size
    assert grid_period(Options(model="starry_night", work_size=0), 512, 600, 510) == 4
    assert grid_period(Options(model="starry_night", masks=["m.png"]), 512, 640, 360) is None


def test_the_live_camera_paints_on_the_grid_that_follows_the_camera(clip, model, monkeypatch):
    import io

    import impasto
    import impasto.video as video
    from impasto.core import flow as flowlib
    from impasto.serve.live import make_painter

    frames = frames_of(clip)
    engine = impasto.load("fast", model=model, device="cpu", precision="fp32", size=None, work_size=0)

    def error() -> float:
        paint = make_painter(engine, engine.options, 0.01, 10**7)
        outs = []
        for f in frames:
            buf = io.BytesIO()
            Image.fromarray(f).save(buf, format="PNG")
            outs.append(np.asarray(Image.open(io.BytesIO(paint(buf.getvalue()))).convert("RGB")))
        assert outs[0].shape == frames[0].shape
        errors = []
        for i in range(1, len(frames)):
            a, b = flowlib.gray(frames[i]), flowlib.gray(frames[i - 1])
            back = flowlib.flow(a, b)
            errors.append(flowlib.warping_error(outs[i - 1], outs[i], back, flowlib.reliable(back, flowlib.flow(b, a))))
        return float(np.mean(errors))

    anchored = error()
    monkeypatch.setattr(video.GridAnchor, "MIN_SHIFT", float("inf"))  # the grid never moves
    loose = error()
    assert anchored < 0.6 * loose


def test_a_gatys_video_job_that_fails_leaves_no_frames_behind(clip, images):
    """Gatys keeps each finished frame for --resume; a job (no resume) that stops early removes them."""
    from fastapi.testclient import TestClient

    from impasto.serve import ServeSettings
    from impasto.serve.app import create_app

    settings = ServeSettings(
        max_size=32, default_size=32, max_steps=2, job_timeout=1e-6, job_defaults={"device": "cpu", "precision": "fp32"}
    )
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as c:
        files = [("content", ("pan.mp4", clip.read_bytes(), "video/mp4")),
                 ("styles", ("s.png", images["style"].read_bytes(), "image/png"))]  # fmt: skip
        r = c.post("/api/jobs?wait=true", files=files, data={"method": "gatys", "steps": "2", "temporal": "0.5"})
        assert r.status_code == 422 and "timed out" in r.json()["error"], r.text
        left = c.app.state.jobs.results_dir
        assert not list(left.glob(".*.frames")) and not list(left.glob("*.work.mp4"))


def test_uploads_are_told_apart_by_their_bytes(clip, tmp_path):
    """Videos by their container's signature; AVIF and HEIC photos (an ISO ftyp box too) stay photos."""
    import io

    from impasto.video import looks_like_video

    assert looks_like_video(clip.read_bytes())
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buf, "AVIF")
    assert buf.getvalue()[4:8] == b"ftyp" and not looks_like_video(buf.getvalue())
    assert not looks_like_video(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))
    for fmt in ("PNG", "JPEG", "WEBP"):
        buf = io.BytesIO()
        Image.new("RGB", (16, 16)).save(buf, fmt)
        assert not looks_like_video(buf.getvalue())
    assert looks_like_video(b"\x00\x00\x00\x08wide\x00\x00\x10\x00mdat" + bytes(64))  # QuickTime without ftyp
    ts = b"".join(b"\x47" + bytes(187) for _ in range(4))
    m2ts = b"".join(bytes(4) + b"\x47" + bytes(187) for _ in range(4))
    assert looks_like_video(ts) and looks_like_video(m2ts) and not looks_like_video(bytes(800))
