"""The main job: train the seed methods on embedded real data, evaluate them, publish the table.

``robact-bench run`` calls :func:`run_job` with :func:`default_entries`: LeNet-5 on mnist5k
(4,000 train / 1,000 test real MNIST digits), Linf eps = 0.1 (the D-ReLU paper's MNIST bound):

* ReLU, PGD-7 adversarial training (the baseline every row is read against);
* BReLU, PGD-7 adversarial training (the BReLU paper's recipe);
* ReLU with a D-ReLU head, natural training + lambda * sum m^2 (the D-ReLU paper's recipe);
* mReLU after the convolutions, ReLU after fc1 (the symmetric-activation paper's structure),
  natural training.

Each entry's flow: model spec -> train -> checkpoint (safetensors + JSON) -> evaluate ->
``EvalResult`` -> RobustBench JSON entry; then the Markdown table of the folder.
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
from robact_bench.fileio import atomic_write_json
from robact_bench.leaderboard.export import to_robustbench, write_entry, write_table
from robact_bench.models import ModelSpec
from robact_bench.models.checkpoint import save_checkpoint
from robact_bench.training.config import TrainConfig
from robact_bench.training.loop import train_model

log = logging.getLogger(__name__)

MADRY = "https://arxiv.org/abs/1706.06083"


@dataclass(frozen=True)
class Entry:
    """One leaderboard row to produce: what to build, how to train it, how to cite it.

    Attributes:
        name: File-safe model name (the JSON file's stem).
        title: Human-readable description (RobustBench's ``name`` field).
        spec: The model.
        train: The training configuration.
        method: The paper the method comes from (title), or the baseline's reference.
        link: A link for RobustBench's ``link`` field ("" when the paper has none we can cite).
        venue: RobustBench's ``venue`` field.

    """

    name: str
    title: str
    spec: ModelSpec
    train: TrainConfig
    method: str
    link: str = ""
    venue: str = "robact_bench reproduction"


def default_entries(
    *, epochs_at: int = 3, epochs_natural: int = 5, epochs_drelu: int = 10, eps: float = 0.1
) -> list[Entry]:
    """The four LeNet-5 rows of the main job (see the module docstring).

    PGD-AT: PGD-7 (step eps/4, random start), loss 0.5 CE(x) + 0.5 CE(x*), AdamW with OneCycle
    up to lr 3e-3 (weight decay 0.01, as the BReLU paper), batch 128. Natural training: the same
    optimizer and schedule. D-ReLU: the paper's Adam at 1e-3 (constant), lambda = 0.01, the caps
    (initial m = 100) on their own learning rate of 0.5 so they reach the activations in a short
    run (see the README).
    """
    # val_fraction = 0: the main job trains on all 4,000 training images (its committed numbers
    # were produced that way); `robact-bench train` carves a validation split by default.
    pgd = TrainConfig(
        "pgd_at", epochs=epochs_at, optimizer="adamw", scheduler="onecycle", lr=3e-3,
        eps=eps, step_size=eps / 4, steps=7, clean_weight=0.5, val_fraction=0.0,
    )  # fmt: skip
    drelu = TrainConfig(
        "drelu", epochs=epochs_drelu, optimizer="adam", lr=1e-3, weight_decay=0.0, scheduler="none",
        drelu_lambda=0.01, drelu_lr=0.5, val_fraction=0.0,
    )  # fmt: skip
    natural = TrainConfig("standard", epochs=epochs_natural, lr=3e-3, val_fraction=0.0)
    return [
        Entry(
            "LeNet5_ReLU_PGDAT",
            "LeNet-5 ReLU, PGD-7 adversarial training (baseline)",
            ModelSpec("lenet5", "relu"),
            pgd,
            "Towards Deep Learning Models Resistant to Adversarial Attacks (Madry et al., ICLR 2018)",
            MADRY,
        ),
        Entry(
            "LeNet5_BReLU_PGDAT",
            "LeNet-5 BReLU, PGD-7 adversarial training",
            ModelSpec("lenet5", "brelu"),
            pgd,
            "Robustness through Random Activation: Adversarial Training with Bernoulli Rectified "
            "Linear Units (anonymous submission)",
        ),
        Entry(
            "LeNet5_ReLU_DReLUHead",
            "LeNet-5 ReLU + D-ReLU head, natural training + cap penalty",
            ModelSpec("lenet5", "relu", drelu_head=500, drelu_head_m_init=100.0),
            drelu,
            "Dynamic-Max-Value ReLU",
        ),
        Entry(
            "LeNet5_mReLU_Natural",
            "LeNet-5 mReLU (convolutions) + ReLU (fc1), natural training",
            ModelSpec("lenet5", "mrelu", arch_kwargs={"fc_act_layer": "relu"}),
            natural,
            "Suppressing the Unusual: towards Robust CNNs using Symmetric Activation Functions (Zhao and Griffin)",
        ),
    ]


def run_entry(
    entry: Entry,
    *,
    dataset: str,
    train_data: tuple[torch.Tensor, torch.Tensor],
    test_data: tuple[torch.Tensor, torch.Tensor],
    eval_cfg: EvalConfig,
    out: Path,
    progress: bool = True,
    quick: bool = False,
) -> EvalResult:
    """Train, checkpoint, evaluate and export one entry; return its :class:`EvalResult`."""
    info = dataset_info(dataset)
    c, h, _ = info.shape
    spec = replace(
        entry.spec,
        num_classes=info.num_classes,
        arch_kwargs={"in_chans": c, "img_size": h, **entry.spec.arch_kwargs},
    )
    torch.manual_seed(entry.train.seed)
    model = spec.build()
    t0 = time.perf_counter()
    history = train_model(model, *train_data, entry.train, progress=progress, desc=entry.name)
    train_seconds = time.perf_counter() - t0
    run_dir = out / "runs" / dataset / entry.name
    training = {
        "recipe": entry.train.recipe,
        "method": entry.method,
        "config": entry.train.to_dict(),
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
        model_name=entry.name,
        title=entry.title,
        dataset=dataset,
        split="test",
        spec=spec.to_dict(),
        training=training,
        progress=progress,
        quick=quick,
    )
    atomic_write_json(run_dir / "eval.json", result.to_dict())
    board = out / "leaderboards" / dataset / eval_cfg.norm
    write_entry(
        to_robustbench(result, link=entry.link, venue=entry.venue, architecture=_arch_title(spec)), board, entry.name
    )
    return result


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
    eval_cfg: EvalConfig,
    out: str | os.PathLike[str] = ".",
    progress: bool = True,
    quick: bool = False,
    n_train: int | None = None,
) -> tuple[list[EvalResult], Path]:
    """Run every entry and render the leaderboard table; return results and the table path.

    Args:
        entries: Rows to produce.
        dataset: Dataset name (train on ``train``, evaluate on ``test``).
        eval_cfg: Evaluation configuration.
        out: Output root: ``<out>/leaderboards/<dataset>/<norm>/`` and ``<out>/runs/``.
        progress: Show progress bars.
        quick: Smoke run (marked in every file).
        n_train: Use only the first ``n_train`` class-balanced training images.

    """
    out = Path(out)
    train, test = _load(dataset, n_train)
    results = []
    for entry in entries:
        log.info("running %s", entry.name)
        results.append(
            run_entry(
                entry,
                dataset=dataset,
                train_data=train,
                test_data=test,
                eval_cfg=eval_cfg,
                out=out,
                progress=progress,
                quick=quick,
            )
        )
    board = out / "leaderboards" / dataset / eval_cfg.norm
    title = f"{dataset}, {eval_cfg.norm}, eps = {eval_cfg.eps:g}" + (" (SMOKE RUN: not a result)" if quick else "")
    table = write_table(board, title=title)
    return results, table


def summary_rows(results: Sequence[EvalResult]) -> list[dict[str, Any]]:
    """Compact per-model numbers for printing."""
    return [
        {
            "model": r.model_name,
            "clean": round(100 * r.clean_acc, 2),
            "reported": round(100 * r.reported_acc, 2),
            "autoattack": round(100 * r.autoattack_acc, 2),
            "robust": round(100 * r.robust_acc, 2),
            "n": r.n_examples,
            "seconds": round(r.wall_time_s + r.training.get("seconds", 0.0), 1),
        }
        for r in results
    ]
