"""Load benchmark for `impasto serve`: many concurrent small requests against one server.

Each request uploads a small photo and painting to POST /api/jobs?wait=true (the PNG comes back in the same
request when the job finishes within the server's wait limit; a job still running then is followed over its
server-sent events to the end). Every request must end in a result or a 429 (queue full): anything else, a 5xx,
a dropped connection or a job that never finishes, counts as lost and makes the exit status 1.

    .venv/bin/python benchmarks/serve_load.py                          # its own server process, 50 requests
    .venv/bin/python benchmarks/serve_load.py --url http://127.0.0.1:8000 --method adain
    .venv/bin/python benchmarks/serve_load.py --doc docs/BENCHMARKS.md # also write the figures there
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import io
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx
from _common import ROOT, machine, write_section
from PIL import Image

EXAMPLES = ROOT / "src" / "impasto" / "examples"


@dataclass
class Outcome:
    status: str  # "ok", "429", or what went wrong
    seconds: float
    job: str | None = None
    detail: str = ""


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    wall: float = 0.0

    def of(self, status: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == status]


def small_png(path: Path, side: int) -> bytes:
    im = Image.open(path).convert("RGB")
    im.thumbnail((side, side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


async def follow(client: httpx.AsyncClient, job_id: str) -> str:
    """Read a job's events to the end; returns its final status."""
    final = "lost: the event stream ended without a final state"
    async with client.stream("GET", f"/api/jobs/{job_id}/events") as r:
        if r.status_code != 200:
            return f"events answered {r.status_code}"
        event = None
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event in ("done", "failed", "cancelled"):
                final = event
    return final


async def one(client: httpx.AsyncClient, files: list, data: dict) -> Outcome:
    start = time.perf_counter()
    try:
        r = await client.post("/api/jobs", params={"wait": "true"}, files=files, data=data)
        if r.status_code == 200 and r.headers.get("content-type") == "image/png":
            Image.open(io.BytesIO(r.content)).verify()
            return Outcome("ok", time.perf_counter() - start, r.headers.get("x-job-id"))
        if r.status_code == 429:
            return Outcome("429", time.perf_counter() - start, detail=r.json().get("error", ""))
        if r.status_code == 202:  # still running after the server's wait limit: follow it to the end
            job_id = r.json()["id"]
            final = await follow(client, job_id)
            status = "ok" if final == "done" else final
            return Outcome(status, time.perf_counter() - start, job_id)
        return Outcome(f"HTTP {r.status_code}", time.perf_counter() - start, detail=r.text[:200])
    except Exception as e:  # a dropped connection, a timeout: lost
        return Outcome(f"lost: {type(e).__name__}", time.perf_counter() - start, detail=str(e)[:200])


async def load(url: str, n: int, files: list, data: dict, timeout: float) -> Report:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:
        start = time.perf_counter()
        outcomes = await asyncio.gather(*(one(client, files, data) for _ in range(n)))
        report = Report(list(outcomes), time.perf_counter() - start)
        # Every accepted job must have finished on the server too.
        for o in report.of("ok"):
            state = (await client.get(f"/api/jobs/{o.job}")).json()
            if state.get("status") != "done":
                o.status = f"server says {state.get('status')}"
    return report


@contextlib.contextmanager
def server_process(queue_size: int):
    """`impasto serve` in a child process (its own interpreter, as in real use); yields its URL."""
    cmd = [
        sys.executable,
        "-m",
        "impasto",
        "serve",
        "--port",
        "0",
        "--queue-size",
        str(queue_size),
        "--device",
        "cpu",
        "--precision",
        "fp32",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = None
        for line in proc.stderr:  # "impasto: serving the web app on http://127.0.0.1:PORT/ and ..."
            found = re.search(r"on (http://\S+?)/ ", line)
            if found:
                url = found.group(1)
                break
        if url is None:
            raise SystemExit(f"the server did not start (exit status {proc.wait()})")
        # Keep reading its log so a full pipe never stalls it.
        threading.Thread(target=lambda: [sys.stderr.write(line) for line in proc.stderr], daemon=True).start()
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


def summary(report: Report, args, settings_line: str) -> tuple[str, bool]:
    all_s = [o.seconds for o in report.outcomes]
    ok = report.of("ok")
    busy = report.of("429")
    other = [o for o in report.outcomes if o.status not in ("ok", "429")]
    server_errors = [o for o in other if o.status.startswith("HTTP 5")]
    lines = [
        f"- date: {dt.date.today().isoformat()}; machine: {machine()}; load average {args.loadavg:.1f} before the run",
        f"- command: `{' '.join(['python', 'benchmarks/serve_load.py', *sys.argv[1:]])}`",
        f"- server: {settings_line}",
        f"- load: {args.requests} concurrent POST /api/jobs?wait=true, each a {args.image} px photo and painting, "
        f"method {args.method}"
        + (f", size {args.size}, steps {args.steps}" if args.method == "gatys" else f", size {args.size}"),
        "",
        "| outcome | requests | p50 latency (s) | p95 latency (s) | max (s) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, group in (
        ("result (PNG)", ok),
        ("429 queue full", busy),
        ("anything else (lost)", other),
        ("all", report.outcomes),
    ):
        s = [o.seconds for o in group]
        row = f"| {name} | {len(group)} |"
        row += f" {percentile(s, 50):.2f} | {percentile(s, 95):.2f} | {max(s):.2f} |" if s else " – | – | – |"
        lines.append(row)
    lines += [
        "",
        f"- wall time {report.wall:.1f} s; {len(ok)} results, {len(busy)} refused with 429, {len(other)} lost, "
        f"{len(server_errors)} server errors (5xx)",
    ]
    passed = not other and len(ok) + len(busy) == len(all_s) == args.requests
    lines.append(f"- verdict: {'every request got a result or a 429; nothing lost' if passed else 'FAILED'}")
    if ok:
        per_job = max(o.seconds for o in ok) / len(ok)
        lines.append(
            f"- reading: one worker runs jobs one at a time and the queue holds {args.queue_size}, "
            f"so of a burst about 1 + {args.queue_size} jobs are taken and the rest are refused at once with 429 "
            "(clients retry after `Retry-After`); the taken jobs finish one after another, so their latency grows "
            f"with their place in the queue (about {per_job:.1f} s per job here; the load average says how busy "
            "the CPU was with other work)"
        )
    for o in other[:5]:
        lines.append(f"  - {o.status}: {o.detail}")
    return "\n".join(lines), passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running server (default: start one in this process)")
    parser.add_argument("--requests", type=int, default=50, help="concurrent requests")
    parser.add_argument("--method", default="gatys")
    parser.add_argument("--size", type=int, default=64, help="output size of each job")
    parser.add_argument("--steps", type=int, default=4, help="steps of each job (iterative methods)")
    parser.add_argument("--image", type=int, default=96, help="longest side of the uploaded images")
    parser.add_argument("--queue-size", type=int, default=8, help="the in-process server's queue size")
    parser.add_argument("--timeout", type=float, default=600, help="seconds a request may take in all")
    parser.add_argument("--doc", type=Path, help="also write the figures into this Markdown file (serve-load section)")
    args = parser.parse_args()
    args.loadavg = os.getloadavg()[0]

    files = [
        ("content", ("photo.png", small_png(EXAMPLES / "chelsea.png", args.image), "image/png")),
        ("styles", ("painting.png", small_png(EXAMPLES / "swirls.png", args.image), "image/png")),
    ]
    data = {"method": args.method, "size": str(args.size), "steps": str(args.steps), "seed": "0"}
    if args.url:
        server = contextlib.nullcontext(args.url.rstrip("/"))
        settings_line = f"{args.url} (as it runs)"
    else:
        server = server_process(args.queue_size)
        settings_line = (
            f"`impasto serve --queue-size {args.queue_size} --device cpu --precision fp32` in its own "
            "process (uvicorn, one worker thread, wait limit 60 s)"
        )
    with server as url:
        print(f"{args.requests} concurrent requests against {url} ...", file=sys.stderr)
        report = asyncio.run(load(url, args.requests, files, data, args.timeout))
        info = httpx.get(f"{url}/api/info").json()
    text, passed = summary(report, args, settings_line)
    if info["queue"] != {"waiting": 0, "running": 0}:
        text += f"\n- FAILED: the queue is not empty afterwards: {json.dumps(info['queue'])}"
        passed = False
    print(text)
    if args.doc:
        write_section(args.doc, "serve-load", "## `impasto serve` under load: `benchmarks/serve_load.py`\n\n" + text)
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
