"""The one training loop every trainer runs on: checkpoints, exact resume, Ctrl-C and SIGTERM, previews, logs.

A trainer supplies a :class:`Task` (its model, loss and outputs) and its config (declared with
:func:`impasto.options.option`, with the fields in :data:`LOOP_FIELDS`); :func:`run` does the rest. Every step's
batch depends only on (seed, step), so a resumed run sees exactly the batches an uninterrupted run would have, and a
checkpoint holds the step, the optimizer and the task's state.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ..errors import ImpastoError
from .data import WORKER_KILLED, stream

# Fields a trainer's config must have for the loop.
LOOP_FIELDS = ("output", "steps", "checkpoint_every", "preview_every", "seed")


class Task(Protocol):
    """What a trainer gives the loop."""

    # What the optimizer trains: parameters, or parameter groups (dicts) where a group's "lr_scale" multiplies the rate.
    def parameters(self) -> Sequence[torch.nn.Parameter] | Sequence[dict[str, Any]]: ...

    def start(self, resumed: bool) -> None: ...  # set-up once the state is known (e.g. calibration)

    def batch(self, step: int) -> Any: ...  # the batch of a step: a pure function of (seed, step)

    def loss(self, batch: Any, step: int) -> tuple[torch.Tensor, dict[str, float]]: ...  # (loss, terms to log)

    def lr(self, step: int) -> float: ...

    def state_dict(self) -> dict[str, Any]: ...  # saved in the checkpoint beside step, optimizer, config and log

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def save_output(self, step: int) -> None: ...  # write the model file(s)

    def preview(self, step: int) -> Image.Image | None: ...


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C or SIGTERM; `saved` says whether a checkpoint of `step` was written."""

    def __init__(self, step: int, saved: bool, checkpoint: Path) -> None:
        super().__init__(f"interrupted at step {step}")
        self.step, self.saved, self.checkpoint = step, saved, checkpoint


def kept_dir(cfg: Any) -> Path:
    """The folder of the model files kept by --keep-every: OUTPUT_steps/ next to the output."""
    out = Path(cfg.output)
    return out.with_suffix("").with_name(out.stem + "_steps")


def checkpoint_path(cfg: Any) -> Path:
    """The checkpoint file: cfg.checkpoint, else OUTPUT.ckpt."""
    return Path(cfg.checkpoint) if getattr(cfg, "checkpoint", None) else Path(cfg.output + ".ckpt")


def preview_path(cfg: Any) -> Path:
    """The folder of preview grids: cfg.preview_dir, else OUTPUT_previews/ next to the output."""
    if getattr(cfg, "preview_dir", None):
        return Path(cfg.preview_dir)
    out = Path(cfg.output)
    return out.with_suffix("").with_name(out.stem + "_previews")


def save_checkpoint(path: Path, state: dict) -> None:
    """Write a checkpoint atomically (a temporary file, then a rename)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """A training checkpoint (task state, optimizer, step, config, log), or a one-line ImpastoError."""
    p = Path(path)
    if not p.is_file():
        raise ImpastoError(f"--resume: no checkpoint at {p}")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise ImpastoError(f"--resume: {p} is not a readable checkpoint ({e.__class__.__name__})") from None


def _check_writable(folder: Path, what: str) -> None:
    # The nearest existing ancestor must be writable (folders below it are created).
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ImpastoError(f"{what} {folder}: {existing} is not a folder")
    if not os.access(existing, os.W_OK):
        raise ImpastoError(f"{what} {folder}: {existing} is not writable")


def check_paths(cfg: Any, resume: bool, overwrite: bool) -> None:
    """Fail in the first second, not hours later at the first checkpoint."""
    out = Path(cfg.output)
    if not out.parent.is_dir():
        raise ImpastoError(f"output folder {out.parent} does not exist")
    _check_writable(out.parent, "output folder")
    ckpt = checkpoint_path(cfg)
    if not ckpt.parent.is_dir():
        raise ImpastoError(f"--checkpoint {ckpt}: folder {ckpt.parent} does not exist")
    _check_writable(ckpt.parent, "--checkpoint folder")
    if cfg.preview_every:
        _check_writable(preview_path(cfg), "--preview-dir")
    if not resume and ckpt.exists() and not overwrite:
        raise ImpastoError(f"checkpoint {ckpt} exists: --resume continues it, --overwrite starts a new run over it")


def check_resumable(state: dict, cfg: Any, keys: Sequence[str], where: Path) -> None:
    """Refuse to resume with settings that would silently continue a different experiment."""
    stored = state.get("config") or {}
    changed = [
        f"--{k.replace('_', '-')} {stored[k]} (now {getattr(cfg, k)})"
        for k in keys
        if k in stored and stored[k] != getattr(cfg, k)
    ]
    if changed:
        raise ImpastoError(f"--resume: {where} was trained with " + ", ".join(changed) + "; use the same settings")


def init_digest(cfg: Any) -> str | None:
    """The SHA-256 of the model file a run starts from (``cfg.init``), or None without one: a resumed run reads its
    recipe (and, for some trainers, frozen weights) from that file again, so a file changed in place since the run
    began would silently continue another experiment."""
    init = getattr(cfg, "init", None)
    if not isinstance(init, (str, os.PathLike)) or not Path(init).is_file():
        return None
    import hashlib

    h = hashlib.sha256()
    with open(init, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def begin(cfg: Any, resume: bool, overwrite: bool, resume_keys: Sequence[str]) -> tuple[Path, dict | None]:
    """The start every trainer shares: settings checked, paths checked (in the first second, not at the first
    checkpoint), and with `resume` the checkpoint loaded and checked against `resume_keys`. Returns (checkpoint path,
    checkpoint state or None)."""
    cfg.validate()
    check_paths(cfg, resume, overwrite)
    path = checkpoint_path(cfg)
    state = load_checkpoint(path) if resume else None
    if state is not None:
        check_resumable(state, cfg, resume_keys, path)
        # Trainers that resume without --init (fast, distill: "not both") keep what the file gave in the checkpoint.
        given = getattr(cfg, "init", None) is not None
        if given and state.get("init_digest") and init_digest(cfg) != state["init_digest"]:
            raise ImpastoError(
                f"--resume: --init {cfg.init} is not the file {path} began from (it has changed since); "
                "use that file, or start afresh"
            )
    return path, state


def already_done(state: dict | None, cfg: Any) -> dict | None:
    """The summary of a resumed run that has nothing left to do (e.g. a finished phase of a schedule), else None."""
    if state is not None and int(state["step"]) >= cfg.steps:
        return summary(int(state["step"]), 0.0, 0, list(state.get("log", [])), cfg)
    return None


def summary(step: int, seconds: float, steps_this_run: int, log: list[dict], cfg: Any) -> dict:
    """The end of a run: the step reached, time, and the mean losses of the last 100 steps."""
    recent = log[-min(len(log), 100) :] if log else []
    out = {
        "step": step,
        "seconds": seconds,
        "steps_this_run": steps_this_run,
        "output": str(cfg.output),
        "checkpoint": str(checkpoint_path(cfg)),
    }
    keys = dict.fromkeys(k for r in recent for k in r if k not in ("step", "loss"))
    out["losses"] = {k: float(np.mean([r[k] for r in recent if k in r])) for k in keys}
    out.update(out["losses"])
    return out


def run(
    task: Task,
    cfg: Any,
    *,
    resume: bool = False,
    resume_keys: Sequence[str] = (),
    workers: int = 0,
    progress: bool = False,
    on_step: Callable[[int, dict], None] | None = None,
    state: dict | None = None,
) -> dict:
    """Train `task` up to ``cfg.steps``; returns :func:`summary`'s dict.

    `state` is the checkpoint when resuming (already loaded and checked by the caller). Ctrl-C (and SIGTERM, which
    the command line turns into Ctrl-C) raises :class:`TrainingInterrupted` after saving a checkpoint of the steps
    done this run.
    """
    ckpt = checkpoint_path(cfg)
    optimizer = torch.optim.Adam(task.parameters(), lr=task.lr(0))
    log: list[dict] = []
    start_step = 0
    if state is not None:
        task.load_state_dict(state)
        if "optimizer" in state:  # a warm start from a model file has none: Adam starts afresh
            try:
                optimizer.load_state_dict(state["optimizer"])
            except ValueError as e:  # other parameter groups: settings that change what trains, or how fast
                raise ImpastoError(f"--resume: the checkpoint's optimizer does not fit these settings ({e})") from None
        start_step = int(state["step"])
        log = list(state.get("log", []))
    task.start(resumed=state is not None)
    digest = init_digest(cfg)

    def save(step: int) -> None:
        save_checkpoint(
            ckpt,
            {
                "step": step,
                **task.state_dict(),
                "optimizer": optimizer.state_dict(),
                "config": asdict(cfg),
                "log": log,
                "init_digest": digest,
            },
        )
        task.save_output(step)
        keep(step)

    kept = [start_step]  # the step of the last copy kept (or of the run's start)

    def keep(step: int) -> None:
        # A copy of the model file at the first save past each multiple of --keep-every: a long run on a CPU can
        # meet a loss spike that training takes hundreds of steps to undo, and its checkpoint then holds only the
        # spoilt weights.
        every = getattr(cfg, "keep_every", 0) or 0
        if every > 0 and step // every > kept[0] // every and Path(cfg.output).is_file():
            folder = kept_dir(cfg)
            folder.mkdir(parents=True, exist_ok=True)
            out = Path(cfg.output)
            tmp = folder / f".step{step:06d}{out.suffix}.tmp"
            shutil.copyfile(out, tmp)
            os.replace(tmp, folder / f"step{step:06d}{out.suffix}")
            kept[0] = step

    bar = tqdm(
        total=cfg.steps, initial=start_step, disable=True if not progress else None, unit="step", dynamic_ncols=True
    )
    t0 = time.perf_counter()
    step = start_step
    batches = stream(task.batch, start_step, cfg.steps, workers)

    def stop_data() -> None:
        close = getattr(batches, "close", None)
        if close is not None:
            close()

    def save_on_the_way_out(step: int) -> None:
        # A signal sent to the whole command reaches the data workers too, and torch reports each worker's death
        # as a RuntimeError from its SIGCHLD handler, wherever the main process is: in the middle of this save, it
        # would end the run with a traceback. So the stream is closed first (it stops its workers, see
        # impasto.train.data.stream), and a death reported all the same only costs a second try.
        if step <= start_step:  # nothing new to save before the first step of this run: the old checkpoint stands
            return
        stop_data()
        try:
            save(step)
        except RuntimeError as e:
            if not str(e).startswith(WORKER_KILLED):
                raise
            save(step)

    try:
        for batch in batches:
            for group in optimizer.param_groups:
                group["lr"] = task.lr(step) * group.get("lr_scale", 1.0)  # a task may give groups their own scale
            loss, terms = task.loss(batch, step)
            if not torch.isfinite(loss):
                raise ImpastoError(f"the loss became NaN or infinite at step {step}; lower --lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            terms = {"step": step, **terms, "loss": loss.item()}
            log.append(terms)
            bar.update(1)
            bar.set_postfix({k: f"{v:.3f}" for k, v in terms.items() if k not in ("step", "loss")})
            if on_step is not None:
                on_step(step, terms)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                save(step)
            if cfg.preview_every and (step % cfg.preview_every == 0 or step == cfg.steps):
                grid = task.preview(step)
                if grid is not None:
                    preview_path(cfg).mkdir(parents=True, exist_ok=True)
                    grid.save(preview_path(cfg) / f"step{step:06d}.jpg", quality=90)
    except KeyboardInterrupt:
        save_on_the_way_out(step)
        raise TrainingInterrupted(step, step > start_step or ckpt.exists(), ckpt) from None
    except Exception as e:
        # Keep what was learned, then report the problem (a worker's error arrives wrapped: unwrap its message).
        save_on_the_way_out(step)
        message = str(e)
        if isinstance(e, RuntimeError) and message.startswith(WORKER_KILLED):
            # A signal sent to every process of the command (`pkill -f`, a job runner) reaches the data workers
            # too: that is the run being stopped, not a bug, so it ends as Ctrl-C does.
            raise TrainingInterrupted(step, step > start_step or ckpt.exists(), ckpt) from None
        if "Original Traceback" in message and "ImpastoError: " in message:
            raise ImpastoError(message.rsplit("ImpastoError: ", 1)[1].strip().splitlines()[0]) from None
        raise
    finally:
        bar.close()
        stop_data()
    return summary(step, time.perf_counter() - t0, step - start_step, log, cfg)
