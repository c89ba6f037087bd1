"""The HTTP API of ``impasto serve``: jobs, progress events, cancel, limits and every rejection.

Most tests use fake methods registered in ``impasto.api.METHODS`` (fast, and controllable from the test through
events and an injected clock); one runs a real, tiny Gatys job. ``toy_method`` (next to this file) is a whole method
in one module: registering it is the only edit the command line, the API and the page need to offer it.
"""

from __future__ import annotations

import base64
import io
import json
import socket
import struct
import sys
import threading
import types
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pytest
from PIL import Image

from impasto import api, cli
from impasto.core.image import as_pil, fit_longest_side, pil_to_tensor
from impasto.engine import BaseEngine, Progress, Result
from impasto.errors import ImpastoError
from impasto.options import PRESERVE_COLOR, check_declared, option

fastapi_testclient = pytest.importorskip("fastapi.testclient")
from impasto.serve import ServeSettings, create_app  # noqa: E402

TestClient = fastapi_testclient.TestClient
BASE = "http://127.0.0.1"


# ---------------------------------------------------------------------------------------------- fakes


class FakeClock:
    """settings.clock for tests: time moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class QuickOptions:
    """A single-pass method's options (like AdaIN's)."""

    size: int | None = option(512, "longest side of the output", "int", http=True, minimum=1)
    strength: float = option(1.0, "how much style", "float", http=True, minimum=0, maximum=1, step=0.05)
    style_weights: Sequence[float] | None = option(None, "blend weights, one per style", "floats", http=True)
    preserve_color: str = option("none", "keep the photo's colours", "str", http=True, choices=PRESERVE_COLOR)
    device: str = option("auto", "compute device", "str", load=True)

    def validate(self, n_styles: int) -> None:
        check_declared(self)
        if self.style_weights is not None and len(self.style_weights) != n_styles:
            raise ImpastoError(f"--style-weights: got {len(self.style_weights)} values for {n_styles} style images")


@dataclass
class SlowOptions:
    """An iterative method's options (like Gatys's)."""

    size: int | None = option(512, "longest side of the output", "int", http=True, minimum=1)
    steps: int = option(100, "steps", "int", http=True, minimum=1)
    seed: int | None = option(None, "random seed", "int", http=True, minimum=0)
    device: str = option("auto", "compute device", "str", load=True)

    def validate(self, n_styles: int) -> None:
        check_declared(self)


class FakeEngine(BaseEngine):
    """An engine whose run is one of the Fakes' methods; each load is recorded."""

    def __init__(self, options, run) -> None:
        super().__init__(options)
        self._run = run

    def run(self, content, styles, options=None, *, callback=None, progress=False):
        return self._run(content, styles, self.resolve(options, len(styles)), callback=callback)


class Fakes:
    """Two methods: 'quick' (one pass) and 'slow' (steps; the test drives it through events and the clock)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list = []
        self.loads: list = []  # the options of every engine loaded
        self.started = threading.Event()  # set when 'slow' starts
        self.release = threading.Event()  # 'slow' with block=True waits for this before its first step
        self.block = False
        self.endless = False  # 'slow' runs until cancelled, whatever its steps say
        self.tick = 0.0  # seconds the clock advances per 'slow' step
        self.abort = threading.Event()  # teardown: end any run still going

        quick = types.ModuleType("impasto_test_quick", "A quick fake method.\n\nOne pass, for tests.")
        quick.Options = QuickOptions
        quick.load = lambda options: self._load(options, self._quick)
        slow = types.ModuleType("impasto_test_slow", "A slow fake method.\n\nSteps, for tests.")
        slow.Options = SlowOptions
        slow.load = lambda options: self._load(options, self._slow)
        self.modules = {"quick": quick, "slow": slow}

    def _load(self, options, run) -> FakeEngine:
        self.loads.append(options)
        return FakeEngine(options, run)

    def _quick(self, content, styles, options, *, callback=None):
        self.calls.append(options)
        photo = pil_to_tensor(fit_longest_side(as_pil(content), options.size))
        colour = pil_to_tensor(as_pil(styles[0])).mean(dim=(2, 3), keepdim=True)
        image = (1 - options.strength) * photo + options.strength * colour.expand_as(photo)
        if callback is not None:
            callback(Progress(step=1, total=1, image=image))
        return Result(image=image)

    def _slow(self, content, styles, options, *, callback=None):
        self.calls.append(options)
        self.started.set()
        if self.block:
            self.release.wait(30)
        image = pil_to_tensor(fit_longest_side(as_pil(content), options.size))
        step = 0
        while (self.endless or step < options.steps) and not self.abort.is_set():
            step += 1
            self.clock.advance(self.tick)
            callback(Progress(step=step, total=options.steps, image=image, losses={"total": 1.0}))
        return Result(image=image, steps=step, stopped="budget")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fakes(monkeypatch, clock):
    f = Fakes(clock)
    for name, module in f.modules.items():
        monkeypatch.setitem(sys.modules, module.__name__, module)
        monkeypatch.setitem(api.METHODS, name, module.__name__)
    yield f
    f.abort.set()
    f.release.set()


def make_client(clock=None, **overrides) -> TestClient:
    settings = ServeSettings(**({"clock": clock} if clock else {}), **overrides)
    return TestClient(create_app(settings), base_url=BASE)


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def uploads(images) -> dict[str, bytes]:
    return {name: path.read_bytes() for name, path in images.items()}


def files(uploads, n_styles: int = 1, content: bytes | None = None, name: str = "photo.png"):
    parts = [("content", (name, uploads["content"] if content is None else content, "image/png"))]
    for i in range(n_styles):
        key = "style" if i % 2 == 0 else "style2"
        parts.append(("styles", (f"style{i}.png", uploads[key], "image/png")))
    return parts


def events(client: TestClient, job_id: str) -> list[tuple[str, dict]]:
    """Read a job's server-sent events until the stream ends."""
    out, event = [], None
    with client.stream("GET", f"/api/jobs/{job_id}/events") as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: "):
                out.append((event, json.loads(line[len("data: ") :])))
    return out


def assert_error(r, status: int, *words: str) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) <= {"error", "job_id"} and isinstance(body["error"], str) and body["error"]
    for w in words:
        assert w in body["error"], body["error"]
    return body["error"]


# ---------------------------------------------------------------------------------------------- discovery


def test_methods_are_listed_with_the_options_their_dataclass_has(fakes):
    with make_client(max_size=768, max_steps=500) as c:
        methods = {m["name"]: m for m in c.get("/api/methods").json()}
    assert {"gatys", "quick", "slow"} <= set(methods)
    quick = methods["quick"]
    assert quick["iterative"] is False and quick["title"] == "A quick fake method"
    assert [o["name"] for o in quick["options"]] == ["size", "strength", "style_weights", "preserve_color"]
    size = quick["options"][0]
    assert (size["default"], size["minimum"], size["maximum"]) == (512, 16, 768)
    strength = quick["options"][1]
    assert (strength["minimum"], strength["maximum"], strength["step"], strength["default"]) == (0, 1, 0.05, 1.0)
    assert strength["label"] == "Strength" and strength["description"] == "how much style"
    assert [o["name"] for o in methods["slow"]["options"]] == ["size", "steps", "seed"]
    assert methods["slow"]["iterative"] is True
    gatys = {o["name"]: o for o in methods["gatys"]["options"]}
    assert set(gatys) == {"size", "steps", "style_weights", "preserve_color", "seed"}
    assert (gatys["steps"]["default"], gatys["steps"]["minimum"], gatys["steps"]["maximum"]) == (70, 1, 500)
    assert gatys["steps"]["label"] == "Steps" and gatys["steps"]["type"] == "integer"
    assert gatys["preserve_color"]["choices"] == ["none", "luminance", "histogram"]
    adain = {o["name"]: o for o in methods["adain"]["options"]}
    assert set(adain) == {"size", "strength", "tone", "palette", "style_weights", "preserve_color"}


def test_steps_default_to_the_method_s_within_the_server_s_cap(fakes):
    with make_client(max_steps=40) as c:
        gatys = {o["name"]: o for o in next(m for m in c.get("/api/methods").json() if m["name"] == "gatys")["options"]}
        slow = {o["name"]: o for o in next(m for m in c.get("/api/methods").json() if m["name"] == "slow")["options"]}
    assert (gatys["steps"]["default"], gatys["steps"]["maximum"]) == (40, 40)
    assert slow["steps"]["default"] == 40


def test_info_reports_limits_and_queue():
    with make_client(max_upload_bytes=5_000_000, queue_size=3) as c:
        info = c.get("/api/info").json()
    assert info["limits"]["max_upload_bytes"] == 5_000_000
    assert info["limits"]["queue_size"] == 3
    assert info["queue"] == {"waiting": 0, "running": 0}
    assert "gatys" in info["methods"] and info["default_method"] == "gatys"


def test_openapi_schema_documents_every_field():
    with make_client() as c:
        schema = c.get("/api/openapi.json").json()
        assert c.get("/api/docs").status_code == 200
    paths = schema["paths"]
    assert {
        "/api/jobs",
        "/api/jobs/{job_id}",
        "/api/jobs/{job_id}/events",
        "/api/jobs/{job_id}/result",
        "/api/methods",
        "/api/info",
        "/api/styles",
        "/api/styles/{name}.jpg",
    } <= set(paths)
    assert {"get", "delete"} <= set(paths["/api/jobs/{job_id}"])
    undocumented = []
    for path, ops in paths.items():
        for verb, op in ops.items():
            if not op.get("description"):
                undocumented.append(f"{verb} {path}")
            for p in op.get("parameters", []):
                if not p.get("description"):
                    undocumented.append(f"{verb} {path} parameter {p['name']}")
    for name, component in schema["components"]["schemas"].items():
        for field, spec in component.get("properties", {}).items():
            if not spec.get("description"):
                undocumented.append(f"{name}.{field}")
    assert not undocumented, undocumented
    form = paths["/api/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    body = form["properties"]
    assert set(body) == {
        "content",
        "styles",
        "method",
        "size",
        "steps",
        "strength",
        "tone",
        "palette",
        "style_weights",
        "preserve_color",
        "seed",
        "model",
        "fine",
        "small",
        "medium",
        "coarse",
        "temporal",
        "crf",
        "preset",
    }
    assert set(form["required"]) == {"content"}  # the fast method paints trained styles: no upload
    assert [name for name, spec in body.items() if not spec.get("description")] == []
    assert (body["strength"]["type"], body["strength"]["minimum"], body["strength"]["maximum"]) == ("number", 0, 1)
    assert body["preserve_color"]["enum"] == ["none", "luminance", "histogram"]
    assert body["content"]["format"] == "binary" and body["styles"]["items"]["format"] == "binary"
    assert (body["size"]["minimum"], body["size"]["maximum"]) == (16, 1024)


def test_the_page_and_its_assets_are_served_with_a_strict_policy():
    with make_client() as c:
        page = c.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        for asset in ("/static/app.js", "/static/style.css", "/static/favicon.svg"):
            assert c.get(asset).status_code == 200, asset
            assert asset in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "http://" not in page.text.replace(BASE, "") and "https://" not in page.text  # nothing from elsewhere


# ---------------------------------------------------------------------------------------------- jobs


def test_a_real_gatys_job_streams_progress_and_previews_then_serves_the_png(uploads):
    job_defaults = {"device": "cpu", "precision": "fp32", "tol": 0}
    with make_client(preview_interval=0, job_defaults=job_defaults) as c:
        r = c.post("/api/jobs", files=files(uploads), data={"size": "64", "steps": "4", "seed": "3"})
        assert r.status_code == 202, r.text
        job = r.json()
        assert r.headers["location"] == f"/api/jobs/{job['id']}"
        # (a warm worker may have finished four 64 px steps by the time the answer is made)
        assert job["status"] in ("queued", "running", "done") and job["total"] == 4
        assert job["options"] == {"size": 64, "steps": 4, "seed": 3}
        stream = events(c, job["id"])
        result = c.get(f"/api/jobs/{job['id']}/result")
        state = c.get(f"/api/jobs/{job['id']}").json()

    kinds = [k for k, _ in stream]
    assert kinds[-1] == "done" and kinds.count("done") == 1
    steps = [d["step"] for k, d in stream if k == "progress" and d["status"] == "running"]
    assert steps == sorted(steps) and max(steps) >= 1
    previews = [d for k, d in stream if k == "preview"]
    assert previews, kinds
    head, data = previews[-1]["image"].split(",", 1)
    assert head == "data:image/jpeg;base64"
    assert Image.open(io.BytesIO(base64.b64decode(data))).size == (64, 43)
    final = stream[-1][1]
    assert (final["status"], final["step"], final["total"], final["progress"]) == ("done", 4, 4, 1.0)
    assert (final["width"], final["height"]) == (64, 43)
    assert final["result_url"] == f"/api/jobs/{job['id']}/result"
    assert result.status_code == 200 and result.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(result.content)).size == (64, 43)
    assert state["status"] == "done" and state["elapsed"] > 0


def test_a_real_fast_job_paints_an_uploaded_painting_through_the_network_for_any_painting(uploads):
    job_defaults = {"device": "cpu", "precision": "fp32", "runtime": "torch"}
    with make_client(job_defaults=job_defaults) as c:
        painted = []
        for n_styles in (1, 2):  # the second painting changes the picture: it is painted, not a trained style
            r = c.post("/api/jobs?wait=true", files=files(uploads, n_styles), data={"method": "fast", "size": "64"})
            assert r.status_code == 200, r.text
            painted.append(np.asarray(Image.open(io.BytesIO(r.content)), np.float32))
        assert painted[0].shape == (43, 64, 3) and np.abs(painted[0] - painted[1]).mean() > 1
        # A trained style named with a painting: refused in one line, nothing run.
        r = c.post("/api/jobs", files=files(uploads), data={"method": "fast", "model": "the_scream", "size": "64"})
        assert r.status_code in (400, 422) and "not style images" in r.text


def test_wait_answers_the_png_at_once_and_only_known_options_reach_the_method(fakes, uploads):
    with make_client() as c:
        r = c.post(
            "/api/jobs?wait=true",
            files=files(uploads, n_styles=2),
            data={
                "method": "quick",
                "size": "48",
                "strength": "0.5",
                "style_weights": "3, 1",
                "steps": "7",
                "seed": "2",
                "preserve_color": "histogram",
            },
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(r.content)).size == (48, 32)
        job = c.get(f"/api/jobs/{r.headers['x-job-id']}").json()
    (options,) = fakes.calls
    assert isinstance(options, QuickOptions)
    assert (options.size, options.strength, options.style_weights, options.preserve_color) == (
        48,
        0.5,
        [3, 1],
        "histogram",
    )
    assert options.device == "auto"  # set by the server, not the client
    assert job["status"] == "done" and job["ignored_options"] == ["seed", "steps"]
    assert job["options"] == {"size": 48, "strength": 0.5, "style_weights": [3, 1], "preserve_color": "histogram"}


def test_client_file_names_never_become_paths(fakes, uploads):
    with make_client() as c:
        r = c.post(
            "/api/jobs?wait=true",
            files=files(uploads, name="../../../tmp/evil.png"),
            data={"method": "quick", "size": "32"},
        )
        assert r.status_code == 200
        job_id = r.headers["x-job-id"]
        results = c.app.state.jobs.results_dir
        assert [p.name for p in results.iterdir()] == [f"{job_id}.png"]
        assert "evil" not in c.get(f"/api/jobs/{job_id}").text
    assert not results.exists()  # the private directory goes with the server


def test_cancel_a_running_job(fakes, uploads):
    fakes.endless = True
    with make_client() as c:
        r = c.post("/api/jobs", files=files(uploads), data={"method": "slow", "size": "32", "steps": "10"})
        job_id = r.json()["id"]
        assert fakes.started.wait(30)
        r = c.delete(f"/api/jobs/{job_id}")
        assert r.status_code == 200
        assert r.json()["status"] == "cancelled"
        assert events(c, job_id)[-1][0] == "cancelled"
        assert_error(c.get(f"/api/jobs/{job_id}/result"), 409, "cancelled")
        assert c.get("/api/info").json()["queue"] == {"waiting": 0, "running": 0}


def test_a_full_queue_answers_429_and_queued_jobs_cancel_at_once(fakes, uploads):
    fakes.block = True
    with make_client(queue_size=1) as c:
        first = c.post("/api/jobs", files=files(uploads), data={"method": "slow", "size": "32", "steps": "2"}).json()
        assert fakes.started.wait(30)  # the worker holds the first job
        second = c.post("/api/jobs", files=files(uploads), data={"method": "slow", "size": "32", "steps": "2"})
        assert second.status_code == 202 and second.json()["queue_position"] == 1
        third = c.post("/api/jobs", files=files(uploads), data={"method": "slow", "size": "32", "steps": "2"})
        assert_error(third, 429, "queue is full")
        assert int(third.headers["retry-after"]) > 0
        # The server keeps answering while the worker is busy.
        assert c.get("/api/info").json()["queue"] == {"waiting": 1, "running": 1}
        assert_error(c.get(f"/api/jobs/{first['id']}/result"), 409, "running")
        assert_error(c.get(f"/api/jobs/{second.json()['id']}/result"), 409, "queued")
        cancelled = c.delete(f"/api/jobs/{second.json()['id']}").json()
        assert cancelled["status"] == "cancelled"
        fakes.release.set()
        assert events(c, first["id"])[-1][0] == "done"
        assert len(fakes.calls) == 1  # the cancelled job never ran
        again = c.post("/api/jobs", files=files(uploads), data={"method": "quick", "size": "32"})
        assert again.status_code == 202


def test_a_job_over_the_time_limit_fails_and_says_why(fakes, uploads, clock):
    fakes.tick = 1.0  # each step takes a 'second' of the injected clock
    with make_client(clock=clock, job_timeout=5) as c:
        r = c.post("/api/jobs", files=files(uploads), data={"method": "slow", "size": "32", "steps": "100"})
        final = events(c, r.json()["id"])[-1]
    assert final[0] == "failed"
    assert "timed out after 5 s" in final[1]["error"]
    assert final[1]["step"] == 4  # stopped at the first step past the limit, not at the end


def test_previews_are_throttled_by_wall_time(fakes, uploads, clock):
    fakes.tick = 0.25
    with make_client(clock=clock, preview_interval=1.0) as c:
        r = c.post("/api/jobs", files=files(uploads), data={"method": "slow", "size": "32", "steps": "20"})
        job = c.app.state.jobs.get(r.json()["id"])
        assert events(c, job.id)[-1][0] == "done"
    assert job.preview_version == 5  # steps 1, 5, 9, 13, 17: one per second of the clock, not one per step


def test_finished_jobs_and_their_files_are_cleaned_up_after_the_ttl(fakes, uploads, clock):
    with make_client(clock=clock, result_ttl=3600) as c:
        r = c.post("/api/jobs?wait=true", files=files(uploads), data={"method": "quick", "size": "32"})
        job_id = r.headers["x-job-id"]
        manager = c.app.state.jobs
        path = manager.get(job_id).result_path
        clock.advance(3599)
        assert manager.cleanup() == 0
        assert c.get(f"/api/jobs/{job_id}").status_code == 200
        clock.advance(2)
        assert manager.cleanup() == 1
        assert not path.exists()
        assert_error(c.get(f"/api/jobs/{job_id}"), 404, "no such job")
        assert_error(c.get(f"/api/jobs/{job_id}/result"), 404)


def test_deleting_a_finished_job_forgets_it(fakes, uploads):
    with make_client() as c:
        r = c.post("/api/jobs?wait=true", files=files(uploads), data={"method": "quick", "size": "32"})
        job_id = r.headers["x-job-id"]
        assert c.delete(f"/api/jobs/{job_id}").json()["status"] == "done"
        assert_error(c.get(f"/api/jobs/{job_id}"), 404)
        assert_error(c.delete(f"/api/jobs/{job_id}"), 404)


def test_a_failing_job_reports_its_error(fakes, uploads):
    def broken(*args, **kwargs):
        raise ImpastoError("the style image is too small")

    fakes._quick = broken
    with make_client() as c:
        r = c.post("/api/jobs?wait=true", files=files(uploads), data={"method": "quick"})
        assert_error(r, 422, "too small")
        assert c.get(f"/api/jobs/{r.json()['job_id']}").json()["error"] == "the style image is too small"


def test_an_engine_that_cannot_load_fails_the_job(fakes, uploads):
    def broken(options):
        raise ImpastoError("the decoder file is missing")

    fakes.modules["quick"].load = broken
    with make_client() as c:
        assert_error(c.post("/api/jobs?wait=true", files=files(uploads), data={"method": "quick"}), 422, "decoder")


def test_engines_are_loaded_once_and_shared_by_later_jobs(fakes, uploads):
    with make_client() as c:
        for strength in ("0.2", "0.8", "1"):
            r = c.post("/api/jobs?wait=true", files=files(uploads), data={"method": "quick", "strength": strength})
            assert r.status_code == 200, r.text
        manager = c.app.state.jobs
        assert len(fakes.loads) == 1 and len(fakes.calls) == 3  # options that change no load key share one engine
        assert [o.strength for o in fakes.calls] == [0.2, 0.8, 1.0]
        # A few engines are kept, the least recently used dropped first; each manager has its own.
        first = manager.engine("quick", QuickOptions(device="a"))
        assert manager.engine("quick", QuickOptions(device="a")) is first
        manager.engine("slow", SlowOptions(device="b"))
        manager.engine("quick", QuickOptions(device="a"))
        manager.engine("quick", QuickOptions(device="c"))
        assert [key[0] for key in manager._engines] == ["quick", "quick"]
        assert len(manager._engines) == manager.engines_kept == 2
        assert manager.engine("quick", QuickOptions(device="a")) is first
        assert len(fakes.loads) == 4
    with make_client() as c:
        assert not c.app.state.jobs._engines


# ---------------------------------------------------------------------------------------------- a new method


@pytest.fixture
def toy(monkeypatch):
    """The one line that adds a method: its name and module in the registry (toy_method.py is next to this file)."""
    monkeypatch.setitem(api.METHODS, "toy", "toy_method")


def test_a_registered_method_is_listed_with_its_declared_options(toy):
    with make_client() as c:
        methods = {m["name"]: m for m in c.get("/api/methods").json()}
        assert "toy" in c.get("/api/info").json()["methods"]
        body = c.get("/api/openapi.json").json()["paths"]["/api/jobs"]["post"]["requestBody"]
    toy = methods["toy"]
    assert toy["title"] == "A toy method: the photo made brighter or darker" and toy["iterative"] is False
    assert [o["name"] for o in toy["options"]] == ["size", "brightness"]
    brightness = toy["options"][1]
    assert brightness == {
        "name": "brightness",
        "type": "number",
        "label": "Brightness",
        "description": "how bright the picture is: 0 black, 1 the photo, 2 twice as bright",
        "default": 1.0,
        "minimum": 0,
        "maximum": 2,
        "step": 0.1,
        "choices": None,
    }
    properties = body["content"]["multipart/form-data"]["schema"]["properties"]
    assert properties["brightness"]["maximum"] == 2 and "toy" in properties["brightness"]["description"]
    assert "toy" in properties["method"]["enum"]


def test_a_registered_method_runs_through_the_api(toy, uploads):
    content = np.asarray(Image.open(io.BytesIO(uploads["content"])).convert("RGB"), dtype=np.float64)
    with make_client() as c:
        r = c.post(
            "/api/jobs?wait=true",
            files=files(uploads),
            data={"method": "toy", "brightness": "0.5", "size": "96", "strength": "0.3"},
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "image/png"
        job = c.get(f"/api/jobs/{r.headers['x-job-id']}").json()
        result = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"), dtype=np.float64)
        assert result.shape == content.shape
        assert np.abs(result - content * 0.5).max() <= 1.0  # half as bright, to the rounding
        assert job["options"] == {"size": 96, "brightness": 0.5} and job["ignored_options"] == ["strength"]
        assert (job["width"], job["height"]) == (96, 64)
        # Its bounds are its declaration's.
        assert_error(
            c.post("/api/jobs", files=files(uploads), data={"method": "toy", "brightness": "3"}),
            400,
            "brightness",
            "between 0 and 2",
        )
        r = c.post("/api/jobs", files=files(uploads), data={"method": "toy", "brightnesss": "1"})
        assert_error(r, 400, "unknown field 'brightnesss'", "did you mean 'brightness'")
        assert "--" not in r.json()["error"]


def test_a_method_that_makes_a_file_is_served_with_its_media_type(monkeypatch, uploads, tmp_path):
    """A job's result need not be a picture: a run that returns a file (a video, one day) is served as that file."""

    @dataclass
    class Options:
        size: int | None = option(64, "longest side", "int", http=True, minimum=1)

        def validate(self, n_styles: int) -> None:
            check_declared(self)

    made = []

    class ReportEngine(BaseEngine):
        def run(self, content, styles, options=None, *, callback=None, progress=False) -> Result:
            path = tmp_path / f"report{len(made)}.txt"
            path.write_text(f"{len(styles)} style(s) at {self.resolve(options, len(styles)).size} px\n")
            made.append(path)
            return Result(image=None, path=path, media_type="text/plain")

    module = types.ModuleType("toy_report_method")
    module.__doc__ = "A report instead of a picture."
    module.Options = Options
    module.load = lambda options=None: ReportEngine(options or Options())
    monkeypatch.setitem(sys.modules, "toy_report_method", module)
    monkeypatch.setitem(api.METHODS, "report", "toy_report_method")
    with make_client() as c:
        r = c.post("/api/jobs?wait=true", files=files(uploads), data={"method": "report", "size": "80"})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/plain") and r.text == "1 style(s) at 80 px\n"
        job = c.get(f"/api/jobs/{r.headers['x-job-id']}").json()
        assert job["status"] == "done" and job["width"] is None
        result = c.get(job["result_url"])
        assert result.text == r.text and result.headers["content-disposition"].endswith('.txt"')
        assert not made[0].exists()  # moved into the server's results, not copied and left behind


def test_a_registered_method_is_offered_on_the_command_line(toy, capsys):
    assert cli.main(["stylize", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--brightness" in out and "twice as bright" in out and "toy" in out


# ---------------------------------------------------------------------------------------------- rejections


def test_non_images_are_rejected_by_their_bytes_not_their_name(uploads):
    with make_client() as c:
        r = c.post("/api/jobs", files=files(uploads, content=b"#!/bin/sh\necho not a picture\n"))
        assert_error(r, 400, "photo", "not an image")
        r = c.post("/api/jobs", files=files(uploads, content=b""))
        assert_error(r, 400, "photo", "empty")
        # A real image in a format the server does not take (PPM) is refused too.
        ppm = io.BytesIO()
        Image.new("RGB", (8, 8)).save(ppm, format="PPM")
        assert_error(c.post("/api/jobs", files=files(uploads, content=ppm.getvalue())), 400, "not an image")
        truncated = uploads["content"][: len(uploads["content"]) // 2]
        assert_error(c.post("/api/jobs", files=files(uploads, content=truncated)), 400, "photo")
        parts = files(uploads)
        parts[1] = ("styles", ("style.png", b"GIF89a broken", "image/gif"))
        assert_error(c.post("/api/jobs", files=parts), 400, "painting")
        assert c.get("/api/info").json()["queue"] == {"waiting": 0, "running": 0}


def test_images_above_the_pixel_cap_are_rejected_before_decoding(uploads):
    big = png(Image.new("RGB", (200, 150)))
    with make_client(max_pixels=20_000) as c:
        assert_error(c.post("/api/jobs", files=files(uploads, content=big)), 400, "200x150", "megapixels")


def test_bodies_above_the_upload_cap_answer_413(uploads):
    with make_client(max_upload_bytes=30_000) as c:
        noise = png(Image.effect_noise((160, 160), 80).convert("RGB"))
        assert len(noise) > 30_000
        assert_error(c.post("/api/jobs", files=files(uploads, content=noise)), 413, "cap")

        # The same body streamed without a Content-Length is cut off too.
        boundary = "impastotestboundary"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="a.png"\r\n'
                "Content-Type: image/png\r\n\r\n"
            ).encode()
            + noise
            + f"\r\n--{boundary}--\r\n".encode()
        )

        def chunks():
            for i in range(0, len(body), 4096):
                yield body[i : i + 4096]

        r = c.post("/api/jobs", content=chunks(), headers={"content-type": f"multipart/form-data; boundary={boundary}"})
        assert "content-length" not in r.request.headers
        assert_error(r, 413, "cap")


@pytest.mark.parametrize(
    "data, n_styles, words",
    [
        ({"method": "nope"}, 1, ("unknown method", "gatys")),
        ({"size": "5000"}, 1, ("size", "1024")),
        ({"size": "8"}, 1, ("size",)),
        ({"size": "big"}, 1, ("size", "whole number")),
        ({"steps": "0"}, 1, ("steps",)),
        ({"steps": "100000"}, 1, ("steps", "1000")),
        ({"style_weights": "1,2"}, 1, ("style_weights", "2 values for 1")),
        ({"style_weights": "1,x"}, 2, ("style_weights", "number")),
        ({"style_weights": "1,-2"}, 2, ("style_weights",)),
        ({"style_weights": "0,0"}, 2, ("style_weights", "positive")),
        ({"preserve_color": "sepia"}, 1, ("preserve_color",)),
        ({"seed": "-1"}, 1, ("seed",)),
        ({"method": "adain", "strength": "1.5"}, 1, ("strength", "between 0 and 1")),
        ({"method": "adain", "strength": "much"}, 1, ("strength", "number")),
        ({"stepz": "10"}, 1, ("unknown field", "'steps'")),
        ({"device": "cuda"}, 1, ("unknown field", "device")),
        ({}, 9, ("at most 8",)),
        ({}, 0, ("styles",)),
    ],
)
def test_bad_fields_answer_400_with_one_line(uploads, data, n_styles, words):
    with make_client() as c:
        r = c.post("/api/jobs", files=files(uploads, n_styles=n_styles), data=data)
        message = assert_error(r, 400, *words)
    assert "\n" not in message and "--" not in message


def test_a_missing_photo_is_a_400(uploads):
    with make_client() as c:
        r = c.post("/api/jobs", files=[("styles", ("s.png", uploads["style"], "image/png"))])
        assert_error(r, 400, "content", "required")
        r = c.post("/api/jobs", files=files(uploads), data={"content": "a photo"})
        assert_error(r, 400, "content", "file")
        r = c.post("/api/jobs", files=[*files(uploads), ("size", ("s.txt", b"64", "text/plain"))])
        assert_error(r, 400, "size", "text field")
        r = c.post("/api/jobs", files=files(uploads), data={"seed": ["1", "2"]})
        assert_error(r, 400, "seed", "more than once")
        assert c.get("/api/info").json()["queue"] == {"waiting": 0, "running": 0}


def test_unknown_jobs_and_endpoints_are_json_404s():
    with make_client() as c:
        assert_error(c.get("/api/jobs/0123456789abcdef0123456789abcdef"), 404, "no such job")
        assert_error(c.get("/api/jobs/..%2F..%2Fetc%2Fpasswd/result"), 404)
        assert_error(c.delete("/api/jobs/nope"), 404)
        assert_error(c.get("/api/jobs/nope/events"), 404)
        assert_error(c.get("/api/nothing-here"), 404)
        # Outside /api too, and through the static files: JSON, not the framework's {"detail": ...}.
        for path in ("/static/..%2f..%2fetc%2fpasswd", "/static/nope.js", "/nothing-here"):
            r = c.get(path)
            assert r.status_code == 404 and set(r.json()) == {"error"}, (path, r.text)
        # An endpoint that exists answers another method with 405 and says which it takes.
        r = c.put("/api/jobs")
        assert_error(r, 405, "PUT", "POST")
        assert r.headers["allow"] == "POST"
        assert_error(c.patch("/api/info"), 405, "GET")


def test_foreign_hosts_and_cross_site_posts_are_refused(uploads):
    with make_client() as c:
        # DNS rebinding: a name that resolves to us but is not ours.
        assert_error(c.get("/api/info", headers={"host": "attacker.example"}), 400, "Host")
        assert c.get("/api/info", headers={"host": "localhost:8000"}).status_code == 200
        r = c.post("/api/jobs", files=files(uploads), headers={"origin": "https://attacker.example"})
        assert_error(r, 403, "cross-origin")
        # Sandboxed frames and data: pages send "Origin: null"; a browser without an Origin still says where the
        # request comes from in Sec-Fetch-Site.
        for headers in ({"origin": "null"}, {"sec-fetch-site": "cross-site"}, {"sec-fetch-site": "same-site"}):
            assert_error(c.post("/api/jobs", files=files(uploads), headers=headers), 403, "cross-origin")
        assert c.get("/api/info").json()["queue"] == {"waiting": 0, "running": 0}
        # The page's own requests, and clients that are not browsers, go through.
        for headers in (
            {"origin": "http://localhost:8000", "host": "localhost:8000"},
            {"sec-fetch-site": "same-origin"},
            {},
        ):
            r = c.post("/api/jobs", files=files(uploads), data={"method": "nope"}, headers=headers)
            assert_error(r, 400, "unknown method")


def test_cross_site_pages_cannot_cancel_jobs(fakes, uploads):
    with make_client() as c:
        job = c.post("/api/jobs", files=files(uploads), data={"method": "slow"}).json()
        for headers in ({"origin": "null"}, {"origin": "https://attacker.example"}, {"sec-fetch-site": "cross-site"}):
            assert_error(c.delete(f"/api/jobs/{job['id']}", headers=headers), 403, "cross-origin")
        assert c.get(f"/api/jobs/{job['id']}").json()["status"] in ("queued", "running")
        assert c.delete(f"/api/jobs/{job['id']}").status_code == 200


# ---------------------------------------------------------------------------------------------- the command


def test_serve_refuses_a_non_loopback_host_without_the_flag(capsys):
    assert cli.main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--allow-remote" in err and err.startswith("impasto: error:")


def test_serve_binds_elsewhere_only_with_the_flag_and_warns(monkeypatch, capsys):
    import uvicorn

    ran = {}
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: ran.setdefault("sockets", sockets))
    assert cli.main(["serve", "--host", "0.0.0.0", "--port", "0", "--allow-remote"]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "0.0.0.0" in err and "no authentication" in err
    assert ran["sockets"][0].family == socket.AF_INET


def test_serve_on_loopback_does_not_warn_and_a_busy_port_is_one_line(monkeypatch, capsys):
    import uvicorn

    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)
    assert cli.main(["serve", "--port", "0"]) == 0
    err = capsys.readouterr().err
    assert "warning" not in err and "http://127.0.0.1:" in err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert cli.main(["serve", "--port", str(busy.getsockname()[1])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("impasto: error: cannot listen on 127.0.0.1:") and err.count("\n") == 1


def test_serve_rejects_bad_limits(capsys):
    assert cli.main(["serve", "--queue-size", "0"]) == 2
    assert "--queue-size" in capsys.readouterr().err
    assert cli.main(["serve", "--max-size", "8"]) == 2
    assert "--max-size" in capsys.readouterr().err


def test_the_core_never_imports_the_server():
    import subprocess

    code = (
        "import impasto, impasto.api, impasto.cli, sys; "
        "print(any(m.startswith(('impasto.serve', 'fastapi')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_job_with_several_photos_is_a_batch_answered_as_a_zip(fakes, uploads):
    """One engine for the whole batch; progress counts photos; a bad photo refuses the job before any work."""
    import zipfile

    with make_client() as c:
        parts = files(uploads) + [("content", ("second.png", uploads["style2"], "image/png"))]
        r = c.post("/api/jobs?wait=true", files=parts, data={"method": "quick", "size": "32"})
        assert r.status_code == 200 and r.headers["content-type"] == "application/zip", r.text
        with zipfile.ZipFile(io.BytesIO(r.content)) as z:
            assert z.namelist() == ["result-001.png", "result-002.png"]
            assert max(Image.open(io.BytesIO(z.read("result-002.png"))).size) == 32
        job = c.get(f"/api/jobs/{r.headers['x-job-id']}").json()
        assert (job["step"], job["total"], job["status"]) == (2, 2, "done")
        assert c.get(job["result_url"]).headers["content-type"] == "application/zip"
        bad = files(uploads) + [("content", ("bad.png", b"not an image", "image/png"))]
        r = c.post("/api/jobs", files=bad, data={"method": "quick"})
        assert r.status_code == 400 and r.json()["error"].startswith("photo 2: not an image")
        many = files(uploads) + [("content", (f"{i}.png", uploads["content"], "image/png")) for i in range(40)]
        r = c.post("/api/jobs", files=many, data={"method": "quick"})
        assert r.status_code == 400 and "at most 32 photos" in r.json()["error"]


def test_ctrl_c_mid_job_stops_the_server_quietly_and_tells_the_open_event_streams(images):
    """Ctrl-C with a job running and its event stream open: the stream hears 'cancelled' (the server is shutting
    down) and ends, and the server stops without waiting out its grace period or printing tracebacks."""
    import re
    import signal
    import subprocess

    import httpx2 as httpx

    proc = subprocess.Popen(
        [sys.executable, "-m", "impasto", "serve", "--port", "0", "--max-size", "64"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = re.search(r"(http://\S+?)/ ", proc.stderr.readline()).group(1)
        files = {"content": images["content"].read_bytes(), "styles": images["style"].read_bytes()}
        job = httpx.post(f"{url}/api/jobs", files=files, data={"method": "gatys", "steps": "1000", "size": "64"}).json()
        seen: list[str] = []
        with httpx.stream("GET", f"{url}/api/jobs/{job['id']}/events", timeout=120) as events:
            for line in events.iter_lines():  # until the server ends the stream
                seen.append(line)
                if line.startswith("data:") and '"status":"running"' in line and '"step":0' not in line:
                    if proc.poll() is None and not any("SIGINT" in s for s in seen):
                        proc.send_signal(signal.SIGINT)  # mid-job, with this stream open
                        seen.append("(SIGINT sent)")
        assert proc.wait(timeout=60) == 0
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "event: cancelled" in seen and any("the server is shutting down" in line for line in seen), seen[-4:]
    assert "Traceback" not in err and "CancelledError" not in err and "graceful shutdown exceeded" not in err, err
    assert err.strip().endswith("impasto: server stopped")


def test_the_live_socket_answers_bad_messages_and_goes_on(uploads):
    """Frames are binary (a sequence number, then an image); anything else is answered with an error, and the
    stream goes on. A set-up message that is not a JSON object is refused with a message, then the socket closes."""
    photo = io.BytesIO()
    Image.open(io.BytesIO(uploads["content"])).convert("RGB").resize((48, 32)).save(photo, format="JPEG")
    frame = struct.pack(">I", 7) + photo.getvalue()
    LOCAL = {"host": "127.0.0.1"}  # (the test client's own name for the server is no host it answers to)
    with make_client() as c:
        for first in (b"\0\0\0\1abc", "not json", "[1, 2]"):
            with c.websocket_connect("/api/live", headers=LOCAL) as ws:
                ws.send_bytes(first) if isinstance(first, bytes) else ws.send_text(first)
                assert "first message is a JSON object" in ws.receive_json()["error"]
        for temporal in ([1], "x", 2):
            with c.websocket_connect("/api/live", headers=LOCAL) as ws:
                ws.send_text(json.dumps({"method": "fast", "temporal": temporal}))
                assert (
                    ws.receive_json()["error"] == f"temporal must be a number from 0 to 1, got {json.dumps(temporal)}"
                )
        with c.websocket_connect("/api/live", headers=LOCAL) as ws:
            ws.send_text(json.dumps({"method": "fast", "size": 32}))
            assert ws.receive_json()["ready"]
            ws.send_text("hello")
            assert "binary message" in ws.receive_json()["error"]
            ws.send_bytes(b"\1\2")
            assert "binary message" in ws.receive_json()["error"]
            ws.send_bytes(frame)
            answer = ws.receive_json()
            assert answer["seq"] == 7 and "error" not in answer
            assert Image.open(io.BytesIO(ws.receive_bytes())).size == (32, 21)
