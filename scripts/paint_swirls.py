"""Procedurally paint the bundled example style image (src/impasto/examples/swirls.png).

Thousands of short brush strokes follow a flow field made of a few vortices, in a night-sky palette, so the
project ships a style image it made itself. Deterministic: the same seed paints the same picture.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

PALETTE = np.array(
    [
        (18, 38, 92),  # deep blue
        (35, 70, 140),  # ultramarine
        (70, 120, 185),  # sky blue
        (130, 170, 200),  # pale blue
        (230, 200, 80),  # chrome yellow
        (245, 230, 150),  # pale yellow
        (40, 80, 60),  # dark green
        (20, 25, 40),  # near black
    ],
    dtype=np.float64,
)


def flow(x: float, y: float, vortices: list[tuple[float, float, float, float]]) -> tuple[float, float]:
    """Direction at (x, y): a gentle horizontal drift plus the swirl of each vortex."""
    dx, dy = 1.0, 0.15 * math.sin(y / 40.0)
    for cx, cy, strength, radius in vortices:
        rx, ry = x - cx, y - cy
        d2 = rx * rx + ry * ry + 1.0
        k = strength * math.exp(-d2 / (2 * radius * radius)) * radius / math.sqrt(d2)
        dx, dy = dx - ry * k, dy + rx * k
    n = math.hypot(dx, dy) or 1.0
    return dx / n, dy / n


def colour_at(x: float, y: float, w: int, h: int, vortices, rng: np.random.Generator) -> tuple[int, int, int]:
    t = y / h
    near = min(math.hypot(x - cx, y - cy) / r for cx, cy, _, r in vortices)
    if near < 0.45:
        idx = rng.choice([4, 5, 3], p=[0.5, 0.35, 0.15])  # glowing vortex cores
    elif t > 0.72:
        idx = rng.choice([6, 7, 1, 0], p=[0.35, 0.25, 0.2, 0.2])  # dark ground
    else:
        idx = rng.choice([0, 1, 2, 3, 4], p=[0.25, 0.3, 0.25, 0.15, 0.05])  # sky
    c = PALETTE[idx] + rng.normal(0, 12, 3)
    return tuple(int(v) for v in np.clip(c, 0, 255))


def paint(width: int = 512, height: int = 384, seed: int = 7) -> Image.Image:
    rng = np.random.default_rng(seed)
    vortices = [
        (width * 0.28, height * 0.30, 2.2, 60.0),
        (width * 0.62, height * 0.22, -1.8, 45.0),
        (width * 0.82, height * 0.42, 2.0, 38.0),
        (width * 0.45, height * 0.55, -1.4, 55.0),
    ]
    img = Image.new("RGB", (width, height), (25, 45, 95))
    draw = ImageDraw.Draw(img)
    for count, length, brush in ((2500, 26, 7), (5000, 16, 4), (4000, 9, 3)):
        for _ in range(count):
            x, y = rng.uniform(0, width), rng.uniform(0, height)
            colour = colour_at(x, y, width, height, vortices, rng)
            points = [(x, y)]
            for _ in range(int(length * rng.uniform(0.6, 1.4))):
                dx, dy = flow(x, y, vortices)
                x, y = x + 2.0 * dx, y + 2.0 * dy
                points.append((x, y))
            dark = tuple(max(0, c - 45) for c in colour)
            draw.line(points, fill=dark, width=brush + 2, joint="curve")
            draw.line(points, fill=colour, width=brush, joint="curve")
    return img.filter(ImageFilter.SMOOTH)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-o", "--output", default=str(Path(__file__).parents[1] / "src/impasto/examples/swirls.png"))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    paint(seed=args.seed).save(args.output, optimize=True)
    print(args.output)


if __name__ == "__main__":
    main()
