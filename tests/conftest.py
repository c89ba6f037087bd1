"""Shared fixtures: a private weights cache and tiny test images made from the bundled examples."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "impasto" / "examples"


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory):
    """Keep converted weights out of the user's cache; converted once per test session."""
    cache = tmp_path_factory.mktemp("impasto-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("IMPASTO_CACHE", str(cache))
    mp.delenv("IMPASTO_DEBUG", raising=False)
    torch.set_num_threads(2)
    yield cache
    mp.undo()


@pytest.fixture(scope="session")
def images(tmp_path_factory) -> dict[str, Path]:
    """Small content and style images on disk (64-96 px)."""
    d = tmp_path_factory.mktemp("images")
    content = Image.open(EXAMPLES / "chelsea.png").convert("RGB").resize((96, 64), Image.LANCZOS)
    style = Image.open(EXAMPLES / "swirls.png").convert("RGB").resize((96, 72), Image.LANCZOS)
    # A second style: warm, blocky, unlike the first.
    style2 = Image.open(EXAMPLES / "swirls.png").convert("RGB").rotate(90, expand=True)
    style2 = Image.merge("RGB", style2.split()[::-1]).resize((64, 96), Image.NEAREST)
    paths = {"content": d / "content.png", "style": d / "style.png", "style2": d / "style2.jpg"}
    content.save(paths["content"])
    style.save(paths["style"])
    style2.save(paths["style2"], quality=95)
    return paths
