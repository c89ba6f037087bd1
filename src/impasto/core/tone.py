"""Matching a stylized picture's tone to its painting's: contrast (the spread of luma) and saturation.

AdaIN's decoder, trained on far fewer pixels than the paper's, returns pictures flatter and greyer than the painting
(docs/MODELS.md): about 0.89 of its luma spread and 0.91 of its mean saturation on the evaluation pairs. The step
here stretches the picture's luma around its mean and its chroma (the colour left once luma is taken away) by the
ratios that bring both to the painting's, each ratio kept within [MIN_GAIN, MAX_GAIN] so that a nearly flat picture
is not blown up. numpy only: the onnxruntime engines use it without PyTorch.

The measures are :func:`impasto.metrics.tone`'s: luma as ITU-R 601 (Pillow's "L") and HSV saturation.
"""

from __future__ import annotations

import numpy as np

LUMA = np.array([0.299, 0.587, 0.114], np.float32)
MIN_GAIN, MAX_GAIN = 0.8, 1.5


def tone_stats(rgb: np.ndarray) -> np.ndarray:
    """(luma standard deviation, mean HSV saturation) of an (H, W, 3) picture in [0, 1]."""
    rgb = np.asarray(rgb, np.float32)
    hi, lo = rgb.max(-1), rgb.min(-1)
    saturation = np.where(hi > 0, (hi - lo) / np.maximum(hi, 1e-6), 0.0)
    return np.array([float((rgb @ LUMA).std()), float(saturation.mean())], np.float32)


def blended_stats(paintings: list[np.ndarray], weights: list[float] | None = None) -> np.ndarray:
    """Several paintings' stats (:func:`tone_stats` of each) mixed by blend weights (default equal)."""
    w = np.asarray(weights if weights is not None else [1.0] * len(paintings), np.float32)
    return (np.stack(paintings) * (w / w.sum())[:, None]).sum(0)


def match_tone(rgb: np.ndarray, target: np.ndarray, amount: float = 1.0) -> np.ndarray:
    """`rgb` ((H, W, 3) in [0, 1]) with its contrast and saturation moved `amount` (0 to 1) of the way to `target`
    ((luma std, mean saturation) from :func:`tone_stats`); clipped to [0, 1]."""
    if amount <= 0:
        return rgb
    rgb = np.asarray(rgb, np.float32)
    own = tone_stats(rgb)
    gains = np.clip(target / np.maximum(own, 1e-6), MIN_GAIN, MAX_GAIN)
    contrast, chroma = 1 + amount * (gains - 1)
    luma = rgb @ LUMA
    mean = float(luma.mean())
    out = (mean + (luma - mean) * contrast)[..., None] + (rgb - luma[..., None]) * chroma
    return np.clip(out, 0.0, 1.0)
