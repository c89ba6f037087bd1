"""Profile of a Gatys step: where the time of impasto's default run goes, and what the speed levers measure.

Measured on one pair (Tübingen + Starry Night by default), each figure the median of several repetitions after a
warm-up, in this process with the configured threads:

1. Step cost per scale (the longest side of each default scale: 128, 256, 512 px) for fp32 and bf16 autocast, with
   channels_last and with contiguous tensors: one objective evaluation (VGG forward + backward, content, style and TV
   losses) and, separately, the L-BFGS update itself (the optimizer's own overhead).
2. Where a 512 px evaluation goes, by operation (torch.profiler self time, bf16, channels_last): convolutions
   forward and backward, the Gram products, ReLU and pooling, autograd's gradient sums, the rest.
3. Fixed costs, each in a fresh interpreter: importing torch, importing impasto's Gatys method, constructing a
   `torch.optim.LBFGS` (it imports torch._dynamo) against impasto's own L-BFGS.
4. torch.compile of the objective at 128 px (inductor, the default mode): the time of the first, compiling call
   and the step cost after it, against eager.

Results: docs/BENCHMARKS.md (between the gatys-profile markers) and benchmarks/out/gatys-profile.json.

    .venv/bin/python benchmarks/gatys_profile.py              # about 5 minutes on 2 cores
    .venv/bin/python benchmarks/gatys_profile.py --no-compile # skip torch.compile (the slowest part)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from _common import DATA, ROOT, code_fingerprint, machine, pair_paths, write_section

from impasto import __version__
from impasto.core.device import resolve_precision
from impasto.core.weights import load_weights
from impasto.losses import PerceptualLoss
from impasto.methods.gatys import engine as gatys
from impasto.methods.gatys.lbfgs import LBFGS
from impasto.nets.vgg import VGGFeatures

SECTION = "gatys-profile"


class _Contiguous(PerceptualLoss):
    """The default objective, but without the channels_last conversion (to measure what channels_last buys)."""

    def features(self, x: torch.Tensor, grad: bool = True) -> dict[str, torch.Tensor]:
        with (
            torch.set_grad_enabled(grad and torch.is_grad_enabled()),
            torch.autocast(x.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None),
        ):
            return self.net(x.contiguous())


def _median_time(fn, reps: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _setup(content: Path, style: Path, size: int, precision: str, channels_last: bool):
    """The objective and a starting image exactly as gatys.run builds them for one scale."""
    opts = gatys.Options(size=size, precision=precision, device="cpu")
    layers = list(dict.fromkeys([*opts.content_layers, *opts.style_layers]))
    dtype = resolve_precision(precision, torch.device("cpu"))
    net = VGGFeatures(load_weights(), layers)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    if dtype is not None:
        net.net.to(dtype)
    content_t, style_ts = gatys.prepare_images(content, [style], size, 1.0)
    objective = gatys.perceptual_loss(net, opts, dtype)
    if not channels_last:
        objective.__class__ = _Contiguous
    objective.set_targets(content_t, style_ts, opts.style_weights)
    return objective, content_t.clone()


def step_costs(content: Path, style: Path, sizes: list[int], reps: int) -> list[dict]:
    rows = []
    for size in sizes:
        for precision in ("fp32", "bf16"):
            for channels_last in (True, False):
                objective, x0 = _setup(content, style, size, precision, channels_last)
                x = x0.clone().requires_grad_(True)

                def evaluate() -> torch.Tensor:
                    x.grad = None
                    total, _ = objective(x)
                    total.backward()
                    return total

                n = max(2, reps if size <= 256 else reps // 2)
                evaluation = _median_time(evaluate, n)
                # The optimizer's own share: a step minus an evaluation, over a few real steps.
                opt = LBFGS(x, history_size=100)
                steps = _median_time(lambda: opt.step(evaluate), n, warmup=3)
                rows.append(
                    {
                        "size": f"{x0.shape[-1]}x{x0.shape[-2]}",
                        "precision": precision,
                        "layout": "channels_last" if channels_last else "contiguous",
                        "evaluation": evaluation,
                        "step": steps,
                        "optimizer": max(0.0, steps - evaluation),
                    }
                )
                print(
                    f"{size} px {precision} {rows[-1]['layout']}: evaluation {evaluation:.3f} s, step {steps:.3f} s",
                    flush=True,
                )
    return rows


# Operator names grouped into what a reader can act on.
_GROUPS = {
    "aten::mkldnn_convolution": "convolutions, forward",
    "aten::convolution_backward": "convolutions, backward (input gradient)",
    "aten::bmm": "Gram products and their gradients",
    "aten::mm": "Gram products and their gradients",
    "aten::clamp_min": "ReLU and max-pooling, forward and backward",
    "aten::threshold_backward": "ReLU and max-pooling, forward and backward",
    "aten::max_pool2d_with_indices": "ReLU and max-pooling, forward and backward",
    "aten::max_pool2d_with_indices_backward": "ReLU and max-pooling, forward and backward",
    "aten::add_": "gradient sums (autograd accumulating two paths)",
}


def op_costs(content: Path, style: Path, size: int, reps: int) -> list[dict]:
    """Self time per operator group of one default evaluation (bf16, channels_last), from torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    objective, x0 = _setup(content, style, size, "bf16", True)
    x = x0.clone().requires_grad_(True)

    def evaluate() -> None:
        x.grad = None
        total, _ = objective(x)
        total.backward()

    for _ in range(2):
        evaluate()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(reps):
            evaluate()
    seconds: dict[str, float] = {}
    for event in prof.key_averages():
        group = _GROUPS.get(event.key, "everything else (losses, casts, copies, fills)")
        seconds[group] = seconds.get(group, 0.0) + event.self_cpu_time_total / 1e6 / reps
    total = sum(seconds.values())
    rows = [{"group": g, "seconds": t, "share": t / total} for g, t in sorted(seconds.items(), key=lambda kv: -kv[1])]
    for r in rows:
        print(f"{r['group']}: {r['seconds']:.3f} s ({r['share']:.0%})", flush=True)
    return rows


def _run_fresh(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": str(ROOT / "src")})
    return time.perf_counter() - start


def fixed_costs(reps: int = 7) -> dict:
    """Start-up costs in fresh interpreters, as medians of differences within each round.

    The variants run round-robin after one untimed round (cold file caches), so drift of the shared machine hits
    every variant alike; a difference is taken within a round, where the baseline ran seconds before.
    """
    codes = {
        "python + import torch": "import torch",
        "+ import impasto.methods.gatys.engine": "import torch, impasto.methods.gatys.engine",
        "+ torch.optim.LBFGS(...)": "import torch; torch.optim.LBFGS([torch.zeros(1, requires_grad=True)], max_iter=1)",
        "+ impasto.methods.gatys.lbfgs.LBFGS(...)": (
            "import torch; from impasto.methods.gatys.lbfgs import LBFGS; LBFGS(torch.zeros(1, requires_grad=True))"
        ),
    }
    for code in codes.values():
        _run_fresh(code)
    rounds = [{name: _run_fresh(code) for name, code in codes.items()} for _ in range(reps)]
    base = "python + import torch"
    rows = {base: statistics.median(r[base] for r in rounds)}
    for name in list(codes)[1:]:
        rows[name] = statistics.median(r[name] - r[base] for r in rounds)
    for k, v in rows.items():
        print(f"{k}: {v:.2f} s", flush=True)
    return rows


def compile_cost(content: Path, style: Path, size: int, reps: int) -> dict:
    objective, x0 = _setup(content, style, size, "bf16", True)
    x = x0.clone().requires_grad_(True)

    def run(fn) -> None:
        x.grad = None
        total, _ = fn(x)
        total.backward()

    eager = _median_time(lambda: run(objective), reps)
    try:
        compiled = torch.compile(objective)
        start = time.perf_counter()
        run(compiled)
        first = time.perf_counter() - start
        after = _median_time(lambda: run(compiled), reps)
    except Exception as e:  # noqa: BLE001 - a failure to compile is itself the finding
        return {"size": size, "eager": eager, "error": f"{e.__class__.__name__}: {str(e).splitlines()[0][:200]}"}
    print(
        f"compile at {size} px: first call {first:.1f} s, then {after:.3f} s a step (eager {eager:.3f} s)", flush=True
    )
    return {"size": size, "eager": eager, "first_call": first, "compiled": after}


def render(results: dict) -> str:
    lines = [
        f"## Where a Gatys step's time goes: `{SECTION}`, `benchmarks/gatys_profile.py`",
        "",
        f"- date: {results['date']}; machine: {results['machine']}",
        f"- command: `{results['command']}`",
        f"- pair: {results['pair']}; medians of repeated runs after a warm-up, in one process; the machine is "
        "shared, so a single figure can be an outlier (an evaluation slower than the step that contains it): "
        "compare within a row and across scales",
        "",
        "Step cost per scale (seconds; evaluation = VGG forward + backward and the losses, optimizer = the L-BFGS "
        "update on top of it):",
        "",
        "| scale | precision | layout | evaluation | L-BFGS step | optimizer's own share |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    for r in results["steps"]:
        lines.append(
            f"| {r['size']} | {r['precision']} | {r['layout']} | {r['evaluation']:.3f} | {r['step']:.3f} | "
            f"{r['optimizer']:.3f} |"
        )
    speedups = []
    by = {(r["size"], r["precision"], r["layout"]): r["step"] for r in results["steps"]}
    for size in dict.fromkeys(r["size"] for r in results["steps"]):
        fp32, bf16 = by.get((size, "fp32", "channels_last")), by.get((size, "bf16", "channels_last"))
        cont = by.get((size, "bf16", "contiguous"))
        if fp32 and bf16 and cont:
            speedups.append(
                f"{size}: bf16 {fp32 / bf16:.2f}x faster than fp32, channels_last {cont / bf16:.2f}x "
                "faster than contiguous (bf16)"
            )
    lines += ["", "Ratios: " + "; ".join(speedups) + ".", ""]
    lines += [
        f"One {results['ops_size']} px evaluation by operation (bf16, channels_last; torch.profiler self time, "
        "which the profiler itself inflates a little):",
        "",
        "| operations | seconds | share |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {r['group']} | {r['seconds']:.3f} | {r['share']:.0%} |" for r in results["ops"]]
    lines += ["", "Fixed costs (fresh interpreters, seconds):", "", "| what | seconds |", "| --- | ---: |"]
    lines += [f"| {k} | {v:.2f} |" for k, v in results["fixed"].items()]
    c = results.get("compile")
    if c:
        lines.append("")
        if "error" in c:
            lines.append(f"torch.compile at {c['size']} px failed here: {c['error']} (eager step {c['eager']:.3f} s).")
        else:
            lines.append(
                f"torch.compile at {c['size']} px (bf16): the first, compiling call takes {c['first_call']:.1f} s, "
                f"then {c['compiled']:.3f} s a step against {c['eager']:.3f} s eager."
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--pair", default="tubingen+starry_night", help="'photo+painting' from DATA")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512], help="scales to time")
    parser.add_argument("--reps", type=int, default=6, help="repetitions per figure (halved at 512 px)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile trial")
    parser.add_argument("--compile-size", type=int, default=128)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    args = parser.parse_args()
    if args.reps < 2:
        parser.error("--reps must be at least 2")

    content, style = pair_paths(args.data, args.pair)
    results = {
        "date": dt.date.today().isoformat(),
        "machine": machine(),
        "command": "python benchmarks/gatys_profile.py " + " ".join(sys.argv[1:]),
        "pair": args.pair,
        "version": __version__,
        "code": code_fingerprint(),
        "fixed": fixed_costs(),
        "steps": step_costs(content, style, args.sizes, args.reps),
        "ops_size": max(args.sizes),
        "ops": op_costs(content, style, max(args.sizes), max(2, args.reps // 2)),
    }
    if not args.no_compile:
        results["compile"] = compile_cost(content, style, args.compile_size, args.reps)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{SECTION}.json").write_text(json.dumps(results, indent=2))
    write_section(args.doc, SECTION, render(results))


if __name__ == "__main__":
    main()
