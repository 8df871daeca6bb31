"""``torch.distributed`` in one place: joining torchrun's process group, ranks, gathering.

The package never starts processes itself: ``torchrun`` (PyTorch's launcher) does, on one host
or many, and passes ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT`` in the environment. :func:`init` joins that group (``gloo`` on the CPU,
``nccl`` on CUDA) when ``WORLD_SIZE`` > 1 and does nothing otherwise, so every function here
also works, trivially, in a single process:

* :func:`gather` returns every rank's object, in rank order (``[obj]`` in one process);
* :func:`on_main` runs a function on rank 0 only and hands its value (or its ``ValueError``)
  to every rank, so a bad input stops all ranks with the same one-line error instead of
  leaving the others waiting;
* :func:`is_main` guards the writes: only rank 0 writes files;
* :func:`alone` makes a block run as one process would, though the group stays joined: there
  :func:`is_distributed` is False, so nothing inside communicates (``robact-bench run`` under
  torchrun gives each rank whole (entry, seed) units this way and joins the ranks afterwards).

Multi-host: run the same ``torchrun`` command on every host with ``--nnodes``,
``--node_rank`` (or ``--rdzv_backend c10d --rdzv_endpoint HOST:PORT``) and a folder every host
sees for the outputs; see the README ("Many processes, many hosts").
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["alone", "barrier", "gather", "init", "is_distributed", "is_main", "joined", "local_device", "on_main",
           "rank", "shutdown", "sum_over_ranks", "world_size"]  # fmt: skip

_alone_depth = 0  # > 0 inside alone(): this process computes as if it were the only one


def _in_group() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_distributed() -> bool:
    """Whether this process computes with others: a joined group of several, and not inside :func:`alone`."""
    return _alone_depth == 0 and _in_group()


@contextmanager
def alone() -> Iterator[None]:
    """Inside the block this process computes alone, as a one-process run does, though its group stays joined.

    :func:`is_distributed` is False, :func:`rank` 0, :func:`world_size` 1 and :func:`is_main`
    True, so the evaluation engine shares no chunk, training wraps no model in DDP, no rank
    waits for another and this process writes its own files: exactly those a one-process run
    writes (their ``world_size`` records say 1). After the block the ranks communicate again.
    Nests; not thread-safe (one flag per process).
    """
    global _alone_depth
    _alone_depth += 1
    try:
        yield
    finally:
        _alone_depth -= 1


def rank() -> int:
    """Rank of this process (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True on rank 0, the only rank that writes files."""
    return rank() == 0


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "")
    try:
        return int(text) if text else default
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer; got {text!r}") from None


def local_device(device: str | torch.device) -> torch.device:
    """The device of this process: ``cuda`` becomes ``cuda:LOCAL_RANK`` under torchrun."""
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None and _env_int("WORLD_SIZE", 1) > 1:
        return torch.device("cuda", _env_int("LOCAL_RANK", 0))
    return dev


def init(device: str | torch.device = "cpu", backend: str | None = None, timeout_s: float | None = None) -> bool:
    """Join the process group that ``torchrun`` described in the environment, if any.

    Args:
        device: The device this process computes on; picks the backend (``nccl`` for CUDA,
            ``gloo`` otherwise) and, for CUDA, the current device (``LOCAL_RANK``).
        backend: Force a backend (``gloo``, ``nccl``).
        timeout_s: How long a collective waits for the other ranks before it fails (default:
            torch's, 30 min for gloo); a job whose ranks meet only after long, uneven work needs more.

    Returns:
        True when this process is one of several (``WORLD_SIZE`` > 1), False otherwise.

    Raises:
        ValueError: ``WORLD_SIZE`` > 1 but torch was built without distributed support.

    """
    if _in_group():
        return True
    if _env_int("WORLD_SIZE", 1) <= 1:
        return False
    if not dist.is_available():
        raise ValueError("WORLD_SIZE > 1 but this torch build has no torch.distributed support")
    dev = local_device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    chosen = backend or ("nccl" if dev.type == "cuda" else "gloo")
    extra = {"timeout": timedelta(seconds=timeout_s)} if timeout_s is not None else {}
    dist.init_process_group(chosen, init_method="env://", **extra)
    log.info("joined process group: rank %d of %d (%s)", dist.get_rank(), dist.get_world_size(), chosen)
    return True


def shutdown() -> None:
    """Leave the process group (no-op when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def joined(device: str | torch.device = "cpu", timeout_s: float | None = None) -> Iterator[bool]:
    """:func:`init` for the block (yields whether distributed) and :func:`shutdown` after it."""
    try:
        yield init(device, timeout_s=timeout_s)
    finally:
        shutdown()


def barrier() -> None:
    """Wait for every rank (no-op when not distributed)."""
    if is_distributed():
        dist.barrier()


def gather(obj: T) -> list[T]:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` in one process).

    Objects travel pickled between our own processes (``all_gather_object``); nothing from a
    file goes through this.
    """
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def sum_over_ranks(values: list[float], device: str | torch.device = "cpu") -> list[float]:
    """Element-wise sum of ``values`` over every rank (float64; ``values`` in one process)."""
    if not is_distributed():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def on_main(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 only; every rank gets its value, or the ``ValueError`` it raised."""
    if not is_distributed():
        return fn()
    box: list[Any] = [None]
    if is_main():
        try:
            box[0] = ("ok", fn())
        except ValueError as exc:
            box[0] = ("error", str(exc))
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "error":
        raise ValueError(value)
    return value
