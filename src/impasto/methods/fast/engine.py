"""The fast-network engine: model files loaded once and kept, every picture or frame one pass of the network.

Stroke size: a network paints strokes of a fixed size in pixels, so a 2048 px picture painted directly gets strokes
a quarter as large, relative to the picture, as a 512 px one. Pictures larger than the model's training scale (the
``work_size``) are therefore painted at that scale, enlarged, and given back a share of the photo's own fine detail
(its luminance above the painted scale), so the strokes keep their size relative to the picture.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ...core.color import combine_luminance, luminance, match_histogram
from ...core.device import resolve_device, resolve_precision
from ...core.image import ImageLike, as_pil, fit_longest_side, load_mask, pil_to_tensor, sized_content
from ...core.tone import match_palette, match_tone
from ...engine import Callback, Progress, Result, StreamingEngine
from ...errors import ImpastoError
from ...nets.fast import pad_to_min_side
from . import Options, model_grid_period, painting_tone, parse_model, run_model, stats_size, style_images_key
from .model import FastModel, load_model

PAINTING_PREFIX = "#painting"  # the names style images get in a model's extended table (no file name has '#')


class FastEngine(StreamingEngine):
    """Fast networks kept in memory for many pictures; each model file is loaded the first time it is used.

    >>> engine = impasto.load("fast", model="starry_night")
    >>> results = list(engine.run_many(["a.jpg", "b.jpg"], []))
    """

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        self.device = resolve_device(options.device)
        self.dtype = resolve_precision(options.precision, self.device)
        self._models: dict[str, FastModel] = {}
        self._vgg: dict = {}  # VGG-19 to relu4_1 by weights, for the statistics of style images
        self._painted: tuple = ((), None, [])  # (key, painting_model's answer, the style images) of the last run
        parse_model(run_model(options, 0))  # a bad --model fails at load, not at the first picture

    def clear_cache(self) -> None:
        """Forget the last style images' predicted embeddings (the next run predicts them again)."""
        self._painted = ((), None, [])

    def model(self, path: str) -> FastModel:
        """A model file, loaded once and kept on the engine's device."""
        if path not in self._models:
            m = load_model(path)
            m.net.to(self.device)
            if self.device.type == "cpu":
                m.net.to(memory_format=torch.channels_last)
            self._models[path] = m
        return self._models[path]

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None)

    @torch.no_grad()
    def paint(
        self, content: torch.Tensor, model: FastModel, style: torch.Tensor, layers: Sequence[float]
    ) -> torch.Tensor:
        """One network pass over a (B, 3, H, W) batch in [0, 1] at its own size; `style` (n_styles,) mixes the
        model's paintings. Returns fp32 pictures on the CPU."""
        b, h, w = content.shape[0], content.shape[-2], content.shape[-1]
        x = pad_to_min_side(content.to(self.device))
        if self.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        s = style.to(self.device, torch.float32)[None].expand(b, -1)
        lw = torch.tensor([list(layers)], dtype=torch.float32, device=self.device).expand(b, -1)
        with self._autocast():
            return model.net(x, s, lw)[..., :h, :w].float().clamp(0, 1).cpu()

    def grid_period(self, opts: Options, width: int, height: int, n_styles: int = 0) -> float | None:
        """For video: the period of the network's stride grid on such frames (see :class:`impasto.video.GridAnchor`)."""
        return model_grid_period(opts, width, height, n_styles)

    @torch.no_grad()
    def stylize(
        self,
        content: torch.Tensor,
        model: FastModel,
        style: torch.Tensor,
        layers: Sequence[float],
        work_size: int | None = None,
        detail: float = 0.5,
    ) -> torch.Tensor:
        """Paint a (B, 3, H, W) batch, at `work_size` (shorter side; default the model's training scale, 0 = the
        picture's own size) when the picture is larger, then enlarged with `detail` of the photo's fine detail."""
        work = model.image_size if work_size is None else work_size
        h, w = content.shape[-2:]
        if not work or min(h, w) <= work:
            return self.paint(content, model, style, layers)
        scale = work / min(h, w)
        small_size = (max(1, round(h * scale)), max(1, round(w * scale)))
        small = F.interpolate(content, size=small_size, mode="bilinear", antialias=True, align_corners=False)
        painted = self.paint(small, model, style, layers)
        out = F.interpolate(painted, size=(h, w), mode="bicubic", align_corners=False)
        if detail > 0:
            # The photo's luminance detail finer than the painted scale: what enlarging could not invent.
            y = luminance(content)
            y_small = F.interpolate(y, size=small_size, mode="bilinear", antialias=True, align_corners=False)
            high = y - F.interpolate(y_small, size=(h, w), mode="bicubic", align_corners=False)
            out = out + detail * high
        return out.clamp(0, 1)

    def run_many(
        self,
        contents: Iterable[ImageLike],
        styles: Sequence[ImageLike] = (),
        options: Options | None = None,
        *,
        callback: Callback | None = None,
        progress: bool = False,
    ) -> Iterator[Result]:
        """Many pictures (or a stream of frames) with the same settings; the model is loaded once."""
        styles = list(styles)
        opts = self.resolve(options, len(styles))
        items = parse_model(run_model(opts, len(styles)))
        files = {path for path, _, _ in items}
        if len(files) > 1 and opts.masks is None:
            raise ImpastoError("--model: styles from different model files cannot blend; use --mask to place them")
        painted_from = None
        if styles:
            # Video frames and batches call once a picture with the same style images: predicted once.
            key = (next(iter(files)), style_images_key(styles))
            if self._painted[0] != key:
                self._painted = (key, self.painting_model(next(iter(files)), styles), styles)
            painted_from, items = self._painted[1]
        layers = opts.layer_weights
        for index, content in enumerate(contents):
            photo = pil_to_tensor(sized_content(content, opts.size, opts.max_size))
            shares = None
            if opts.masks is None:
                model = painted_from or self.model(next(iter(files)))
                out = self.stylize(photo, model, _mix(model, items), layers, opts.work_size, opts.detail)
            else:
                out, shares = self._regions(photo, items, opts)
            if opts.tone > 0:
                target = painting_tone(items, shares) if painted_from is None else painted_from.recipe["tone"]
                if target is not None:
                    # The network's result is flatter than its painting (docs/MODELS.md); strength mixes after.
                    toned = match_tone(out[0].permute(1, 2, 0).numpy(), target, opts.tone)
                    out = torch.from_numpy(toned).permute(2, 0, 1)[None].contiguous()
            if painted_from is not None and opts.palette > 0:
                coloured = match_palette(out[0].permute(1, 2, 0).numpy(), painted_from.recipe["palette"], opts.palette)
                out = torch.from_numpy(coloured).permute(2, 0, 1)[None].contiguous()
            if opts.preserve_color == "luminance":
                out = combine_luminance(out, photo)
            elif opts.preserve_color == "histogram":
                out = match_histogram(out, photo).clamp(0, 1)
            if opts.strength < 1:
                out = opts.strength * out + (1 - opts.strength) * photo
            if opts.content_mask is not None:
                keep = load_mask(opts.content_mask, photo.shape[-2:])
                out = keep * photo + (1 - keep) * out
            if callback is not None:
                callback(Progress(step=1, total=1, image=out, index=index))
            yield Result(image=out)

    @torch.no_grad()
    def painting_model(self, path: str, styles: Sequence[ImageLike]) -> tuple[FastModel, list[tuple[str, str, float]]]:
        """A model file with a style predictor, its table extended by the paintings `styles` (their embeddings
        predicted from their VGG-19 statistics), and the ``--model`` items that blend them equally. The extended
        model's recipe holds the paintings' blended tone under "tone" and their palette under "palette"."""
        from ...core.tone import blended_stats, look_stats
        from ...nets.fast import STYLE_LAYERS, painting_statistics

        base = self.model(path)
        if base.net.predictor is None:
            raise ImpastoError(f"model {path} has no style predictor: it paints only its own paintings")
        spec = base.recipe.get("weights")
        if spec not in self._vgg:
            from ...core.weights import load_weights
            from ...nets.vgg import VGGFeatures

            self._vgg[spec] = VGGFeatures(load_weights(spec), STYLE_LAYERS).eval().to(self.device)
        pictures = [as_pil(s).convert("RGB") for s in styles]
        side = stats_size(path)
        small = [pil_to_tensor(fit_longest_side(p, side)).to(self.device) for p in pictures]
        stats = torch.cat([painting_statistics(self._vgg[spec](s)) for s in small])
        net = base.net
        grown = copy.deepcopy(net)  # a few hundred kB: the kept model stays as it is
        grown.embedding = torch.nn.Parameter(torch.cat([net.embedding, net.predictor(stats)]), requires_grad=False)
        grown.n_styles = net.n_styles + len(pictures)
        names = [*base.names, *(f"{PAINTING_PREFIX}{i}" for i in range(len(pictures)))]
        looks = [look_stats(np.asarray(p)) for p in pictures]
        recipe = {
            **base.recipe,
            "tone": blended_stats([t for t, _ in looks]),
            "palette": blended_stats([p for _, p in looks]),
        }
        model = FastModel(grown, names, base.image_size, recipe, base.path)
        return model, [(path, n, 1.0) for n in names[net.n_styles :]]

    def _regions(
        self, photo: torch.Tensor, items: list[tuple[str, str, float]], opts: Options
    ) -> tuple[torch.Tensor, list[float]]:
        """Each style painted over the whole picture, then placed by its mask; the photo shows where none is.
        Returns the picture and each mask's share of it."""
        masks = [load_mask(m, photo.shape[-2:]) for m in opts.masks]
        total = torch.zeros_like(photo[:, :1])
        out = torch.zeros_like(photo)
        for (path, name, _), mask in zip(items, masks):
            model = self.model(path)
            painted = self.stylize(
                photo, model, _mix(model, [(path, name, 1.0)]), opts.layer_weights, opts.work_size, opts.detail
            )
            out += mask * painted
            total += mask
        # Overlapping soft masks share a pixel in proportion; where they sum to less than 1 the photo shows.
        shares = [max(float(m.mean()), 1e-6) for m in masks]
        return (out + photo * (1 - total).clamp_min(0)) / total.clamp_min(1), shares


def _mix(model: FastModel, items: list[tuple[str, str, float]]) -> torch.Tensor:
    """The network's style input: the items' weights at their paintings' positions."""
    style = torch.zeros(len(model.names))
    for path, name, weight in items:
        if model.path is not None and model.path != Path(path):
            continue
        style[model.names.index(name)] += weight
    return style / style.sum()
