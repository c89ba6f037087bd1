"""``impasto serve``: the web page and the HTTP API."""

from __future__ import annotations

import argparse

from ..options import DEVICES, PRECISIONS
from .flags import HelpFormatter, finite_number


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def add_parser(sub) -> None:
    sv = sub.add_parser(
        "serve",
        help="run the web app and HTTP API",
        formatter_class=HelpFormatter,
        description="Serve a web page for stylizing photos and an HTTP API under /api (docs at /api/docs).",
    )
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback unless --allow-remote)")
    sv.add_argument("--port", type=_int, default=8000, help="port to listen on (0: any free port)")
    sv.add_argument(
        "--allow-remote", action="store_true", help="allow a non-loopback --host (anyone who can reach it can use it)"
    )
    sv.add_argument("--open", action="store_true", help="open the page in a web browser")
    lim = sv.add_argument_group("limits")
    lim.add_argument("--max-upload-mb", type=finite_number, default=20, help="largest request body (photo + styles)")
    lim.add_argument("--max-megapixels", type=finite_number, default=40, help="largest uploaded image")
    lim.add_argument("--max-size", type=_int, default=1024, help="largest output size (longest side, px)")
    lim.add_argument("--max-steps", type=_int, default=1000, help="most steps per job")
    lim.add_argument("--queue-size", type=_int, default=8, help="most jobs waiting; more are refused (429)")
    lim.add_argument("--job-timeout", type=finite_number, default=600, help="seconds a job may run")
    lim.add_argument(
        "--result-ttl", type=finite_number, default=3600, help="seconds finished jobs and results are kept"
    )
    sv.add_argument("--device", default="auto", help=f"compute device: {', '.join(DEVICES)} (or cuda:N)")
    sv.add_argument("--precision", default="auto", choices=PRECISIONS, help="precision of network passes")


def run(args: argparse.Namespace) -> int:
    # Imported here: the web stack is only needed by this command.
    from ..serve.server import serve
    from ..serve.settings import MB, ServeSettings

    settings = ServeSettings(
        host=args.host,
        port=args.port,
        allow_remote=args.allow_remote,
        max_upload_bytes=int(args.max_upload_mb * MB),
        max_pixels=int(args.max_megapixels * 1e6),
        max_size=args.max_size,
        default_size=min(512, args.max_size),
        max_steps=args.max_steps,
        queue_size=args.queue_size,
        job_timeout=args.job_timeout,
        result_ttl=args.result_ttl,
        job_defaults={"device": args.device, "precision": args.precision},
    )
    return serve(settings, open_browser=args.open)
