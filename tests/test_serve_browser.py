"""End to end: Debian's Chromium, driven by Playwright, uses the web page against a real server.

Set IMPASTO_DOCS_SCREENSHOT=1 to run a realistic job (the bundled examples at 512 px) and write docs/serve.png;
by default the job is tiny and the screenshot goes to a temporary directory.
"""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from impasto import api
from impasto.serve import ServeSettings
from impasto.serve.server import background

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "src" / "impasto" / "examples"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DOCS = os.environ.get("IMPASTO_DOCS_SCREENSHOT") == "1"

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (make dev)")
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Chromium not found at /usr/bin/chromium (make dev installs Debian's package)"
)


def test_page_uploads_a_photo_and_a_painting_runs_a_job_and_shows_the_result(images, tmp_path):
    if DOCS:
        settings = ServeSettings(port=0, preview_interval=1.0)
        content, style, size, steps = EXAMPLES / "chelsea.png", EXAMPLES / "swirls.png", "512", "200"
        shot = ROOT / "docs" / "serve.png"
    else:
        # A tiny job: the server's caps make 64 px and 4 steps the page's only choices.
        settings = ServeSettings(
            port=0,
            max_size=64,
            default_size=64,
            max_steps=4,
            preview_interval=0,
            job_defaults={"device": "cpu", "precision": "fp32", "tol": 0},
        )
        content, style, size, steps = images["content"], images["style"], "64", "4"
        shot = tmp_path / "serve.png"
    with background(settings) as url, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900}, device_scale_factor=1)
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
            page.on("response", lambda r: r.status == 404 and problems.append(f"404: {r.url}"))
            # A poll of the server cut short by leaving the page (ERR_ABORTED) is no problem.
            page.on(
                "requestfailed",
                lambda r: (
                    "ERR_ABORTED" not in (r.failure or "") and problems.append(f"request failed: {r.url} {r.failure}")
                ),
            )
            page.goto(url + "/")
            page.wait_for_selector("#methods button[data-method='gatys']")
            assert page.title().startswith("impasto")
            assert page.locator("#go").is_disabled()

            page.click("#methods button[data-method='gatys']")
            page.set_input_files("#content-input", str(content))
            page.set_input_files("#style-input", str(style))
            page.wait_for_selector(".style-card img")
            page.click(f"#sizes button[data-value='{size}']")
            assert page.locator("#opt-steps").get_attribute("type") == "range"  # made from gatys's declaration
            page.locator("#opt-steps").fill(steps)
            # Record what the badge over the picture says, to see the previews go by.
            page.evaluate(
                """() => { window.__badges = [];
                   new MutationObserver(() => window.__badges.push(document.getElementById('badge').textContent))
                     .observe(document.getElementById('badge'),
                              {childList: true, characterData: true, subtree: true}); }"""
            )
            assert page.locator("#go").is_enabled()
            page.click("#go")
            page.wait_for_selector("#download-group:not([hidden])", timeout=900_000 if DOCS else 300_000)

            result = page.locator("#view")
            assert result.get_attribute("src").startswith("blob:")
            width = result.evaluate("img => img.naturalWidth")
            assert width == int(size)
            assert page.locator("#gallery li").count() == 1
            assert "Done in" in page.locator("#status-text").inner_text()
            assert any(b.startswith("Preview · step") for b in page.evaluate("window.__badges"))
            download = page.locator("#download")
            assert download.get_attribute("download").endswith(".png")
            assert not problems, problems
            page.mouse.move(0, 0)
            page.evaluate("document.querySelector('.panel').scrollTop = 0")
            page.screenshot(path=str(shot))

            # The API reference renders the schema from this server alone.
            page.goto(url + "/api/docs")
            page.wait_for_selector("article.op")
            assert page.locator("article.op").count() >= 7
            assert "style_weights" in page.locator("#endpoints").inner_text()
            assert not problems, problems
        finally:
            browser.close()
    with Image.open(shot) as im:
        assert im.size == (1440, 900)


def test_a_registered_method_gets_a_button_and_controls_from_its_declaration(images, monkeypatch):
    """toy_method.py (next to this file) and one registry line: the page offers it, with a slider made from its
    declared 'brightness', and runs it."""
    monkeypatch.setitem(api.METHODS, "toy", "toy_method")
    settings = ServeSettings(port=0, max_size=64, default_size=64)
    with background(settings) as url, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
            page.on("response", lambda r: r.status == 404 and problems.append(f"404: {r.url}"))
            page.goto(url + "/")
            page.wait_for_selector("#methods button[data-method='toy']")

            # Gatys: its steps get a slider through its default (70), within the server's cap.
            page.click("#methods button[data-method='gatys']")
            steps = page.locator("#opt-steps")
            assert (steps.get_attribute("max"), steps.input_value()) == ("1000", "70")
            assert page.locator("#opt-brightness").count() == 0

            page.click("#methods button[data-method='toy']")
            assert page.locator("#methods button[data-method='toy']").get_attribute("aria-checked") == "true"
            slider = page.locator("#opt-brightness")
            assert [slider.get_attribute(a) for a in ("type", "min", "max", "step")] == ["range", "0", "2", "0.1"]
            assert slider.input_value() == "1"
            label = page.locator("label[for='opt-brightness']").inner_text()
            assert "Brightness" in label and "1.0" in label
            assert "twice as bright" in page.locator("[data-generated='brightness']").get_attribute("title")
            assert page.locator("#opt-steps").count() == 0 and page.locator("#opt-strength").count() == 0
            assert page.locator("[data-option='size']").is_visible()
            assert not page.locator("[data-option='seed']").is_visible()  # toy declares no seed

            slider.fill("0.5")
            assert "0.5" in page.locator("label[for='opt-brightness']").inner_text()
            page.set_input_files("#content-input", str(images["content"]))
            page.set_input_files("#style-input", str(images["style"]))
            page.wait_for_selector(".style-card img")
            page.click("#go")
            page.wait_for_selector("#download-group:not([hidden])", timeout=60_000)
            assert page.locator("#view").evaluate("img => img.naturalWidth") == 64
            job_id = page.locator("#gallery button").first.get_attribute("data-id")
            job = page.request.get(f"{url}/api/jobs/{job_id}").json()
            assert (job["method"], job["options"]) == ("toy", {"size": 64, "brightness": 0.5})

            # The page remembers the method and its values.
            page.reload()
            page.wait_for_selector("#opt-brightness")
            assert page.locator("#opt-brightness").input_value() == "0.5"
            assert not problems, problems
        finally:
            browser.close()


def test_the_fast_method_offers_the_built_in_styles_as_a_gallery(images):
    """The gallery replaces the painting uploads for the fast method: thumbnails painted by impasto, a click picks
    the style, the layer sliders come from the declaration, and the job runs with that style and no upload."""
    settings = ServeSettings(port=0, max_size=64, default_size=64, job_defaults={"device": "cpu", "precision": "fp32"})
    with background(settings) as url, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
            page.on("response", lambda r: r.status == 404 and problems.append(f"404: {r.url}"))
            page.goto(url + "/")
            page.wait_for_selector("#methods button[data-method='fast']")
            page.click("#methods button[data-method='gatys']")
            assert not page.locator("#builtins").is_visible()
            page.click("#methods button[data-method='fast']")
            assert page.locator("#builtins").is_visible() and not page.locator("#styles").is_visible()
            names = [s["name"] for s in page.request.get(f"{url}/api/styles").json()]
            tiles = page.locator("#builtins button[data-name]")
            assert tiles.count() == len(names) >= 8
            # Each thumbnail is a real picture the server painted.
            page.wait_for_function(
                "() => [...document.querySelectorAll('#builtins img')].every(i => i.complete && i.naturalWidth > 0)",
                timeout=120_000,
            )
            assert page.locator("#builtins button.builtin-own").count() == 1
            assert page.locator("#opt-coarse").get_attribute("type") == "range"
            assert page.locator("#opt-model").count() == 0  # the gallery is its control

            page.click(f"#builtins button[data-name='{names[2]}']")
            assert page.locator(f"#builtins button[data-name='{names[2]}']").get_attribute("aria-checked") == "true"
            page.set_input_files("#content-input", str(images["content"]))
            page.locator("#opt-coarse").fill("2")
            page.click("#go")
            page.wait_for_selector("#download-group:not([hidden])", timeout=60_000)
            job_id = page.locator("#gallery button").first.get_attribute("data-id")
            job = page.request.get(f"{url}/api/jobs/{job_id}").json()
            assert job["method"] == "fast" and job["options"]["model"] == names[2]
            assert job["options"]["coarse"] == 2

            # "Your own painting" switches to a method that takes an upload.
            page.click("#builtins button.builtin-own")
            assert page.locator("#styles").is_visible() and not page.locator("#builtins").is_visible()
            assert not problems, problems
        finally:
            browser.close()


def test_the_live_camera_streams_stylized_frames(images):
    """Chromium's fake camera over the WebSocket: frames come back painted, with the rate and delay shown."""
    settings = ServeSettings(port=0, max_size=64, default_size=64, job_defaults={"device": "cpu", "precision": "fp32"})
    args = [*CHROMIUM_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
    with background(settings) as url, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.grant_permissions(["camera"])
            page = context.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
            page.goto(url + "/")
            page.wait_for_selector("#methods button[data-method='gatys']")
            page.click("#methods button[data-method='gatys']")
            page.click("#camera")
            # The camera switches to the one-pass method with built-in styles, and frames come back.
            page.wait_for_function(
                "() => Number(document.getElementById('canvas').dataset.liveFrames || 0) >= 3", timeout=120_000
            )
            assert page.locator("#methods button[data-method='fast']").get_attribute("aria-checked") == "true"
            status = page.locator("#status-text").inner_text()
            assert "frames/s" in status and "ms behind" in status
            assert page.locator("#view").evaluate("img => img.naturalWidth") == 64
            assert page.locator("#go").is_disabled()
            page.click("#camera")
            assert "stopped after" in page.locator("#status-text").inner_text()
            assert page.locator("#camera").get_attribute("aria-pressed") == "false"
            assert not problems, problems
        finally:
            browser.close()


def test_a_video_upload_plays_back_painted_with_its_sound_and_progress_in_frames(tmp_path):
    """A clip chosen as the photo: its size and length shown, the steady-video slider at the method's default, the
    job's progress in frames, then the painted MP4 playing in the page with its download link; the job got the
    slider's value."""
    import av
    from test_video import make_clip

    clip = make_clip(tmp_path / "pan.mp4", frames=8)
    settings = ServeSettings(port=0, max_size=64, default_size=64, job_defaults={"device": "cpu", "precision": "fp32"})
    with background(settings) as url, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800}, accept_downloads=True)
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
            page.on("response", lambda r: r.status == 404 and problems.append(f"404: {r.url}"))
            posted: list[str] = []
            page.on(
                "response",
                lambda r: r.request.method == "POST" and r.url.endswith("/api/jobs") and posted.append(r.json()["id"]),
            )
            page.goto(url + "/")
            page.wait_for_selector("#methods button[data-method='fast']")
            page.click("#methods button[data-method='fast']")
            page.wait_for_selector("#builtins button[data-name]")
            assert not page.locator("#video-field").is_visible()
            page.set_input_files("#content-input", str(clip))
            page.wait_for_selector("#content-video:not([hidden]), #content-clip:not([hidden])")
            playable = page.evaluate(
                "() => document.createElement('video').canPlayType('video/mp4; codecs=avc1.42E01E')"
            )
            meta = page.locator("#content-meta").inner_text()
            assert "video" in meta and "kB" in meta
            if playable:  # Chromium built with H.264 reads the clip's size and length
                assert "64 × 48" in meta
                assert page.locator("#content-video").is_visible()
            else:  # no black frame: the clip's name, and that the server reads it
                assert not page.locator("#content-video").is_visible()
                assert "pan.mp4" in page.locator("#content-clip").inner_text()
                assert "server will read it" in meta
            assert page.locator("#video-field").is_visible()
            methods = page.request.get(f"{url}/api/methods").json()
            default = next(m for m in methods if m["name"] == "fast")["video_temporal"]
            assert page.locator("#temporal").input_value() == str(default)
            page.locator("#temporal").fill("0.25")
            assert page.locator("#temporal-out").inner_text() == "0.25"
            assert "every frame" in page.locator("#go-hint").inner_text()
            page.click("#go")
            page.wait_for_selector("#download-group:not([hidden])", timeout=120_000)
            status = page.locator("#status-text").inner_text()
            assert status.startswith("Done") and "8 frames" in status and "MP4" in status
            assert page.locator("#view-video").is_visible() and not page.locator("#view").is_visible()
            assert page.locator("#download").get_attribute("download").endswith(".mp4")
            assert not page.locator("#download-format").is_visible()
            assert page.locator("#gallery button").count() == 0  # videos stay out of the history
            if playable:
                page.wait_for_function("() => document.getElementById('view-video').videoWidth === 64")
            with page.expect_download() as got:
                page.click("#download")
            saved = tmp_path / "painted.mp4"
            got.value.save_as(saved)
            with av.open(str(saved)) as f:
                assert f.streams.video[0].frames == 8 and len(f.streams.audio) == 1
            job = page.request.get(f"{url}/api/jobs/{posted[0]}").json()
            assert job["video"]["temporal"] == 0.25 and job["video"]["frames"] == 8
            assert (job["width"], job["height"]) == (64, 48)
            assert not problems, problems
        finally:
            browser.close()


def test_a_video_above_the_servers_upload_cap_is_refused_in_the_page(tmp_path, images):
    """The page names the clip, its size and the server's cap, and uploads nothing."""
    from test_video import make_clip

    clip = make_clip(tmp_path / "long.mp4", frames=8)
    settings = ServeSettings(port=0, max_size=64, default_size=64, max_upload_bytes=clip.stat().st_size - 1)
    with background(settings) as url, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            posted: list[str] = []
            page.on("request", lambda r: r.method == "POST" and posted.append(r.url))
            page.goto(url + "/")
            page.wait_for_selector("#methods button[data-method='fast']")
            page.click("#methods button[data-method='fast']")
            page.set_input_files("#content-input", str(clip))
            page.wait_for_function("() => document.getElementById('status-text').classList.contains('error')")
            status = page.locator("#status-text").inner_text()
            assert "long.mp4" in status and "at most" in status and "kB" in status
            assert not page.locator("#content-video").is_visible() and page.locator("#go").is_disabled()
            # The clip dropped again together with a picture (what a drop or a paste outside the boxes hands over):
            # the refusal stays, and the picture does not take the clip's place.
            picture = base64.b64encode(images["content"].read_bytes()).decode()
            page.evaluate(
                """async ([size, picture]) => {
                  const bytes = Uint8Array.from(atob(picture), (c) => c.charCodeAt(0));
                  await takeLoose([new File([new Uint8Array(size)], "long.mp4", { type: "video/mp4" }),
                                   new File([bytes], "cat.png", { type: "image/png" })]);
                }""",
                [clip.stat().st_size, picture],
            )
            assert "long.mp4" in page.locator("#status-text").inner_text()
            assert not page.locator("#content-thumb").is_visible() and page.locator("#go").is_disabled()
            # A clip under the cap that this browser cannot decode: its name in the box, not a black frame.
            shown = page.evaluate(
                """() => setContent(new File([new Uint8Array(4096)], "odd.mp4", { type: "video/mp4" }))"""
            )
            assert shown is True
            assert page.locator("#content-clip").is_visible() and not page.locator("#content-video").is_visible()
            assert "odd.mp4" in page.locator("#content-clip").inner_text()
            assert "server will read it" in page.locator("#content-meta").inner_text()
            page.click("#content-clear")
            assert not page.locator("#content-clip").is_visible()
            assert not posted
        finally:
            browser.close()
