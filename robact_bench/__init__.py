"""robact_bench: robust activation functions as first-class citizens of adversarial robustness.

Public API::

    get_activation, list_activations, swap_activations, drelu_penalty
    create_model, list_models, with_drelu_head, ModelSpec
    load_dataset, list_datasets
    save_checkpoint, load_checkpoint
    evaluate, list_suites, EvalResult
    export_entry, read_result, to_robustbench   (any evaluation -> a leaderboard entry)
"""

from __future__ import annotations

from robact_bench.activations import (
    drelu_penalty,
    get_activation,
    is_stochastic,
    list_activations,
    swap_activations,
)
from robact_bench.attacks.suites import list_suites
from robact_bench.data import list_datasets, load_dataset
from robact_bench.evaluation.engine import evaluate
from robact_bench.evaluation.result import EvalResult
from robact_bench.leaderboard.export import export_entry, read_result, to_robustbench
from robact_bench.models import ModelSpec, create_model, list_models, with_drelu_head
from robact_bench.models.checkpoint import load_checkpoint, save_checkpoint

__version__ = "0.1.0"

__all__ = [
    "EvalResult",
    "ModelSpec",
    "__version__",
    "create_model",
    "drelu_penalty",
    "evaluate",
    "export_entry",
    "get_activation",
    "is_stochastic",
    "list_activations",
    "list_datasets",
    "list_models",
    "list_suites",
    "load_checkpoint",
    "load_dataset",
    "read_result",
    "save_checkpoint",
    "swap_activations",
    "to_robustbench",
    "with_drelu_head",
]
