"""Many pictures in one call: inputs gathered from files, folders, globs or a manifest, the method loaded once, outputs
written atomically under one folder, finished ones skipped on a rerun, bad inputs recorded while the rest go on, and
an account of it all in ``report.json``.

This module imports no torch itself; the method's engine does, once.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .api import get_method, takes_style_images
from .core.image import OUTPUT_FORMATS, load_image, save_image
from .errors import ImpastoError
from .options import field_names, load_key, make

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
# Videos in a batch go through impasto video, one file each, into an MP4 of the same name.
VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi")
MANIFEST_EXTENSIONS = (".csv", ".jsonl")
REPORT = "report.json"


@dataclass
class Item:
    """One picture to make: its photo, where the result goes (relative to the output folder), and what a manifest
    row changes for it (its own paintings, options)."""

    content: Path
    output: Path
    styles: list[Path] | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    """What a batch did; written as report.json in the output folder."""

    method: str
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # outputs that existed already (--skip-existing)
    failed: list[dict[str, str]] = field(default_factory=list)  # {"input": ..., "error": one line}
    ignored: list[str] = field(default_factory=list)  # files in the folders that are not pictures (by extension)
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "done": self.done,
            "skipped": self.skipped,
            "failed": self.failed,
            "ignored": self.ignored,
            "seconds": round(self.seconds, 3),
            "interrupted": self.interrupted,
        }


def gather(
    inputs: Sequence[str | os.PathLike], recursive: bool = False, suffix: str = ".png"
) -> tuple[list[Item], list[str]]:
    """The pictures named by files, folders (their pictures; with `recursive`, their sub-folders' too, keeping the
    relative layout), glob patterns or manifests (.csv / .jsonl). Returns (items, ignored files)."""
    items: list[Item] = []
    ignored: list[str] = []
    for raw in inputs:
        text = str(raw)
        path = Path(text)
        if path.suffix.lower() in MANIFEST_EXTENSIONS and path.is_file():
            items += read_manifest(path, suffix)
        elif path.is_dir():
            pattern = "**/*" if recursive else "*"
            for f in sorted(p for p in path.glob(pattern) if p.is_file()):
                if f.suffix.lower() in IMAGE_EXTENSIONS:
                    items.append(Item(f, f.relative_to(path).with_suffix(suffix)))
                elif f.suffix.lower() in VIDEO_EXTENSIONS:
                    items.append(Item(f, f.relative_to(path).with_suffix(".mp4")))
                else:
                    ignored.append(str(f))
        elif glob.has_magic(text):
            base = Path(_glob_base(text))
            matches = sorted(Path(m) for m in glob.glob(text, recursive=recursive) if Path(m).is_file())
            if not matches:
                raise ImpastoError(f"{text}: no file matches this pattern")
            for f in matches:
                items.append(
                    Item(f, f.relative_to(base).with_suffix(suffix) if base != Path() else f.with_suffix(suffix))
                )
        elif path.is_file():
            out_suffix = ".mp4" if path.suffix.lower() in VIDEO_EXTENSIONS else suffix
            items.append(Item(path, Path(path.name).with_suffix(out_suffix)))
        else:
            raise ImpastoError(f"{text}: no such file, folder or matching pattern")
    seen: dict[Path, Path] = {}
    for item in items:
        if item.output in seen and seen[item.output] != item.content:
            raise ImpastoError(
                f"{seen[item.output]} and {item.content} would both be written to {item.output}; name the outputs "
                "in a manifest or keep the folders apart"
            )
        seen[item.output] = item.content
    return items, ignored


def _glob_base(pattern: str) -> str:
    """The folder part of a glob pattern before its first wildcard: outputs keep the layout below it."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return str(Path(*fixed)) if fixed else "."


def read_manifest(path: Path, suffix: str = ".png") -> list[Item]:
    """Rows of a CSV (header row) or JSON Lines manifest: `content` (required), `style` (paths separated by ';', or a
    list in JSON), `output` (file name under the output folder), and any option of the method (as text or JSON
    values). Relative paths are taken from the manifest's folder."""
    rows: list[dict[str, Any]] = []
    try:
        if path.suffix.lower() == ".csv":
            with open(path, newline="") as f:
                rows = [{k: v for k, v in row.items() if v not in (None, "")} for row in csv.DictReader(f)]
        else:
            with open(path) as f:
                for number, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            row = json.loads(line)
                        except json.JSONDecodeError as e:
                            raise ImpastoError(f"{path}, line {number}: not JSON ({e.msg})") from None
                        if not isinstance(row, dict):
                            raise ImpastoError(f"{path}, line {number}: expected an object, got {type(row).__name__}")
                        rows.append(row)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ImpastoError(f"{path}: cannot read the manifest ({e})") from None
    items = []
    for number, row in enumerate(rows, 1):
        row = dict(row)
        if "content" not in row:
            raise ImpastoError(f"{path}, row {number}: no 'content' column")
        content = _relative(path, row.pop("content"))
        styles = row.pop("style", None)
        if isinstance(styles, str):
            styles = [s.strip() for s in styles.split(";") if s.strip()]
        output = row.pop("output", None)
        out = Path(output) if output else Path(content.name).with_suffix(suffix)
        if out.is_absolute() or ".." in out.parts:
            raise ImpastoError(f"{path}, row {number}: output {output!r} must be a name inside the output folder")
        items.append(Item(content, out, [_relative(path, s) for s in styles] if styles else None, row))
    return items


def _relative(manifest: Path, value: Any) -> Path:
    p = Path(str(value))
    return p if p.is_absolute() else manifest.parent / p


def _convert_row(declared_options: type, values: dict[str, Any], where: str) -> dict[str, Any]:
    """A manifest row's option values, from text (CSV) or JSON, by the options' declared kinds."""
    from .options import declared, parse_text

    kinds = {d.name: d for d in declared(declared_options)}
    out = {}
    for name, value in values.items():
        if name not in kinds:
            raise ImpastoError(f"{where}: unknown option {name!r}; known: {', '.join(sorted(kinds))}")
        out[name] = parse_text(kinds[name], value) if isinstance(value, str) else value
    return out


def run_batch(
    inputs: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    styles: Sequence[str | os.PathLike] = (),
    method: str = "gatys",
    *,
    recursive: bool = False,
    skip_existing: bool = True,
    suffix: str = ".png",
    progress: bool = False,
    on_item: Callable[[str, str, str], None] | None = None,
    ray: RaySettings | None = None,
    temporal: float | None = None,
    crf: int | None = None,
    preset: str | None = None,
    max_pixels: int | None = None,
    **options: Any,
) -> Report:
    """Stylize every picture `inputs` name into `output_dir`; see the module's notes. `options` are the method's
    Options fields, for every picture (a manifest row may change them for its own). Returns the report, also
    written to ``output_dir/report.json``. `on_item(status, input, detail)` hears of each picture. With `ray`, the
    pictures are stylized by a Ray Data actor pool (:mod:`impasto.batch_ray`) instead of in this process.
    `temporal`, `crf`, `preset` and `max_pixels` are :func:`impasto.video.stylize_video`'s, for the videos among the
    inputs (None: its defaults)."""
    from tqdm import tqdm

    module = get_method(method)
    if suffix.lower() not in OUTPUT_FORMATS:
        raise ImpastoError(f"unsupported output format {suffix!r}; use one of {', '.join(sorted(OUTPUT_FORMATS))}")
    out_dir = Path(output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ImpastoError(f"{out_dir}: not a folder")
    items, ignored = gather(inputs, recursive, suffix)
    default_styles = [load_image(s) for s in styles]  # a bad painting stops the batch before any work
    base = make(module.Options, options, f"method {method!r}")
    if any(item.styles is None for item in items):
        if not default_styles and takes_style_images(module):
            raise ImpastoError("no style images: give --style, or a 'style' column for every manifest row")
        base.validate(len(default_styles))
    if temporal is not None:
        from .video import check_temporal

        check_temporal(temporal)
    from .core.video import check_crf, check_preset

    if crf is not None:
        check_crf(crf)
    check_preset(preset)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = Report(method=method, ignored=ignored)
    start = time.perf_counter()
    bar = tqdm(total=len(items), disable=True if not progress else None, unit="picture", dynamic_ncols=True)

    def record(status: str, item: Item, detail: str = "") -> None:
        if status == "failed":
            report.failed.append({"input": str(item.content), "error": detail})
        else:
            getattr(report, status).append(str(item.output))
        if on_item is not None:
            on_item(status, str(item.content), detail)
        bar.update(1)

    worker = Worker(
        method,
        _fields(base),
        default_styles,
        out_dir,
        skip_existing,
        {"temporal": temporal, "crf": crf, "preset": preset, "max_pixels": max_pixels},
    )
    try:
        if ray is not None:
            from .batch_ray import run_on_ray

            for item, (status, detail) in run_on_ray(items, worker, ray):
                record(status, item, detail)
        else:
            for item in items:
                record(*worker.process(item))
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        bar.close()
        report.seconds = time.perf_counter() - start
        write_report(report, out_dir / REPORT)
    return report


@dataclass
class RaySettings:
    """Where and how wide a batch runs on Ray: a cluster's address (None: a local Ray started for the job), actors
    (each loads the method once), GPUs per actor."""

    address: str | None = None
    workers: int = 2
    gpus_per_worker: float = 0.0


class Worker:
    """Makes one picture of a batch: the same code in this process and in each Ray actor. Engines are loaded on first
    use and kept while the pictures' options allow (one network in memory at a time)."""

    def __init__(
        self,
        method: str,
        options: dict[str, Any],
        styles: list,
        out_dir: Path,
        skip_existing: bool,
        video: dict[str, Any] | None = None,
    ) -> None:
        self.method, self.options, self.styles = method, options, styles
        self.out_dir, self.skip_existing = Path(out_dir), skip_existing
        # impasto video's settings for the videos among the pictures (temporal, crf, preset, max_pixels); None: its
        # defaults.
        self.video = {k: v for k, v in (video or {}).items() if v is not None}
        self.engines: dict[tuple, Any] = {}

    def __getstate__(self) -> dict:  # sent to Ray actors without the loaded networks
        return {**self.__dict__, "engines": {}}

    def process(self, item: Item) -> tuple[str, Item, str]:
        """(status, item, detail): "done", "skipped" (the output exists) or "failed" with a one-line reason."""
        module = get_method(self.method)
        target = self.out_dir / item.output
        if self.skip_existing and target.exists():
            return "skipped", item, ""
        try:
            opts = make(module.Options, self.options, f"method {self.method!r}")
            if item.options:
                row = _convert_row(module.Options, item.options, str(item.content))
                opts = make(module.Options, {**self.options, **row}, f"method {self.method!r}")
            item_styles = [load_image(s) for s in item.styles] if item.styles else self.styles
            opts.validate(len(item_styles))
            key = load_key(opts)
            if key not in self.engines:
                self.engines.clear()  # one network in memory at a time
                self.engines[key] = module.load(opts)
            if Path(item.content).suffix.lower() in VIDEO_EXTENSIONS:
                from .video import stylize_video

                target.parent.mkdir(parents=True, exist_ok=True)
                stylize_video(
                    item.content,
                    target,
                    item_styles,
                    self.method,
                    size=opts.size,
                    engine=self.engines[key],
                    method_options=opts,
                    **self.video,
                )
                return "done", item, ""
            content = load_image(item.content)
            result = self.engines[key].run(content, item_styles, opts)
            if result.stopped == "interrupted":
                raise KeyboardInterrupt
            target.parent.mkdir(parents=True, exist_ok=True)
            save_image(result.image, target)
            return "done", item, ""
        except ImpastoError as e:
            return "failed", item, str(e)


def _fields(options: Any) -> dict[str, Any]:
    return {name: getattr(options, name) for name in field_names(options)}


def write_report(report: Report, path: Path) -> None:
    """report.json, atomically."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(report.as_dict(), f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def summary(report: Report) -> list[str]:
    """The account printed at the end: counts, then each failure with its reason."""
    lines = [
        f"{len(report.done)} done, {len(report.skipped)} skipped (already there), {len(report.failed)} failed"
        + (f", {len(report.ignored)} ignored (not pictures)" if report.ignored else "")
        + (", interrupted" if report.interrupted else "")
        + f" in {report.seconds:.1f} s"
    ]
    # Most reasons already start with the file's name.
    lines += [
        f"failed: {f['error'] if f['error'].startswith(f['input']) else f['input'] + ': ' + f['error']}"
        for f in report.failed
    ]
    return lines


def batch(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    output_dir: str | os.PathLike,
    styles: str | os.PathLike | Sequence[str | os.PathLike] = (),
    method: str = "gatys",
    **kwargs: Any,
) -> dict[str, Any]:
    """``impasto batch`` from Python: returns the report (as in report.json). See :func:`run_batch`."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    if isinstance(styles, (str, os.PathLike)):
        styles = [styles]
    return run_batch(list(inputs), output_dir, list(styles), method, **kwargs).as_dict()
