"""Model files: safetensors with string metadata, written atomically and read with one-line errors.

Every network impasto saves (VGG weights in its own format, decoders, later networks) goes through here, so the
format, its metadata and its failure messages are the same everywhere.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..errors import ImpastoError
from .image import FILE_MODE


def save_tensors(
    state: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str] | None = None
) -> Path:
    """Write tensors and metadata (str -> str) to a safetensors file: a temporary file, then a rename."""
    p = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent if str(p.parent) else ".")
    os.close(fd)
    try:
        save_file(state, tmp, metadata={k: str(v) for k, v in (metadata or {}).items()})
        os.chmod(tmp, FILE_MODE)  # mkstemp makes files for their owner only; a model is for anyone to read
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def read_metadata(path: str | os.PathLike, what: str) -> dict[str, str]:
    """A safetensors file's metadata; ImpastoError (starting with `what`) if it is not a readable file."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise ImpastoError(f"{what}: not a readable safetensors file ({first_sentence(e)})") from None


def read_tensors(path: str | os.PathLike, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a safetensors file; ImpastoError (starting with `what`) if it cannot be read."""
    p = Path(path)
    if not p.is_file():
        raise ImpastoError(f"{what}: no such file")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = dict(f.metadata() or {})
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise ImpastoError(f"{what}: not a readable safetensors file ({first_sentence(e)})") from None
    return state, meta


def first_sentence(e: Exception, limit: int = 160) -> str:
    """An exception's message for a one-line error: its first sentence, cut at a word, never mid-word."""
    text = " ".join(str(e).split()) or type(e).__name__
    text = text.split(". ")[0].rstrip(".")
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0] + " ..."
    return text
