"""Command-line interface: ``robact-bench <verb>``. A thin layer: it parses, then calls the library.

Bad input gets one line on stderr (``robact-bench: error: ...``) and exit code 2; set
``ROBACT_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

EXIT_USAGE = 2


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def parse_eps(text: str) -> float:
    """Parse an eps given as a decimal (``0.1``) or a fraction (``8/255``), in [0, 1].

    Raises ``argparse.ArgumentTypeError`` (one line) for anything else, including values above 1,
    which are almost always 0..255 units (``--eps 8`` means ``8/255``).
    """
    s = str(text).strip()
    try:
        value = float(Fraction(s)) if "/" in s else float(s)
    except (ValueError, ZeroDivisionError, OverflowError):
        raise argparse.ArgumentTypeError(
            f"eps must be a number or a fraction such as 0.1 or 8/255; got {text!r}"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"eps must be a finite number >= 0; got {text!r}")
    if value > 1:
        raise argparse.ArgumentTypeError(
            f"eps must be in [0, 1] (images are in [0, 1]); got {text!r}: for 0..255 units write {s}/255"
        )
    return value


def positive_int(text: str) -> int:
    """Parse an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1; got {text!r}")
    return value


def _cmd_list(args: argparse.Namespace) -> int:
    from robact_bench.activations import list_activations
    from robact_bench.data import dataset_info, list_datasets
    from robact_bench.models import list_models

    if args.what == "activations":
        for name in list_activations():
            print(name)
    elif args.what == "models":
        for name in list_models():
            print(name)
    else:
        for name in list_datasets():
            info = dataset_info(name)
            kind = "embedded" if info.embedded else "on disk"
            print(f"{name:16s} {kind:9s} {info.description}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from robact_bench.evaluation.config import EvalConfig
    from robact_bench.jobs import default_entries, run_job, summary_rows

    quick = args.quick
    out = Path(args.out) if args.out is not None else Path("runs/quick" if quick else ".")
    if quick:
        entries = default_entries(epochs_at=1, epochs_natural=1, epochs_drelu=1, eps=args.eps)
        n_examples, n_train = args.n_examples or 8, 1000
    else:
        entries = default_entries(eps=args.eps)
        n_examples, n_train = args.n_examples or 50, None
    eval_cfg = EvalConfig(
        eps=args.eps,
        n_examples=n_examples,
        seed=args.seed,
        autoattack_attacks=("apgd-ce",) if quick else None,
    )
    t0 = time.perf_counter()
    results, table = run_job(
        entries,
        dataset="mnist5k",
        eval_cfg=eval_cfg,
        out=out,
        progress=args.progress,
        quick=quick,
        n_train=n_train,
    )
    elapsed = time.perf_counter() - t0
    for row in summary_rows(results):
        print(json.dumps(row))
    print(f"table: {table}")
    print(f"wall time: {elapsed:.1f} s")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``robact-bench <cmd>: error: ... (see --help)``, exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``robact-bench``."""
    parser = _Parser(
        prog="robact-bench",
        description="Train, evaluate and publish robust activation functions (RobustBench format).",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    common = _Parser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more logging (-v info, -vv debug)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>", parser_class=_Parser)

    p_run = sub.add_parser(
        "run",
        parents=[common],
        help="the main job: train and evaluate the seed methods on mnist5k, write the leaderboard",
        description=(
            "Train LeNet-5 with ReLU and BReLU (PGD-7 adversarial training), a ReLU LeNet-5 with a "
            "D-ReLU head (natural training + cap penalty) and an mReLU LeNet-5 (natural training) "
            "on mnist5k; evaluate each (clean, PGD, AutoAttack; EOT and repeated passes for BReLU); "
            "write <out>/leaderboards/mnist5k/Linf/*.json and README.md, checkpoints in <out>/runs/."
        ),
    )
    p_run.add_argument(
        "--quick",
        action="store_true",
        help="smoke run (<1 min): 1 epoch on 1,000 images, 8 test points, AutoAttack's APGD-CE only; "
        "default --out runs/quick",
    )
    p_run.add_argument("--out", default=None, help="output root (default: . ; runs/quick with --quick)")
    p_run.add_argument("--eps", type=parse_eps, default=0.1, help="Linf radius, e.g. 0.1 or 8/255 (default 0.1)")
    p_run.add_argument(
        "--n-examples", type=positive_int, default=None, help="test points per model (default 50; 8 with --quick)"
    )
    p_run.add_argument("--seed", type=int, default=0, help="evaluation seed (default 0)")
    p_run.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True, help="show progress bars (default: on)"
    )
    p_run.set_defaults(func=_cmd_run)

    p_list = sub.add_parser("list", parents=[common], help="list registered activations, models or datasets")
    p_list.add_argument("what", choices=("activations", "models", "datasets"))
    p_list.set_defaults(func=_cmd_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.verbose < 2:
        logging.getLogger("auto-attack").setLevel(logging.ERROR)
    try:
        return int(args.func(args))
    except (CliError, ValueError, KeyError, TypeError, FileNotFoundError, ImportError) as exc:
        if os.environ.get("ROBACT_DEBUG"):
            raise
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"robact-bench: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
