"""Our checkpoints in RobustBench's model zoo (optional extra: ``robustbench``).

Croce et al., *RobustBench: a standardized adversarial robustness benchmark*, NeurIPS 2021
Datasets and Benchmarks (https://arxiv.org/abs/2010.09670).

What RobustBench 1.1.1 does, read in its source (``robustbench/utils.py``,
``robustbench/model_zoo/models.py``, ``robustbench/model_zoo/enums.py``):

* The zoo is ``robustbench.model_zoo.models.model_dicts``: an ``OrderedDict`` keyed by the enum
  ``BenchmarkDataset`` (values ``cifar10``, ``cifar100``, ``imagenet``), each an ``OrderedDict``
  keyed by ``ThreatModel`` (``Linf``, ``L2``, ``corruptions``, ``corruptions_3d``; CIFAR-100
  and ImageNet have no ``L2`` entry), each an ``OrderedDict`` of model name ->
  ``{'model': <zero-argument constructor>, 'gdrive_id': <id>}``.
* ``load_model(name, model_dir, dataset, threat_model)`` first asks ``timm.is_model`` about
  ``<name lower-cased, '-' -> '_'>_<dataset>_<threat model lower-cased>`` (and if timm knows it,
  downloads timm's weights instead); it refuses an entry whose ``gdrive_id`` is ``None``; then it
  builds ``entry['model']()`` and reads ``<model_dir>/<dataset>/<threat model>/<name>.pt`` with
  torch's loader and no ``weights_only`` argument (so torch's default: restricted since torch 2.6,
  full unpickling before; our :func:`load_model` first checks the file with ``weights_only=True``
  and refuses anything else), downloading it from Google Drive when the file is missing. It takes
  ``checkpoint['state_dict']`` (falling back to the whole object), removes ``'module.'`` and then
  ``'model.'`` from it with ``rm_substr_from_state_dict`` (which drops the first 7 / 6 characters
  of *every key that contains* the substring, wherever it is), loads strictly and returns
  ``model.eval()``. For ImageNet it then adds ``'model.'`` back to every key; a name holding
  ``Kireev2021Effectiveness`` reads ``checkpoint['last']``. ``corruptions_3d`` reads the
  ``corruptions`` folder and entries.

So :func:`register_model` writes ``{'state_dict': {'module.model.' + key: tensor}}`` (tensors
only: it loads under ``weights_only=True``; the two removals give back exactly our keys, whatever
they contain), adds a zoo entry whose constructor rebuilds our architecture from our registry,
and writes ``<name>.robact.json`` (our :class:`~robact_bench.models.ModelSpec`) beside the
weights so that :func:`load_model` can register the entry again in a new process. CIFAR-10 and
CIFAR-100 only; our own checkpoints are read from safetensors, never unpickled.

``robustbench.benchmark`` always calls ``torchvision.datasets.CIFAR10/100(download=True)``, which
downloads unless every batch file is already in ``data_dir`` with torchvision's MD5;
:func:`benchmark` checks those files first and refuses with one line otherwise. RobustBench
lists only deterministic models: a stochastic one gets a warning (use
:func:`robact_bench.evaluate`, which attacks with EOT).

RobustBench 1.1.1 as published on PyPI does not import without extra packages: it declares
``pyautoattack`` but imports the official ``autoattack``, and it needs torchvision (a build that
matches your torch), timm and ``setuptools<81`` (``pkg_resources``). When it cannot be
imported, every function here raises :class:`RobustBenchUnavailable`, one line.

Example:
    >>> path = register_model("Robact2026BReLU_LeNet", "runs/brelu/seed0", model_dir="models")
    >>> model = load_model("Robact2026BReLU_LeNet", model_dir="models")  # no download

"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import io
import logging
import re
import warnings
from collections import OrderedDict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from robact_bench.activations import is_stochastic
from robact_bench.fileio import atomic_write_bytes, atomic_write_json, read_json
from robact_bench.interop._common import PathLike, load_ours, spec_input_shape
from robact_bench.models import ModelSpec
from robact_bench.models.convert import load_tensors_only

logger = logging.getLogger(__name__)

__all__ = ["RobustBenchUnavailable", "benchmark", "is_available", "load_model", "register_model"]

INSTALL = (
    "pip install 'robact_bench[robustbench]' (robustbench 1.1.1 also needs torchvision built for your torch, "
    "timm and setuptools<81, and the official autoattack: pip install git+https://github.com/fra31/auto-attack)"
)
DATASETS = {"cifar10": 10, "cifar100": 100}
THREAT_MODELS = ("Linf", "L2", "corruptions", "corruptions_3d")
SIDECAR_FORMAT = "robact_bench.robustbench_entry/1"
_KEY_PREFIX = "module.model."  # load_model removes 'module.' then 'model.'
_NO_DOWNLOAD = "robact_bench-local-checkpoint"  # a gdrive_id that is never used: the file is in place
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# torchvision.datasets.CIFAR10 / CIFAR100 (0.28): the files and MD5s that stop its download
_TORCHVISION_FILES = {
    "cifar10": (
        "cifar-10-batches-py",
        {
            "data_batch_1": "c99cafc152244af753f735de768cd75f",
            "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
            "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
            "data_batch_4": "634d18415352ddfa80567beed471001a",
            "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
            "test_batch": "40351d587109b95175f43aff81a1287e",
            "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
        },
    ),
    "cifar100": (
        "cifar-100-python",
        {
            "train": "16019d7e3df5f24257cddd939b257f8d",
            "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
            "meta": "7973b15100ade9c7d40fb424638fde48",
        },
    ),
}


class RobustBenchUnavailable(ImportError):
    """RobustBench is not installed, or is installed but cannot be imported here."""


def _robustbench() -> SimpleNamespace:
    """Import the parts of RobustBench we use, or raise :class:`RobustBenchUnavailable` (one line)."""
    if importlib.util.find_spec("robustbench") is None:
        raise RobustBenchUnavailable(f"robustbench is not installed (optional extra): {INSTALL}")
    try:
        ns = SimpleNamespace(
            package=importlib.import_module("robustbench"),
            enums=importlib.import_module("robustbench.model_zoo.enums"),
            models=importlib.import_module("robustbench.model_zoo.models"),
            utils=importlib.import_module("robustbench.utils"),
        )
    except Exception as err:  # torchvision built for another torch raises RuntimeError, not ImportError
        first = str(err).splitlines()[0] if str(err) else ""
        raise RobustBenchUnavailable(
            f"robustbench is installed but cannot be imported ({type(err).__name__}: {first}): {INSTALL}"
        ) from None
    return ns


def is_available() -> bool:
    """True when RobustBench imports here (with everything its own imports need)."""
    try:
        _robustbench()
    except RobustBenchUnavailable as err:
        logger.debug("%s", err)
        return False
    return True


def _keys(rb: SimpleNamespace, dataset: str, threat_model: str) -> tuple[Any, Any]:
    """Our arguments -> RobustBench's enum members, the way its ``load_model`` maps them."""
    if dataset not in DATASETS:
        raise ValueError(
            f"dataset must be one of {', '.join(DATASETS)} (RobustBench's load_model rewrites ImageNet keys); "
            f"got {dataset!r}"
        )
    if threat_model not in THREAT_MODELS:
        raise ValueError(f"threat_model must be one of {', '.join(THREAT_MODELS)}; got {threat_model!r}")
    return rb.enums.BenchmarkDataset(dataset), rb.enums.ThreatModel(threat_model.replace("_3d", ""))


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"model name must be letters, digits, '_', '-', '.' (it becomes a file name); got {name!r}")
    if "Kireev2021Effectiveness" in name:
        raise ValueError(f"{name!r}: RobustBench reads checkpoint['last'] for names holding 'Kireev2021Effectiveness'")


def _build(spec: dict[str, Any]) -> nn.Module:
    """The zoo entry's constructor: our architecture from our registry, fresh weights."""
    return ModelSpec.from_dict(spec).build()


def _paths(model_dir: PathLike, ds: Any, tm: Any, name: str) -> tuple[Path, Path]:
    folder = Path(model_dir) / ds.value / tm.value
    return folder / f"{name}.pt", folder / f"{name}.robact.json"


def _check_free(rb: SimpleNamespace, ds: Any, tm: Any, name: str) -> None:
    old = rb.models.model_dicts[ds].get(tm, {}).get(name)
    if old is not None and "robact_bench" not in old:
        raise ValueError(f"{name!r} is already in RobustBench's {ds.value}/{tm.value} zoo: choose another name")


def _add_entry(rb: SimpleNamespace, ds: Any, tm: Any, name: str, spec: ModelSpec, weights: Path) -> None:
    _check_free(rb, ds, tm, name)
    rb.models.model_dicts[ds].setdefault(tm, OrderedDict())[name] = {
        "model": functools.partial(_build, spec.to_dict()),
        "gdrive_id": _NO_DOWNLOAD,
        "robact_bench": {"spec": spec.to_dict(), "weights": str(weights)},
    }


def register_model(
    name: str,
    checkpoint_dir: PathLike,
    *,
    dataset: str = "cifar10",
    threat_model: str = "Linf",
    model_dir: PathLike = "models",
) -> Path:
    """Put one of our checkpoints into RobustBench's model zoo, where ``load_model`` finds it.

    Args:
        name: Zoo name, RobustBench style ``<Author><Year><Word>[_<arch>]``; it must not be a
            RobustBench or timm model already.
        checkpoint_dir: Our run folder (``model.json`` + ``model.safetensors``) or checkpoint
            stem; read from safetensors, the architecture rebuilt from our registry by name.
        dataset: ``cifar10`` or ``cifar100``; the model must take ``(3, 32, 32)`` and return
            10 or 100 logits.
        threat_model: ``Linf``, ``L2``, ``corruptions`` or ``corruptions_3d``.
        model_dir: RobustBench's ``model_dir`` (its default is ``./models``).

    Returns:
        The weights path, ``<model_dir>/<dataset>/<threat model>/<name>.pt``.

    Raises:
        RobustBenchUnavailable: RobustBench cannot be imported.
        ValueError: a bad or taken name, another dataset, or a model that does not fit the
            dataset's input shape or classes.

    Example:
        >>> register_model("Robact2026BReLU_R18", "runs/brelu_r18/seed0", dataset="cifar10")
        >>> robustbench.utils.load_model("Robact2026BReLU_R18", model_dir="models")

    """
    rb = _robustbench()
    _check_name(name)
    ds, tm = _keys(rb, dataset, threat_model)
    _check_free(rb, ds, tm, name)
    timm_name = f"{name.lower().replace('-', '_')}_{ds.value.lower()}_{tm.value.lower()}"
    if importlib.import_module("timm").is_model(timm_name):
        raise ValueError(f"{name!r}: timm has a model {timm_name!r}, which RobustBench's load_model would load instead")
    model, spec, _ = load_ours(checkpoint_dir)
    shape = spec_input_shape(spec)
    if shape != (3, 32, 32) or spec.num_classes != DATASETS[dataset]:
        raise ValueError(
            f"{checkpoint_dir}: {spec.describe()} takes {shape} and returns {spec.num_classes} logits; "
            f"RobustBench's {dataset} needs (3, 32, 32) and {DATASETS[dataset]}"
        )
    weights, sidecar = _paths(model_dir, ds, tm, name)
    state = {_KEY_PREFIX + k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save({"state_dict": state}, buffer)
    atomic_write_bytes(weights, buffer.getvalue())
    atomic_write_json(
        sidecar,
        {
            "format": SIDECAR_FORMAT,
            "name": name,
            "dataset": ds.value,
            "threat_model": tm.value,
            "spec": spec.to_dict(),
            "source": str(checkpoint_dir),
            "weights_sha256": hashlib.sha256(buffer.getvalue()).hexdigest(),
        },
    )
    _add_entry(rb, ds, tm, name, spec, weights)
    logger.info("registered %s in RobustBench's %s/%s zoo: %s", name, ds.value, tm.value, weights)
    return weights


def load_model(
    name: str,
    *,
    dataset: str = "cifar10",
    threat_model: str = "Linf",
    model_dir: PathLike = "models",
) -> nn.Module:
    """``robustbench.utils.load_model`` for a model put in the zoo by :func:`register_model`.

    The zoo lives in memory: in a new process the entry is registered again from the
    ``<name>.robact.json`` written beside the weights. A name that is not ours goes to
    RobustBench unchanged (which may download it).

    Args:
        name: Zoo name.
        dataset: ``cifar10`` or ``cifar100``.
        threat_model: ``Linf``, ``L2``, ``corruptions`` or ``corruptions_3d``.
        model_dir: RobustBench's ``model_dir``.

    Returns:
        The model, built by RobustBench's own ``load_model``, in ``eval()`` mode.

    Raises:
        RobustBenchUnavailable: RobustBench cannot be imported.
        FileNotFoundError: our entry's weights are missing (RobustBench would try Google Drive).

    """
    rb = _robustbench()
    ds, tm = _keys(rb, dataset, threat_model)
    weights, sidecar = _paths(model_dir, ds, tm, name)
    entry = rb.models.model_dicts[ds].get(tm, {}).get(name)
    if entry is None and sidecar.is_file():
        info = read_json(sidecar)
        if not isinstance(info, dict) or info.get("format") != SIDECAR_FORMAT:
            raise ValueError(f"{sidecar}: not a robact_bench zoo entry (expected format {SIDECAR_FORMAT!r})")
        _add_entry(rb, ds, tm, name, ModelSpec.from_dict(info.get("spec", {})), weights)
        entry = rb.models.model_dicts[ds][tm][name]
    if entry is not None and "robact_bench" in entry and not weights.is_file():
        raise FileNotFoundError(f"{weights}: weights missing; run register_model({name!r}, ...) again")
    if weights.is_file():
        check_tensors_only(weights)
    return rb.utils.load_model(name, model_dir=str(model_dir), dataset=dataset, threat_model=threat_model)


def check_tensors_only(path: PathLike) -> None:
    """Refuse a ``.pt`` file that does not load with ``torch.load(weights_only=True)``.

    RobustBench's ``load_model`` calls ``torch.load`` without ``weights_only``: on torch < 2.6
    that unpickles, i.e. runs whatever code the file holds. :func:`load_model` checks the file
    first, so it only ever hands RobustBench a file of plain tensors and containers.

    Raises:
        ValueError: the file holds anything but tensors, numbers, strings and containers.

    """
    load_tensors_only(path)  # the one weights_only reader (robact-bench convert uses it too)


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_local_data(dataset: str, data_dir: PathLike) -> Path:
    """Raise ``ValueError`` (one line) unless torchvision would find ``dataset`` in ``data_dir`` without downloading."""
    if dataset not in _TORCHVISION_FILES:
        raise ValueError(f"dataset must be one of {', '.join(_TORCHVISION_FILES)}; got {dataset!r}")
    folder, files = _TORCHVISION_FILES[dataset]
    root = Path(data_dir) / folder
    missing = [f for f in files if not (root / f).is_file()]
    if missing:
        raise ValueError(
            f"{root}: {dataset} is not there (missing {', '.join(missing)}), and RobustBench would download it: "
            "put the python version of the dataset there"
        )
    bad = [f for f, md5 in files.items() if _md5(root / f) != md5]
    if bad:
        raise ValueError(
            f"{root}: {', '.join(bad)} differ from the published {dataset} (MD5), and RobustBench would download it"
        )
    return root


def benchmark(
    model: nn.Module | PathLike,
    *,
    eps: float,
    dataset: str = "cifar10",
    threat_model: str = "Linf",
    n_examples: int = 10000,
    data_dir: PathLike = "./data",
    batch_size: int = 32,
    device: str | torch.device | None = None,
    **kwargs: Any,
) -> tuple[float, float]:
    """Run ``robustbench.benchmark`` (standard AutoAttack) where its data is already on disk.

    Args:
        model: A model (images in [0, 1], logits) or our checkpoint path.
        eps: Radius of the threat model.
        dataset: ``cifar10`` or ``cifar100``.
        threat_model: ``Linf`` or ``L2`` (corruptions need CIFAR-10-C, which RobustBench downloads).
        n_examples: Test points.
        data_dir: Holds ``cifar-10-batches-py/`` or ``cifar-100-python/`` (the python version).
        batch_size: Batch size of the evaluation.
        device: Where to run (RobustBench's default: CPU).
        **kwargs: Passed to ``robustbench.eval.benchmark`` (``to_disk``, ``model_name``, ...).

    Returns:
        ``(clean accuracy, robust accuracy)`` as fractions, from RobustBench.

    Raises:
        RobustBenchUnavailable: RobustBench cannot be imported.
        ValueError: the dataset is not in ``data_dir`` (RobustBench would download it), or an
            unsupported dataset or threat model.

    """
    _robustbench()
    if threat_model not in ("Linf", "L2"):
        raise ValueError(f"threat_model must be Linf or L2 (corruptions need a download); got {threat_model!r}")
    _check_local_data(dataset, data_dir)
    net = model if isinstance(model, nn.Module) else load_ours(model)[0]
    if is_stochastic(net):
        warnings.warn(
            "the model is stochastic: RobustBench's standard AutoAttack scores it on single forward passes, "
            "which overstates its robustness; use robact_bench.evaluate (EOT) for the number",
            stacklevel=2,
        )
    rb_eval = importlib.import_module("robustbench.eval")
    return rb_eval.benchmark(
        net.eval(),
        n_examples=n_examples,
        dataset=dataset,
        threat_model=threat_model,
        data_dir=str(data_dir),
        eps=eps,
        batch_size=batch_size,
        device=torch.device(device) if device is not None else None,
        **kwargs,
    )
