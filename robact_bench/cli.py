"""Command-line interface: ``robact-bench <verb>``. A thin layer: it parses, then calls the library.

Bad input gets one line on stderr (``robact-bench: error: ...``) and exit code 2; set
``ROBACT_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from robact_bench.parsing import one_line, parse_float

EXIT_USAGE = 2


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def parse_eps(text: str) -> float:
    """Parse an eps given as a decimal (``0.1``) or a fraction (``8/255``), in [0, 1].

    Raises ``argparse.ArgumentTypeError`` (one line) for anything else, including values above 1,
    which are almost always 0..255 units (``--eps 8`` means ``8/255``).
    """
    value = parse_number(text, "eps")
    if value < 0:
        raise argparse.ArgumentTypeError(f"eps must be a finite number >= 0; got {text!r}")
    if value > 1:
        raise argparse.ArgumentTypeError(
            f"eps must be in [0, 1] (images are in [0, 1]); got {text!r}: "
            f"for 0..255 units write {str(text).strip()}/255"
        )
    return value


def parse_number(text: str, name: str = "value") -> float:
    """A finite number, written as a decimal or a fraction (``8/255``); one-line error otherwise."""
    try:
        return parse_float(text, name)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _int_at_least(low: int, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if value < low:
        raise argparse.ArgumentTypeError(f"expected an integer >= {low}; got {text!r}")
    return value


def nonnegative_int(text: str) -> int:
    """Parse an integer >= 0."""
    return _int_at_least(0, text)


def positive_int(text: str) -> int:
    """Parse an integer >= 1."""
    return _int_at_least(1, text)


def n_examples_arg(text: str) -> int | str:
    """Parse ``--n-examples``: an integer >= 1, or ``all`` (every point of the split)."""
    if text.strip().lower() == "all":
        return "all"
    try:
        return _int_at_least(1, text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1 or all; got {text!r}") from None


def check_writable_folder(flag: str, path: str | os.PathLike[str]) -> None:
    """One-line error, before any work, when ``path`` cannot become a folder this process writes into.

    Nothing is created: the nearest existing folder on the path is probed with an anonymous
    temporary file, which is gone when the probe ends.
    """
    import tempfile

    p = Path(path)
    existing = p
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise CliError(f"{flag} {path}: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise CliError(f"{flag} {path}: cannot write in {existing} ({exc.strerror or exc})") from None


def _list_recipes() -> None:
    from robact_bench.training.recipes import RECIPES

    for name in RECIPES.list():
        print(f"{name:10s} {RECIPES.get(name).description}")


def _list_models() -> None:
    from robact_bench.models import list_models

    for name in list_models():
        print(name)


def _list_datasets() -> None:
    from robact_bench.data import dataset_info, list_datasets

    for name in list_datasets():
        info = dataset_info(name)
        kind = "embedded" if info.embedded else "on disk"
        print(f"{name:16s} {kind:9s} {info.description}")


def _list_suites() -> None:
    from robact_bench.attacks.suites import get_suite, list_suites

    for name in list_suites():
        print(f"{name:12s} {get_suite(name).description}")


def _list_attacks() -> None:
    from robact_bench.attacks.backends import attack_rows

    rows = attack_rows()
    width = max((len(r[2]) for r in rows), default=0)
    for backend, attack, traits, paper in rows:
        print(f"{backend:12s} {attack:10s} {traits:{width}s}  {paper}")


def _list_checks() -> None:
    from robact_bench.evaluation.masking import CHECKS

    for name in CHECKS.list():
        chk = CHECKS.get(name)
        print(f"{name:32s} {chk.kind:10s} {chk.doc}  {chk.reason}")


def _list_boards() -> None:
    from robact_bench.jobs import list_boards, load_board

    for name in list_boards():
        board = load_board(name)
        print(f"{name:12s} {len(board.entries)} entries x {len(board.seeds)} seeds  {board.description}")


def _list_configs() -> None:
    from robact_bench.training.config import list_configs, load_config_file

    for name in list_configs():
        print(f"{name:48s} {load_config_file(name)[0].get('description', '')}")


def _cmd_list(args: argparse.Namespace) -> int:
    LISTERS[args.what]()
    return 0


def _list_activations() -> None:
    """One row per activation: name, random in eval() mode (with its default arguments), its arguments."""
    import inspect

    from robact_bench.activations import ACTIVATIONS, get_activation, list_activations

    names = list_activations()
    width = max(len(n) for n in names) + 2
    print(f"{'NAME':{width}s}{'RANDOM':8s}ARGUMENTS (defaults)")
    for name in names:
        factory = ACTIVATIONS.get(name)
        random = "yes" if getattr(get_activation(name), "stochastic", False) else "no"
        params = [p for p in inspect.signature(factory).parameters.values()
                  if p.name not in _NOT_ARGUMENTS and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]  # fmt: skip
        shown = ", ".join(p.name if p.default is p.empty else f"{p.name}={p.default!r}" for p in params)
        print(f"{name:{width}s}{random:8s}{shown or '-'}".rstrip())


# constructor arguments that cannot be given as act_kwargs (no JSON value): not listed
_NOT_ARGUMENTS = ("device", "dtype", "generator")

#: ``robact-bench list WHAT``: one function per kind, printing one line per registered name
LISTERS: dict[str, Callable[[], None]] = {
    "activations": _list_activations, "models": _list_models, "datasets": _list_datasets,
    "recipes": _list_recipes, "suites": _list_suites, "attacks": _list_attacks, "checks": _list_checks,
    "configs": _list_configs, "boards": _list_boards,
}


#: how long ``run``'s ranks wait for one another under torchrun (a rank whose units end early
#: waits at the end for the slowest; a rank that dies ends the job through torchrun at once)
RUN_TIMEOUT_S = 24 * 3600.0


def resolve_run(args: argparse.Namespace) -> tuple[list[Any], Path]:
    """The boards ``robact-bench run`` runs, each loaded and checked, and its output root.

    No BOARD: the main job (:data:`robact_bench.jobs.MAIN_JOB`, default ``--out`` its
    ``runs/main``); ``--full``: the published boards (:data:`robact_bench.jobs.PUBLISHED_BOARDS`,
    default ``--out .``); BOARD...: those boards (``.``). ``--quick`` makes a smoke run of
    whichever it is (default ``--out runs/quick``); ``--models`` keeps those entries.

    Raises:
        CliError: ``--full`` with board names.

    """
    from robact_bench.jobs import MAIN_JOB, PUBLISHED_BOARDS, load_board, main_job_board

    quick = args.quick
    names = [*(args.boards or []), *(args.dataset or [])]
    if args.full and names:
        raise CliError(f"--full runs the published boards ({' '.join(PUBLISHED_BOARDS)}); "
                       f"give --full or board names ({' '.join(names)}), not both")  # fmt: skip
    if names or args.full:
        boards = [load_board(name, quick=quick) for name in names or PUBLISHED_BOARDS]
        default_out = "."
    else:
        boards = [main_job_board(quick=quick)]
        default_out = MAIN_JOB.out
    if args.models:  # every board file is checked before any work starts
        boards = [board.select(args.models) for board in boards]
    out = Path(args.out) if args.out is not None else Path("runs/quick" if quick else default_out)
    return boards, out


def _cmd_run(args: argparse.Namespace) -> int:
    from robact_bench import distributed
    from robact_bench.jobs import check_data

    boards, out = resolve_run(args)
    check_writable_folder("--out", out)
    for board in boards if not args.recheck else ():
        check_data(board)
    # under torchrun: join its group; the boards' (entry, seed) units are shared out over the ranks.
    # `run` trains and evaluates on the CPU; the group's backend follows that device.
    with distributed.joined("cpu", timeout_s=RUN_TIMEOUT_S):
        return _run(args, boards, out)


def _run(args: argparse.Namespace, boards: Sequence[Any], out: Path) -> int:
    from robact_bench import distributed
    from robact_bench.jobs import board_units, recheck_board, run_board, summary_rows

    seeds = tuple(args.seeds) if args.seeds is not None else None
    main_rank = distributed.is_main()
    t0 = time.perf_counter()
    for board in boards:
        if args.recheck:  # no training, no attack: rank 0 alone
            table = distributed.on_main(lambda board=board: recheck_board(board, out=out, seeds=seeds))
            if main_rank:
                print(f"table: {table}")
            continue
        results, table = run_board(board, out=out, progress=args.progress, quick=args.quick, resume=args.resume,
                                   seeds=seeds)  # fmt: skip
        order = {entry.file_name(seed): i for i, (entry, seed) in enumerate(board_units(board, seeds))}
        rows = [row for part in distributed.gather(summary_rows(results)) for row in part]
        if main_rank:
            for row in sorted(rows, key=lambda r: order.get(r["model"], len(order))):
                print(json.dumps(row))
            print(f"table: {table}")
    if main_rank:
        print(f"wall time: {time.perf_counter() - t0:.1f} s")
    return 0


def _cmd_leaderboard_validate(args: argparse.Namespace) -> int:
    from robact_bench.leaderboard.schema import validate_paths

    report = validate_paths(args.paths)
    for line in report.errors:
        print(line)
    bad = len(report.invalid)
    print(f"{len(report.files)} files checked: {len(report.files) - bad} valid, {bad} invalid")
    return 0 if report.ok else 1


def _cmd_leaderboard_render(args: argparse.Namespace) -> int:
    from robact_bench.leaderboard.publish import publish

    directory = Path(args.directory)
    if not directory.is_dir():
        raise CliError(f"{directory}: not a folder (give a leaderboard folder holding JSON entries)")
    if not any(directory.glob("*.json")):  # entries are read from the folder itself, never from below it
        below = sorted({p.parent.relative_to(directory).as_posix() for p in directory.rglob("*.json")})
        more = ", ..." if len(below) > 4 else ""
        hint = f"; it holds leaderboard folders: render one of {', '.join(below[:4])}{more}" if below else ""
        raise CliError(f"{directory}: no JSON entries in this folder{hint}")
    for p in publish(directory, title=args.title or ""):
        print(f"written: {p}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    """``robact-bench export EVAL_JSON --out DIR``: any saved evaluation as a validated leaderboard entry."""
    from robact_bench.leaderboard.export import export_entry, read_result

    result = read_result(args.result)  # JSON only: nothing in the file is unpickled or run
    keys = ("architecture", "link", "authors", "venue", "reported")
    fields = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    path = export_entry(result, args.out, name=args.name, title=args.title, group=args.group,
                        overwrite=args.overwrite, **fields)  # fmt: skip
    rb = json.loads(path.read_text(encoding="utf-8"))
    print(json.dumps({"entry": path.stem, "clean_acc": rb["clean_acc"], "autoattack_acc": rb.get("autoattack_acc"),
                      "external": rb.get("external"), "unreliable": rb.get("unreliable"),
                      "provenance": rb["robact"]["provenance"]}))  # fmt: skip
    print(f"written: {path}")
    return 0


def _percentage(text: str) -> str:
    """Parse a percentage in [0, 100] into RobustBench's two-decimal string (``"52.10"``)."""
    value = parse_number(text, "reported")
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"a percentage must be in [0, 100]; got {text!r}")
    return f"{value:.2f}"


def _train_flag_type(base: type, optional: bool) -> Any:
    def parse(text: str) -> Any:
        if optional and text.strip().lower() in ("none", "null"):
            return None
        if base is int:
            try:
                return int(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected an integer; got {text!r}") from None
        if base is float:
            return parse_number(text)
        return text

    return parse


def _add_train_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (``--trades-beta 6``), all optional overrides."""
    from robact_bench.training.config import TrainConfig, train_field_kinds

    group = parser.add_argument_group(
        "training settings",
        "override the config file, which overrides the recipe's defaults for the dataset, which override "
        "TrainConfig's defaults (shown)",
    )
    for name, (base, optional) in train_field_kinds().items():
        if name == "seed":  # --seeds
            continue
        flag = "--" + name.replace("_", "-")
        default = TrainConfig.__dataclass_fields__[name].default
        if base is bool:
            group.add_argument(flag, dest=f"train.{name}", action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=f"TrainConfig default: {default}")  # fmt: skip
        else:
            metavar = "N" if base is int else ("X" if base is float else "NAME")
            group.add_argument(flag, dest=f"train.{name}", type=_train_flag_type(base, optional), metavar=metavar,
                               default=argparse.SUPPRESS, help=f"TrainConfig default: {default}")  # fmt: skip


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {"run": {}, "model": {}, "train": {}}
    for key, value in vars(args).items():
        if key.startswith("train."):
            out["train"][key[len("train.") :]] = value
    for key in ("name", "dataset", "n_train"):
        if getattr(args, key, None) is not None:
            out["run"][key] = getattr(args, key)
    for key in ("arch", "act"):
        if getattr(args, key, None) is not None:
            out["model"][key] = getattr(args, key)
    return out


def _check_device(text: str) -> None:
    """One-line error for a device this machine does not have (``cpu``, ``cuda``, ``cuda:N``)."""
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise CliError(f"--device must be cpu, cuda or cuda:N; got {text!r}") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0 or (dev.index or 0) >= n:
            raise CliError(f"--device {text}: not available on this machine ({n} CUDA devices)")
    elif dev.type != "cpu":
        raise CliError(f"--device must be cpu, cuda or cuda:N; got {text!r}")


def _cmd_train(args: argparse.Namespace) -> int:
    from robact_bench import distributed

    _check_device(args.device)
    with distributed.joined(args.device):  # under torchrun: DDP, the batch shared out over the ranks
        return _train(args, distributed.local_device(args.device))


def _train(args: argparse.Namespace, device: Any) -> int:
    from robact_bench import distributed
    from robact_bench.training.config import load_config_file, resolve_run_config
    from robact_bench.training.run import train_run

    over = _overrides(args)
    sources = [load_config_file(c) for c in args.config] if args.config else [({}, "command line")]
    if len(sources) > 1 and "name" in over["run"]:
        raise CliError("--name cannot be combined with several --config files (each names its own run)")
    if not args.config and "arch" not in over["model"]:
        raise CliError("give a config (-c FILE or a shipped name, see `robact-bench list configs`) or at least --arch")
    if not args.config and "name" not in over["run"]:
        model = over["model"]
        over["run"]["name"] = f"{model['arch']}_{model.get('act', 'relu')}_{over['train'].get('recipe', 'standard')}"
    runs = [resolve_run_config(data, overrides=over, source=src, require_recipe=bool(args.config))
            for data, src in sources]  # fmt: skip
    check_writable_folder("--out", args.out)
    seeds = args.seeds
    t0 = time.perf_counter()
    for run in runs:
        for seed in seeds if seeds is not None else [run.train.seed]:
            res = train_run(run.with_seed(seed), args.out, resume=args.resume, device=device,
                            progress=args.progress, data_root=args.data_root)  # fmt: skip
            if not distributed.is_main():
                continue
            last = res.history[-1] if res.history else {}
            summary = {
                "run": run.name,
                "seed": seed,
                "dir": str(res.directory),
                "epochs": len(res.history),
                "val_acc": last.get("val_acc"),
                "val_robust_acc": last.get("val_robust_acc"),
                "train_seconds": round(res.train_seconds, 1),
                "resumed_from_epoch": res.resumed_from,
                "skipped": res.skipped,
            }
            print(json.dumps(summary), flush=True)
    if distributed.is_main():
        print(f"wall time: {time.perf_counter() - t0:.1f} s")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from robact_bench.evaluation.runs import write_report

    _check_device(args.device)
    _, path = write_report(args.runs, eps=args.eps, steps=args.steps, n_examples=args.n_examples, seed=args.seed,
                           device=args.device, data_root=args.data_root)  # fmt: skip
    print(path.read_text(encoding="utf-8"), end="")
    print(f"written: {path} and {path.with_suffix('.json')}")
    return 0


#: ``eval``'s points when --n-examples is not given: this many, or the whole split when it is smaller
DEFAULT_EVAL_POINTS = 1000


def _n_examples(given: int | str | None, available: int, dataset: str, split: str) -> int:
    """The points ``eval`` runs on: ``given`` (``all``: the split), else the default, checked against the split."""
    if given == "all":
        return available
    if given is None:
        return min(DEFAULT_EVAL_POINTS, available)
    if int(given) > available:
        raise CliError(f"--n-examples {given}: the {split} split of {dataset} has {available} points "
                       f"(give at most {available}, or all)")  # fmt: skip
    return int(given)


def _check_model_fits(spec: Any, dataset: str, trained_on: str | None) -> None:
    """One-line error when ``dataset``'s images or classes do not fit the checkpoint's architecture."""
    from robact_bench.data import DATASETS
    from robact_bench.interop._common import spec_input_shape

    info = DATASETS.get(dataset)
    on = f" (it was trained on {trained_on})" if trained_on and trained_on != info.name else ""
    takes = spec_input_shape(spec)
    if takes is not None and tuple(takes) != tuple(info.shape):
        raise CliError(f"--dataset {info.name}: its images are {'x'.join(map(str, info.shape))}, the model takes "
                       f"{'x'.join(map(str, takes))}{on}")  # fmt: skip
    if spec.num_classes != info.num_classes:
        raise CliError(f"--dataset {info.name}: it has {info.num_classes} classes, the model "
                       f"{spec.num_classes} outputs{on}")  # fmt: skip


def _eval_paths(args: argparse.Namespace, run_dir: Path) -> tuple[Path, Path]:
    if args.out is not None:
        out = Path(args.out)
    else:
        eps = f"{args.eps:.6g}".replace("/", "_")
        out = run_dir / "eval" / f"{args.suite}_{args.norm}_eps{eps}_seed{args.seed}.json"
    return out, out.with_name(out.stem + ".state.json")


def _cmd_eval(args: argparse.Namespace) -> int:
    from robact_bench import distributed

    _check_device(args.device)
    with distributed.joined(args.device):  # under torchrun: join its group; the points are shared out
        return _eval(args)


def _eval(args: argparse.Namespace) -> int:
    import torch

    from robact_bench import distributed
    from robact_bench.attacks.suites import get_suite
    from robact_bench.data import load_dataset
    from robact_bench.evaluation.config import EvalConfig
    from robact_bench.evaluation.engine import run_evaluation
    from robact_bench.fileio import atomic_write_json
    from robact_bench.models.checkpoint import load_checkpoint

    device = distributed.local_device(args.device)
    get_suite(args.suite)  # unknown suite: one line with the closest names, before loading anything
    ckpt = Path(args.checkpoint)
    meta_path = ckpt / "model.json" if ckpt.is_dir() else ckpt
    if not meta_path.is_file():
        raise CliError(f"--checkpoint {ckpt}: no model.json there (give a run folder or its model.json)")
    cfg = EvalConfig(
        suite=args.suite, eps=args.eps, norm=args.norm, n_examples=None, seed=args.seed,
        eot_iter=args.eot_iter, passes=args.passes, select_passes=args.select_passes,
        confirm_passes=args.confirm_passes, eot_mode=args.eot_mode, batch_size=args.batch_size,
        precision=args.precision,
        attacks=tuple(args.attacks) if args.attacks else None, sweeps=args.sweeps,
        sweep_eps=tuple(args.sweep_eps) if args.sweep_eps else None,
        sweep_steps=tuple(args.sweep_steps) if args.sweep_steps else None,
        sweep_points=args.sweep_points or None,
    )  # fmt: skip
    model, spec, meta = load_checkpoint(meta_path, device=device)
    training = meta.get("training", {})
    dataset = args.dataset or training.get("dataset")
    if not dataset:
        raise CliError(f"{meta_path}: no dataset recorded; give --dataset")
    _check_model_fits(spec, dataset, training.get("dataset"))
    from robact_bench.activations import is_stochastic
    from robact_bench.data import dataset_info
    from robact_bench.evaluation.preflight import check_runnable

    check_runnable(cfg, kinds=("random",) if is_stochastic(model) else ("deterministic",), need_headline=False,
                   saf_betas=dataset_info(dataset).saf_betas, dataset=dataset)  # fmt: skip
    out, state = _eval_paths(args, meta_path.parent)
    if out.is_dir():
        raise CliError(f"--out {out}: a folder; give the result file's path")
    check_writable_folder("--out" if args.out is not None else "--out (default)", out.parent)
    x, y = load_dataset(dataset, args.split, root=args.data_root)
    cfg = replace(cfg, n_examples=_n_examples(args.n_examples, len(y), dataset, args.split))

    def finished_earlier() -> bool:  # rank 0 looks at the files; every rank follows its answer
        if out.exists() and not args.overwrite:
            if args.resume and not state.exists():  # finished earlier: nothing to resume
                return True
            if not args.resume:
                raise ValueError(f"{out} exists: pass --overwrite to replace it (or --out elsewhere)")
        return False

    if distributed.on_main(finished_earlier):
        if distributed.is_main():
            print(f"finished earlier: {out} (--overwrite to recompute)")
        return 0
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    name = str(training.get("name", meta_path.parent.parent.name if meta_path.parent.name.startswith("seed") else
                                meta_path.parent.name))  # fmt: skip
    result = run_evaluation(
        model, x, y, cfg, model_name=name, dataset=dataset, split=args.split, spec=spec.to_dict(),
        training={k: v for k, v in training.items() if k != "history"}, progress=args.progress,
        state_path=str(state), resume=args.resume,
    )  # fmt: skip
    if not distributed.is_main():  # every rank holds the whole result; rank 0 writes it
        return 0
    atomic_write_json(out, result.to_dict())
    state.unlink(missing_ok=True)
    summary: dict[str, Any] = {
        "model": name, "suite": result.suite, "n": result.n_examples, "eps": result.eps, "norm": result.threat_model,
        "stochastic": result.stochastic, "passes": result.passes, "clean": result.clean_acc,
        "robust": result.robust_acc, "autoattack": result.autoattack_acc,
        "per_attack": {a.name: a.accuracy for a in result.attacks},
    }  # fmt: skip
    if result.skipped:
        summary["skipped"] = {s["name"]: s["reason"] for s in result.skipped}
    for sw in result.sweeps:
        summary[f"sweep_{sw['kind']}"] = dict(zip(map(str, sw.get("values", [])), sw.get("accuracy", []), strict=True))
    print(json.dumps(summary))
    print(f"written: {out}")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from robact_bench.models import ModelSpec
    from robact_bench.models.convert import convert_state_dict, parse_normalization

    kwargs: dict[str, dict[str, Any]] = {}
    for flag, text in (("--arch-kwargs", args.arch_kwargs), ("--act-kwargs", args.act_kwargs)):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise CliError(f"{flag} must be a JSON object such as '{{\"batch_norm\": true}}'; got {text!r}")
        kwargs[flag] = value
    arch_kwargs, num_classes, dataset = kwargs["--arch-kwargs"], args.num_classes, None
    if args.dataset is not None:  # as `train` does: classes and input shape come from the dataset
        from robact_bench.data import DATASETS, dataset_info

        dataset = DATASETS.resolve(args.dataset)
        info = dataset_info(dataset)
        if num_classes is not None and num_classes != info.num_classes:
            raise CliError(f"--num-classes {num_classes}: {dataset} has {info.num_classes} classes")
        num_classes = info.num_classes
        arch_kwargs = {"in_chans": info.shape[0], "img_size": info.shape[1], **arch_kwargs}
    spec = ModelSpec(arch=args.arch, act=args.act, act_kwargs=kwargs["--act-kwargs"], arch_kwargs=arch_kwargs,
                     num_classes=num_classes if num_classes is not None else 10, drelu_head=args.drelu_head,
                     rbf_output=args.rbf_output)  # fmt: skip
    normalization = parse_normalization(args.normalization)
    rename = []
    for text in args.rename:
        theirs, sep, ours = text.partition("=")
        if not sep or not theirs or not ours or "." in theirs or "." in ours:
            raise CliError(f"--rename {text!r}: give THEIRS=OURS, one dotted name component each (shortcut=downsample)")
        rename.append((theirs, ours))
    res = convert_state_dict(args.state_dict, args.out, spec, normalization=normalization, dataset=dataset,
                             name=args.name, layout=args.layout, rename=rename, overwrite=args.overwrite)  # fmt: skip
    print(json.dumps({"model": spec.describe(), "tensors": res.n_tensors, "source_sha256": res.source_sha256,
                      "stripped_prefix": res.stripped_prefix, "dataset": dataset}))  # fmt: skip
    print(f"written: {res.weights} and {res.metadata_path}")
    return 0


def _pass_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--select-passes", type=positive_int, default=50,
                        help="passes S comparing a random model's candidate images (default 50)")  # fmt: skip
    parser.add_argument("--confirm-passes", type=positive_int, default=50,
                        help="fresh passes M that settle disputed points in the checks (default 50)")  # fmt: skip


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``robact-bench <cmd>: error: ... (see --help)``, exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # one_line: argparse quotes unrecognized arguments as typed, line breaks included
        self.exit(EXIT_USAGE, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``robact-bench``."""
    parser = _Parser(
        prog="robact-bench",
        description="Train, evaluate and publish robust activation functions (RobustBench format).",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    from robact_bench import __version__

    parser.add_argument("--version", action="version", version=f"robact-bench {__version__}")
    common = _Parser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more logging (-v info, -vv debug)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>", parser_class=_Parser)

    p_run = sub.add_parser(
        "run",
        parents=[common],
        help="run boards: train and evaluate every entry of a board file, write its leaderboard",
        description=(
            "Run each BOARD (a shipped board's name, see `robact-bench list boards`, or a YAML board file): train "
            "every trained entry with every seed of the board through the training path `robact-bench train` "
            "uses, load every submitted checkpoint safely, evaluate each with the board's suite and its "
            "gradient-masking checks, and write <out>/leaderboards/<dataset>/<threat_model>/ (JSON entries, "
            "README.md, index.html, plots/), checkpoints in <out>/runs/ and, where the board publishes them, "
            "weights in <out>/weights/. With no BOARD: the main job, the digits board (every row) with seed 0 "
            "and 100 test points per model, into runs/main/ (not the published leaderboards/ and weights/); "
            "--full: the published leaderboards (digits and mnist5k, every seed) into the current folder. "
            "Under torchrun the (entry, seed) units are spread over the ranks and the files are those of one "
            "process."
        ),
    )
    p_run.add_argument(
        "boards", nargs="*", metavar="BOARD", help="board names or files (default: the main job, digits, seed 0, n 100)"
    )
    p_run.add_argument(
        "--full", action="store_true", help="run the published boards (digits mnist5k, every seed) into . (hours)"
    )
    p_run.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 epoch on 1,000 images, the board's first seed, 8 test points, PGD-20 and FGSM only, "
        "no sweeps, no published weights; default --out runs/quick",
    )
    p_run.add_argument("--out", default=None,
                       help="output root (default: runs/main for the main job, . for --full or BOARD; "
                       "runs/quick with --quick)")  # fmt: skip
    p_run.add_argument("--dataset", nargs="+", default=None, metavar="BOARD", help=argparse.SUPPRESS)
    p_run.add_argument("--models", nargs="+", default=None, metavar="NAME",
                       help="only these entries (e.g. LeNet5_BReLU_PGDAT; default: all)")  # fmt: skip
    p_run.add_argument("--seeds", type=nonnegative_int, nargs="+", default=None, metavar="S",
                       help="training seeds (default: the board's)")  # fmt: skip
    p_run.add_argument("--resume", action="store_true",
                       help="skip entries whose JSON file is valid; continue unfinished training")  # fmt: skip
    p_run.add_argument("--recheck", action="store_true",
                       help="redo the checks from the saved eval.json files (no attack)")  # fmt: skip
    p_run.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True, help="show progress bars (default: on)"
    )
    p_run.set_defaults(func=_cmd_run)

    p_lb = sub.add_parser("leaderboard", parents=[common], help="validate or render leaderboard folders")
    lb_sub = p_lb.add_subparsers(dest="lb_command", required=True, metavar="<action>", parser_class=_Parser)
    p_val = lb_sub.add_parser(
        "validate",
        parents=[common],
        help="check JSON entries against the entry schema (RobustBench fields + our robact block)",
        description="Validate RobustBench model_info JSON files (ours and RobustBench's own) against the JSON "
        "Schema shipped in the package; folders are searched for *.json. One line per problem (file, field, "
        "what was expected); exit code 1 when a file is invalid.",
    )
    p_val.add_argument("paths", nargs="+", metavar="PATH", help="JSON files or folders")
    p_val.set_defaults(func=_cmd_leaderboard_validate)
    p_ren = lb_sub.add_parser(
        "render",
        parents=[common],
        help="write README.md, index.html, plots/ and statistics of a leaderboard folder from its JSON files",
    )
    p_ren.add_argument("directory", metavar="DIR", help="a leaderboard folder (e.g. leaderboards/mnist5k/Linf)")
    p_ren.add_argument("--title", default=None, help="page title (default: from the entries)")
    p_ren.set_defaults(func=_cmd_leaderboard_render)

    p_train = sub.add_parser(
        "train",
        parents=[common],
        help="train models from config files (shipped or yours), one per config and seed; resumable",
        description=(
            "Train one model per config and seed into <out>/<name>/seed<k>/ (config.yaml, history.csv, "
            "train_state.safetensors after every epoch, model.safetensors + model.json at the end). "
            "Settings: TrainConfig defaults < the recipe's defaults for the dataset < the config file < flags."
        ),
    )
    p_train.add_argument("-c", "--config", action="append", metavar="FILE",
                         help="a YAML config file or the name of a shipped config (repeatable)")  # fmt: skip
    p_train.add_argument("--seeds", type=nonnegative_int, nargs="+", default=None, metavar="S",
                         help="train one model per seed (default: the config's seed)")  # fmt: skip
    p_train.add_argument("--out", default="runs", help="output root (default: runs)")
    p_train.add_argument("--resume", action="store_true",
                         help="continue interrupted runs from their last finished epoch; keep finished ones")
    p_train.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p_train.add_argument("--data-root", default=None, help="on-disk datasets folder (default $ROBACT_DATA or ./data)")
    p_train.add_argument("--name", default=None, help="run name (output folder)")
    p_train.add_argument("--dataset", default=None, help="dataset (see `robact-bench list datasets`)")
    p_train.add_argument("--n-train", type=positive_int, default=None, help="use only N class-balanced training images")
    p_train.add_argument("--arch", default=None, help="architecture (see `robact-bench list models`)")
    p_train.add_argument("--act", default=None, help="activation (see `robact-bench list activations`)")
    p_train.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True, help="show progress bars (default: on)"
    )
    _add_train_flags(p_train)
    p_train.set_defaults(func=_cmd_train)

    p_report = sub.add_parser(
        "report",
        parents=[common],
        help="clean and PGD accuracy (test split) of every trained run under a folder, mean ± std over seeds",
        description="Evaluate every <name>/seed<k>/ run under RUNS on its test split; write RUNS/report.md and .json.",
    )
    p_report.add_argument("runs", help="the --out folder of `robact-bench train`")
    p_report.add_argument("--eps", type=parse_eps, required=True, help="Linf radius, e.g. 0.1 or 8/255")
    p_report.add_argument("--steps", type=positive_int, default=20, help="PGD steps (default 20)")
    p_report.add_argument("--n-examples", type=positive_int, default=None, help="test points (default: all)")
    p_report.add_argument("--seed", type=nonnegative_int, default=0, help="attack seed (default 0)")
    p_report.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p_report.add_argument("--data-root", default=None, help="folder of on-disk datasets")
    p_report.set_defaults(func=_cmd_report)

    p_eval = sub.add_parser(
        "eval",
        parents=[common],
        help="evaluate a checkpoint with a named attack suite (AutoAttack, torchattacks, ART; EOT; resumable)",
        description=(
            "Evaluate a trained model (a run folder with model.json + model.safetensors; the architecture comes "
            "from our registry, weights from safetensors) on its dataset's test split with an attack suite "
            "(see `robact-bench list suites`). Writes DIR/eval/<suite>_<norm>_eps<eps>_seed<seed>.json; finished "
            "attacks are saved as they finish, and --resume continues after an interruption."
        ),
    )
    p_eval.add_argument("--checkpoint", required=True, metavar="DIR", help="run folder (or its model.json)")
    p_eval.add_argument("--suite", default="standard", help="attack suite (default: standard)")
    p_eval.add_argument("--n-examples", type=n_examples_arg, default=None, metavar="N|all",
                        help="class-balanced test points, or all (default 1000, or all when the split has "
                             "fewer)")  # fmt: skip
    p_eval.add_argument("--eps", type=parse_number, default=8 / 255,
                        help="radius: Linf in [0, 1] (e.g. 8/255, 0.1) or L2 (default 8/255)")  # fmt: skip
    p_eval.add_argument("--norm", choices=("Linf", "L2"), default="Linf", help="threat model (default Linf)")
    p_eval.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p_eval.add_argument("--seed", type=nonnegative_int, default=0, help="evaluation seed (default 0)")
    p_eval.add_argument("--eot-iter", type=positive_int, default=20,
                        help="EOT samples K per gradient/query for random models (default 20)")  # fmt: skip
    p_eval.add_argument("--passes", type=positive_int, default=10,
                        help="forward passes R scoring each image of a random model (default 10)")  # fmt: skip
    _pass_flags(p_eval)
    p_eval.add_argument("--eot-mode", choices=("batched", "sequential"), default="batched",
                        help="K samples in one batched pass (default) or the libraries' own loops")  # fmt: skip
    p_eval.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="the model's layers inside the attacks: fp32 (default) or bf16 autocast (needs "
                             "native bf16: AVX512-BF16/AMX CPU or a bf16 GPU); scoring is always fp32")  # fmt: skip
    p_eval.add_argument("--attacks", nargs="+", default=None, metavar="NAME", help="only these attacks")
    p_eval.add_argument("--sweeps", action=argparse.BooleanOptionalAction, default=True,
                        help="run the suite's accuracy-vs-eps/steps sweeps (default: on)")  # fmt: skip
    p_eval.add_argument("--sweep-eps", type=parse_number, nargs="+", default=None, metavar="X",
                        help="eps sweep grid, as multiples of --eps")  # fmt: skip
    p_eval.add_argument("--sweep-steps", type=positive_int, nargs="+", default=None, metavar="N",
                        help="steps sweep grid")  # fmt: skip
    p_eval.add_argument("--sweep-points", type=nonnegative_int, default=200, metavar="N",
                        help="run the sweeps (diagnostics only) on N of the points, class-balanced and drawn with "
                             "--seed (default 200; 0: every point)")  # fmt: skip
    p_eval.add_argument("--batch-size", type=positive_int, default=500, help="images per attack call (default 500)")
    p_eval.add_argument("--dataset", default=None, help="dataset (default: the one the model was trained on)")
    p_eval.add_argument("--split", default="test", help="split (default: test)")
    p_eval.add_argument("--data-root", default=None, help="folder of on-disk datasets")
    p_eval.add_argument("--out", default=None, help="result file (default: DIR/eval/...json)")
    p_eval.add_argument("--resume", action="store_true", help="continue an interrupted evaluation from its state file")
    p_eval.add_argument("--overwrite", action="store_true", help="replace an existing result file")
    p_eval.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")
    p_eval.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True, help="show progress bars (default: on)"
    )
    p_eval.set_defaults(func=_cmd_eval)

    p_conv = sub.add_parser(
        "convert",
        parents=[common],
        help="turn a plain PyTorch state dict (.pt/.pth) into a checkpoint (safetensors + JSON) eval can read",
        description=(
            "Convert a PyTorch state dict file (a dict of tensors, or one under 'state_dict' or 'model'; a "
            "'module.' prefix is removed) into DIR/model.safetensors + DIR/model.json. The file is read with "
            "torch.load(weights_only=True): only tensors, numbers, strings and containers are accepted and no "
            "code in the file is run; anything else is refused and nothing is written. The architecture comes "
            "from our registry (--arch, --act), never from the file; every tensor's name, shape and dtype must "
            "fit it. The input normalization is never read from the file either: state it (--normalization none "
            "for a model that takes raw [0, 1] images). Parameter names of another layout are translated with "
            "--layout or --rename. The metadata records the source file's name and SHA-256. Then: "
            "robact-bench eval --checkpoint DIR."
        ),
    )
    p_conv.add_argument("state_dict", metavar="STATE", help="the .pt/.pth state dict file")
    p_conv.add_argument("--arch", required=True, help="architecture (see `robact-bench list models`)")
    p_conv.add_argument("--act", default="relu", help="activation (see `robact-bench list activations`; default relu)")
    p_conv.add_argument("--out", required=True, metavar="DIR", help="folder for model.safetensors + model.json")
    p_conv.add_argument("--dataset", default=None,
                        help="the model's dataset: sets classes and input shape, and is what eval uses")  # fmt: skip
    p_conv.add_argument("--num-classes", type=positive_int, default=None, metavar="N",
                        help="output classes (default: the dataset's, else 10)")  # fmt: skip
    p_conv.add_argument("--arch-kwargs", default="{}", metavar="JSON",
                        help='other architecture arguments, e.g. \'{"hidden": [64, 64]}\'')  # fmt: skip
    p_conv.add_argument("--act-kwargs", default="{}", metavar="JSON", help="activation arguments (JSON object)")
    p_conv.add_argument("--drelu-head", type=positive_int, default=None, metavar="N",
                        help="the model has a D-ReLU head of width N before its output layer")  # fmt: skip
    p_conv.add_argument("--rbf-output", action=argparse.BooleanOptionalAction, default=False,
                        help="the model ends with the 1-D RBF output layer (default: no)")  # fmt: skip
    p_conv.add_argument("--normalization", required=True, metavar="none|MEANS/STDS",
                        help="the model's input normalization, never read from the file: 'none' (it takes raw "
                             "[0, 1] images) or per-channel means/stds, e.g. 0.4914,0.4822,0.4465/0.247,0.243,0.261")
    p_conv.add_argument("--layout", default=None, metavar="NAME",
                        help="translate another code base's parameter names to ours: kuangliu (pytorch-cifar "
                             "ResNets and pyautoattack's example: shortcut -> downsample, linear -> fc)")  # fmt: skip
    p_conv.add_argument("--rename", action="append", default=[], metavar="THEIRS=OURS",
                        help="rename one dotted name component in every key (repeatable; after --layout)")  # fmt: skip
    p_conv.add_argument("--name", default=None, help="model name recorded in the metadata (default: DIR's name)")
    p_conv.add_argument("--overwrite", action="store_true", help="replace a checkpoint already in DIR")
    p_conv.set_defaults(func=_cmd_convert)

    p_exp = sub.add_parser(
        "export",
        parents=[common],
        help="turn a saved evaluation (eval.json) of any model, ours or yours, into a leaderboard entry",
        description=(
            "Write DIR/NAME.json, a RobustBench model_info entry with our robact block, from an evaluation "
            "result (the eval.json of `robact-bench eval`, or EvalResult.to_dict() of robact_bench.evaluate() "
            "saved as JSON; read as JSON only, never unpickled). A model that is not of our registry has no "
            "robact.model block, one not trained by robact_bench no robact.training block: they are null and "
            "declared in robact.provenance, and the table marks the row. The entry is validated against the "
            "schema and written atomically; then: robact-bench leaderboard render DIR."
        ),
    )
    p_exp.add_argument("result", metavar="EVAL_JSON", help="the saved evaluation result")
    p_exp.add_argument("--out", required=True, metavar="DIR", help="leaderboard folder (leaderboards/mine/Linf)")
    p_exp.add_argument("--name", default=None, help="entry file name and model name (default: the result's)")
    p_exp.add_argument("--title", default=None, help="the row's title, RobustBench's name (default: the result's)")
    p_exp.add_argument("--group", default=None, help="the name the seeds of one model share (default: --name)")
    p_exp.add_argument("--architecture", default=None,
                       help="architecture, e.g. 'ResNet-18' (required for a model not of our registry)")  # fmt: skip
    p_exp.add_argument("--link", default=None, help="link to the method's paper (default: none)")
    p_exp.add_argument("--authors", default=None, help="authors (default: robact_bench for our models, else none)")
    p_exp.add_argument("--venue", default=None, help="where it was published (default as --authors)")
    p_exp.add_argument("--reported", default=None, type=_percentage,
                       help="the paper's own number, e.g. 52.10 (default: none, written \"\")")  # fmt: skip
    p_exp.add_argument("--overwrite", action="store_true", help="replace an entry of that name in DIR")
    p_exp.set_defaults(func=_cmd_export)

    p_list = sub.add_parser(
        "list", parents=[common],
        help="list registered activations, models, datasets, recipes, suites, attacks, masking checks, or the "
             "shipped configs and boards",
    )  # fmt: skip
    p_list.add_argument("what", choices=tuple(LISTERS))
    p_list.set_defaults(func=_cmd_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.verbose < 2:  # AutoAttack's chatter off the screen; its sanity checks still reach every result
        logging.getLogger("auto-attack").setLevel(logging.ERROR)  # (attacks.autoattack.capture_checks)
    try:
        if os.environ.get("WORLD_SIZE", "1") not in ("", "1") and args.func not in (_cmd_eval, _cmd_train, _cmd_run):
            raise CliError(f"only eval, train and run work under torchrun (WORLD_SIZE={os.environ['WORLD_SIZE']}); "
                           f"run {args.command} in one process")  # fmt: skip
        return int(args.func(args))
    except (CliError, ValueError, KeyError, TypeError, OSError, ImportError) as exc:
        if os.environ.get("ROBACT_DEBUG"):
            raise
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"robact-bench: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
