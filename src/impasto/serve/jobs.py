"""The job queue: one worker thread runs style-transfer jobs one at a time while the server keeps answering.

Jobs wait in a bounded queue (a full queue is refused, never grown). The worker learns about cancellation and
timeouts through the engine's progress callback (see :mod:`impasto.engine`), where it raises a private exception that
unwinds the run. Engines are loaded once and kept for the next jobs (a few, most recently used first), per manager.
Watchers (server-sent events, ``?wait=true``) are woken on every change through their own event loop. Each job's
result is written by its output writer (a PNG, or the MP4 or ZIP the run made) into a private temporary directory,
named by job id; a janitor forgets finished jobs after a while.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import secrets
import shutil
import tempfile
import threading
import time
import zipfile
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from ..api import get_method
from ..core.image import PNG_LEVEL, save_image, tensor_to_pil
from ..engine import Progress, Result
from ..errors import ImpastoError
from ..options import load_key
from .settings import ServeSettings

log = logging.getLogger("impasto.serve")

TERMINAL = ("done", "failed", "cancelled")


class QueueFull(Exception):
    """The queue holds as many waiting jobs as it may."""


@dataclass(frozen=True)
class OutputWriter:
    """How a finished run becomes the job's result file: its media type, its file-name suffix and the writing."""

    media_type: str
    suffix: str  # with the dot; the file is named <job id><suffix>
    write: Callable[[Result, Path], "tuple[int, int] | None"]  # -> (width, height) of the picture, where it is one


def _write_png(result: Result, path: Path) -> tuple[int, int]:
    image = tensor_to_pil(result.image)
    save_image(image, path)
    return image.size


PNG = OutputWriter(media_type="image/png", suffix=".png", write=_write_png)


def _move_file(result: Result, path: Path) -> None:
    # The engine made the file in a place of its choosing; it becomes the job's result (copied across filesystems).
    shutil.move(str(result.path), path)
    return None


def _move_video(result: Result, path: Path) -> tuple[int, int] | None:
    """Like :func:`_move_file`, and the video's frame size, for the job's width and height (None if unreadable:
    the size only informs, and the video is made)."""
    from ..core.video import probe

    _move_file(result, path)
    try:
        info = probe(path)
    except Exception:
        return None
    return info.width, info.height


class _Stop(Exception):
    """Raised from the method's callback to end a job early ('cancelled' or 'timeout')."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(eq=False)
class Job:
    """One request to stylize a photo, from queued to done (or failed, or cancelled)."""

    id: str
    method: str
    options: Any  # the method's Options
    public_options: dict  # the options the client set (and server defaults for size/steps), for display
    ignored_options: list
    total: int  # steps expected (1 for single-pass methods)
    iterative: bool
    created: float  # settings.clock() time
    created_wall: float  # time.time(), for people
    inputs: tuple | None  # (content PIL, [style PIL, ...]) until the job starts; dropped afterwards
    status: str = "queued"
    step: int = 0
    error: str | None = None
    started: float | None = None
    finished: float | None = None
    cancel_requested: bool = False
    output: OutputWriter = PNG  # how the result is written, and what it is
    result_path: Path | None = None
    result_size: tuple[int, int] | None = None
    preview: str | None = None  # data URL of the latest preview thumbnail
    preview_step: int = 0
    preview_version: int = 0
    # a video job: {"path": the upload on disk, "temporal": strength, "size": px, "crf": quality, "preset": speed}
    video: dict | None = None
    version: int = 0  # bumped on every change; watchers compare it
    watchers: set = field(default_factory=set)  # (event loop, asyncio.Event) pairs

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def media_type(self) -> str:
        """The result's media type: image/png, video/mp4 for a video, application/zip for a batch."""
        return self.output.media_type

    @property
    def suffix(self) -> str:
        """The result file's suffix: '.png', '.mp4' or '.zip'."""
        return self.output.suffix


class JobManager:
    """The queue, the worker thread and the janitor, plus what the HTTP layer needs to look at jobs."""

    engines_kept = 2  # loaded engines kept for later jobs, most recently used first

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.clock = settings.clock
        self._jobs: dict[str, Job] = {}
        self._waiting: deque[Job] = deque()
        self._running: Job | None = None
        self._cond = threading.Condition()
        self._stopping = False
        self._closing = False  # the server is going away: jobs end, event streams and live cameras close
        self._on_close: set = set()  # callables (any thread) that end a long-lived connection
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self.results_dir: Path | None = None
        # (method, load key) -> engine; the worker thread loads them, the live camera may borrow one (under the lock).
        self._engines: OrderedDict[tuple, Any] = OrderedDict()
        self._engines_lock = threading.Lock()

    # -- life cycle

    def start(self) -> None:
        """Create the private results directory and start the worker and janitor threads."""
        self.results_dir = Path(tempfile.mkdtemp(prefix="impasto-serve-"))  # mode 0700: ours alone
        self._stopping = self._closing = False
        self._stopped.clear()
        for target, name in ((self._work, "impasto-worker"), (self._janitor, "impasto-janitor")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    @property
    def closing(self) -> bool:
        """Whether the server is shutting down (event streams end after the job's last word)."""
        return self._closing

    def on_close(self, hook) -> None:
        """Call `hook()` (from any thread) when the server begins to shut down; `forget_close` undoes it."""
        with self._cond:
            if self._closing:
                hook()
            else:
                self._on_close.add(hook)

    def forget_close(self, hook) -> None:
        with self._cond:
            self._on_close.discard(hook)

    def begin_shutdown(self) -> None:
        """The server was asked to stop (Ctrl-C, SIGTERM): end every job now, so that each open event stream says
        so and closes and the server need not wait out its grace period (nor cancel requests mid-answer)."""
        with self._cond:
            self._closing = True
            for job in self._waiting:
                self._finish(job, "cancelled", error="the server is shutting down")
            self._waiting.clear()
            if self._running is not None:
                self._running.cancel_requested = True
                self._changed(self._running)  # its event streams see `closing` and end (see app.job_events)
            hooks, self._on_close = list(self._on_close), set()
            self._cond.notify_all()
        for hook in hooks:
            try:
                hook()
            except Exception:  # one connection's trouble must not keep the others open, nor the server up
                log.exception("closing a connection at shutdown")

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel what runs, drop what waits, stop the threads and delete every result file."""
        with self._cond:
            self._stopping = True
        self.begin_shutdown()
        self._stopped.set()
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()
        self._engines.clear()
        if self.results_dir is not None:
            shutil.rmtree(self.results_dir, ignore_errors=True)
            self.results_dir = None

    # -- what the HTTP layer calls

    def submit(
        self,
        method: str,
        options: Any,
        public_options: dict,
        ignored: list,
        content: Image.Image | list[Image.Image] | None,
        styles: list[Image.Image],
        video: dict | None = None,
    ) -> Job:
        """Queue a job; raises QueueFull when `queue_size` jobs are already waiting. A video job (`video` names the
        uploaded file, its frame count and settings) counts frames as its steps."""
        self.cleanup()
        batch = isinstance(content, list)
        iterative = (hasattr(options, "steps") or video is not None) and not batch
        with self._cond:
            if self._stopping or self._closing:
                raise QueueFull("the server is shutting down")
            if len(self._waiting) >= self.settings.queue_size:
                raise QueueFull(f"the queue is full ({self.settings.queue_size} jobs waiting); try again shortly")
            job = Job(
                id=secrets.token_hex(16),
                method=method,
                options=options,
                public_options=public_options,
                ignored_options=ignored,
                total=len(content)
                if batch
                else int(video["frames"])
                if video
                else int(options.steps)
                if iterative
                else 1,
                iterative=iterative,
                video=video,
                created=self.clock(),
                created_wall=time.time(),
                inputs=(content, styles),
            )
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._cond.notify_all()
        return job

    @staticmethod
    def output_for(result: Result) -> OutputWriter:
        """How a finished run becomes the job's result: its picture as a PNG, or the file it made (``result.path``,
        e.g. a video) under its own media type, which the HTTP layer then serves."""
        if result.path is None:
            return PNG
        suffix = Path(result.path).suffix.lower()
        if not suffix[1:].isalnum():  # never a client's string, but keep result file names plain anyway
            suffix = ".bin"
        media_type = result.media_type or "application/octet-stream"
        write = _move_video if media_type.startswith("video/") else _move_file
        return OutputWriter(media_type=media_type, suffix=suffix, write=write)

    def engine(self, method: str, options: Any) -> Any:
        """The engine for `options` of `method`: loaded once, kept for the next jobs that can share it."""
        key = (method, load_key(options))
        with self._engines_lock:
            engine = self._engines.get(key)
            if engine is not None:
                self._engines.move_to_end(key)
                return engine
        engine = get_method(method).load(options)
        with self._engines_lock:
            self._engines[key] = engine
            while len(self._engines) > self.engines_kept:
                self._engines.popitem(last=False)
        return engine

    def engine_for_live(self, method: str, options: Any) -> Any:
        """An engine for the live camera: the jobs' own when one is loaded for these options, else loaded apart (the
        worker thread may be evicting its engines meanwhile; a live stream keeps its own reference)."""
        with self._engines_lock:
            key = (method, load_key(options))
            engine = self._engines.get(key)
        return engine if engine is not None else get_method(method).load(options)

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def queue_position(self, job: Job) -> int | None:
        """1 for the next job to run; None unless queued."""
        with self._cond:
            try:
                return self._waiting.index(job) + 1
            except ValueError:
                return None

    def counts(self) -> dict[str, int]:
        with self._cond:
            return {"waiting": len(self._waiting), "running": int(self._running is not None)}

    def cancel(self, job: Job) -> None:
        """A queued job is cancelled at once; a running one stops at its next step."""
        with self._cond:
            if job.status == "queued":
                self._waiting.remove(job)
                self._finish(job, "cancelled")
            elif job.status == "running" and not job.cancel_requested:
                job.cancel_requested = True
                self._changed(job)

    def forget(self, job: Job) -> None:
        """Drop a finished job and its result file."""
        with self._cond:
            if not job.terminal:
                raise ValueError("only finished jobs can be forgotten")
            self._jobs.pop(job.id, None)
        if job.result_path is not None:
            job.result_path.unlink(missing_ok=True)
            job.result_path = None

    def cleanup(self) -> int:
        """Forget finished jobs older than the TTL, and the oldest beyond `max_jobs_kept`; returns how many."""
        now = self.clock()
        with self._cond:
            finished = sorted((j for j in self._jobs.values() if j.terminal), key=lambda j: j.finished or 0)
            excess = max(0, len(finished) - self.settings.max_jobs_kept)
            old = [
                j for i, j in enumerate(finished) if i < excess or now - (j.finished or now) >= self.settings.result_ttl
            ]
        for job in old:
            self.forget(job)
        return len(old)

    async def wait_change(self, job: Job, seen: int, timeout: float) -> bool:
        """Wait until `job.version` differs from `seen`; False if `timeout` seconds passed first."""
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        entry = (loop, event)
        with self._cond:
            if job.version != seen:
                return True
            job.watchers.add(entry)
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return job.version != seen
        finally:
            with self._cond:
                job.watchers.discard(entry)

    # -- internals

    def _changed(self, job: Job) -> None:
        """Record a change and wake the job's watchers (from any thread)."""
        with self._cond:  # re-entrant; orders the bump against watchers registering in wait_change
            job.version += 1
            for loop, event in list(job.watchers):
                try:
                    loop.call_soon_threadsafe(event.set)
                except RuntimeError:  # that watcher's loop is closed: nobody is listening there any more
                    job.watchers.discard((loop, event))

    def _finish(self, job: Job, status: str, error: str | None = None) -> None:
        if job.video is not None:  # the uploaded clip is not needed once the job ends, however it ends
            Path(job.video["path"]).unlink(missing_ok=True)
        job.status = status
        job.error = error
        job.finished = self.clock()
        job.inputs = None
        self._changed(job)

    def _janitor(self) -> None:
        interval = max(1.0, min(60.0, self.settings.result_ttl / 4))
        while not self._stopped.wait(interval):
            try:
                self.cleanup()
            except Exception:  # never let clean-up kill the thread
                log.exception("clean-up failed")

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                job = self._waiting.popleft()
                job.status = "running"
                job.started = self.clock()
                self._running = job
                self._changed(job)
            try:
                self._run(job)
            finally:
                with self._cond:
                    self._running = None

    def _run(self, job: Job) -> None:
        settings = self.settings
        last_preview: list[float | None] = [None]

        def callback(p: Progress) -> None:
            if job.cancel_requested:
                raise _Stop("cancelled")
            now = self.clock()
            if now - job.started >= settings.job_timeout:
                raise _Stop("timeout")
            job.step = p.step
            job.total = max(job.total, p.total, p.step)  # a method may plan a step or two more than asked
            due = last_preview[0] is None or now - last_preview[0] >= settings.preview_interval
            if job.iterative and p.image is not None and due:
                job.preview = _thumbnail(p.image, settings.preview_size)
                job.preview_step = p.step
                job.preview_version += 1
                last_preview[0] = now
            self._changed(job)

        made = None
        try:
            if job.cancel_requested:
                raise _Stop("cancelled")
            content, styles = job.inputs
            engine = self.engine(job.method, job.options)
            if job.cancel_requested:  # cancelled while the engine loaded
                raise _Stop("cancelled")
            if job.video is not None:
                result = self._run_video(job, engine, styles, callback)
            elif isinstance(content, list):
                result = self._run_batch(job, engine, content, styles, callback)
            else:
                result = engine.run(content, styles, job.options, callback=callback)
            made = result.path  # a file the run made: the job's result, or removed below
            if job.cancel_requested:  # a method that never called back
                raise _Stop("cancelled")
            if getattr(result, "stopped", None) == "interrupted":
                raise _Stop("cancelled")
            job.output = self.output_for(result)
            path = self.results_dir / f"{job.id}{job.output.suffix}"  # the id is ours (hex), never a client's string
            try:
                job.result_size = job.output.write(result, path)
            except BaseException:
                path.unlink(missing_ok=True)
                raise
            job.result_path = path
            made = None
            job.step = max(job.step, job.total) if job.iterative else job.total
            self._finish(job, "done")
        except _Stop as e:
            if e.reason == "timeout":
                self._finish(job, "failed", error=f"timed out after {settings.job_timeout:g} s (the server's limit)")
            else:
                self._finish(job, "cancelled", error="the server is shutting down" if self._closing else None)
        except ImpastoError as e:
            error = str(e)
            if job.video is not None:  # the upload's name on this server's disk is no business of the client's
                error = error.replace(job.video["path"], "video")
            self._finish(job, "failed", error=error)
        except MemoryError:
            self._finish(job, "failed", error="out of memory; try a smaller size")
        except Exception as e:  # the server must outlive any one job
            if "out of memory" in str(e).lower():
                self._finish(job, "failed", error="out of memory on the device; try a smaller size")
            else:
                log.exception("job %s failed", job.id)
                self._finish(job, "failed", error=f"internal error ({type(e).__name__}); see the server's log")
        finally:
            if made is not None:  # made, but not kept (cancelled, failed to move): nothing left behind
                Path(made).unlink(missing_ok=True)

    def _run_batch(self, job: Job, engine: Any, contents: list, styles: list, callback) -> Result:
        """Several photos with one engine: a ZIP of PNGs (result-001.png, ...), progress counted in photos."""
        out = self.results_dir / f"{job.id}.work.zip"

        def check(p: Progress) -> None:  # cancellation and the time limit, without the picture's own steps
            step, total = job.step, job.total
            callback(p)
            job.step, job.total = step, total

        try:
            with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as z:
                for i, content in enumerate(contents, 1):
                    result = engine.run(content, styles, job.options, callback=check)
                    if getattr(result, "stopped", None) == "interrupted":
                        raise _Stop("cancelled")
                    buf = io.BytesIO()
                    tensor_to_pil(result.image).save(buf, format="PNG", compress_level=PNG_LEVEL)
                    z.writestr(f"result-{i:03d}.png", buf.getvalue())
                    job.step = i
                    self._changed(job)
        except BaseException:
            out.unlink(missing_ok=True)
            raise
        return Result(image=None, path=out, media_type="application/zip", steps=len(contents))

    def _run_video(self, job: Job, engine: Any, styles: list, callback) -> Result:
        from ..video import kept_frames_dir, stylize_video

        out = self.results_dir / f"{job.id}.work.mp4"
        try:
            report = stylize_video(
                job.video["path"],
                out,
                styles,
                job.method,
                temporal=job.video["temporal"],
                size=job.video["size"],
                crf=job.video["crf"],
                preset=job.video.get("preset"),
                max_pixels=self.settings.max_pixels,
                engine=engine,
                callback=callback,
                method_options=job.options,
            )
        except BaseException:
            # An iterative method keeps its finished frames for --resume, which a job never uses: a cancelled or
            # failed job leaves none behind.
            shutil.rmtree(kept_frames_dir(out), ignore_errors=True)
            raise
        job.step = job.total = report.frames  # the total was the header's estimate (a Matroska file's may be off)
        return Result(image=None, path=out, media_type="video/mp4", steps=job.step)


def _thumbnail(image: Any, size: int) -> str:
    """A JPEG data URL of the image with its longest side at most `size`."""
    im = tensor_to_pil(image if isinstance(image, np.ndarray) else image.detach().float().cpu())
    im.thumbnail((size, size), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
