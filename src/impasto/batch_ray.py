"""A batch on Ray: the same pictures, the same results and the same account as :func:`impasto.batch.run_batch` in
one process, spread over an actor pool of Ray Data (``map_batches`` with a callable class: each actor loads the
method once and keeps it for all its pictures; ``num_gpus`` per actor puts each on a GPU).

Every actor runs :class:`impasto.batch.Worker` itself, so reading, decoding, stylizing and the atomic write of each
picture happen where the model is, and the driver only hands out paths and collects one line per picture. On a
cluster, the inputs and the output folder must be on storage every node sees (a shared file system), as for any
Ray job that reads and writes files. ``ray`` is an optional extra: ``pip install 'impasto[ray]'``.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Iterator

from .batch import Item, RaySettings, Worker
from .errors import ImpastoError


def _ray():
    try:
        import ray
    except ImportError:
        raise ImpastoError("--ray needs Ray: pip install 'impasto[ray]' (or pip install 'ray[data]')") from None
    return ray


class _Actor:
    """One actor of the pool: a Worker, its engines kept between batches of rows."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def __call__(self, rows: dict[str, Any]) -> dict[str, list]:
        statuses, details = [], []
        for i in range(len(rows["index"])):
            item = Item(
                content=rows["content"][i],
                output=rows["output"][i],
                styles=json.loads(rows["styles"][i]),
                options=json.loads(rows["options"][i]),
            )
            status, _, detail = self.worker.process(item)
            statuses.append(status)
            details.append(detail)
        return {"index": list(rows["index"]), "status": statuses, "detail": details}


def run_on_ray(items: list[Item], worker: Worker, settings: RaySettings) -> Iterator[tuple[Item, tuple[str, str]]]:
    """(item, (status, detail)) for every item, in the order of `items`, stylized by a pool of Ray actors."""
    ray = _ray()
    if not items:
        return
    if settings.workers < 1 or settings.gpus_per_worker < 0:
        raise ImpastoError("--workers must be at least 1 and --gpus-per-worker at least 0")
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(
                address=settings.address,
                num_cpus=None if settings.address else max(settings.workers, os.cpu_count() or 1),
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
            )
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ImpastoError(f"--ray {settings.address or ''}: cannot start or reach Ray ({e})".strip()) from None
    try:
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # its start and finish lines, for every batch
        rows = [
            {
                "index": i,
                "content": str(item.content),
                "output": str(item.output),
                "styles": json.dumps([str(s) for s in item.styles] if item.styles else None),
                "options": json.dumps(item.options, default=str),
            }
            for i, item in enumerate(items)
        ]
        ds = ray.data.from_items(rows, override_num_blocks=min(len(rows), 4 * settings.workers))
        ds = ds.map_batches(
            _Actor,
            fn_constructor_kwargs={"worker": worker},
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=settings.workers),
            num_cpus=1,
            num_gpus=settings.gpus_per_worker or None,
        )
        results = {int(r["index"]): (str(r["status"]), str(r["detail"])) for r in ds.iter_rows()}
    finally:
        if started_here:
            ray.shutdown()
    for i, item in enumerate(items):
        yield item, results.get(i, ("failed", "no result came back from the Ray workers"))
