"""Benchmark: impasto at its defaults against pastiche 1.6.0 at its defaults (1000 L-BFGS steps), same pairs, 512 px.

Both tools run as separate processes (`python -m impasto stylize ...`, `python -m pastiche ...`) and are timed as
whole processes (start-up, weight loading, image I/O included). Distances are `impasto eval`'s
(`impasto.metrics.evaluate`), measured on every run from the saved outputs.

pastiche takes most of an hour per pair here, so its 1000-step runs are cached under benchmarks/.cache/pastiche/
(not committed) and only run with --run-missing; pairs without a cached run are reported as "not cached". Right
after each 1000-step run, a short reference run (--drift-steps, 20 by default) of the same pair is timed and stored
with it. Every benchmark run re-times that short run on one pair (--drift-pair) and rescales the cached 1000-step
times by now / then, so machine drift (load, thermal, other jobs) does not flatter either tool.

Distance-against-time curves: both tools save intermediates (impasto --save-every, pastiche --workspace); the time
of each is its file's modification time minus the process launch time, i.e. recorded, not estimated. impasto's
coarse-scale intermediates are upsampled (bicubic) to the output's size before they are measured. Only about
--curve-points intermediates per curve, spaced evenly in log time, are measured (pastiche's once, when cached, and
only those are kept). Both tools' times include writing their intermediates (a few dozen PNGs; for impasto,
--impasto-save-every 0 turns them off for a bare timing). pastiche's curve times are rescaled like its total time.

A lent GPU can make the long runs instead (`--pastiche-only --pastiche-device cuda` there, then copy the cache
folders here): the same pastiche command with `--device cuda`, fp32 with TF32 off, content init, so the same output up
to rounding, in a minute instead of an hour. Their CPU time is then modelled in every benchmark run: two short CPU runs
(--model-steps, 10 and 40 steps) give pastiche's start-up and per-step cost (its L-BFGS makes one evaluation a step),
and the time for N steps is start-up + N x per step. The model is checked on every pair that also has a CPU-made run.

Results: docs/BENCHMARKS.md (between the gatys-vs-pastiche markers), docs/gatys_vs_pastiche.png, and
benchmarks/out/gatys-vs-pastiche.json + benchmarks/out/gatys-vs-pastiche/ (impasto's outputs; finished pairs are
kept, so an interrupted run resumes; --fresh starts over).

    .venv/bin/python benchmarks/gatys_vs_pastiche.py                 # impasto now, pastiche from the cache
    .venv/bin/python benchmarks/gatys_vs_pastiche.py --run-missing   # also pastiche for uncached pairs, ~45 min each
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import torch
from _common import DATA, PAIRS, ROOT, code_fingerprint, machine, pair_key, pair_paths, write_section
from PIL import Image

from impasto import __version__
from impasto.core.image import load_image
from impasto.metrics import Evaluator

SECTION = "gatys-vs-pastiche"
TARGET_SPEEDUP = 40  # impasto must take at most 1/40 of pastiche's time
GOAL_SECONDS = 20


# --- running and timing the tools ---------------------------------------------------------------------------------


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p)
    return env


def timed_process(cmd: list[str]) -> tuple[float, float]:
    """Run `cmd` to completion; return (wall seconds, launch time as time.time()). Exits on failure."""
    print("  $ " + shlex.join(cmd), flush=True)
    launch = time.time()
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"command failed (exit {proc.returncode}): {shlex.join(cmd)}\n{proc.stderr[-3000:]}")
    return seconds, launch


def appeared(files: list[tuple[int, Path]], launch: float) -> list[dict]:
    """[{step, t, file}] with t = the file's modification time minus the process launch time."""
    return [{"step": s, "t": p.stat().st_mtime - launch, "file": p.name} for s, p in sorted(files)]


# On CUDA, pastiche runs with TF32 off, so its convolutions are the same fp32 arithmetic as on the CPU.
_PASTICHE_FP32_CUDA = (
    "import sys, torch, runpy; torch.backends.cudnn.allow_tf32 = False; torch.backends.cuda.matmul.allow_tf32 = False; "
    "runpy.run_module('pastiche', run_name='__main__')"
)


def pastiche_cmd(
    content: Path,
    style: Path,
    output: Path,
    steps: int,
    size: int,
    workspace: Path | None,
    every: int,
    device: str = "cpu",
) -> list[str]:
    launch = ["-m", "pastiche"] if device == "cpu" else ["-c", _PASTICHE_FP32_CUDA]
    cmd = [sys.executable, *launch, "--device", device, "--size", str(size), "--seed", "0"]
    cmd += ["--num-steps", str(steps), "--content", str(content), "--styles", str(style), "--output", str(output)]
    cmd += ["--no-verbose"]
    if workspace is not None:
        cmd += ["--workspace", str(workspace), "--workspace-step", str(every)]
    return cmd


def run_info() -> dict:
    return {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": machine(),
        "torch": torch.__version__,
        "pastiche": version("pastiche"),
    }


def pastiche_dir(cache: Path, key: str, size: int, steps: int) -> Path:
    return cache / key / f"{size}px-{steps}steps"


def load_cached(cache: Path, key: str, size: int, steps: int) -> dict | None:
    path = pastiche_dir(cache, key, size, steps) / "result.json"
    return json.loads(path.read_text()) if path.exists() else None


def run_pastiche_cached(args: argparse.Namespace, key: str, run_id: str) -> dict:
    """Run pastiche for --pastiche-steps with intermediates, score its curve and cache everything; return the result.

    Works in a '.partial' folder renamed into place at the end, so a killed run leaves no half result behind.
    """
    content, style = pair_paths(args.data, key)
    final = pastiche_dir(args.cache, key, args.size, args.pastiche_steps)
    work = final.with_name(final.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    workspace = work / "workspace"
    workspace.mkdir(parents=True)
    device = args.pastiche_device
    cmd = pastiche_cmd(
        content, style, work / "output.png", args.pastiche_steps, args.size, workspace, args.pastiche_save_every, device
    )
    print(f"{key}: pastiche on {device}, {args.pastiche_steps} steps (cached afterwards)", flush=True)
    seconds, launch = timed_process(cmd)
    files = [(int(p.stem), p) for p in workspace.glob("*.png")]
    points = appeared(files, launch)
    if device == "cpu":
        points = pick_log_spaced(points, args.curve_points)
    else:
        # Off the CPU, times say nothing about this machine: pick by step; CPU times come from the step model.
        by_step = pick_log_spaced([dict(p, t=p["step"]) for p in points], args.curve_points)
        points = [p for p in points if p["step"] in {q["step"] for q in by_step}]
    keep = {p["file"] for p in points}
    for _, p in files:
        if p.name not in keep:
            p.unlink()  # the cache keeps only the measured intermediates
    result = dict(
        run_info(),
        key=key,
        steps=args.pastiche_steps,
        size=args.size,
        seed=0,
        device=device,
        **({"seconds": seconds} if device == "cpu" else {"device_seconds": seconds, "gpu": _gpu_name()}),
        command=shlex.join(cmd).replace(str(work), str(final)),
        times="from file modification times of the workspace images, relative to the process launch"
        + ("" if device == "cpu" else f" on {device}; not used for this CPU (the step model places them)"),
        curve=score_curve(points, workspace, content, style, upsample=False),
        run_id=run_id,
    )
    (work / "result.json").write_text(json.dumps(result, indent=2))
    shutil.rmtree(final, ignore_errors=True)
    work.rename(final)
    print(f"{key}: pastiche {args.pastiche_steps} steps in {seconds:.0f} s", flush=True)
    return result


def _gpu_name() -> str:
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"


def is_cpu_run(cached: dict) -> bool:
    return cached.get("device", "cpu") == "cpu"


def step_model(args: argparse.Namespace, key: str) -> dict:
    """Time two short CPU runs of pastiche now (n1 < n2 steps); its time for n steps is fixed + n * per_step.

    pastiche's L-BFGS does one evaluation per step (max_iter=1), so its steps cost the same from first to last; the
    fixed part is start-up, weight loading, target features and the output's write.
    """
    n1, n2 = args.model_steps
    t1 = time_short_pastiche(args, key, args.out / SECTION / "model", steps=n1)["seconds"]
    t2 = time_short_pastiche(args, key, args.out / SECTION / "model", steps=n2)["seconds"]
    per_step = (t2 - t1) / (n2 - n1)
    model = {"n1": n1, "t1": t1, "n2": n2, "t2": t2, "per_step": per_step, "fixed": t1 - n1 * per_step}
    print(f"{key}: pastiche on this CPU now: {model['fixed']:.1f} s + {per_step:.2f} s a step", flush=True)
    return model


def time_short_pastiche(args: argparse.Namespace, key: str, where: Path, steps: int | None = None) -> dict:
    """Time a short CPU pastiche run of `key` (--drift-steps unless given; no intermediates), output under `where`."""
    steps = steps or args.drift_steps
    content, style = pair_paths(args.data, key)
    where.mkdir(parents=True, exist_ok=True)
    cmd = pastiche_cmd(content, style, where / "output.png", steps, args.size, None, 0)
    seconds, _ = timed_process(cmd)
    return dict(run_info(), key=key, steps=steps, seconds=seconds, command=shlex.join(cmd))


def ensure_reference(args: argparse.Namespace, key: str, cached: dict, run_id: str) -> dict:
    """The short reference timing stored next to a cached long run (timed now if missing, e.g. after a kill)."""
    ref = cached.get("reference")
    if ref is None or ref["steps"] != args.drift_steps:
        folder = pastiche_dir(args.cache, key, args.size, args.pastiche_steps)
        print(f"{key}: pastiche reference, {args.drift_steps} steps", flush=True)
        ref = time_short_pastiche(args, key, folder / "reference")
        ref["run_id"] = run_id
        cached["reference"] = ref
        path = folder / "result.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cached, indent=2))
        tmp.replace(path)
        print(f"{key}: pastiche reference {args.drift_steps} steps in {ref['seconds']:.1f} s", flush=True)
    return ref


def run_impasto(args: argparse.Namespace, key: str) -> dict:
    content, style = pair_paths(args.data, key)
    folder = args.out / SECTION / key
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    output = folder / "output.png"
    cmd = [sys.executable, "-m", "impasto", "stylize", str(content), str(style), "-o", str(output)]
    cmd += ["--size", str(args.size), "--seed", "0", "-q", "--save-every", str(args.impasto_save_every)]
    cmd += shlex.split(args.impasto_args)
    print(f"{key}: impasto", flush=True)
    seconds, launch = timed_process(cmd)
    files = [(int(p.stem.rsplit("_step", 1)[1]), p) for p in folder.glob("output_step*.png")]
    points = pick_log_spaced(appeared(files, launch), args.curve_points)
    print(f"{key}: impasto in {seconds:.1f} s", flush=True)
    return {
        "seconds": seconds,
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "command": shlex.join(cmd),
        "curve": score_curve(points, folder, content, style, upsample=True),
    }


# --- distances ----------------------------------------------------------------------------------------------------


def pick_log_spaced(points: list[dict], n: int) -> list[dict]:
    """About n of the points, spaced evenly in log time (always the first and the last)."""
    points = [p for p in points if p["t"] > 0]
    if len(points) <= n:
        return points
    lo, hi = math.log(points[0]["t"]), math.log(points[-1]["t"])
    chosen = {0, len(points) - 1}
    for i in range(n):
        target = lo + (hi - lo) * i / (n - 1)
        chosen.add(min(range(len(points)), key=lambda j: abs(math.log(points[j]["t"]) - target)))
    return [points[j] for j in sorted(chosen)]


def distances(image: Image.Image, content: Path, style: Path) -> dict:
    e = evaluate(image, load_image(content), [load_image(style)])
    return {"content": e["content"], "style": e["style"]}


def score_curve(points: list[dict], folder: Path, content: Path, style: Path, upsample: bool) -> list[dict]:
    """Distances of each intermediate; upsample: first resize it to the size of folder/output.png (coarse scales)."""
    size = None
    if upsample and (folder / "output.png").exists():
        with Image.open(folder / "output.png") as im:
            size = im.size
    scored = []
    for p in points:
        image = load_image(folder / p["file"])
        if size and image.size != size:
            image = image.resize(size, Image.Resampling.BICUBIC)
        scored.append(dict(p, **distances(image, content, style)))
    return scored


# --- the run ------------------------------------------------------------------------------------------------------


_EVALUATOR = None


def evaluate(*args, **kwargs) -> dict:
    """`impasto eval`'s distances, with its network loaded once for the whole run."""
    global _EVALUATOR
    _EVALUATOR = _EVALUATOR or Evaluator()
    return _EVALUATOR.evaluate(*args, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="folder with content/ and style/ images")
    parser.add_argument("--size", type=int, default=512, help="longest side for both tools")
    parser.add_argument("--pairs", type=int, default=len(PAIRS), help="how many of the pairs to run")
    parser.add_argument("--only", nargs="+", metavar="KEY", help="only these pairs ('photo+painting')")
    parser.add_argument("--pastiche-steps", type=int, default=1000, help="pastiche's step count (its default)")
    parser.add_argument("--pastiche-save-every", type=int, default=10, help="pastiche intermediates every N steps")
    parser.add_argument("--drift-steps", type=int, default=20, help="steps of the short pastiche re-timing run")
    parser.add_argument(
        "--drift-pair",
        default=None,
        help="pair re-timed for drift ('photo+painting', or 'all' for every cached pair); default: the first cached",
    )
    parser.add_argument("--run-missing", action="store_true", help="run pastiche for pairs not in the cache")
    parser.add_argument(
        "--pastiche-device",
        default="cpu",
        help="where --pastiche-only/--run-missing run pastiche's long runs (e.g. cuda on a lent GPU machine, fp32 with "
        "TF32 off); such runs give outputs and curves by step, and their CPU time comes from --model-steps runs here",
    )
    parser.add_argument(
        "--model-steps",
        type=int,
        nargs=2,
        default=(10, 40),
        metavar=("N1", "N2"),
        help="step counts of the two short CPU runs that time pastiche's start-up and per-step cost",
    )
    parser.add_argument("--impasto-args", default="", help="extra `impasto stylize` flags (default: none = defaults)")
    parser.add_argument("--impasto-save-every", type=int, default=10, help="impasto intermediates every N steps")
    parser.add_argument("--curve-points", type=int, default=12, help="intermediates measured per curve")
    parser.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / ".cache" / "pastiche")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "gatys_vs_pastiche.png")
    parser.add_argument("--fresh", action="store_true", help="rerun impasto on pairs finished by an earlier run")
    parser.add_argument("--report", action="store_true", help="only rewrite the doc and plot from saved results")
    parser.add_argument(
        "--pastiche-only",
        action="store_true",
        help="only fill the pastiche cache (no impasto runs, no drift, no report): for a background job on a busy "
        "machine, where impasto's own timings would not be fair",
    )
    args = parser.parse_args()
    if args.curve_points < 2:
        parser.error(f"--curve-points must be at least 2, got {args.curve_points}")

    run_id = dt.datetime.now().isoformat(timespec="seconds")
    keys = [pair_key(c, s) for c, s in PAIRS[: args.pairs]]
    if args.only:
        unknown = sorted(set(args.only) - set(keys))
        if unknown:
            parser.error(f"--only: not among the pairs: {', '.join(unknown)}")
        keys = [k for k in keys if k in args.only]
    args.out.mkdir(parents=True, exist_ok=True)
    results_file = args.out / f"{SECTION}.json"
    settings = {
        "size": args.size,
        "impasto_args": args.impasto_args,
        "impasto_save_every": args.impasto_save_every,
        "version": __version__,
        "code": code_fingerprint(),
    }
    saved = json.loads(results_file.read_text()) if results_file.exists() else {}
    if args.fresh or saved.get("settings") != settings:
        saved = {"settings": settings, "impasto": {}, "drift": []}
    if not args.report:
        saved["command"] = "python benchmarks/gatys_vs_pastiche.py " + shlex.join(sys.argv[1:])
        saved["run_id"] = run_id

    def save() -> None:
        tmp = results_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(saved, indent=2))
        tmp.replace(results_file)

    def report() -> None:
        rows = collect(args, keys, saved)
        write_section(args.doc, SECTION, render(args, rows, saved))
        plot(args.plot, rows)

    if args.report:
        report()
        return
    if args.pastiche_only:
        for key in keys:
            if load_cached(args.cache, key, args.size, args.pastiche_steps) is None:
                result = run_pastiche_cached(args, key, run_id)
                if is_cpu_run(result):
                    ensure_reference(args, key, result, run_id)
        return
    if args.pastiche_device != "cpu" and args.run_missing:
        parser.error("--pastiche-device other than cpu only goes with --pastiche-only (this run times the CPU)")

    cached = {k: c for k in keys if (c := load_cached(args.cache, k, args.size, args.pastiche_steps))}
    on_cpu = [k for k, c in cached.items() if is_cpu_run(c)]
    if args.drift_pair == "all":
        drift_keys = on_cpu
    elif args.drift_pair:
        if args.drift_pair not in on_cpu:
            sys.exit(f"--drift-pair {args.drift_pair}: no cached {args.pastiche_steps}-step CPU pastiche run for it")
        drift_keys = [args.drift_pair]
    else:
        drift_keys = on_cpu[:1]

    for key in keys:
        if key in saved["impasto"]:
            print(f"{key}: impasto done earlier", flush=True)
            continue
        saved["impasto"][key] = run_impasto(args, key)
        save()

    # Drift: re-time the short pastiche run now, against the timing stored with the cached long run.
    saved["drift"] = []
    for key in drift_keys:
        ref = ensure_reference(args, key, cached[key], run_id)
        print(f"{key}: drift, pastiche {args.drift_steps} steps now", flush=True)
        now = time_short_pastiche(args, key, args.out / SECTION / "drift")
        saved["drift"].append({"key": key, "now": now["seconds"], "then": ref["seconds"], "then_date": ref["date"]})
        print(f"{key}: {args.drift_steps} steps now {now['seconds']:.1f} s, then {ref['seconds']:.1f} s", flush=True)
    if not drift_keys:
        print("drift: no cached CPU pastiche run to compare with", flush=True)
    # The step model: pastiche's CPU time now, for runs made elsewhere, and on the CPU-cached pairs as its check.
    saved["model"] = {}
    for key in [k for k in cached if not is_cpu_run(cached[k])] + drift_keys:
        saved["model"][key] = step_model(args, key)
        save()
    save()
    report()

    if args.run_missing:
        for key in keys:
            if key in cached:
                continue
            cached[key] = run_pastiche_cached(args, key, run_id)
            ensure_reference(args, key, cached[key], run_id)
            report()


def collect(args: argparse.Namespace, keys: list[str], saved: dict) -> dict:
    """Per pair: impasto's and pastiche's time, final distances (measured now) and rescaled curves."""
    measured = {d["key"]: d["now"] / d["then"] for d in saved.get("drift", [])}
    overall = sum(measured.values()) / len(measured) if measured else None
    models = saved.get("model", {})
    rows = {}
    for key in keys:
        content, style = pair_paths(args.data, key)
        row: dict = {}
        imp = saved["impasto"].get(key)
        out = args.out / SECTION / key / "output.png"
        if imp and out.exists():
            final = load_image(out)
            row["size"] = f"{final.width}x{final.height}"
            row["impasto"] = dict(seconds=imp["seconds"], curve=imp["curve"], **distances(final, content, style))
        cached = load_cached(args.cache, key, args.size, args.pastiche_steps)
        model = models.get(key)
        predicted = model["fixed"] + cached["steps"] * model["per_step"] if cached and model else None
        if cached and is_cpu_run(cached):
            # A pair cached in this very run needs no rescaling; otherwise its own drift ratio, else the mean one.
            ratio = 1.0 if cached.get("run_id") == saved.get("run_id") else measured.get(key, overall)
            scale = ratio if ratio is not None else 1.0
            pas = dict(
                device="cpu",
                cached_seconds=cached["seconds"],
                ratio=ratio,
                seconds=cached["seconds"] * scale,
                predicted=predicted,
                curve=[dict(p, t=p["t"] * scale) for p in cached["curve"]],
            )
        elif cached and model:
            # Made off this CPU: its CPU time is the step model's, timed in this run.
            pas = dict(
                device=cached["device"],
                seconds=predicted,
                predicted=predicted,
                curve=[dict(p, t=model["fixed"] + p["step"] * model["per_step"]) for p in cached["curve"]],
            )
        else:
            pas = None
        if pas:
            folder = pastiche_dir(args.cache, key, args.size, args.pastiche_steps)
            final = load_image(folder / "output.png")
            row.setdefault("size", f"{final.width}x{final.height}")
            row["pastiche"] = dict(pas, date=cached["date"], **distances(final, content, style))
        rows[key] = row
    return rows


def verdict(imp: dict, pas: dict) -> str:
    misses = [name for name in ("content", "style") if imp[name] > pas[name]]
    if imp["seconds"] > pas["seconds"] / TARGET_SPEEDUP:
        misses.append("time")
    return "**yes**" if not misses else "no (" + ", ".join(misses) + ")"


def render(args: argparse.Namespace, rows: dict, saved: dict) -> str:
    n_steps = args.pastiche_steps
    drift = saved.get("drift", [])
    if drift:
        drift_text = "; ".join(
            f"{d['key']}: {args.drift_steps} steps now {d['now']:.1f} s against {d['then']:.1f} s on "
            f"{d['then_date'][:10]} (x{d['now'] / d['then']:.2f})"
            for d in drift
        )
    else:
        drift_text = "not measured (no CPU pastiche run cached before this run)"
    models = saved.get("model", {})
    made_off_cpu = [k for k, r in rows.items() if r.get("pastiche") and r["pastiche"]["device"] != "cpu"]
    checks = [
        f"{k}: {r['pastiche']['predicted']:.0f} s predicted against {r['pastiche']['seconds']:.0f} s measured "
        f"(x{r['pastiche']['predicted'] / r['pastiche']['seconds']:.2f})"
        for k, r in rows.items()
        if r.get("pastiche") and r["pastiche"]["device"] == "cpu" and r["pastiche"]["predicted"]
    ]
    model_text = "; ".join(
        f"{k}: {m['fixed']:.1f} s + {m['per_step']:.2f} s a step ({m['n1']} steps {m['t1']:.1f} s, "
        f"{m['n2']} steps {m['t2']:.1f} s)"
        for k, m in models.items()
    )
    plot_link = os.path.relpath(args.plot, args.doc.parent)
    impasto_flags = f"--size {args.size} --seed 0" + (f" {args.impasto_args}" if args.impasto_args else "")
    every = args.impasto_save_every
    saving = f"intermediates saved every {every} steps for the curve, in its time" if every else "no intermediates"
    lines = [
        f"## impasto against pastiche 1.6.0: `{SECTION}`, `benchmarks/gatys_vs_pastiche.py`",
        "",
        f"- date: {str(saved.get('run_id', ''))[:10] or 'unknown'}; machine: {machine()}",
        f"- command: `{saved.get('command', '').strip()}`",
        f"- pastiche: `python -m pastiche --device cpu --size {args.size} --seed 0 --num-steps {n_steps}`, all else "
        f"at its defaults; its {n_steps}-step runs are cached locally, rescaled by a {args.drift_steps}-step run "
        f"re-timed now against one timed with the cached run: {drift_text}",
        f"- impasto: `impasto stylize {impasto_flags}`, all else at its defaults ({saving})",
    ]
    if made_off_cpu:
        lines += [
            f"- pastiche's {n_steps}-step runs of {', '.join(made_off_cpu)} were made on a lent GPU (same command with "
            "`--device cuda`, fp32 with TF32 off, same content init, so the same arithmetic up to rounding); their "
            "times on this CPU come from a step model timed in this run: two short CPU runs per pair give pastiche's "
            f"start-up and per-step cost, and its {n_steps}-step time is start-up + {n_steps} x per step. Model: "
            f"{model_text}",
            "- the model's check, on the pair(s) also run for all their steps on this CPU: "
            + ("; ".join(checks) if checks else "none in this run"),
        ]
    lines += [
        "- times: whole processes, wall clock; pastiche's cached time rescaled by the drift ratio. Distances: "
        "`impasto eval` (lower is closer). Target: impasto's content and style distances both no higher than "
        f"pastiche's, in at most 1/{TARGET_SPEEDUP} of its time (goal beyond: under {GOAL_SECONDS} s)",
        "",
        f"| pair | size | pastiche {n_steps} steps: time (s) on this CPU | content | style | "
        "impasto: time (s) | content | style | pastiche / impasto time | target met |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    both = []
    for key, r in rows.items():
        imp, pas = r.get("impasto"), r.get("pastiche")
        if pas and pas["device"] == "cpu":
            drift = f", drift x{pas['ratio']:.2f}" if pas["ratio"] is not None else ", no drift check"
            p_cells = (
                f"{pas['seconds']:.0f} (measured {pas['cached_seconds']:.0f}{drift}) | {pas['content']:.3f} | "
                f"{pas['style']:.4f}"
            )
        elif pas:
            p_cells = f"GPU-made; {pas['seconds']:.0f} (model) | {pas['content']:.3f} | {pas['style']:.4f}"
        else:
            p_cells = "not cached | | "
        i_cells = f"{imp['seconds']:.1f} | {imp['content']:.3f} | {imp['style']:.4f}" if imp else "not run | | "
        if imp and pas:
            both.append(r)
            tail = f"{pas['seconds'] / imp['seconds']:.1f} | {verdict(imp, pas)}"
        else:
            tail = " | n/a"
        lines.append(f"| {key} | {r.get('size', '')} | {p_cells} | {i_cells} | {tail} |")
    if both:
        n = len(both)
        mean = lambda tool, f: sum(r[tool][f] for r in both) / n  # noqa: E731
        imp = {f: mean("impasto", f) for f in ("seconds", "content", "style")}
        pas = {f: mean("pastiche", f) for f in ("seconds", "content", "style")}
        met = sum(verdict(r["impasto"], r["pastiche"]) == "**yes**" for r in both)
        lines.append(
            f"| **mean of {n}** | | {pas['seconds']:.0f} | {pas['content']:.3f} | "
            f"{pas['style']:.4f} | {imp['seconds']:.1f} | {imp['content']:.3f} | {imp['style']:.4f} | "
            f"{pas['seconds'] / imp['seconds']:.1f} | means: {verdict(imp, pas)}; {met} of {n} pairs |"
        )
    only = [r for r in rows.values() if r.get("impasto") and not r.get("pastiche")]
    if only:
        done = [r["impasto"] for r in rows.values() if r.get("impasto")]
        lines += [
            "",
            f"{len(only)} pair(s) have no cached pastiche run (`--run-missing` runs them, ~45 min each). impasto over "
            f"all {len(done)} pairs: {sum(r['seconds'] for r in done) / len(done):.1f} s, content "
            f"{sum(r['content'] for r in done) / len(done):.3f}, "
            f"style {sum(r['style'] for r in done) / len(done):.4f}.",
        ]
    lines += [
        "",
        f"![content and style distance against wall time, both tools]({plot_link})",
        "",
        "Curves: intermediates saved by each tool, timed by their file modification times from the process launch "
        "(pastiche's rescaled by the drift ratio, or placed by the step model for GPU-made runs); impasto's "
        "coarse-scale intermediates upsampled to the output size "
        "before they are measured. Markers: final outputs.",
    ]
    return "\n".join(lines)


def plot(path: Path, rows: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    colors = {"pastiche": "tab:blue", "impasto": "tab:orange"}
    pastiche_times = []
    for tool, color in colors.items():
        for r in rows.values():
            res = r.get(tool)
            if not res:
                continue
            if tool == "pastiche":
                pastiche_times.append(res["seconds"])
            curve = [p for p in res["curve"] if p["t"] > 0] + [
                {"t": res["seconds"], "content": res["content"], "style": res["style"]}
            ]
            curve.sort(key=lambda p: p["t"])
            for ax, metric in zip(axes, ("content", "style")):
                ax.plot([p["t"] for p in curve], [p[metric] for p in curve], color=color, alpha=0.55, lw=1.2)
                ax.plot(res["seconds"], res[metric], "o", color=color, ms=4)
    for ax, metric in zip(axes, ("content", "style")):
        ax.set_xscale("log")
        ax.set_xlabel("wall time since process launch (s, log)")
        ax.set_ylabel(f"{metric} distance (impasto eval)")
        ax.set_title(f"{metric} distance against time, one line per pair")
        ax.grid(True, which="both", alpha=0.25)
        ax.axvline(GOAL_SECONDS, color="gray", ls=":", lw=1)
        if pastiche_times:
            ax.axvline(sum(pastiche_times) / len(pastiche_times) / TARGET_SPEEDUP, color="gray", ls="--", lw=1)
    axes[1].set_yscale("log")
    handles = [plt.Line2D([], [], color=c, marker="o", ms=4, label=t) for t, c in colors.items()]
    handles.append(plt.Line2D([], [], color="gray", ls=":", label=f"{GOAL_SECONDS} s goal"))
    if pastiche_times:
        handles.append(plt.Line2D([], [], color="gray", ls="--", label=f"1/{TARGET_SPEEDUP} of pastiche's mean time"))
    axes[0].legend(handles=handles, loc="best", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
