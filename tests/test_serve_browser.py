"""End to end: Debian's Chromium, driven by Playwright, uses the web page against a real server.

Set IMPASTO_DOCS_SCREENSHOT=1 to run a realistic job (the bundled examples at 512 px) and write docs/serve.png;
by default the job is tiny and the screenshot goes to a temporary directory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

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
            port=0, max_size=64, default_size=64, max_steps=4, preview_interval=0,
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
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            page.goto(url + "/")
            page.wait_for_selector("#methods button[data-method='gatys']")
            assert page.title().startswith("impasto")
            assert page.locator("#go").is_disabled()

            page.set_input_files("#content-input", str(content))
            page.set_input_files("#style-input", str(style))
            page.wait_for_selector(".style-card img")
            page.click("#methods button[data-method='gatys']")
            page.click(f"#sizes button[data-value='{size}']")
            page.locator("#steps").fill(steps)
            # Record what the badge over the picture says, to see the previews go by.
            page.evaluate(
                """() => { window.__badges = [];
                   new MutationObserver(() => window.__badges.push(document.getElementById('badge').textContent))
                     .observe(document.getElementById('badge'), {childList: true, characterData: true, subtree: true}); }"""
            )
            assert page.locator("#go").is_enabled()
            page.click("#go")
            page.wait_for_selector("#download:not([hidden])", timeout=900_000 if DOCS else 300_000)

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
