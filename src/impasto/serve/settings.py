"""Settings of ``impasto serve``: where it listens and every limit it enforces."""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field
from typing import Callable

from ..errors import ImpastoError

MB = 1_000_000
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    """True for 'localhost' and loopback addresses (127.0.0.0/8, ::1)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class ServeSettings:
    """Limits and defaults of the web app and HTTP API; the ``impasto serve`` flags map onto these."""

    host: str = "127.0.0.1"
    port: int = 8000
    allow_remote: bool = False  # binding a non-loopback host needs this, on purpose
    max_upload_bytes: int = 20 * MB  # whole request body (photo + styles)
    max_pixels: int = 40_000_000  # per uploaded image, read from the header before decoding
    max_size: int = 1024  # cap on the output's longest side
    default_size: int = 512  # output size when the request names none
    max_steps: int = 1000  # cap on `steps` for iterative methods
    max_styles: int = 8
    max_batch: int = 32  # photos in one job (a batch job answers a ZIP of the results)
    queue_size: int = 8  # jobs waiting (the running one not counted); more answers 429
    job_timeout: float = 600.0  # seconds a job may run
    result_ttl: float = 3600.0  # seconds a finished job and its result are kept
    max_jobs_kept: int = 200  # finished jobs kept at most (oldest forgotten first)
    wait_timeout: float = 60.0  # longest ?wait=true waits before answering 202
    preview_interval: float = 0.75  # seconds of wall time between preview thumbnails
    preview_size: int = 256  # longest side of preview thumbnails
    # Options the server sets on every job, for the methods whose Options have the field (never from clients).
    job_defaults: dict = field(default_factory=lambda: {"device": "auto", "precision": "auto"})
    # Host names the server answers to (DNS-rebinding guard); None: loopback names when bound to loopback, else any.
    allowed_hosts: list[str] | None = None
    clock: Callable[[], float] = time.monotonic  # injectable for tests of timeouts and clean-up

    def validate(self) -> None:
        """Raise ImpastoError naming the first bad setting."""
        if not self.host:
            raise ImpastoError("--host must not be empty")
        if not 0 <= self.port <= 65535:
            raise ImpastoError(f"--port must be from 0 to 65535, got {self.port}")
        if not is_loopback(self.host) and not self.allow_remote:
            raise ImpastoError(
                f"--host {self.host} is not a loopback address: anyone who can reach this machine could use the "
                "server; pass --allow-remote to bind it anyway"
            )
        positive = {
            "--max-upload-mb": self.max_upload_bytes,
            "--max-megapixels": self.max_pixels,
            "--max-size": self.max_size,
            "--max-steps": self.max_steps,
            "--max-styles": self.max_styles,
            "--queue-size": self.queue_size,
            "--job-timeout": self.job_timeout,
            "--result-ttl": self.result_ttl,
        }
        for flag, value in positive.items():
            if not value > 0:
                raise ImpastoError(f"{flag} must be positive, got {value}")
        if self.max_size < 16:
            raise ImpastoError(f"--max-size must be at least 16 px, got {self.max_size}")
        if not 16 <= self.default_size <= self.max_size:
            raise ImpastoError(f"the default size {self.default_size} must be from 16 to --max-size {self.max_size}")

    def hosts(self) -> list[str]:
        """The Host header names accepted ('*' for any)."""
        if self.allowed_hosts is not None:
            return list(self.allowed_hosts)
        if is_loopback(self.host):
            return [*LOOPBACK_NAMES, self.host.strip("[]")]
        return ["*"]
