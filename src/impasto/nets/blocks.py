"""Convolutions computed in 2x2 blocks: the same results as the plain layers (to float rounding), in shapes that CPU
convolution kernels run far better.

onnxruntime's and oneDNN's blocked convolutions pad channels to 8 or 16, so a layer that makes 3 channels (a
network's RGB output) at full resolution costs as one making 16, and a layer after nearest-neighbour doubling first
writes the doubled picture and then convolves it. Both are computed here on a quarter of the positions with four
times the channels, each 2x2 block's four pixels made at once, and put in place with a pixel shuffle. Measured on
onnxruntime, one thread (2026-12-05): the fast network's pass at 368x212 44 -> 34 ms (both forms), the compact AdaIN
model's int8 pass at 1024 px 348 -> 316 ms (its RGB output only; its doublings ran slower in blocks).

Pure functions of tensors and the plain layers' weights: model files keep the plain layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# For a 3x3 convolution after nearest-neighbour doubling: which of the small picture's three rows (columns) each of
# the kernel's three taps falls on, for the even (0) and odd (1) output rows (columns): _UP_TAPS[r, row, tap].
_UP_TAPS = torch.tensor([[[1, 0, 0], [0, 1, 1], [0, 0, 0]], [[0, 0, 0], [1, 1, 0], [0, 0, 1]]], dtype=torch.float32)
# The same for bilinear doubling (F.interpolate's, align_corners=False: each doubled pixel is 3/4 of its own small
# pixel and 1/4 of the next one towards it).
_SMOOTH_UP_TAPS = torch.tensor(
    [[[0.75, 0.25, 0], [0.25, 0.75, 0.75], [0, 0, 0.25]], [[0.25, 0, 0], [0.75, 0.75, 0.25], [0, 0.25, 0.75]]],
    dtype=torch.float32,
)


def conv_in_blocks(x: torch.Tensor, conv: nn.Conv2d, pad: int) -> torch.Tensor:
    """`conv` (stride 1, an odd k x k kernel) over `x` reflection-padded by `pad`, for `x` with even sides: one
    stride-2 convolution with a (k+1)-wide kernel making each 2x2 block's four pixels as four channels."""
    k = conv.kernel_size[0]
    # Output pixel (2p + r, 2q + s) is the kernel shifted by (r, s) inside a (k+1)-wide window at (2p, 2q). (As
    # products with constant shift matrices, not padding, so that an exported graph knows the kernel's shape.)
    shifts = torch.stack([torch.eye(k + 1, k).roll(r, 0) for r in (0, 1)]).to(conv.weight)
    weight = torch.einsum("rua,oiab,svb->orsiuv", shifts, conv.weight, shifts).flatten(0, 2)
    bias = conv.bias.repeat_interleave(4)
    y = F.conv2d(F.pad(x, (pad, pad, pad, pad), mode="reflect"), weight.to(x.dtype), bias.to(x.dtype), stride=2)
    return F.pixel_shuffle(y, 2)


def doubled_conv(x: torch.Tensor, conv: nn.Conv2d, smooth: bool = False) -> torch.Tensor:
    """`conv` (3x3, stride 1) over `x` doubled by nearest neighbours and reflection-padded by 1, without making the
    doubled picture: at `x`'s size, each output 2x2 block's four pixels as four channels (reflecting the doubled
    picture by one pixel is repeating `x`'s edge). `smooth`: doubled bilinearly instead (as ``F.interpolate``,
    align_corners=False) and padded by repeating its edge; the same cost."""
    taps = (_SMOOTH_UP_TAPS if smooth else _UP_TAPS).to(conv.weight)
    weight = torch.einsum("rla,oiab,smb->orsilm", taps, conv.weight, taps).flatten(0, 2)
    bias = conv.bias.repeat_interleave(4)
    y = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), weight.to(x.dtype), bias.to(x.dtype))
    return F.pixel_shuffle(y, 2)
