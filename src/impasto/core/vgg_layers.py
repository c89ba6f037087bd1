"""VGG-19's layer names and geometry (strides, receptive fields), without torch."""

from __future__ import annotations

from typing import Iterable, Sequence

from ..errors import ImpastoError

# The 16 convolutions of VGG-19, in order, with their (out, in, 3, 3) shapes.
CONV_LAYERS: tuple[str, ...] = tuple(
    f"conv{b}_{i}" for b, n in zip(range(1, 6), (2, 2, 4, 4, 4)) for i in range(1, n + 1)
)
_CHANNELS = (64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512)
CONV_SHAPES: dict[str, tuple[int, int, int, int]] = {
    name: (out, inp, 3, 3) for name, out, inp in zip(CONV_LAYERS, _CHANNELS, (3,) + _CHANNELS[:-1])
}
POOLING = ("max", "avg")


def _layer_names() -> tuple[str, ...]:
    names = []
    for conv in CONV_LAYERS:
        block, idx = conv[4], conv[6]
        names += [conv, f"relu{block}_{idx}"]
        if conv in ("conv1_2", "conv2_2", "conv3_4", "conv4_4", "conv5_4"):
            names.append(f"pool{block}")
    return tuple(names)


LAYER_NAMES: tuple[str, ...] = _layer_names()


def check_layers(layers: Iterable[str]) -> list[str]:
    """Validate layer names; raises ImpastoError naming the first unknown one."""
    out = list(layers)
    if not out:
        raise ImpastoError("no VGG layers given")
    for name in out:
        if name not in LAYER_NAMES:
            raise ImpastoError(f"unknown VGG-19 layer {name!r}; use names like relu1_1, conv4_2, pool3 (up to relu5_4)")
    return out


def min_input_side(layers: Iterable[str]) -> int:
    """Smallest image side that still leaves at least one position at the deepest of `layers`."""
    last = max(LAYER_NAMES.index(n) for n in layers)
    return 2 ** sum(1 for n in LAYER_NAMES[:last] if n.startswith("pool"))


def layer_stride(name: str) -> int:
    """Pixels per position of a layer: 2 to the number of pooling layers up to and including it."""
    return 2 ** sum(1 for n in LAYER_NAMES[: LAYER_NAMES.index(name) + 1] if n.startswith("pool"))


def alignment(layers: Sequence[str]) -> int:
    """The largest stride among `layers`: tiles cut on multiples of it line up at every layer."""
    return max(layer_stride(n) for n in layers)


def receptive_margin(layers: Sequence[str]) -> int:
    """Context (px) a tile needs on each side so its core's features at `layers` equal the whole image's.

    The receptive field of the deepest layer's position m spans pixels [s*m - left, s*m + right]; the margin is
    the larger overhang, rounded up to the stride s so that tiles cut on the same grid at every layer.
    """
    last = max(LAYER_NAMES.index(n) for n in layers)
    s, left, right = 1, 0, 0
    for name in LAYER_NAMES[: last + 1]:
        if name.startswith("conv"):  # 3x3, padding 1: one more position each side
            left += s
            right += s
        elif name.startswith("pool"):  # 2x2, stride 2: output j covers inputs 2j and 2j+1
            right += s
            s *= 2
    need = max(left, right - s + 1)
    return -(-need // s) * s


def conv_of(layer: str) -> str:
    """The convolution whose channels a layer has (pool1 -> conv1_2)."""
    index = LAYER_NAMES.index(layer)
    return next(n for n in reversed(LAYER_NAMES[: index + 1]) if n.startswith("conv"))
