"""Matching a stylized picture's tone to its painting's: contrast (the spread of luma) and saturation.

AdaIN's decoder, trained on far fewer pixels than the paper's, returns pictures flatter and greyer than the painting
(docs/MODELS.md): about 0.89 of its luma spread and 0.91 of its mean saturation on the evaluation pairs. The step
here stretches the picture's luma around its mean and its chroma (the colour left once luma is taken away) by the
ratios that bring both to the painting's, each ratio kept within [MIN_GAIN, MAX_GAIN] so that a nearly flat picture
is not blown up. numpy only: the onnxruntime engines use it without PyTorch.

The measures are :func:`impasto.metrics.tone`'s: luma as ITU-R 601 (Pillow's "L") and HSV saturation. Both are
global averages, so they are taken on a regular subsample of at most about STATS_PIXELS pixels: a video frame pays
about 1 ms for them instead of 25 at 640 x 360 (the ratios move by under 1 %).
"""

from __future__ import annotations

import math

import numpy as np

LUMA = np.array([0.299, 0.587, 0.114], np.float32)
MIN_GAIN, MAX_GAIN = 0.8, 1.5
STATS_PIXELS = 16384


def _sample(rgb: np.ndarray) -> np.ndarray:
    """Every k-th row and column of an (H, W, 3) picture, k chosen to keep at most about STATS_PIXELS pixels."""
    step = max(1, math.ceil(math.sqrt(rgb.shape[0] * rgb.shape[1] / STATS_PIXELS)))
    return np.ascontiguousarray(rgb[::step, ::step])


def _luma(rgb: np.ndarray) -> np.ndarray:
    # Element-wise, not `rgb @ LUMA`: a BLAS product may start its own threads (and spin), which fight the video
    # pipeline's workers for the cores.
    return rgb[..., 0] * LUMA[0] + rgb[..., 1] * LUMA[1] + rgb[..., 2] * LUMA[2]


def tone_stats(rgb: np.ndarray) -> np.ndarray:
    """(luma standard deviation, mean HSV saturation) of an (H, W, 3) picture in [0, 1]."""
    rgb = _sample(np.asarray(rgb, np.float32))
    hi, lo = rgb.max(-1), rgb.min(-1)
    saturation = np.where(hi > 0, (hi - lo) / np.maximum(hi, 1e-6), 0.0)
    return np.array([float(_luma(rgb).std()), float(saturation.mean())], np.float32)


def blended_stats(paintings: list[np.ndarray], weights: list[float] | None = None) -> np.ndarray:
    """Several paintings' stats (:func:`tone_stats` of each) mixed by blend weights (default equal)."""
    w = np.asarray(weights if weights is not None else [1.0] * len(paintings), np.float32)
    return (np.stack(paintings) * (w / w.sum())[:, None]).sum(0)


def match_tone(rgb: np.ndarray, target: np.ndarray, amount: float = 1.0, inplace: bool = False) -> np.ndarray:
    """`rgb` ((H, W, 3) in [0, 1]) with its contrast and saturation moved `amount` (0 to 1) of the way to `target`
    ((luma std, mean saturation) from :func:`tone_stats`); clipped to [0, 1]. `inplace` reuses `rgb` (a float32
    array the caller owns): video frames then allocate one plane instead of several frames' worth."""
    if amount <= 0:
        return rgb
    rgb = np.asarray(rgb, np.float32)
    own = tone_stats(rgb)
    gains = np.clip(target / np.maximum(own, 1e-6), MIN_GAIN, MAX_GAIN)
    contrast, chroma = (1 + amount * (gains - 1)).tolist()
    mean = float(_luma(_sample(rgb)).mean())
    # mean + contrast * (luma - mean) + chroma * (rgb - luma), as chroma * rgb plus one plane for all channels.
    shift = _luma(rgb)
    shift *= contrast - chroma
    shift += mean * (1 - contrast)
    out = rgb if inplace else rgb.copy()
    out *= np.float32(chroma)
    out += shift[..., None]
    return np.clip(out, 0.0, 1.0, out=out)


# A painting's palette: the mean and second moment of its RGB colours (12 numbers), so that several paintings blend
# exactly as a mixture of their colours. Arbitrary-style models paint an unseen painting's strokes better than its
# colours (a fast network with a style predictor turned Turner's Shipwreck into a neon-green Golden Gate): moving the
# result's colour mean and covariance to the painting's (the affine colour transfer of Gatys et al. 2016, with
# symmetric matrix square roots) fixes most of that. Exploratory figures on the six evaluation pairs at 512 px
# (2026-12-06, AVX-512 EPYC; docs/MODELS.md), content / style: --model any 1.107 / 0.237 -> 1.065 / 0.184 at 1;
# the compact AdaIN model (int8) 0.911 / 0.289 -> 0.911 / 0.261 at 0.5 and 0.929 / 0.251 at 1.
def palette_stats(rgb: np.ndarray) -> np.ndarray:
    """(12,) float64: the mean (3) and second moment (3 x 3, flattened) of an (H, W, 3) picture's colours in [0, 1]."""
    x = _sample(np.asarray(rgb, np.float32)).reshape(-1, 3).astype(np.float64)
    return np.concatenate([x.mean(0), (x.T @ x / len(x)).ravel()])


def look_stats(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(:func:`tone_stats`, :func:`palette_stats`) of an (H, W, 3) picture, uint8 or in [0, 1]: subsampled before
    anything else, so a large painting costs a millisecond rather than the 10-15 of converting all of it (the same
    numbers as the two functions give)."""
    small = _sample(np.asarray(rgb))
    if small.dtype == np.uint8:
        small = small.astype(np.float32) / 255
    return tone_stats(small), palette_stats(small)


def _mean_cov(stats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = stats[:3]
    return mean, stats[3:].reshape(3, 3) - np.outer(mean, mean) + np.eye(3) * 1e-5


def _sqrtm(cov: np.ndarray, inverse: bool = False) -> np.ndarray:
    values, vectors = np.linalg.eigh(cov)
    values = np.maximum(values, 1e-8)
    return (vectors * (values**-0.5 if inverse else values**0.5)) @ vectors.T


def match_palette(rgb: np.ndarray, target: np.ndarray, amount: float = 1.0, inplace: bool = False) -> np.ndarray:
    """`rgb` ((H, W, 3) in [0, 1]) with its colours moved `amount` (0 to 1) of the way to the palette `target`
    (:func:`palette_stats`, or several blended by :func:`blended_stats`): the affine map that gives them the
    target's mean and covariance, mixed with the identity; clipped to [0, 1]. `inplace` as for :func:`match_tone`."""
    if amount <= 0:
        return rgb
    rgb = np.asarray(rgb, np.float32)
    own_mean, own_cov = _mean_cov(palette_stats(rgb))
    mean, cov = _mean_cov(np.asarray(target, np.float64))
    a = amount * (_sqrtm(cov) @ _sqrtm(own_cov, inverse=True)) + (1 - amount) * np.eye(3)
    shift = amount * (mean - own_mean) + own_mean - a @ own_mean
    # Channel planes times scalars (no BLAS product: its threads fight the video pipeline's workers).
    planes = [rgb[..., c].copy() for c in range(3)] if inplace else [rgb[..., c] for c in range(3)]
    out = rgb if inplace else np.empty_like(rgb)
    for c in range(3):
        m = a[c].astype(np.float32)
        out[..., c] = planes[0] * m[0] + planes[1] * m[1] + planes[2] * m[2] + np.float32(shift[c])
    return np.clip(out, 0.0, 1.0, out=out)
