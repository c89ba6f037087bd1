"""Dense optical flow between video frames (OpenCV's DIS: offline, no weights), warping, and where flow is reliable.

Conventions: a flow field is (H, W, 2) float32 in pixels, (dx, dy). ``flow(a, b)`` gives for each pixel of `a` where
it moved to in `b`. To bring picture `prev` into the current frame, sample it along the current frame's flow to the
previous one: ``warp(prev, flow(current, prev))``.
"""

from __future__ import annotations

import threading

import numpy as np

from ..errors import ImpastoError

_LOCAL = threading.local()  # one DIS object per thread and preset: one must not be shared between threads
PRESETS = ("ultrafast", "fast", "balanced", "medium")
# "balanced": DIS's fast preset followed down to half the frame's resolution as medium is (fast stops at a quarter),
# with sparser patches (a stride of 6 px instead of 4) and one pass of variational refinement instead of five, which
# is most of the cost at that scale. On the real clip at 640x360 px (2026-12-05, one thread): 8.0 ms a flow against
# fast's 5.8 and medium's 28.6, and through the video blend the warping error / 2.12 of per-frame against fast's
# / 1.91 and medium's / 2.58. On smaller frames medium's larger patches still count (360x202 px: / 2.22 against
# balanced's / 1.65).
_SETTINGS = {"balanced": ("fast", {"FinestScale": 1, "PatchStride": 6, "VariationalRefinementIterations": 1})}


def _cv2():
    try:
        import cv2
    except ImportError:  # pragma: no cover - a dependency of impasto's video extra
        raise ImpastoError("video needs OpenCV: pip install 'impasto[video]'") from None
    return cv2


def gray(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) uint8 luminance, what the flow is computed on."""
    cv2 = _cv2()
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def flow(a: np.ndarray, b: np.ndarray, preset: str = "medium") -> np.ndarray:
    """Dense flow from grey frame `a` to grey frame `b` (DIS; `preset`, one of PRESETS, trades accuracy for speed:
    "medium" is what the measurements use, "fast" about 5x quicker), (H, W, 2) float32."""
    cv2 = _cv2()
    cache = _LOCAL.__dict__
    if preset not in cache:
        if preset not in PRESETS:
            raise ValueError(f"unknown optical flow preset {preset!r}; one of {', '.join(PRESETS)}")
        base, settings = _SETTINGS.get(preset, (preset, {}))
        dis = cv2.DISOpticalFlow_create(getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{base.upper()}"))
        for name, value in settings.items():
            getattr(dis, f"set{name}")(value)
        cache[preset] = dis
    return cache[preset].calc(a, b, None)


def warp(image: np.ndarray, f: np.ndarray, cubic: bool = False) -> np.ndarray:
    """Sample `image` (H, W, C) at each pixel plus its flow: bilinear (or bicubic), borders replicated."""
    cv2 = _cv2()
    h, w = f.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mode = cv2.INTER_CUBIC if cubic else cv2.INTER_LINEAR
    return cv2.remap(image, gx + f[..., 0], gy + f[..., 1], mode, borderMode=cv2.BORDER_REPLICATE)


def lowpass(image: np.ndarray, sigma: float) -> np.ndarray:
    """`image` (H, W, C float32) blurred by a Gaussian of `sigma` px, borders reflected."""
    return _cv2().GaussianBlur(image, (0, 0), sigma)


def reliable(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Where the current frame's flow to the previous one can be trusted, (H, W) float32 in {0, 1}.

    Ruder et al. 2016: the backward flow (current -> previous) and the forward flow (previous -> current), followed
    there, should cancel out (occlusions break that), and motion boundaries, where the forward flow's gradient is
    large, are left out too.
    """
    fwd_here = warp(forward, backward)  # the forward flow at the point each pixel came from
    tu, tv = backward[..., 0] + fwd_here[..., 0], backward[..., 1] + fwd_here[..., 1]
    bu, bv, fu, fv = backward[..., 0], backward[..., 1], fwd_here[..., 0], fwd_here[..., 1]
    # (Channel by channel: numpy's sums over a last axis of 2 are several times slower than these.)
    fwd_sq = fu * fu + fv * fv
    occluded = tu * tu + tv * tv > 0.01 * (bu * bu + bv * bv + fwd_sq) + 0.5
    gy_u, gx_u = np.gradient(fu)
    gy_v, gx_v = np.gradient(fv)
    boundary = gx_u * gx_u + gy_u * gy_u + gx_v * gx_v + gy_v * gy_v > 0.01 * fwd_sq + 0.002
    return (~(occluded | boundary)).astype(np.float32)


def warping_error(previous_out: np.ndarray, current_out: np.ndarray, backward: np.ndarray, mask: np.ndarray) -> float:
    """Mean squared difference (RGB in [0, 1]) between a frame and the previous one warped by the flow, over the
    pixels `mask` keeps: the temporal consistency measure (lower is steadier)."""
    warped = warp(previous_out.astype(np.float32) / 255, backward)
    diff = ((current_out.astype(np.float32) / 255 - warped) ** 2).mean(-1)
    kept = float(mask.sum())
    return float((diff * mask).sum() / kept) if kept else 0.0
