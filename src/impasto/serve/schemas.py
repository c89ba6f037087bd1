"""The JSON the HTTP API answers with, as pydantic models: they document every field in the OpenAPI schema."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, Field

from .jobs import Job

Status = Literal["queued", "running", "done", "failed", "cancelled"]


class ErrorOut(BaseModel):
    """Every 4xx and 5xx answer."""

    error: str = Field(description="What went wrong, in one line.")
    job_id: Optional[str] = Field(None, description="The job concerned, where there is one.")


class VideoOut(BaseModel):
    """A video job's settings."""

    temporal: float = Field(description="Temporal consistency, 0 (each frame on its own) to 1.")
    crf: int = Field(description="H.264's constant rate factor.")
    preset: Optional[str] = Field(None, description="x264's speed preset (null: impasto's default).")
    frames: int = Field(description="Frames expected, from the upload's header.")


class JobOut(BaseModel):
    """A job's state."""

    id: str = Field(description="The job's id (32 hex digits), made by the server.")
    method: str = Field(description="The style-transfer method.")
    status: Status = Field(
        description="queued (waiting for the worker), running, done (the result is ready), failed (see error) or "
        "cancelled."
    )
    step: int = Field(description="Steps done so far.")
    total: int = Field(description="Steps expected in all (1 for single-pass methods).")
    progress: float = Field(description="Fraction done, from 0 to 1.")
    queue_position: Optional[int] = Field(None, description="While queued: 1 when this job runs next.")
    cancel_requested: bool = Field(description="A cancel was asked for; a running job stops at its next step.")
    error: Optional[str] = Field(None, description="Why the job failed (one line), when it failed.")
    options: dict[str, Any] = Field(description="The options the job runs with (those the method accepts).")
    ignored_options: list[str] = Field(description="Options sent that this method has no use for.")
    created_at: datetime = Field(description="When the job was submitted (UTC).")
    elapsed: Optional[float] = Field(None, description="Seconds the job has run (or ran), once started.")
    video: Optional[VideoOut] = Field(None, description="For a video upload: how its frames are painted and encoded.")
    width: Optional[int] = Field(None, description="Width of the result in pixels, once done.")
    height: Optional[int] = Field(None, description="Height of the result in pixels, once done.")
    status_url: str = Field(description="GET: this state.")
    events_url: str = Field(description="GET: server-sent events with progress (and previews for iterative methods).")
    result_url: Optional[str] = Field(
        None, description="GET: the result once done: a PNG, an MP4 for a video upload, a ZIP for a batch."
    )

    @classmethod
    def of(cls, job: Job, queue_position: Optional[int], now: float) -> "JobOut":
        base = f"/api/jobs/{job.id}"
        if job.started is None:
            elapsed = None
        else:
            elapsed = round((job.finished if job.finished is not None else now) - job.started, 3)
        progress = 1.0 if job.status == "done" else min(1.0, job.step / max(1, job.total))
        return cls(
            id=job.id,
            method=job.method,
            status=job.status,  # type: ignore[arg-type]
            step=job.step,
            total=job.total,
            progress=round(progress, 4),
            queue_position=queue_position,
            cancel_requested=job.cancel_requested,
            error=job.error,
            options=job.public_options,
            ignored_options=job.ignored_options,
            created_at=datetime.fromtimestamp(job.created_wall, timezone.utc),
            elapsed=elapsed,
            video=VideoOut(**{k: job.video.get(k) for k in VideoOut.model_fields}) if job.video else None,
            width=job.result_size[0] if job.result_size else None,
            height=job.result_size[1] if job.result_size else None,
            status_url=base,
            events_url=f"{base}/events",
            result_url=f"{base}/result" if job.status == "done" else None,
        )


class OptionOut(BaseModel):
    """One option a method accepts over HTTP (a form field of POST /api/jobs), as the method declares it."""

    name: str = Field(description="The form field's name.")
    type: Literal["integer", "number", "boolean", "string", "array"] = Field(
        description="Its JSON type; 'array' fields are sent as comma-separated values, 'boolean' ones as true or false."
    )
    label: str = Field(description="A short name for a control on a page.")
    description: str = Field(description="What it does.")
    default: Any = Field(None, description="The value used when the field is not sent (null: the method decides).")
    minimum: Optional[Union[int, float]] = Field(None, description="Smallest value accepted.")
    maximum: Optional[Union[int, float]] = Field(None, description="Largest value accepted.")
    step: Optional[Union[int, float]] = Field(None, description="A sensible increment for a slider, where declared.")
    choices: Optional[list[str]] = Field(None, description="The values accepted, for string options.")


class MethodOut(BaseModel):
    """A style-transfer method and the options it accepts."""

    name: str = Field(description="The value of the 'method' form field.")
    title: str = Field(description="One line about the method.")
    description: str = Field(description="More about it.")
    iterative: bool = Field(
        description="True for optimization methods that take steps and stream previews (slow, seconds to minutes); "
        "false for single-pass methods (fast: ?wait=true suits them)."
    )
    style_images: bool = Field(
        description="True when a job uploads its paintings as 'styles'; false for methods that paint trained styles "
        "(the fast method: choose one of GET /api/styles with the 'model' field; it also takes 'styles' without a "
        "'model', painting them through its built-in network for any painting)."
    )
    video_temporal: float = Field(
        description="The 'temporal' field's default for a video upload with this method (0: each frame on its own)."
    )
    video_temporal_style_images: float = Field(
        description="The same for a video upload with 'styles' (the fast method paints them through its network for "
        "any painting, which takes a lighter blend); the same as video_temporal for the other methods."
    )
    video_temporal_above: list[tuple[int, float]] = Field(
        default_factory=list,
        description="Lighter defaults for larger videos: [longest side in px, strength] pairs, ascending; the last "
        "pair whose side the output's longest side ('size') exceeds gives the default (the method's blend costs "
        "more style on larger frames).",
    )
    options: list[OptionOut] = Field(description="The form fields it accepts; others are ignored.")


class StyleOut(BaseModel):
    """A built-in style of the fast method."""

    name: str = Field(description="The value of the fast method's 'model' field.")
    thumbnail_url: str = Field(description="A small JPEG of the bundled example photo painted in this style.")


class LimitsOut(BaseModel):
    """The server's limits; requests beyond them are refused with a JSON error."""

    max_upload_bytes: int = Field(description="Largest request body (photo and styles together); more answers 413.")
    max_pixels: int = Field(description="Largest image, in pixels (width x height); more answers 400.")
    max_size: int = Field(description="Largest output size (longest side, pixels).")
    default_size: int = Field(description="Output size when none is sent.")
    max_steps: int = Field(description="Most steps an iterative job may take.")
    max_styles: int = Field(description="Most style images per job.")
    queue_size: int = Field(description="Most jobs waiting; more answers 429.")
    job_timeout: float = Field(description="Seconds a job may run before it fails.")
    result_ttl: float = Field(description="Seconds a finished job and its result are kept.")


class QueueOut(BaseModel):
    """What the worker is doing now."""

    waiting: int = Field(description="Jobs waiting.")
    running: int = Field(description="Jobs running (0 or 1).")


class InfoOut(BaseModel):
    """The server: version, methods, limits and queue."""

    version: str = Field(description="impasto's version.")
    methods: list[str] = Field(description="Method names, for the 'method' form field.")
    default_method: str = Field(description="The method used when none is sent.")
    limits: LimitsOut = Field(description="The limits requests must stay within.")
    formats: list[str] = Field(description="Picture formats this server reads, as MIME types (videos aside).")
    queue: QueueOut = Field(description="The queue now.")


class SampleOut(BaseModel):
    """A picture bundled with impasto, to try the page without files of one's own."""

    kind: str = Field(description="'photo' or 'painting'.")
    name: str = Field(description="A short name for people.")
    url: str = Field(description="Where to GET the picture (PNG).")
