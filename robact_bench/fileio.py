"""Atomic file writes and the environment record stored with every result.

Every file the package writes goes through :func:`atomic_write_bytes`: the content is written
to a temporary file in the target directory, flushed to disk, then renamed over the target, so
a crash leaves either the old complete file or the new complete one, never half of one.

The temporary file is ``.<name>.<12 hex digits>.tmp`` beside the target. Nothing in the package
ever reads such a file (readers look for ``*.json``, ``*.safetensors``... by name), so one left
behind by a killed process is only litter: :func:`remove_stale_temps` removes it where a run
is resumed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import re
import secrets
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "dumps_json",
    "environment",
    "is_temp_file",
    "package_versions",
    "read_json",
    "remove_stale_temps",
    "to_jsonable",
]

_TEMP_SUFFIX = ".tmp"
_TEMP_RE = re.compile(r"\..+\.(?:[0-9a-f]{12}|[a-z0-9_]{8})\.tmp")
"""``.<name>.<token>.tmp``: our 12-hex-digit token, or the 8 characters of ``tempfile.mkstemp``,
which earlier versions used (their temporary files are ours too)."""

_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
_ATTEMPTS = 3


def _temp_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.{secrets.token_hex(6)}{_TEMP_SUFFIX}")


def _create_temp(target: Path) -> tuple[int, Path]:
    """Create a new temporary file beside ``target``; return its descriptor and path.

    Mode 0o666 through ``os.open``: the kernel applies the process umask as it does for any
    ``open(path, "w")``, so files come out 0o644 under the usual umask 0o022 (``mkstemp`` would
    make them 0o600). Nothing reads or changes the umask, so there is no race with other threads.
    """
    for _ in range(100):
        tmp = _temp_path(target)
        try:
            return os.open(tmp, _OPEN_FLAGS, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name beside {target}")


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file + rename); return the path.

    The data go to ``.<name>.<token>.tmp`` in the target's folder, are flushed and fsynced,
    and the file is renamed over ``path`` (then the folder is fsynced, so the rename survives a
    power loss). A reader sees the old complete file or the new complete one. The new file gets
    the mode an ordinary write gives a new file: ``0o666`` less the umask.

    If the temporary file vanishes before the rename (another process resuming in the same
    folder removed it with :func:`remove_stale_temps`), the write is simply done again.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    attempt = 0
    while True:
        attempt += 1
        fd, tmp = _create_temp(target)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except FileNotFoundError:
            tmp.unlink(missing_ok=True)
            if attempt >= _ATTEMPTS or not target.parent.is_dir():
                raise
            continue
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_directory(target.parent)
        return target


def is_temp_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path``'s name is that of a temporary file of :func:`atomic_write_bytes`."""
    return _TEMP_RE.fullmatch(Path(path).name) is not None


def remove_stale_temps(directory: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files :func:`atomic_write_bytes` left in ``directory``; return them.

    A process killed mid-write (SIGKILL, power loss) cannot clean up its temporary file.
    Such files are never read, so removing them loses nothing. Only plain files named like
    ours (``.<name>.<token>.tmp``) directly in ``directory`` are touched, never subfolders or
    any other file. A writer that is still running in the same folder is not harmed: if its
    temporary file is removed before its rename, it writes again.

    Args:
        directory: The folder to clean (a missing folder is fine: nothing is removed).

    Returns:
        The removed files, sorted.

    """
    d = Path(directory)
    if not d.is_dir():
        return []
    removed = []
    for p in sorted(d.iterdir()):
        if not is_temp_file(p) or p.is_symlink() or not p.is_file():
            continue
        try:
            p.unlink()
        except FileNotFoundError:  # renamed or removed meanwhile
            continue
        removed.append(p)
    return removed


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj: Any) -> Any:
    """Plain JSON values: tuples become lists, NaN/inf become ``None`` (JSON has no NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    return obj


def dumps_json(obj: Any) -> str:
    """JSON text with objects indented by 2 and every list of scalars on one line.

    Per-point results are lists of numbers as long as the evaluation (364 to 1,000 points):
    one line each keeps an entry readable and its file a third of the fully indented size.
    The content is exactly ``json.dumps(obj)``'s; ``obj`` must already be JSON-ready
    (:func:`to_jsonable`).
    """

    def fmt(o: Any, depth: int) -> str:
        inner, outer = "  " * (depth + 1), "  " * depth
        if isinstance(o, dict) and o:
            items = (f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {fmt(v, depth + 1)}" for k, v in o.items())
            return "{\n" + ",\n".join(items) + "\n" + outer + "}"
        if isinstance(o, (list, tuple)) and any(isinstance(v, (dict, list, tuple)) for v in o):
            return "[\n" + ",\n".join(inner + fmt(v, depth + 1) for v in o) + "\n" + outer + "]"
        return json.dumps(o, ensure_ascii=False, allow_nan=False)

    return fmt(obj, 0)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as JSON atomically (:func:`dumps_json`; NaN/inf become ``null``: JSON has no NaN)."""
    return atomic_write_text(path, dumps_json(to_jsonable(obj)) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file; a missing or malformed file raises ``ValueError`` naming it."""
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{p}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{p}: not valid JSON ({exc})") from None


_PACKAGES = (
    "robact_bench",
    "torch",
    "numpy",
    "pyautoattack",
    "autoattack",
    "torchattacks",
    "adversarial-robustness-toolbox",
    "safetensors",
)


def package_versions(names: tuple[str, ...] = _PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that shape a result (absent ones are left out)."""
    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def code_fingerprint() -> str:
    """SHA-256 (first 16 hex digits) over the package's own source and data files: which code ran.

    Every ``*.py``, ``*.json`` and ``*.yaml`` file under the installed ``robact_bench`` package, in
    sorted relative-path order, path and bytes; equal fingerprints, equal code.
    """
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".json", ".yaml") and p.is_file()):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def environment() -> dict[str, Any]:
    """Versions, the package's code fingerprint, Python, platform and the torch device/thread settings."""
    import torch

    return {
        "versions": package_versions(),
        "code_sha256": code_fingerprint(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
