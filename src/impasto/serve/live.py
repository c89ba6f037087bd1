"""The live camera: frames arrive over a WebSocket, are stylized by a one-pass method, and go back, as fast as the
machine allows and never behind.

Protocol (``/api/live``): the client first sends a JSON text message with the method and its options (as a job's form
fields, plus ``temporal``), and gets ``{"ready": true, ...}`` or ``{"error": ...}``. Then each camera frame is a binary
message: a 4-byte big-endian sequence number and a JPEG or PNG. For each frame it paints, the server sends a JSON text
message ``{"seq", "ms", "dropped"}`` (the frame's number, the milliseconds it took, frames dropped so far) and then the
picture as a binary JPEG.

Latest frame wins: the receiver keeps only the newest frame that is not yet being painted, so a slow model drops
frames instead of queueing them, and the delay stays one frame's painting at most. Frames are blended along the
optical flow like a video's (``temporal``), across the stream.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import struct
import time
from typing import Any, Callable

import numpy as np
from PIL import Image

from ..errors import ImpastoError
from .inputs import decode_image

MAX_SIDE = 1280  # a live frame's longest side on the server (camera frames are scaled down to it)


class LatestFrame:
    """A one-place mailbox: putting a frame replaces any frame not yet taken (counted as dropped)."""

    def __init__(self) -> None:
        self._item: tuple[int, bytes, float] | None = None
        self._ready = asyncio.Event()
        self.dropped = 0
        self.closed = False

    def put(self, seq: int, data: bytes) -> None:
        if self._item is not None:
            self.dropped += 1
        self._item = (seq, data, time.perf_counter())
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    async def take(self) -> tuple[int, bytes, float] | None:
        """The newest frame, waiting for one; None once closed."""
        while self._item is None and not self.closed:
            self._ready.clear()
            await self._ready.wait()
        item, self._item = self._item, None
        return None if self.closed and item is None else item


def split_frame(message: bytes) -> tuple[int, bytes]:
    """(sequence number, image bytes) of a binary frame message."""
    if len(message) < 5:
        raise ImpastoError("a live frame is a binary message: a 4-byte sequence number, then an image")
    return struct.unpack(">I", message[:4])[0], message[4:]


def make_painter(engine: Any, options: Any, temporal: float, max_pixels: int) -> Callable[[bytes], bytes]:
    """frame bytes -> stylized JPEG bytes, blending each frame with the last along the flow, and (for networks with
    a stride grid) painting it on a grid that follows the camera, as a video's frames."""
    from ..core.image import fit_longest_side, tensor_to_pil
    from ..core.onnx import frames_in
    from ..video import GridAnchor, TemporalBlend, grid_anchor

    blend = TemporalBlend(temporal)
    size = getattr(options, "size", None)
    # Frames are sized here, so that the grid's padding is not resized with them.
    unsized = dataclasses.replace(options, size=None) if size and dataclasses.is_dataclass(options) else options
    grid: dict[tuple[int, ...], GridAnchor | None] = {}  # one anchor, for the current frame size

    def paint(data: bytes) -> bytes:
        im = decode_image(data, "frame", max_pixels, MAX_SIDE)
        if unsized is not options:
            im = fit_longest_side(im, size)
        frame = np.asarray(im)
        if frame.shape not in grid:
            grid.clear()
            grid[frame.shape] = grid_anchor(engine, unsized, temporal, frame.shape[1], frame.shape[0])
        anchor = grid[frame.shape]

        def run(picture: np.ndarray) -> np.ndarray:
            with frames_in(None):  # frames of one size: a runtime may compile its graph for it (OpenVINO)
                return np.asarray(tensor_to_pil(engine.run(Image.fromarray(picture), [], unsized).image))

        stylized = run(frame) if anchor is None else anchor.paint(frame, anchor.shift(frame), run)
        if stylized.shape != frame.shape:  # the method resized it: blend at its size
            frame = np.asarray(im.resize((stylized.shape[1], stylized.shape[0]), Image.LANCZOS))
        out = blend(frame, stylized)
        buf = io.BytesIO()
        Image.fromarray(out).save(buf, format="JPEG", quality=85)
        return buf.getvalue()

    return paint
