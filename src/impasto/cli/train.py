"""``impasto train NAME``: one subcommand per registered trainer, its flags derived from the trainer's Config."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time

from ..api import available_trainers, get_trainer, method_title
from ..options import make
from .flags import HelpFormatter, Parser, add_declared, collect, values

EXIT_INTERRUPTED = 130


def add_parser(sub) -> None:
    tr = sub.add_parser("train", help="train a model", formatter_class=HelpFormatter, description="Train a model.")
    trs = tr.add_subparsers(dest="trainer", metavar="MODEL", parser_class=Parser)
    trs.required = True
    for name in available_trainers():
        module = get_trainer(name)
        title, rest = method_title(module)
        parser = trs.add_parser(
            name,
            help=title[0].lower() + title[1:],
            formatter_class=HelpFormatter,
            description=f"{title}. {rest}".strip(),
        )
        flags = collect({name: module.Config})
        groups = {"common": parser}
        for flag in flags:
            group = flag.declared.spec.group
            if group and group not in groups:
                groups[group] = parser.add_argument_group(group)
        add_declared(parser, flags, groups)
        parser.add_argument("--resume", action="store_true", help="continue from the checkpoint")
        parser.add_argument(
            "--overwrite",
            action="store_true",
            help="start a new run even though the checkpoint file exists (replaces it)",
        )
        parser.add_argument("--log-every", type=int, default=0, metavar="N", help="also print the losses every N steps")
        parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    module = get_trainer(args.trainer)
    cfg = make(module.Config, values(args, module.Config), f"trainer {args.trainer!r}")
    cfg.validate()
    started = time.perf_counter()
    first: list[int] = []

    def log(step: int, terms: dict) -> None:
        if not first:
            first.append(step)
        if args.log_every and step % args.log_every == 0:
            rate = (time.perf_counter() - started) / max(1, step - first[0] + 1)
            shown = " ".join(f"{k} {v:.4f}" for k, v in terms.items() if k not in ("step", "loss"))
            print(f"step {step}: {shown} ({rate:.2f} s/step)", file=sys.stderr, flush=True)

    def stop(signum, frame) -> None:
        # A background run is ended with SIGTERM (and ignores SIGINT): checkpoint first, as Ctrl-C does.
        raise KeyboardInterrupt

    from ..train.loop import TrainingInterrupted

    # Trainers report what the user should know (skipped files) through logging: shown here as impasto's lines.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("impasto: %(message)s"))
    logger = logging.getLogger("impasto")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        summary = module.train(cfg, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet, on_step=log)
    except TrainingInterrupted as e:
        where = f"checkpoint of step {e.step} in {e.checkpoint}" if e.saved else "no checkpoint written"
        print(
            f"impasto: interrupted at step {e.step}; {where}" + (", --resume continues" if e.saved else ""),
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)
        logger.removeHandler(handler)
    if not args.quiet:
        losses = ", ".join(f"{k} {v:.4g}" for k, v in summary["losses"].items()) or "no steps"
        print(
            f"impasto: step {summary['step']} ({summary['steps_this_run']} this run, {summary['seconds']:.0f} s); "
            f"{losses}; checkpoint {summary['checkpoint']}",
            file=sys.stderr,
        )
    print(summary["output"])
    return 0
