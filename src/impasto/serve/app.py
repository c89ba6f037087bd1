"""The FastAPI application: the HTTP API under /api and the web page at /.

``create_app(settings)`` builds it; the job manager starts with the app and stops (deleting every result) with it.
"""

import asyncio
import json
import logging
import math
import secrets
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import FastAPI, Query, Request, WebSocket, WebSocketDisconnect
from fastapi import Path as PathParam
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..api import available_methods, get_method, takes_style_images
from ..core.video import DEFAULT_CRF, MAX_CRF, PRESETS
from ..errors import ImpastoError
from ..options import field_names as declared_fields
from ..video import default_temporal, looks_like_video
from .gallery import Gallery
from .inputs import MIME_TYPES, build_options, decode_image, form_schema, method_info
from .jobs import Job, JobManager, QueueFull
from .live import LatestFrame, make_painter, split_frame
from .schemas import ErrorOut, InfoOut, JobOut, LimitsOut, MethodOut, QueueOut, SampleOut, StyleOut
from .settings import ServeSettings

log = logging.getLogger("impasto.serve")

STATIC = Path(__file__).resolve().parent / "static"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SAMPLES = {"chelsea.png": ("photo", "Chelsea the cat"), "swirls.png": ("painting", "Swirls")}
DEFAULT_METHOD = "gatys"
KEEPALIVE_S = 15.0
# The page loads nothing from elsewhere; previews are data: URLs, results blob: URLs (a video's too: media-src).
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self'; script-src 'self'; "
        b"connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]

JobId = Annotated[str, PathParam(description="The job's id, as POST /api/jobs answered it.")]
ERRORS = {
    400: {"model": ErrorOut, "description": "Bad input: not an image, too many pixels, a bad option."},
    404: {"model": ErrorOut, "description": "No such job (or it was cleaned up)."},
    409: {"model": ErrorOut, "description": "The job is not in a state that allows this."},
    413: {"model": ErrorOut, "description": "The request body is above the upload cap."},
    429: {"model": ErrorOut, "description": "The queue is full; retry after a while (see Retry-After)."},
}


class _TooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the upload is above this server's cap of {limit / 1e6:g} MB")


def _error(status: int, message: str, job_id: str | None = None, headers: dict | None = None) -> JSONResponse:
    body = {"error": message} if job_id is None else {"error": message, "job_id": job_id}
    return JSONResponse(body, status_code=status, headers=headers)


class _Guard:
    """ASGI middleware: Host and Origin checks, the request-body cap and security headers.

    The Host check defeats DNS rebinding against a server on loopback; the Origin check stops other web sites
    from submitting or cancelling jobs through a visitor's browser.
    """

    def __init__(self, app, settings: ServeSettings) -> None:
        self.app = app
        self.hosts = {h.lower() for h in settings.hosts()}
        self.limit = settings.max_upload_bytes

    def _host_ok(self, host: str) -> bool:
        if "*" in self.hosts:
            return True
        name = urlsplit(f"//{host}").hostname or ""
        return name.lower() in self.hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            # A browser lets any site open a WebSocket to localhost: the same Host and Origin checks, as a refusal
            # of the handshake.
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            if not self._host_ok(headers.get("host", "")) or _cross_site(headers):
                return await send({"type": "websocket.close", "code": 1008})
            return await self.app(scope, receive, send)
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if not self._host_ok(headers.get("host", "")):
            return await _error(400, "unexpected Host header; this server answers to " + ", ".join(sorted(self.hosts)))(
                scope, receive, send
            )
        if scope["method"] not in ("GET", "HEAD", "OPTIONS") and _cross_site(headers):
            return await _error(403, "cross-origin requests are refused")(scope, receive, send)
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await _error(413, _TooLarge(self.limit).detail)(scope, receive, send)

        received = 0

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:  # a chunked body without Content-Length
                    raise _TooLarge(self.limit)
            return message

        async def secured_send(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, counted_receive, secured_send)


def _cross_site(headers: dict[str, str]) -> bool:
    """Whether a state-changing request comes from another site: an Origin other than this server (including
    "null", what sandboxed frames and data: pages send), or, without an Origin, a browser's Sec-Fetch-Site saying
    so. Clients that are not browsers (curl, scripts) send neither and are let through."""
    origin = headers.get("origin")
    if origin is not None:
        return origin == "null" or urlsplit(origin).netloc.lower() != headers.get("host", "").lower()
    return headers.get("sec-fetch-site", "").lower() in ("cross-site", "same-site")


def create_app(settings: ServeSettings | None = None) -> FastAPI:
    """The web app and HTTP API, with its own job manager (started and stopped with the app)."""
    settings = settings or ServeSettings()
    settings.validate()
    manager = JobManager(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        manager.start()
        try:
            yield
        finally:
            manager.stop()

    app = FastAPI(
        title="impasto",
        version=__version__,
        summary="Repaint a photo in the style of one or more paintings.",
        description="Submit a job with a photo and style images (multipart), follow it with server-sent events, "
        "fetch the PNG. Jobs run one at a time in a worker; the queue is bounded. Every error is JSON: "
        '`{"error": "..."}`.',
        lifespan=lifespan,
        docs_url=None,  # FastAPI's docs pages load from a CDN; /api/docs is ours, served from here
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.settings = settings
    app.state.jobs = manager
    app.add_middleware(_Guard, settings=settings)

    @app.exception_handler(ImpastoError)
    async def _impasto_error(request: Request, exc: ImpastoError):
        return _error(400, str(exc))

    # Starlette's own exceptions too (static files, unmatched paths, wrong methods), so every error is JSON.
    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        message = str(first.get("msg", "invalid value"))
        return _error(400, f"{where}: {message}" if where else message)

    def job_out(job: Job) -> JobOut:
        return JobOut.of(job, manager.queue_position(job), settings.clock())

    def find(job_id: str) -> Job:
        job = manager.get(job_id)
        if job is None:
            raise HTTPException(404, "no such job (finished jobs are kept for a while, then cleaned up)")
        return job

    # -- the API

    @app.get("/api/info", response_model=InfoOut, tags=["server"])
    def info() -> InfoOut:
        """The server's version, methods, limits and queue."""
        return InfoOut(
            version=__version__,
            methods=available_methods(),
            default_method=DEFAULT_METHOD,
            limits=LimitsOut(
                max_upload_bytes=settings.max_upload_bytes,
                max_pixels=settings.max_pixels,
                max_size=settings.max_size,
                default_size=settings.default_size,
                max_steps=settings.max_steps,
                max_styles=settings.max_styles,
                queue_size=settings.queue_size,
                job_timeout=settings.job_timeout,
                result_ttl=settings.result_ttl,
            ),
            queue=QueueOut(**manager.counts()),
            formats=list(MIME_TYPES),
        )

    @app.get("/api/samples", response_model=list[SampleOut], tags=["server"])
    def samples() -> list[dict]:
        """The example photo and painting bundled with impasto, to try it without files of one's own."""
        return [{"kind": kind, "name": name, "url": f"/api/samples/{file}"} for file, (kind, name) in SAMPLES.items()]

    @app.get(
        "/api/samples/{file}",
        tags=["server"],
        response_class=FileResponse,
        responses={200: {"content": {"image/png": {}}, "description": "The picture."}, 404: ERRORS[404]},
    )
    def sample(file: Annotated[str, PathParam(description="A file name GET /api/samples lists.")]) -> FileResponse:
        """One bundled example picture."""
        if file not in SAMPLES:  # only the names listed: never a path from the request
            raise HTTPException(404, f"no sample {file!r}; GET /api/samples lists them")
        return FileResponse(EXAMPLES / file, media_type="image/png", headers={"Cache-Control": "max-age=86400"})

    @app.get("/api/methods", response_model=list[MethodOut], tags=["server"])
    def methods() -> list[dict]:
        """Every method and the form fields it accepts (derived from its Options)."""
        return [method_info(name, settings) for name in available_methods()]

    gallery = Gallery()

    def save_video_upload(data: bytes, temporal: float, size: int, crf: int, preset: str | None) -> dict:
        """Keep an uploaded clip on disk for its job, after checking that it is a video this server takes."""
        from ..core.video import probe

        path = manager.results_dir / f"upload-{secrets.token_hex(8)}.video"
        path.write_bytes(data)
        try:
            info = probe(path)
            if info.width * info.height > settings.max_pixels:
                raise ImpastoError(
                    f"photo: the video is {info.width}x{info.height}, above this server's cap of "
                    f"{settings.max_pixels / 1e6:g} megapixels per frame"
                )
        except ImpastoError as e:
            path.unlink(missing_ok=True)
            raise ImpastoError("video: " + str(e).split(": ", 1)[-1]) from None
        frames = info.frames or max(1, round((info.duration or 1) * info.fps))
        return {
            "path": str(path),
            "temporal": temporal,
            "size": size,
            "crf": crf,
            "preset": preset,
            "frames": frames,
        }

    @app.websocket("/api/live")
    async def live(ws: WebSocket) -> None:
        """The live camera (see impasto.serve.live): a JSON set-up message, then frames in and stylized frames out,
        the newest frame first."""
        await ws.accept()
        try:
            first = await ws.receive()
            if first["type"] == "websocket.disconnect":
                return
            try:
                config = json.loads(first["text"]) if first.get("text") is not None else None
            except ValueError:
                config = None
            if not isinstance(config, dict):
                raise ImpastoError("the first message is a JSON object (text): the method and its options")
            method = str(config.pop("method", "fast"))
            raw = config.pop("temporal", None)
            try:
                temporal = None if raw is None else float(raw)
            except (TypeError, ValueError):
                temporal = math.nan
            if temporal is not None and not 0 <= temporal <= 1:
                raise ImpastoError(f"temporal must be a number from 0 to 1, got {json.dumps(raw)}")
            module = get_method(method)
            if takes_style_images(module) or "steps" in declared_fields(module.Options):
                raise ImpastoError(f"the live camera needs a one-pass method with trained styles (fast), not {method}")
            fields = {k: None if v is None else str(v) for k, v in config.items()}
            opts, used, _ = build_options(method, fields, 0, settings)
            if temporal is None:
                temporal = default_temporal(method, longest=used.get("size"))
            engine = await run_in_threadpool(manager.engine_for_live, method, opts)
        except (ImpastoError, ValueError, TypeError) as e:
            await ws.send_json({"error": str(e)})
            await ws.close(code=1008)
            return
        except WebSocketDisconnect:
            return
        paint = make_painter(engine, opts, temporal, settings.max_pixels)
        await ws.send_json({"ready": True, "method": method, "options": used})
        mailbox = LatestFrame()
        sending = asyncio.Lock()  # a frame's header and its JPEG go out as a pair, never split by a notice

        async def receive() -> None:
            try:
                while True:
                    message = await ws.receive()
                    if message["type"] == "websocket.disconnect":
                        break
                    try:  # a message that is no frame is answered, and the stream goes on
                        seq, data = split_frame(message.get("bytes") or b"")
                    except ImpastoError as e:
                        async with sending:
                            await ws.send_json({"error": str(e), "fatal": False})
                        continue
                    mailbox.put(seq, data)
            except (WebSocketDisconnect, RuntimeError):
                pass
            finally:
                mailbox.close()

        receiver = asyncio.create_task(receive())
        loop = asyncio.get_running_loop()

        def server_stops() -> None:
            loop.call_soon_threadsafe(mailbox.close)

        manager.on_close(server_stops)
        try:
            while True:
                item = await mailbox.take()
                if item is None:
                    break
                seq, data, arrived = item
                try:
                    jpeg = await run_in_threadpool(paint, data)
                except ImpastoError as e:
                    await ws.send_json({"seq": seq, "error": str(e)})
                    continue
                ms = (time.perf_counter() - arrived) * 1000
                async with sending:
                    await ws.send_json({"seq": seq, "ms": round(ms, 1), "dropped": mailbox.dropped})
                    await ws.send_bytes(jpeg)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            manager.forget_close(server_stops)
            receiver.cancel()

    @app.get("/api/styles", response_model=list[StyleOut], tags=["server"])
    def styles() -> list[dict]:
        """The built-in styles of the fast method (send one as its 'model' field), with thumbnails."""
        return [{"name": n, "thumbnail_url": f"/api/styles/{n}.jpg"} for n in gallery.names()]

    @app.get(
        "/api/styles/{name}.jpg",
        tags=["server"],
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}, "description": "The thumbnail."}, 404: ERRORS[404]},
    )
    async def style_thumbnail(name: Annotated[str, PathParam(description="A built-in style's name.")]) -> Response:
        """The bundled example photo painted in a built-in style (made by impasto on first request)."""
        if name not in gallery.names():
            raise HTTPException(404, f"no built-in style {name!r}; GET /api/styles lists them")
        data = await run_in_threadpool(gallery.thumbnail, name)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=86400"})

    @app.post(
        "/api/jobs",
        tags=["jobs"],
        status_code=202,
        response_model=JobOut,
        responses={
            200: {
                "content": {"image/png": {}},
                "description": "With ?wait=true, when the job finished in time: the result (a PNG).",
            },
            202: {"description": "The job is queued (or, with ?wait=true, still running): its state."},
            422: {"model": ErrorOut, "description": "With ?wait=true: the job failed (the error says why)."},
            **{k: v for k, v in ERRORS.items() if k != 404},
        },
        # The body is read by hand (each method declares its own fields); its schema is the union of them all.
        openapi_extra={"requestBody": form_schema(settings, DEFAULT_METHOD)},
    )
    async def create_job(
        request: Request,
        wait: Annotated[
            bool,
            Query(
                description="Hold the request until the job finishes (at most the server's wait limit) and answer "
                "the result itself; meant for fast, single-pass methods. A job still running then answers 202."
            ),
        ] = False,
    ):
        """Submit a job: a photo, one or more style images, a method and its options (multipart form fields).

        Answers 202 with the job's state (follow `events_url`, then fetch `result_url`). Each method takes the
        options GET /api/methods lists for it; fields of other methods are ignored and listed in
        `ignored_options`, and any other field is refused.
        """
        form = await request.form()
        try:
            return await submit(form, wait)
        finally:
            await form.close()

    async def submit(form, wait: bool) -> Response:
        files: dict[str, list[UploadFile]] = {}
        texts: dict[str, list[str]] = {}
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                files.setdefault(key, []).append(value)
            else:
                texts.setdefault(key, []).append(value)
        for key in ("content", "styles"):
            if key in texts:
                raise ImpastoError(f"{key}: expected an uploaded file, got a text field")
        if "content" not in files:
            raise ImpastoError("content: field required (upload the photo to repaint)")
        if len(files["content"]) > settings.max_batch:
            raise ImpastoError(f"content: at most {settings.max_batch} photos per job, got {len(files['content'])}")
        extra_files = sorted(set(files) - {"content", "styles"})
        if extra_files:
            raise ImpastoError(f"{extra_files[0]}: expected a text field, got a file")
        repeated = sorted(k for k, v in texts.items() if len(v) > 1)
        if repeated:
            raise ImpastoError(f"{repeated[0]}: sent more than once")
        fields = {k: v[0] for k, v in texts.items()}
        method = fields.pop("method", None) or DEFAULT_METHOD
        temporal_text = fields.pop("temporal", None) or None
        try:
            temporal = None if temporal_text is None else float(temporal_text)
        except ValueError:
            raise ImpastoError(f"temporal: a number from 0 to 1, got {temporal_text!r}") from None
        if temporal is not None and not 0 <= temporal <= 1:
            raise ImpastoError(f"temporal: a number from 0 to 1, got {temporal_text}")
        crf_text = fields.pop("crf", None) or None
        crf = DEFAULT_CRF
        if crf_text is not None:
            try:
                crf = int(crf_text)
            except ValueError:
                crf = None
            if crf is None or not 0 <= crf <= MAX_CRF:
                raise ImpastoError(f"crf: a whole number from 0 (lossless) to {MAX_CRF}, got {crf_text!r}")
        preset = fields.pop("preset", None) or None
        if preset is not None and preset not in PRESETS:
            raise ImpastoError(f"preset: one of {', '.join(PRESETS)}, got {preset!r}")
        video_only = [
            n for n, t in (("temporal", temporal_text), ("crf", crf_text), ("preset", preset)) if t is not None
        ]
        contents, styles = files["content"], files.get("styles", [])
        content = contents[0]
        module = get_method(method)  # an unknown method is a 400 before any decoding
        if not styles and takes_style_images(module):
            raise ImpastoError("styles: field required (upload one or more style images)")
        if len(styles) > settings.max_styles:
            raise ImpastoError(f"styles: at most {settings.max_styles} style images per job, got {len(styles)}")
        # Validate the options before decoding, so a bad field costs nothing.
        opts, used, ignored = build_options(method, fields, len(styles), settings)
        if manager.counts()["waiting"] >= settings.queue_size:  # don't decode images for a full queue (rechecked)
            return _error(
                429,
                f"the queue is full ({settings.queue_size} jobs waiting); try again shortly",
                headers={"Retry-After": "10"},
            )
        out_size = used.get("size", settings.max_size)
        if temporal is None:  # (a video's frames come out at out_size: the longest side)
            temporal = default_temporal(method, style_images=bool(styles), longest=out_size)
        content_data = await content.read()
        video = None
        if len(contents) > 1:  # a batch: several photos, one result each, answered as a ZIP
            if video_only:
                raise ImpastoError(f"{video_only[0]}: only for a video upload")
            content_im = [await run_in_threadpool(decode_image, content_data, "photo 1", settings.max_pixels, out_size)]
            for i, upload in enumerate(contents[1:], 2):
                data = await upload.read()
                content_im.append(
                    await run_in_threadpool(decode_image, data, f"photo {i}", settings.max_pixels, out_size)
                )
        elif looks_like_video(content_data):
            video = await run_in_threadpool(save_video_upload, content_data, temporal, out_size, crf, preset)
            content_im = None
        else:
            if video_only:
                raise ImpastoError(f"{video_only[0]}: only for a video upload")
            content_im = await run_in_threadpool(decode_image, content_data, "photo", settings.max_pixels, out_size)
        style_ims = []
        for i, upload in enumerate(styles, 1):
            what = "painting" if len(styles) == 1 else f"painting {i}"
            data = await upload.read()
            style_ims.append(
                await run_in_threadpool(decode_image, data, what, settings.max_pixels, 2 * settings.max_size)
            )
        try:
            job = manager.submit(method, opts, used, ignored, content_im, style_ims, video=video)
        except QueueFull as e:
            if video is not None:
                Path(video["path"]).unlink(missing_ok=True)
            return _error(429, str(e), headers={"Retry-After": "10"})
        location = {"Location": f"/api/jobs/{job.id}"}
        if wait:
            # Real time, not settings.clock: this bounds how long a client is kept waiting.
            deadline = time.monotonic() + settings.wait_timeout
            while not job.terminal and time.monotonic() < deadline:
                await manager.wait_change(job, job.version, max(0.01, deadline - time.monotonic()))
            if job.status == "done":
                return FileResponse(
                    job.result_path, media_type=job.media_type, headers={**location, "X-Job-Id": job.id}
                )
            if job.status == "failed":
                return _error(422, job.error or "the job failed", job.id)
            if job.status == "cancelled":
                return _error(409, "the job was cancelled", job.id)
        return JSONResponse(job_out(job).model_dump(mode="json"), status_code=202, headers=location)

    @app.get("/api/jobs/{job_id}", response_model=JobOut, responses={404: ERRORS[404]}, tags=["jobs"])
    def get_job(job_id: JobId) -> JobOut:
        """A job's status and progress."""
        return job_out(find(job_id))

    @app.get(
        "/api/jobs/{job_id}/events",
        tags=["jobs"],
        response_class=StreamingResponse,
        responses={
            200: {
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
                "description": "Server-sent events. `progress`: the job's state (as GET /api/jobs/{id}) whenever it "
                "changes; `preview`: `{step, image}` with a JPEG data URL of the picture as it forms (iterative "
                "methods, about every second); finally one of `done`, `failed`, `cancelled` with the final state, "
                "and the stream ends. Comment lines keep idle connections alive.",
            },
            404: ERRORS[404],
        },
    )
    async def job_events(job_id: JobId, request: Request) -> StreamingResponse:
        """Follow a job with server-sent events until it finishes."""
        job = find(job_id)

        async def stream():
            yield "retry: 3000\n\n"
            seen, seen_preview = -1, 0
            while True:
                version = job.version
                if version != seen:
                    seen = version
                    if job.preview is not None and job.preview_version != seen_preview:
                        seen_preview = job.preview_version
                        yield _sse("preview", {"step": job.preview_step, "image": job.preview})
                    state = job_out(job).model_dump(mode="json")
                    if state["status"] in ("done", "failed", "cancelled"):
                        yield _sse(state["status"], state)
                        return
                    if manager.closing:  # the job will not finish: say so now rather than hold the server's stop
                        yield _sse(
                            "cancelled", {**state, "status": "cancelled", "error": "the server is shutting down"}
                        )
                        return
                    yield _sse("progress", state)
                if not await manager.wait_change(job, seen, KEEPALIVE_S):
                    if await request.is_disconnected():
                        return
                    yield ": keep-alive\n\n"

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )

    @app.get(
        "/api/jobs/{job_id}/result",
        tags=["jobs"],
        response_class=FileResponse,
        responses={
            200: {"content": {"image/png": {}}, "description": "The stylized picture."},
            404: ERRORS[404],
            409: ERRORS[409],
        },
    )
    def job_result(job_id: JobId) -> FileResponse:
        """The result, once the job is done: a PNG for every method today (see its Content-Type)."""
        job = find(job_id)
        if job.status != "done" or job.result_path is None:
            detail = {
                "queued": "the job is still queued; the result is not ready",
                "running": "the job is still running; the result is not ready",
                "failed": f"the job failed: {job.error}",
                "cancelled": "the job was cancelled; there is no result",
            }.get(job.status, "there is no result")
            raise HTTPException(409, detail)
        return FileResponse(
            job.result_path,
            media_type=job.media_type,
            filename=f"impasto-{job.method}-{job.id[:8]}{job.suffix}",
            content_disposition_type="inline",
            headers={"Cache-Control": "private, max-age=3600"},
        )

    @app.delete("/api/jobs/{job_id}", response_model=JobOut, responses={404: ERRORS[404]}, tags=["jobs"])
    async def delete_job(job_id: JobId) -> JobOut:
        """Cancel a queued or running job, or forget a finished one (its result is deleted).

        A running job stops at its next step; this waits a few seconds for that, so the answer usually says
        `cancelled` (else `running` with `cancel_requested`).
        """
        job = find(job_id)
        if job.terminal:
            manager.forget(job)
            return job_out(job)
        manager.cancel(job)
        deadline = time.monotonic() + 5.0
        while not job.terminal and time.monotonic() < deadline:
            await manager.wait_change(job, job.version, max(0.01, deadline - time.monotonic()))
        return job_out(job)

    # -- the page

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})

    @app.get("/api/docs", include_in_schema=False)
    def api_docs() -> FileResponse:
        return FileResponse(STATIC / "api.html", media_type="text/html", headers={"Cache-Control": "no-cache"})

    # Last, so that it only catches what no route above matched.
    @app.api_route("/api/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    def api_not_found(rest: str, request: Request) -> Response:
        path = request.url.path
        allowed = sorted(
            {
                method
                for route in app.routes
                if isinstance(route, APIRoute) and route.name != "api_not_found" and route.path_regex.match(path)
                for method in route.methods
            }
        )
        if allowed:  # the endpoint exists, not with this method
            return _error(
                405,
                f"{request.method} is not allowed here; use {', '.join(allowed)}",
                headers={"Allow": ", ".join(allowed)},
            )
        return _error(404, "no such endpoint; see /api/docs")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict:
    """FastAPI's schema without its 422 validation-error answers: this API answers those 400 with ErrorOut."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary, description=app.description, routes=app.routes
        )
        for ops in schema.get("paths", {}).values():
            for op in ops.values():
                response = op.get("responses", {}).get("422", {})
                if "HTTPValidationError" in json.dumps(response):
                    del op["responses"]["422"]
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
