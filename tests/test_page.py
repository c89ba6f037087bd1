"""The web page as a first-time user meets it, in Debian's Chromium driven by Playwright, at desktop and phone size:
the example in one click, the status line, checks before upload, cancelling, the server going away and coming back,
the history, downloads, keyboard use and an accessibility check with axe-core.

Set IMPASTO_DOCS_SCREENSHOT=1 to write docs/page-desktop.png and docs/page-phone.png (shown in the README).
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
from PIL import Image
from test_serve_browser import CHROMIUM, CHROMIUM_ARGS, DOCS, ROOT

from impasto.serve import ServeSettings
from impasto.serve.server import background

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (make dev)")
axe_api = pytest.importorskip("axe_playwright_python.sync_playwright", reason="axe-playwright-python is not installed")
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Chromium not found at /usr/bin/chromium (make dev installs Debian's package)"
)

DESKTOP = {"viewport": {"width": 1440, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
# Tiny pictures for speed; the screenshots for docs/ are made at a size people look at.
SIZE = 512 if DOCS else 64
SMALL = {"max_size": SIZE, "default_size": SIZE, "job_defaults": {"device": "cpu", "precision": "fp32", "tol": 0}}


def _watch(page) -> list[str]:
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(
        "console", lambda m: m.type == "error" and "Failed to load resource" not in m.text and problems.append(m.text)
    )
    return problems


def _accessible(page) -> None:
    """axe-core finds nothing serious or critical."""
    found = axe_api.Axe().run(page).response["violations"]
    bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in found]
    assert not [b for b in bad if b[1] in ("serious", "critical")], bad


def _in_view(page, selector: str) -> bool:
    return page.evaluate(
        """s => { const r = document.querySelector(s).getBoundingClientRect();
                  return r.top >= 0 && r.bottom <= innerHeight && r.height > 0; }""",
        selector,
    )


def _status(page) -> str:
    return page.locator("#status-text").inner_text()


@pytest.mark.parametrize("device", ["desktop", "phone"])
def test_a_first_visit_tries_the_example_in_one_click_and_keeps_the_result(device, tmp_path):
    phone = device == "phone"
    with background(ServeSettings(port=0, **SMALL)) as url, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(**(PHONE if phone else DESKTOP), accept_downloads=True)
            page = context.new_page()
            problems = _watch(page)
            page.goto(url + "/")
            page.wait_for_selector("#methods button[aria-checked='true']")
            # A first visit starts with the one-pass built-in styles, not a minutes-long optimization.
            assert page.locator("#methods button[aria-checked='true']").get_attribute("data-method") == "fast"
            assert _in_view(page, "#go")  # Stylize is always in view (a bottom bar on phones)
            assert page.locator("kbd").is_visible() != phone  # no keyboard hint on a touch screen
            assert page.locator("#content-drop .touch-only").is_visible() == phone
            _accessible(page)

            page.click("#try-sample" if phone else "#try-sample-big")
            page.wait_for_selector("#download-group:not([hidden])", timeout=120_000)
            assert _status(page).startswith("Done in")
            assert page.locator("#view").evaluate("img => img.naturalWidth") == SIZE
            entry = page.locator("#gallery button.entry").first
            assert re.match(rf"Starry night · fast · {SIZE} px", entry.locator(".cap b").inner_text()), (
                entry.inner_text()
            )
            if phone:  # the result lands below the settings: the page brings it into view
                page.wait_for_function(
                    "() => { const r = document.getElementById('canvas').getBoundingClientRect();"
                    " return r.top >= 0 && r.top < innerHeight / 2; }"
                )
            assert _in_view(page, "#go")
            _accessible(page)
            shot = (ROOT / "docs" / f"page-{device}.png") if DOCS else tmp_path / "page.png"
            page.screenshot(path=str(shot))
            assert not problems, problems
            if phone:
                # Touch: the x that removes a painting is shown (there is no hover to reveal it).
                page.click("#builtins button.builtin-own")
                page.set_input_files("#style-input", str(ROOT / "src" / "impasto" / "examples" / "swirls.png"))
                page.wait_for_selector(".style-card img")
                assert page.locator(".style-card .remove").evaluate("b => getComputedStyle(b).opacity") == "1"
                return

            # Downloads: PNG as made, or JPEG / WebP converted here, with a name that says what it is.
            page.select_option("#download-format", "jpeg")
            with page.expect_download() as caught:
                page.click("#download")
            download = caught.value
            assert re.fullmatch(
                r"impasto-starry-night-fast-\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d\.jpg", download.suggested_filename
            ), download.suggested_filename
            with Image.open(io.BytesIO(Path(download.path()).read_bytes())) as im:
                assert im.format == "JPEG" and im.width == SIZE

            # One pass: releasing a slider paints again by itself.
            page.locator("#opt-coarse").fill("2.5")
            page.wait_for_function("() => document.querySelectorAll('#gallery button.entry').length === 2")
            page.wait_for_selector("#download-group:not([hidden])")
            newest = page.locator("#gallery button.entry").first.get_attribute("data-id")
            assert page.request.get(f"{url}/api/jobs/{newest}").json()["options"]["coarse"] == 2.5

            # The history survives a reload; a click shows the entry again with its settings.
            page.reload()
            page.wait_for_function("() => document.querySelectorAll('#gallery button.entry').length === 2")
            assert page.locator("#opt-coarse").input_value() == "2.5"
            page.locator("#gallery button.entry").nth(1).click()
            page.wait_for_function("() => document.getElementById('status-text').textContent.includes('Shown again')")
            assert page.locator("#opt-coarse").input_value() == "1"
            assert page.locator("#content-thumb").is_visible()  # the photo is back too
            assert page.locator("#gallery button.entry").nth(1).get_attribute("aria-current") == "true"

            # Keyboard: each choice group is one tab stop, and the arrow keys move the choice.
            radios = page.locator("#methods [role='radio']")
            assert [radios.nth(i).get_attribute("tabindex") for i in range(radios.count())].count("0") == 1
            page.focus("#methods [tabindex='0']")
            page.keyboard.press("ArrowRight")
            focused = page.evaluate("document.activeElement.dataset.method")
            assert focused and focused != "fast"
            assert page.locator(f"#methods [data-method='{focused}']").get_attribute("aria-checked") == "true"
            outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
            assert outline not in ("", "none")  # the focus is visible
            assert not problems, problems
        finally:
            browser.close()


def _fake_heic() -> bytes:
    return b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)


def test_the_status_line_tells_the_truth_and_pictures_are_checked_before_upload(images, tmp_path):
    big = tmp_path / "big.png"
    Image.new("RGB", (1600, 1200), (40, 90, 160)).save(big)
    svg = tmp_path / "drawing.svg"
    svg.write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="80" height="60"><rect width="80" height="60" fill="red"/></svg>'
    )
    heic = tmp_path / "phone.heic"
    heic.write_bytes(_fake_heic())
    settings = ServeSettings(port=0, max_pixels=1_000_000, max_steps=400, **SMALL)
    with background(settings) as url, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(**DESKTOP)
            problems = _watch(page)
            page.goto(url + "/")
            page.wait_for_selector("#methods button[aria-checked='true']")

            # A picture this browser cannot open is named plainly; one above the cap is shrunk here; one the
            # server cannot read (SVG) is converted here.
            page.set_input_files(
                "#content-input", {"name": "phone.heic", "mimeType": "image/heic", "buffer": heic.read_bytes()}
            )
            page.wait_for_function("() => document.getElementById('status-text').classList.contains('error')")
            assert "HEIC pictures cannot be opened here" in _status(page) and "photo" in _status(page)
            page.set_input_files("#content-input", str(big))
            page.wait_for_selector("#content-meta:not([hidden])")
            meta = page.locator("#content-meta").inner_text()
            assert "shrunk here from 1600 × 1200" in meta and not meta.startswith("1600")
            assert "error" not in page.locator("#status-text").get_attribute("class")  # the next action cleared it
            page.click("#builtins button.builtin-own")  # AdaIN, with a painting of one's own
            page.set_input_files("#style-input", str(svg))
            page.wait_for_selector(".style-card img")

            # A refused job: the reason stays in the status line (no "Uploading..." left behind).
            page.route(
                "**/api/jobs",
                lambda route: route.fulfill(
                    status=400, content_type="application/json", body='{"error": "painting: not an image"}'
                ),
            )
            page.focus("#go")
            page.click("#go")
            page.wait_for_function("() => document.getElementById('status-text').classList.contains('error')")
            assert _status(page) == "Painting: not an image."
            assert page.evaluate("document.activeElement.id") == "go"  # never the page body
            page.unroute("**/api/jobs")
            page.click("#go")  # the next action
            page.wait_for_selector("#download-group:not([hidden])", timeout=60_000)
            assert _status(page).startswith("Done in")
            job = page.locator("#gallery button.entry").first.get_attribute("data-id")
            assert page.request.get(f"{url}/api/jobs/{job}").json()["width"] == SIZE

            # Cancelling: "Cancelling..." stays until the job has ended, then "Cancelled.".
            page.click("#methods button[data-method='gatys']")
            page.locator("#opt-steps").fill("400")
            page.evaluate(
                """() => { window.__said = [];
                   const el = document.getElementById('status-text');
                   new MutationObserver(() => window.__said.push(el.textContent))
                     .observe(el, {childList: true, characterData: true, subtree: true}); }"""
            )
            page.focus("#go")
            page.keyboard.press("Control+Enter")
            page.wait_for_function(
                "() => /Step \\d+ of 400 .* about .* left/.test(document.getElementById('status-text').textContent)",
                timeout=120_000,
            )
            # The time left is estimated from the steps seen, not from the start (which includes loading the model).
            steps = [t for t in page.evaluate("window.__said") if t.startswith("Step")]
            assert "estimating the time left" in steps[0] and "left" in steps[-1], steps[:3]
            assert page.evaluate("document.activeElement.id") == "cancel"  # Stylize disabled itself: focus moved
            page.keyboard.press("Escape")
            page.wait_for_function(
                "() => document.getElementById('status-text').textContent === 'Cancelled.'", timeout=60_000
            )
            said = page.evaluate("window.__said")
            first = said.index("Cancelling…")
            assert set(said[first:-1]) == {"Cancelling…"}, said[first:]
            assert page.evaluate("document.activeElement.id") == "go"
            assert not problems, problems
        finally:
            browser.close()


def test_a_server_that_stops_mid_job_ends_the_job_at_once_and_the_page_recovers_when_it_returns(images):
    settings = ServeSettings(port=0, max_steps=1000, **SMALL)
    with contextlib.ExitStack() as first, sync_api.sync_playwright() as pw:
        url = first.enter_context(background(settings))
        port = int(url.rsplit(":", 1)[1])
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(**DESKTOP)
            page.goto(url + "/")
            page.wait_for_selector("#methods button[data-method='gatys']")
            page.click("#methods button[data-method='gatys']")
            page.locator("#opt-steps").fill("1000")
            page.set_input_files("#content-input", str(images["content"]))
            page.set_input_files("#style-input", str(images["style"]))
            page.wait_for_selector(".style-card img")
            page.click("#go")
            page.wait_for_function(
                "() => /Step \\d+ of 1000/.test(document.getElementById('status-text').textContent)", timeout=120_000
            )

            first.close()  # the server stops (as on Ctrl-C) in the middle of the job
            page.wait_for_function(
                "() => document.getElementById('status-text').classList.contains('error')", timeout=30_000
            )
            assert "not finished" in _status(page) and "impasto serve" in _status(page)
            assert page.locator("#cancel").is_hidden() and page.locator("#go").is_disabled()
            assert page.evaluate("document.activeElement.id") == "status-text"  # not the page body
            page.wait_for_selector("#server-status.down")
            before = _status(page)
            with background(ServeSettings(port=port, **SMALL)):
                page.wait_for_function(
                    "() => document.getElementById('status-text').textContent.includes('The server is back')",
                    timeout=30_000,
                )
                assert page.locator("#go").is_enabled() and "down" not in page.locator("#server-status").get_attribute(
                    "class"
                )
            assert before != _status(page)
        finally:
            browser.close()
