"""The main job: the published leaderboards, from training to the rendered table.

``robact-bench run`` calls :func:`run_job` with :func:`leaderboard_entries`: every seed
activation under each recipe its paper uses, plus the two baselines every table is read
against, each trained with 3 seeds and evaluated with the ``adaptive`` suite:

* baselines: ReLU with PGD-7 adversarial training, ReLU with TRADES (beta 6), same budget, and
  ReLU with natural training (the plain network D-ReLU and mReLU-r-m are trained like, and the
  symmetric-activation paper's reference);
* BReLU and VBReLU (alpha = 0.5, the paper's most robust alpha in its Section 4.4.2), PGD-7
  adversarial training (the BReLU paper's recipe);
* ReLU with a D-ReLU head, natural training + lambda * sum m^2 (the D-ReLU paper's recipe);
* mReLU after the convolutions with the final 1-D RBF, random + mean training and the hybrid
  loss (the symmetric-activation paper's mReLU-r-m), and mReLU with plain training (its mReLU).

Datasets: ``mnist5k`` (LeNet-5, 4,000 train / 1,000 test real MNIST digits) and ``digits``
(a two-layer MLP on scikit-learn's 8x8 digits), Linf eps = 0.1 (the D-ReLU paper's MNIST bound).

Each entry's flow: model spec -> train -> checkpoint (safetensors + JSON) -> evaluate ->
``EvalResult`` (with gradient-masking checks) -> RobustBench JSON entry; then the folder's
Markdown table, HTML page, plots and statistics, generated from the JSON files only.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from robact_bench.data import balanced_subset, dataset_info, load_dataset
from robact_bench.evaluation.config import EvalConfig
from robact_bench.evaluation.engine import run_evaluation
from robact_bench.evaluation.result import EvalResult
from robact_bench.fileio import atomic_write_json, remove_stale_temps
from robact_bench.leaderboard.export import to_robustbench, write_entry
from robact_bench.models import ModelSpec
from robact_bench.models.checkpoint import save_checkpoint
from robact_bench.training.config import TrainConfig
from robact_bench.training.loop import train_model

log = logging.getLogger(__name__)

MADRY = "https://arxiv.org/abs/1706.06083"


@dataclass(frozen=True)
class Entry:
    """One leaderboard model to produce (trained once per seed): what to build, how, and its source.

    Attributes:
        name: File-safe model name, shared by its seeds (the JSON files are ``<name>_s<seed>.json``).
        title: Human-readable description (RobustBench's ``name`` field).
        spec: The model.
        train: The training configuration (its seed is replaced per seed).
        method: The paper the method comes from (title), or the baseline's reference.
        link: A link for RobustBench's ``link`` field ("" when the paper has none we can cite).
        venue: RobustBench's ``venue`` field.
        baseline: One of the baselines every table shows (ReLU with PGD-AT or TRADES).

    """

    name: str
    title: str
    spec: ModelSpec
    train: TrainConfig
    method: str
    link: str = ""
    venue: str = "robact_bench reproduction"
    baseline: bool = False


BRELU_PAPER = (
    "Robustness through Random Activation: Adversarial Training with Bernoulli Rectified Linear Units "
    "(anonymous submission)"
)
SAF_PAPER = "Suppressing the Unusual: towards Robust CNNs using Symmetric Activation Functions (Zhao and Griffin)"
TRADES = "https://arxiv.org/abs/1901.08573"

#: per dataset: architecture, its title, and extra keyword arguments for the conv/dense variants
_ARCHS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "mnist5k": ("lenet5", "LeNet5", {}),
    "digits": ("mlp2", "MLP2", {"hidden": [64, 64]}),
}

#: per dataset: epochs of adversarial, natural/SAF and D-ReLU training (digits has 1,437 training
#: images, so it needs more passes than mnist5k's 4,000 for the same number of steps)
_EPOCHS: dict[str, tuple[int, int, int]] = {"mnist5k": (3, 5, 10), "digits": (15, 15, 30)}


def leaderboard_entries(
    dataset: str = "mnist5k",
    *,
    epochs_at: int | None = None,
    epochs_natural: int | None = None,
    epochs_drelu: int | None = None,
    eps: float = 0.1,
) -> list[Entry]:
    """The models of the published leaderboard for ``dataset`` (see the module docstring).

    PGD-AT: PGD-7 (step eps/4, random start), loss 0.5 CE(x) + 0.5 CE(x*), AdamW with OneCycle
    up to lr 3e-3 (weight decay 0.01, as the BReLU paper), batch 128. TRADES: beta 6 with the same
    attack, epochs and optimizer (the same budget). Natural and SAF training: the same optimizer and
    schedule. Epochs per dataset: mnist5k 3 (adversarial) / 5 (natural, SAF) / 10 (D-ReLU); digits
    15 / 15 / 30. D-ReLU: the paper's Adam at 1e-3 (constant), lambda = 0.01, the caps (initial m = 100)
    on their own learning rate of 0.5 so they reach the activations in a short run (see the README).
    SAF: the hybrid loss (a1 = a2 = 1, a3 = 0), half of each batch perturbed (delta 0.3), 16 mean copies.
    """
    if dataset not in _ARCHS:
        raise ValueError(f"the leaderboard job knows datasets {', '.join(_ARCHS)}; got {dataset!r}")
    arch, arch_title, arch_kw = _ARCHS[dataset]
    default_at, default_natural, default_drelu = _EPOCHS[dataset]
    epochs_at = default_at if epochs_at is None else epochs_at
    epochs_natural = default_natural if epochs_natural is None else epochs_natural
    epochs_drelu = default_drelu if epochs_drelu is None else epochs_drelu
    conv = arch == "lenet5"
    # val_fraction = 0: train on every training image
    pgd = TrainConfig(
        "pgd_at", epochs=epochs_at, optimizer="adamw", scheduler="onecycle", lr=3e-3,
        eps=eps, step_size=eps / 4, steps=7, clean_weight=0.5, val_fraction=0.0,
    )  # fmt: skip
    trades = replace(pgd, recipe="trades", trades_beta=6.0)
    drelu = TrainConfig(
        "drelu", epochs=epochs_drelu, optimizer="adam", lr=1e-3, weight_decay=0.0, scheduler="none",
        drelu_lambda=0.01, drelu_lr=0.5, val_fraction=0.0,
    )  # fmt: skip
    natural = TrainConfig("standard", epochs=epochs_natural, lr=3e-3, val_fraction=0.0)
    saf = TrainConfig(
        "saf", epochs=epochs_natural, lr=3e-3, optimizer="adamw", scheduler="onecycle", hybrid_a1=1.0,
        hybrid_a2=1.0, hybrid_a3=0.0, saf_delta=0.3, saf_fraction=0.5, saf_mean_copies=16, saf_mean_sigma=0.3,
        val_fraction=0.0,
    )  # fmt: skip
    mrelu_kw = {**arch_kw, **({"fc_act_layer": "relu"} if conv else {})}
    saf_kw = {**mrelu_kw, **({"batch_norm": True} if conv else {})}
    where = "(convolutions) + ReLU (fc1)" if conv else "(both hidden layers)"

    def spec(act: str, **kw: Any) -> ModelSpec:
        arch_kwargs = kw.pop("arch_kwargs", arch_kw)
        return ModelSpec(arch, act, arch_kwargs=dict(arch_kwargs), **kw)

    a = arch_title
    return [
        Entry(f"{a}_ReLU_PGDAT", f"{a} ReLU, PGD-7 adversarial training (baseline)", spec("relu"), pgd,
              "Towards Deep Learning Models Resistant to Adversarial Attacks (Madry et al., ICLR 2018)", MADRY,
              "ICLR 2018 (baseline)", baseline=True),
        Entry(f"{a}_ReLU_TRADES6", f"{a} ReLU, TRADES beta 6 (baseline)", spec("relu"), trades,
              "Theoretically Principled Trade-off between Robustness and Accuracy (Zhang et al., ICML 2019)", TRADES,
              "ICML 2019 (baseline)", baseline=True),
        Entry(f"{a}_ReLU_Natural", f"{a} ReLU, natural training (reference: the plain network)", spec("relu"),
              natural, "the plain network the symmetric-activation paper and D-ReLU read their defenses against",
              venue="reference", baseline=True),
        Entry(f"{a}_BReLU_PGDAT", f"{a} BReLU, PGD-7 adversarial training", spec("brelu"), pgd, BRELU_PAPER),
        Entry(f"{a}_VBReLU_PGDAT", f"{a} VBReLU (alpha 0.5), PGD-7 adversarial training",
              spec("vbrelu", act_kwargs={"alpha": 0.5}), pgd, BRELU_PAPER),
        Entry(f"{a}_ReLU_DReLUHead", f"{a} ReLU + D-ReLU head, natural training + cap penalty",
              spec("relu", drelu_head=500 if conv else 64, drelu_head_m_init=100.0), drelu, "Dynamic-Max-Value ReLU"),
        Entry(f"{a}_mReLU_RBF_SAF", f"{a} mReLU {where} + 1-D RBF output, random + mean training, hybrid loss",
              spec("mrelu", arch_kwargs=saf_kw, rbf_output=True), saf, SAF_PAPER),
        Entry(f"{a}_mReLU_Natural", f"{a} mReLU {where}, natural training",
              spec("mrelu", arch_kwargs=mrelu_kw), natural, SAF_PAPER),
    ]  # fmt: skip


def entry_file_name(entry: Entry, seed: int) -> str:
    """The JSON file stem (and run folder) of ``entry`` trained with ``seed``."""
    return f"{entry.name}_s{seed}"


def run_entry(
    entry: Entry,
    *,
    seed: int = 0,
    dataset: str,
    train_data: tuple[torch.Tensor, torch.Tensor],
    test_data: tuple[torch.Tensor, torch.Tensor],
    eval_cfg: EvalConfig,
    out: Path,
    progress: bool = True,
    quick: bool = False,
) -> EvalResult:
    """Train (with ``seed``), checkpoint, evaluate and export one entry; return its :class:`EvalResult`."""
    info = dataset_info(dataset)
    c, h, _ = info.shape
    spec = replace(
        entry.spec, num_classes=info.num_classes, arch_kwargs={"in_chans": c, "img_size": h, **entry.spec.arch_kwargs}
    )
    train_cfg = replace(entry.train, seed=seed)
    file_name = entry_file_name(entry, seed)
    torch.manual_seed(seed)
    model = spec.build()
    t0 = time.perf_counter()
    history = train_model(model, *train_data, train_cfg, progress=progress, desc=file_name)
    train_seconds = time.perf_counter() - t0
    run_dir = out / "runs" / dataset / file_name
    training = {
        "recipe": train_cfg.recipe,
        "method": entry.method,
        "config": train_cfg.to_dict(),
        "dataset": dataset,
        "split": "train",
        "n_train": len(train_data[1]),
        "history": history,
        "seconds": round(train_seconds, 2),
    }
    save_checkpoint(run_dir / "model", model, spec, {"training": training})
    result = run_evaluation(
        model,
        *test_data,
        eval_cfg,
        model_name=file_name,
        title=entry.title,
        dataset=dataset,
        split="test",
        spec=spec.to_dict(),
        training=training,
        progress=progress,
        quick=quick,
    )
    atomic_write_json(run_dir / "eval.json", result.to_dict())
    _export(entry, result, spec, out / "leaderboards" / dataset / eval_cfg.norm, file_name)
    return result


def _export(entry: Entry, result: EvalResult, spec: ModelSpec, board: Path, file_name: str) -> None:
    exported = to_robustbench(result, link=entry.link, venue=entry.venue, architecture=_arch_title(spec),
                              group=entry.name, baseline=entry.baseline)  # fmt: skip
    write_entry(exported, board, file_name)


def recheck_job(
    entries: Sequence[Entry],
    *,
    dataset: str = "mnist5k",
    seeds: Sequence[int] = (0, 1, 2),
    norm: str = "Linf",
    out: str | os.PathLike[str] = ".",
) -> Path:
    """Recompute every entry's checks from its saved result and rewrite the board; no training, no attack.

    The checks (:mod:`robact_bench.evaluation.masking`) read only the ``EvalResult``, so after a
    change to a check the board is brought up to date from ``runs/<dataset>/<model>_s<seed>/eval.json``
    (written by :func:`run_entry`): the numbers stay those of the evaluation (its
    ``environment.code_sha256`` says which code made them), the checks and the export are redone
    (``robact.masking.code_sha256`` says which code judged them), then the folder is published.

    Raises:
        ValueError: a saved result is missing (one line naming it).

    """
    from robact_bench.evaluation.masking import masking_checks
    from robact_bench.fileio import read_json
    from robact_bench.leaderboard.publish import publish

    out = Path(out)
    board = out / "leaderboards" / dataset / norm
    for entry in entries:
        for seed in seeds:
            file_name = entry_file_name(entry, seed)
            path = out / "runs" / dataset / file_name / "eval.json"
            if not path.is_file():
                raise ValueError(f"{path}: no saved result to recheck (run `robact-bench run` for this model first)")
            result = EvalResult.from_dict(read_json(path))
            result = replace(result, masking=tuple(masking_checks(result)))
            _export(entry, result, ModelSpec.from_dict(result.model), board, file_name)
            log.info("rechecked %s", file_name)
    return publish(board)[0]


def _arch_title(spec: ModelSpec) -> str:
    names = {
        "lenet5": "LeNet-5",
        "lenet_cifar": "LeNet (CIFAR)",
        "mlp2": "MLP-2",
        "shallow_cnn": "Shallow CNN",
        "resnet18_cifar": "ResNet-18",
        "vgg16_cifar": "VGG-16",
    }
    return names.get(spec.arch, spec.arch) + (" + D-ReLU head" if spec.drelu_head else "")


def _load(
    dataset: str, n_train: int | None
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    x, y = load_dataset(dataset, "train")
    if n_train is not None:
        keep = balanced_subset(y, n_train)
        x, y = x[keep], y[keep]
    return (x, y), load_dataset(dataset, "test")


def run_job(
    entries: Sequence[Entry],
    *,
    dataset: str = "mnist5k",
    seeds: Sequence[int] = (0, 1, 2),
    eval_cfg: EvalConfig,
    out: str | os.PathLike[str] = ".",
    progress: bool = True,
    quick: bool = False,
    n_train: int | None = None,
    resume: bool = False,
) -> tuple[list[EvalResult], Path]:
    """Run every entry with every seed, then render the leaderboard folder; return results and its table.

    Args:
        entries: Models to produce.
        dataset: Dataset name (train on ``train``, evaluate on ``test``).
        seeds: Training seeds (one checkpoint and one JSON entry per entry and seed).
        eval_cfg: Evaluation configuration.
        out: Output root: ``<out>/leaderboards/<dataset>/<norm>/`` and ``<out>/runs/``.
        progress: Show progress bars.
        quick: Smoke run (marked in every file).
        n_train: Use only the first ``n_train`` class-balanced training images.
        resume: Skip an entry and seed whose JSON file is already in the leaderboard folder and
            valid (a stopped job goes on where it stopped; the results returned are the new ones).

    """
    from robact_bench.leaderboard.publish import publish
    from robact_bench.leaderboard.schema import validate_paths

    out = Path(out)
    board = out / "leaderboards" / dataset / eval_cfg.norm
    if resume:  # temporary files a killed job left behind (never read; they must not be published)
        for folder in (board, board / "plots", *sorted((out / "runs" / dataset).glob("*"))):
            remove_stale_temps(folder)
    train, test = _load(dataset, n_train)
    results = []
    for entry in entries:
        for seed in seeds:
            done = board / f"{entry_file_name(entry, seed)}.json"
            if resume and done.is_file() and validate_paths([done]).ok:
                log.info("%s exists and is valid: skipped (resume)", done)
                continue
            log.info("running %s seed %d", entry.name, seed)
            res = run_entry(entry, seed=seed, dataset=dataset, train_data=train, test_data=test,
                            eval_cfg=eval_cfg, out=out, progress=progress, quick=quick)  # fmt: skip
            results.append(res)
    paths = publish(board)
    return results, paths[0]


def summary_rows(results: Sequence[EvalResult]) -> list[dict[str, Any]]:
    """Compact per-model numbers for printing."""
    return [
        {
            "model": r.model_name,
            "clean": round(100 * r.clean_acc, 2),
            "reported": None if r.reported_acc is None else round(100 * r.reported_acc, 2),
            "autoattack": None if r.autoattack_acc is None else round(100 * r.autoattack_acc, 2),
            "robust": round(100 * r.robust_acc, 2),
            "n": r.n_examples,
            "seconds": round(r.wall_time_s + r.training.get("seconds", 0.0), 1),
        }
        for r in results
    ]
