"""Reading and writing video with PyAV: frames out as RGB arrays, frames back in, the sound copied as it is.

:func:`transcode` decodes the input's video stream, hands each frame to a function and encodes what it returns (H.264
in MP4, VP9 in WebM), keeping every frame's timestamp (so variable frame rates stay variable) and copying the audio
packets without re-encoding (WebM, which cannot hold AAC or MP3, gets the audio re-encoded to Opus). Frames are turned
upright by their rotation. The output is written to a temporary file and renamed at the end: an interrupted or failed
run leaves no partial file behind.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Union

import numpy as np

from ..errors import ImpastoError
from .image import FILE_MODE

VIDEO_FORMATS = {
    ".mp4": ("mp4", "libx264"),
    ".m4v": ("mp4", "libx264"),
    ".mov": ("mov", "libx264"),
    ".webm": ("webm", "libvpx-vp9"),
}
_WEBM_AUDIO = {"opus", "vorbis"}


# ISO media brands of still pictures (AVIF, HEIF/HEIC): an MP4-like ftyp box, but a photo
PICTURE_BRANDS = {b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}


def _picture_demuxer(name: str) -> bool:
    """Whether an FFmpeg demuxer reads still pictures (image2, png_pipe, jpeg_pipe, ...; GIF and APNG are clips)."""
    return name in ("image2", "image2pipe") or name.endswith("_pipe")


DEFAULT_MAX_PIXELS = 4096 * 2160  # DCI 4K (and UHD's 3840 x 2160)
# A file whose packets stop this much (and this share) short of its stated length is refused as truncated.
TRUNCATED_SECONDS = 0.1
TRUNCATED_SHARE = 0.02
TAIL_SECONDS = 5.0  # how much of a file's end probe reads to find it truncated
# H.264's constant rate factor (0 = lossless to 51; VP9 gets it + 13, at most 63, its scale's end): see transcode.
DEFAULT_CRF = 18
MAX_CRF = 51
# x264's faster preset: its sub-pixel and trellis steps keep a painting's fine strokes that veryfast's (half the
# encoding time) smooths away. Measured on the real clip's first 36 frames with a bold Starry Night at crf 18 and the
# default blend (2026-12-06): 640 px style distance 0.242 against veryfast's 0.253 at the same warping error
# (0.00047, 0.00046), the file 14 % larger, 15.9 against 6.3 ms of CPU a frame (the network's ~100); 360 px 0.205
# against 0.215, 3.8 against 2.4 ms; 720p 0.451 against 0.456 per frame, 37 against 24 ms (the network's ~300).
# medium kept a little more (640 px 0.232) at 22 ms a frame and a higher warping error (0.00051); tune=grain more
# still (0.217) in files 2.8x as large and flickering more (0.00058).
# --preset: x264's names, slowest last. None keeps each codec's default: faster for H.264 (above), libvpx's own for
# VP9, where a named preset sets cpu-used (8 for ultrafast ... 0 for veryslow; libvpx's good-quality mode treats
# anything above 5 as 5, so ultrafast to faster encode WebM alike: measured 2026-12-06).
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
X264_OPTIONS = {"preset": "faster"}

FrameResult = Union[np.ndarray, "Future[np.ndarray]"]


def _av():
    try:
        import av
    except ImportError:  # pragma: no cover - a dependency of impasto's video extra
        raise ImpastoError("video needs PyAV: pip install 'impasto[video]'") from None
    return av


@dataclass
class VideoInfo:
    """What a video file holds, as far as stylizing it is concerned."""

    width: int  # upright (after rotation)
    height: int
    fps: float  # the average frame rate
    frames: int | None  # as the container says (None when it does not)
    duration: float | None  # seconds
    rotation: int  # degrees counter-clockwise that turn the stored frames upright
    audio: str | None  # the audio codec's name, None without sound
    codec: str


def _open(path: str | os.PathLike):
    av = _av()
    p = Path(path)
    if p.is_dir():
        raise ImpastoError(f"{p}: is a folder, not a video")
    if not p.is_file():
        raise ImpastoError(f"{p}: no such file")
    try:
        container = av.open(str(p))
    except av.error.InvalidDataError:
        raise ImpastoError(f"{p}: not a video (FFmpeg cannot read it)") from None
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise ImpastoError(f"{p}: cannot open the video ({type(e).__name__})") from None
    if not container.streams.video:
        container.close()
        raise ImpastoError(f"{p}: has no video stream")
    with open(p, "rb") as f:
        head = f.read(12)
    photo = head[4:8] == b"ftyp" and head[8:12] in PICTURE_BRANDS
    if photo or _picture_demuxer(container.format.name):  # FFmpeg reads a photo as a video of one frame
        container.close()
        raise ImpastoError(f"{p}: a still picture, not a video (impasto stylize paints pictures)")
    return container


def _rotation(container, stream) -> int:
    """How far to turn the stored frames counter-clockwise to show them upright, in degrees (0, 90, 180, 270).

    Phones store portrait video as landscape frames plus a display matrix, which FFmpeg reports on each frame (the
    angle it turns the frame counter-clockwise); old files carry a clockwise "rotate" tag instead.
    """
    try:
        for frame in container.decode(stream):
            angle = getattr(frame, "rotation", 0) or 0
            break
        else:
            angle = 0
        container.seek(0)
    except Exception:  # noqa: BLE001 - an undecodable first frame is reported by the decoding itself
        angle = 0
    if not angle:
        try:
            angle = -int(float(stream.metadata.get("rotate", 0)))
        except (TypeError, ValueError):
            angle = 0
    return int(round(angle / 90)) * 90 % 360


def probe(path: str | os.PathLike) -> VideoInfo:
    """A video's size, rate, length and sound; ImpastoError (one line) when it is not a readable video."""
    container = _open(path)
    try:
        v = container.streams.video[0]
        rate = v.average_rate or v.guessed_rate or Fraction(25)
        w, h = v.codec_context.width, v.codec_context.height
        if not w or not h:
            raise ImpastoError(f"{path}: the video stream has no picture size")
        rotation = _rotation(container, v)
        if rotation in (90, 270):
            w, h = h, w
        duration = (
            float(v.duration * v.time_base)
            if v.duration
            else (container.duration / 1_000_000 if container.duration else None)
        )
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        _check_tail(container, path)
        return VideoInfo(w, h, float(rate), v.frames or None, duration, rotation, audio, v.codec_context.name)
    finally:
        container.close()


def _upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """The frame as it is meant to be seen: turned `rotation` degrees counter-clockwise (see :func:`_rotation`)."""
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb


@dataclass
class TranscodeStats:
    frames: int
    seconds: float  # of video written
    audio_packets: int
    audio: str  # "copied", "re-encoded to opus", "none" or "dropped"


def transcode(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    fn: Callable[[np.ndarray, int, float], FrameResult],
    *,
    size: int | None = None,
    start: float = 0.0,
    duration: float | None = None,
    crf: int = DEFAULT_CRF,
    preset: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    on_frame: Callable[[int], None] | None = None,
    in_flight: int = 0,
    info: VideoInfo | None = None,
) -> TranscodeStats:
    """Decode `src`, call ``fn(rgb, index, seconds)`` on every frame (upright, longest side `size` when given; rgb is
    (H, W, 3) uint8) and encode what it returns into `dst`, with `src`'s timestamps and sound.

    `fn` may return a :class:`concurrent.futures.Future` of the frame instead, so that frames are painted while the
    next ones decode and the previous ones encode: at most `in_flight` frames wait unfinished (a bounded pipeline);
    frames are encoded in order, and an exception a future holds stops the run as if `fn` had raised it.

    `start` and `duration` (seconds) cut a part; `crf` sets the encoder's quality (lower: closer to the frames `fn`
    gives, larger files), `preset` its speed (one of PRESETS; slower ones make smaller files at the same crf; None: the
    codec's default). `info` is :func:`probe`'s of `src` where the caller has it (else probed here). Raises
    ImpastoError (one line) for a file that is not a video, is truncated, has no frames, is larger than `max_pixels`,
    or an output that would replace the input; nothing is left at `dst` then.
    """
    av = _av()
    check_crf(crf)
    check_preset(preset)
    out_path = Path(dst)
    if out_path.suffix.lower() not in VIDEO_FORMATS:
        raise ImpastoError(f"{out_path}: unsupported video extension; use one of {', '.join(sorted(VIDEO_FORMATS))}")
    if out_path.exists() and Path(src).exists() and os.path.samefile(src, out_path):
        raise ImpastoError(f"{out_path}: output would overwrite the input; choose another name")
    if not out_path.parent.is_dir():
        raise ImpastoError(f"{out_path}: output directory {out_path.parent} does not exist")
    if out_path.is_dir():
        raise ImpastoError(f"{out_path}: is a folder; give the output video's file name")
    info = probe(src) if info is None else info
    check_pixels(info, max_pixels, src)
    fmt, codec = VIDEO_FORMATS[out_path.suffix.lower()]
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=out_path.suffix, dir=out_path.parent)
    os.close(fd)
    try:
        stats = _transcode(av, src, tmp, fmt, codec, fn, info, size, start, duration, crf, preset, on_frame, in_flight)
        if stats.frames == 0:
            raise ImpastoError(f"{src}: no video frames" + (" in the part asked for" if start or duration else ""))
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, out_path)
        return stats
    except av.error.FFmpegError as e:
        raise ImpastoError(
            f"{src}: the video could not be decoded ({type(e).__name__}: truncated or damaged?)"
        ) from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def check_pixels(info: VideoInfo, max_pixels: int, src: str | os.PathLike) -> None:
    """Refuse a video whose frames are larger than `max_pixels`."""
    if info.width * info.height > max_pixels:
        raise ImpastoError(
            f"{src}: the video is {info.width}x{info.height}, above the cap of {max_pixels / 1e6:g} megapixels per "
            f"frame; pass --max-megapixels {math.ceil(info.width * info.height / 1e4) / 100:g} to allow it"
        )


def check_crf(crf: Any) -> None:
    """Refuse an encoder quality outside H.264's scale."""
    if isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= MAX_CRF:
        raise ImpastoError(f"--crf must be a whole number from 0 (lossless) to {MAX_CRF}, got {crf}")


def check_preset(preset: Any) -> None:
    """Refuse an encoder speed that is not one of PRESETS (None is the codec's default)."""
    if preset is not None and preset not in PRESETS:
        raise ImpastoError(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}")


def _encoder_options(codec: str, crf: int, preset: str | None) -> dict[str, str]:
    if codec == "libx264":
        return {"crf": str(crf), **X264_OPTIONS, **({"preset": preset} if preset else {})}
    vp9 = {"crf": str(min(crf + 13, 63)), "b": "0", "row-mt": "1"}  # VP9's scale ends at 63
    if preset:
        vp9["cpu-used"] = str(len(PRESETS) - 1 - PRESETS.index(preset))
    return vp9


def _even(x: int) -> int:
    return max(2, x - x % 2)


def _transcode(
    av, src, tmp, fmt, codec, fn, info, size, start, duration, crf, preset, on_frame, in_flight
) -> TranscodeStats:
    seek = start > 0 and _seek_lands(av, src, start)
    inp = av.open(str(src))
    out = av.open(tmp, "w", format=fmt)
    pending: deque = deque()  # (result or future, pts, time base, seconds), in decoding order
    try:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        ain = inp.streams.audio[0] if inp.streams.audio else None
        rate = vin.average_rate or vin.guessed_rate or Fraction(25)
        w, h = info.width, info.height
        if size is not None and max(w, h) != size:
            s = size / max(w, h)
            w, h = max(1, round(w * s)), max(1, round(h * s))
        vout = out.add_stream(codec, rate=rate)
        # yuv420p needs even sides: the frames are cropped by at most a pixel.
        vout.width, vout.height = _even(w), _even(h)
        vout.pix_fmt = "yuv420p"
        # The input's own time base, for the encoder too: every frame keeps its exact time (variable rates stay
        # variable; the encoder's default, 1/rate, would round them onto a constant grid).
        vout.time_base = vin.time_base
        vout.codec_context.time_base = vin.time_base
        vout.options = _encoder_options(codec, crf, preset)
        aout, audio_mode = None, "none"
        if ain is not None:
            if fmt == "webm" and ain.codec_context.name not in _WEBM_AUDIO:
                aout = out.add_stream("libopus", rate=48000)
                audio_mode = "re-encoded to opus"
            else:
                aout = out.add_stream_from_template(ain)
                audio_mode = "copied"
        origin = _first_time(vin)
        t0 = origin + start if start > 0 else 0.0
        t1 = None if duration is None else origin + start + duration
        if seek:
            inp.seek(int(t0 / vin.time_base), stream=vin, backward=True, any_frame=False)
        frames, frames_in, audio_packets, last_t = 0, 0, 0, 0.0

        def encode_next() -> float:
            nonlocal frames
            t = _encode(av, out, vout, pending.popleft(), frames, w, h)
            frames += 1
            if on_frame is not None:
                on_frame(frames)
            return t

        video_done = audio_done = False
        resampler = (
            av.AudioResampler(format="s16", layout="stereo", rate=48000) if audio_mode.startswith("re-") else None
        )
        streams = [vin] + ([ain] if ain is not None else [])
        decoded = 0
        for packet in inp.demux(*streams):
            if packet.stream is ain:
                if packet.dts is None or packet.pts is None:
                    continue
                t = float(packet.pts * packet.time_base)
                if t1 is not None and t >= t1:
                    audio_done = True
                if (t0 > 0 and t < t0) or audio_done:  # (at 0, keep the encoder's priming packets, pts < 0)
                    if video_done and audio_done:
                        break
                    continue
                if resampler is None:
                    shift = int(round(t0 / packet.time_base))
                    packet.pts -= shift
                    packet.dts -= shift
                    packet.stream = aout
                    out.mux(packet)
                else:
                    for frame in packet.decode():
                        for r in resampler.resample(frame):
                            r.pts = None
                            out.mux(aout.encode(r))
                audio_packets += 1
                continue
            if video_done:
                if audio_done or ain is None:
                    break
                continue
            for frame in packet.decode():
                decoded += 1
                if frame.pts is None:  # a raw stream (.h264) carries no times: the frame's place at its rate
                    frame.time_base = frame.time_base or vin.time_base or Fraction(1, 90000)
                    frame.pts = round((decoded - 1) / rate / frame.time_base)
                t = float(frame.pts * frame.time_base)
                if t0 > 0 and t < t0 - 1e-6:
                    continue
                if t1 is not None and t >= t1:
                    video_done = True
                    break
                rgb = _upright(_decoded(frame, w, h, info.rotation), info.rotation)
                pts = frame.pts - (int(round(t0 / frame.time_base)) if t0 else 0)
                pending.append((fn(rgb, frames_in, t), pts, frame.time_base, t - t0))
                frames_in += 1
                while pending and (len(pending) > in_flight or not isinstance(pending[0][0], Future)):
                    last_t = encode_next()
        while pending:
            last_t = encode_next()
        for p in vout.encode():
            out.mux(p)
        if resampler is not None:
            for p in aout.encode(None):
                out.mux(p)
        seconds = last_t + (1 / float(rate) if frames else 0.0)
        return TranscodeStats(frames, seconds if math.isfinite(seconds) else 0.0, audio_packets, audio_mode)
    finally:
        for result, *_ in pending:  # a failed run: the frames still being painted are not wanted
            if isinstance(result, Future):
                result.cancel()
        out.close()
        inp.close()


def _first_time(stream) -> float:
    """A stream's first time in seconds, which --start and --duration count from (not 0 in every file: MPEG-TS)."""
    return float(stream.start_time * stream.time_base) if stream.start_time else 0.0


def _seek_lands(av, src, start: float) -> bool:
    """Whether seeking to `start` s (from the video's first time) lands on a frame at or before it, as a transcode
    seeks. FFmpeg's seek can land past it or nowhere (an MPEG-TS file with few keyframes: no frame at all); then the
    transcode reads from the beginning and skips the frames before `start` instead."""
    with av.open(str(src)) as c:
        v = c.streams.video[0]
        origin = _first_time(v)
        try:
            c.seek(int((origin + start) / v.time_base), stream=v, backward=True, any_frame=False)
            for frame in c.decode(v):
                return frame.pts is not None and float(frame.pts * frame.time_base) <= origin + start + 1e-6
        except av.error.FFmpegError:
            return False
    return False


def _check_tail(container, src) -> None:
    """Refuse a truncated file (a download or copy cut short) before any work, from the last TAIL_SECONDS of its
    packets (no decoding): its last video packet cut off, or every stream's packets ending well before the length
    its header states. FFmpeg would decode what is there without complaint (its frame threads swallow a damaged last
    packet): a silently shorter video."""
    if not container.duration:
        return
    av = _av()
    video = container.streams.video[0]
    try:
        last = (container.start_time or 0) + container.duration
        container.seek(max(0, last - int(TAIL_SECONDS * 1_000_000)))
    except (av.error.FFmpegError, OverflowError):
        pass  # no index to seek by: read from where it is
    ended, cut = 0.0, False
    try:
        for packet in container.demux():
            if packet.pts is not None:
                ended = max(ended, float((packet.pts + (packet.duration or 0)) * packet.time_base))
                if packet.stream is video:
                    cut = packet.is_corrupt
    except av.error.FFmpegError:
        raise ImpastoError(f"{src}: the file ends in a damaged packet (truncated?)") from None
    if cut:
        raise ImpastoError(f"{src}: the file ends in the middle of a frame (truncated?)")
    start = (container.start_time or 0) / 1_000_000
    stated = container.duration / 1_000_000
    # The stated length is the end's time where a file starts later than 0 in Matroska, the length from the start in
    # MP4 and MPEG-TS: the more lenient reading of the two.
    reached = max(ended - start, ended)
    rate = video.average_rate or video.guessed_rate or Fraction(25)
    # A frame of slack (packets without a duration end where they start), and more for headers that round.
    if stated - reached > 1 / float(rate) + max(TRUNCATED_SECONDS, TRUNCATED_SHARE * stated):
        raise ImpastoError(
            f"{src}: the file ends at {reached:.2f} s of the {stated:.2f} s its header states (truncated?)"
        )


def _decoded(frame, w: int, h: int, rotation: int) -> np.ndarray:
    """A decoded frame as RGB, scaled so that it is (h, w) once turned upright; FFmpeg's scaler does both in one pass
    (area averaging when shrinking, bicubic when enlarging): several times faster than Pillow's Lanczos on 720p."""
    dw, dh = (h, w) if rotation in (90, 270) else (w, h)
    if (frame.width, frame.height) == (dw, dh):
        return frame.to_ndarray(format="rgb24")
    method = "AREA" if dw * dh < frame.width * frame.height else "BICUBIC"
    return frame.to_ndarray(format="rgb24", width=dw, height=dh, interpolation=method)


def _encode(av, out, vout, item, index: int, w: int, h: int) -> float:
    """Encode one painted frame (waiting for it when it is a future); returns its time in the output."""
    result, pts, time_base, t = item
    if isinstance(result, Future):
        result = result.result()
    if result.shape[:2] != (h, w):
        raise ImpastoError(f"frame {index}: the stylized frame is {result.shape[1]}x{result.shape[0]}, not {w}x{h}")
    vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(result[: vout.height, : vout.width]), "rgb24")
    vf.pts = pts
    vf.time_base = time_base
    for p in vout.encode(vf):
        out.mux(p)
    return t
