"""Validate leaderboard entries against the JSON Schema shipped in the package, then their numbers.

The schema (``schemas/entry.schema.json``) states RobustBench's ``model_info`` fields with their
exact types (percentage strings, ``eps`` as ``"8/255"`` or ``"0.5"``, an integer
``number_forward_passes``...), as every ``model_info`` file of RobustBench holds them (cifar10,
cifar100, imagenet; Linf, L2, corruptions), and our ``robact`` block; an entry with the block keeps
our export's stricter types. Validation is done by ``jsonschema`` (Draft 2020-12); this module
turns its errors into one line each: the file, the field and what was expected.

Then :func:`contradictions` checks what a schema cannot: a robust accuracy above the clean one,
``external`` (the best known robust accuracy) above ``autoattack_acc``, and, on our entries, a
top-level field that disagrees with the ``robact`` block it is exported from.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from robact_bench.parsing import one_line

SCHEMA_FILE = "entry.schema.json"


def _backends() -> tuple[str, ...]:
    from robact_bench.attacks.backends import recorded_backends

    return tuple(recorded_backends())


def load_schema() -> dict[str, Any]:
    """The entry JSON Schema (a dict), read from the package.

    The file leaves one list to the code: an attack's ``backend`` is one of the names the
    registered attack backends' records carry (:func:`robact_bench.attacks.backends.recorded_backends`),
    so a backend registered once is accepted here too.
    """
    return _load_schema(_backends())


@lru_cache(maxsize=4)
def _load_schema(backends: tuple[str, ...]) -> dict[str, Any]:
    text = resources.files("robact_bench.leaderboard").joinpath("schemas", SCHEMA_FILE).read_text()
    schema = json.loads(text)
    schema["$defs"]["attack"]["properties"]["backend"]["enum"] = list(backends)
    return schema


def _validator() -> Any:
    return _validator_for(_backends())


@lru_cache(maxsize=4)
def _validator_for(backends: tuple[str, ...]) -> Any:
    import jsonschema

    schema = _load_schema(backends)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _field(error: Any) -> str:
    path = [str(p) for p in error.absolute_path]
    if error.validator == "required":
        # jsonschema reports one error per missing key: "'<key>' is a required property"
        key = error.message.split("'")[1] if error.message.count("'") >= 2 else ""
        return ".".join([*path, key]) if key else ".".join(path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in known)
        return ".".join([*path, extra[0]]) if extra else ".".join(path)
    return ".".join(path) or "(top level)"


def _message(error: Any) -> str:
    field_name = _field(error)
    if error.validator == "required":
        return f"{field_name}: missing (a required field)"
    if error.validator == "not":
        return f"{field_name}: not allowed ({error.schema.get('description', 'a field this entry may not have')})"
    if error.validator == "additionalProperties":
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return f"{field_name}: unknown field (allowed: {allowed})"
    desc = error.schema.get("description") if isinstance(error.schema, dict) else None
    got = json.dumps(error.instance)
    got = got if len(got) <= 60 else got[:57] + "..."
    if error.validator == "const":
        return f"{field_name}: got {got}; expected {json.dumps(error.validator_value)}"
    if error.validator == "enum" and not desc:
        return f"{field_name}: got {got}; expected one of {', '.join(map(json.dumps, error.validator_value))}"
    if error.validator in ("type", "pattern", "oneOf", "anyOf", "enum"):
        expected = desc or error.message
        return f"{field_name}: got {got}; expected {expected}"
    return f"{field_name}: {error.message}" + (f" (expected {desc})" if desc else "")


def _printable(text: str) -> str:
    r"""One printable line: line breaks and lone surrogates (a JSON file may hold ``"\ud800"``) escaped."""
    return one_line(text).encode("utf-8", "backslashreplace").decode("utf-8")


#: the fields holding a robust accuracy, each at most ``clean_acc``
ROBUST_FIELDS = ("autoattack_acc", "external", "reported")


@lru_cache(maxsize=1)
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    schema = load_schema()
    eps = next(s for s in schema["properties"]["eps"]["oneOf"] if s.get("type") == "string")
    return re.compile(schema["$defs"]["percent"]["pattern"]), re.compile(eps["pattern"])


def _percent(value: Any) -> Decimal | None:
    """A percentage string the schema accepts, as an exact number; ``None`` for anything else."""
    return Decimal(value) if isinstance(value, str) and _patterns()[0].search(value) else None


def _number(value: Any) -> float | None:
    """A finite JSON number (not a boolean) as a float; ``None`` for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        x = float(value)
    except OverflowError:
        return None
    return x if math.isfinite(x) else None


def _fraction(value: Any) -> float | None:
    """A fraction in [0, 1] (an accuracy of the ``robact`` block); ``None`` for anything else."""
    x = _number(value)
    return x if x is not None and 0.0 <= x <= 1.0 else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _pct(x: float) -> str:
    """``export.pct``: a fraction as RobustBench's percentage string with two decimals."""
    return f"{100.0 * x:.2f}"


def _eps_string(eps: float) -> str:
    """``export.format_eps``: a short exact decimal, else ``"k/255"``, else 6 significant digits."""
    dec = f"{eps:.6g}"
    if float(dec) == eps or not math.isfinite(eps * 255):
        return dec
    k = round(eps * 255)
    return f"{k}/255" if abs(eps - k / 255) < 1e-12 else dec


def _same_eps(text: str, eps: float) -> bool:
    """``text`` (``"8/255"``, ``"0.1"``) is ``eps`` to the 6 significant digits ``format_eps`` keeps."""
    try:
        return text == _eps_string(eps) or f"{float(Fraction(text)):.6g}" == f"{eps:.6g}"
    except (OverflowError, ValueError, ZeroDivisionError):
        return False


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _above_clean(entry: dict[str, Any], noise: Decimal | None) -> list[str]:
    clean = _percent(entry.get("clean_acc"))
    out = []
    for key in ROBUST_FIELDS:
        value = _percent(entry.get(key))
        if clean is None or value is None or value <= clean:
            continue
        above = f"{key}: {_show(entry[key])} is above clean_acc {_show(entry['clean_acc'])}"
        if noise is None:
            out.append(
                f"{above} (a robust accuracy cannot exceed the clean one: the threat model holds the clean input)"
            )
        elif value > noise:
            out.append(f'{above} beyond the noise of the passes (the 95% interval of clean_acc ends at "{noise}")')
    return out


def _external_above_autoattack(entry: dict[str, Any]) -> list[str]:
    external, autoattack = _percent(entry.get("external")), _percent(entry.get("autoattack_acc"))
    if external is None or autoattack is None or external <= autoattack:
        return []
    return [f"external: {_show(entry['external'])} is above autoattack_acc {_show(entry['autoattack_acc'])} "
            "(external is the best known robust accuracy, at most AutoAttack's)"]  # fmt: skip


def _disagrees(key: str, top: Any, where: str, value: Any, exported: str | None = None, why: str = "") -> str:
    line = f"{key}: {_show(top)} disagrees with {where} {_show(value)}"
    if exported is not None:
        line += f" (exported as {_show(exported)})"
    return line + (f" ({why})" if why else "")


def _percent_mirrors(entry: dict[str, Any], key: str, where: str, value: Any) -> list[str]:
    """``entry[key]`` is ``pct(value)``, compared at the two decimals of the export."""
    top, x = _percent(entry.get(key)), _fraction(value)
    if top is None or x is None or top == Decimal(_pct(x)):
        return []
    return [_disagrees(key, entry[key], where, value, _pct(x))]


def _missing_external(entry: dict[str, Any], robact: dict[str, Any], ev: dict[str, Any]) -> list[str]:
    if "external" in entry:
        return []
    if robact.get("track") == "randomized":
        return ['external: missing; robact.track is "randomized" (its headline is always exported as external)']
    if entry.get("unreliable") is True:
        return ["external: missing; unreliable is true (the headline of an unreliable entry is exported as external)"]
    robust, autoattack = _fraction(ev.get("robust_acc")), _fraction(ev.get("autoattack_acc"))
    if robust is not None and autoattack is not None and robust < autoattack:
        return [f"external: missing; robact.evaluation.robust_acc {_show(ev['robust_acc'])} is below "
                f"robact.evaluation.autoattack_acc {_show(ev['autoattack_acc'])} "
                "(a headline below AutoAttack's is exported as external)"]  # fmt: skip
    return []


def _robact_disagreements(entry: dict[str, Any], robact: dict[str, Any]) -> list[str]:
    """The top-level fields against the ``robact`` block, as ``export.to_robustbench`` derives them."""
    ev = _dict(robact.get("evaluation"))
    out: list[str] = []
    dataset = entry.get("dataset")
    if isinstance(dataset, str) and isinstance(ev.get("dataset"), str) and dataset != ev["dataset"]:
        out.append(_disagrees("dataset", dataset, "robact.evaluation.dataset", ev["dataset"]))
    top_eps, eps = entry.get("eps"), _number(ev.get("eps"))
    if isinstance(top_eps, str) and _patterns()[1].search(top_eps) and eps is not None and eps > 0:
        if not _same_eps(top_eps, eps):
            out.append(_disagrees("eps", top_eps, "robact.evaluation.eps", ev["eps"], _eps_string(eps)))
    out += _percent_mirrors(entry, "clean_acc", "robact.evaluation.clean_acc", ev.get("clean_acc"))
    if "autoattack_acc" in ev and ev["autoattack_acc"] is None and "autoattack_acc" in entry:
        out.append(f"autoattack_acc: {_show(entry['autoattack_acc'])} but robact.evaluation.autoattack_acc is null "
                   "(no AutoAttack component ran)")  # fmt: skip
    elif _fraction(ev.get("autoattack_acc")) is not None and "autoattack_acc" not in entry:
        out.append(f"autoattack_acc: missing; robact.evaluation.autoattack_acc is {_show(ev['autoattack_acc'])} "
                   f"(exported as {_show(_pct(ev['autoattack_acc']))})")  # fmt: skip
    out += _percent_mirrors(entry, "autoattack_acc", "robact.evaluation.autoattack_acc", ev.get("autoattack_acc"))
    out += _percent_mirrors(entry, "external", "robact.evaluation.robust_acc", ev.get("robust_acc"))
    out += _missing_external(entry, robact, ev)
    track, stochastic = robact.get("track"), ev.get("stochastic")
    if track in ("deterministic", "randomized") and isinstance(stochastic, bool):
        if (track == "randomized") != stochastic:
            why = "the track is randomized exactly when the evaluation is stochastic"
            out.append(_disagrees("robact.track", track, "robact.evaluation.stochastic", stochastic, why=why))
    passes, top_passes = _count(ev.get("passes")), _count(entry.get("number_forward_passes"))
    if track == "randomized" and passes is not None and top_passes is not None and passes != top_passes:
        why = "the randomized track exports its scoring passes"
        out.append(_disagrees("number_forward_passes", top_passes, "robact.evaluation.passes", passes, why=why))
    masked = _dict(robact.get("masking")).get("unreliable")
    if isinstance(entry.get("unreliable"), bool) and isinstance(masked, bool) and entry["unreliable"] != masked:
        out.append(_disagrees("unreliable", entry["unreliable"], "robact.masking.unreliable", masked))
    return out


def _clean_noise(robact: dict[str, Any]) -> Decimal | None:
    """On the randomized track, the top of clean_acc's 95% interval (a percentage); else ``None``."""
    if robact.get("track") != "randomized":
        return None
    ci = _dict(_dict(_dict(_dict(robact.get("evaluation")).get("scores")).get("clean")).get("expected")).get("ci95")
    upper = _fraction(ci[1]) if isinstance(ci, list) and len(ci) == 2 else None
    return Decimal(_pct(upper)) if upper is not None else None


def contradictions(entry: Any) -> list[str]:
    """The numbers of one entry that contradict each other, one line each (``<field>: <what>``).

    Only fields of the right type are compared (the schema reports the others):

    * ``autoattack_acc``, ``external`` and ``reported`` at most ``clean_acc``: the threat model
      holds the clean image. On our randomized track a robust accuracy may read above the clean
      one by the noise of the passes; there it contradicts only above the top of clean_acc's 95%
      interval (``robact.evaluation.scores.clean.expected.ci95``).
    * ``external`` at most ``autoattack_acc``: RobustBench's "best known robust accuracy".
    * With a ``robact`` block, the top-level fields as ``export.to_robustbench`` derives them from
      it: ``dataset``, ``eps``, ``clean_acc``, ``autoattack_acc`` (present exactly when
      ``robact.evaluation.autoattack_acc`` is a number), ``external`` (``robust_acc``; present on
      the randomized track, when unreliable, and when the headline is below AutoAttack's),
      ``number_forward_passes`` (the passes on the randomized track), ``unreliable``
      (``robact.masking.unreliable``), and ``robact.track`` against ``robact.evaluation.stochastic``.
      Percentages are compared at the export's two decimals.

    Args:
        entry: A parsed entry (any JSON value).

    Returns:
        One line per contradiction, without the file name; empty when there is none.

    """
    if not isinstance(entry, dict):
        return []
    robact = entry.get("robact")
    noise = _clean_noise(robact) if isinstance(robact, dict) else None
    out = _above_clean(entry, noise) + _external_above_autoattack(entry)
    if isinstance(robact, dict):
        out += _robact_disagreements(entry, robact)
    return out


def _optional(node: Any, in_condition: bool = False) -> Any:
    """``node`` without its completeness rules (``required``, ``minProperties``), except inside an ``if``.

    A condition keeps them: ``{"if": {"required": ["robact"]}, ...}`` must still mean "when the
    entry has a ``robact`` block".
    """
    if isinstance(node, dict):
        return {k: _optional(v, in_condition or k == "if") for k, v in node.items()
                if in_condition or k not in ("required", "minProperties")}  # fmt: skip
    if isinstance(node, list):
        return [_optional(v, in_condition) for v in node]
    return node


@lru_cache(maxsize=1)
def _partial_validator() -> Any:
    import jsonschema

    schema = _optional(load_schema())
    return jsonschema.validators.validator_for(schema)(schema)


def type_errors(entry: Any, source: str = "<entry>") -> list[str]:
    """The problems of an entry that a page cannot show: the schema's errors other than a missing field.

    The pages render partial entries (an old file, a RobustBench file without our block, a
    field not yet recorded: shown as "–"), so completeness (``required``, ``minProperties``) is
    not asked for here; every field that is present must have the schema's type, pattern and
    values. :func:`validate_entry` asks for both.

    Returns:
        One line per problem, ``<source>: <field>: <what was wrong and expected>``.

    """
    try:
        errors = sorted(_partial_validator().iter_errors(entry), key=lambda e: [str(p) for p in e.absolute_path])
    except RecursionError:
        return [_printable(f"{source}: nested too deeply to validate")]
    return [_printable(f"{source}: {_message(e)}") for e in errors]


def validate_entry(entry: Any, source: str = "<entry>") -> list[str]:
    """Every problem of one entry, each a line ``<source>: <field>: <what was wrong and expected>``.

    The schema's errors come first, then the :func:`contradictions` between well-typed fields.
    """
    try:
        errors = sorted(_validator().iter_errors(entry), key=lambda e: [str(p) for p in e.absolute_path])
    except RecursionError:
        return [_printable(f"{source}: nested too deeply to validate")]
    lines = [f"{source}: {_message(e)}" for e in errors] + [f"{source}: {c}" for c in contradictions(entry)]
    return [_printable(line) for line in lines]


@dataclass
class ValidationReport:
    """What :func:`validate_paths` found.

    Attributes:
        files: The files checked.
        errors: One line per problem (file, field, what was expected).
        invalid: The files with at least one problem.

    """

    files: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    invalid: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No file had a problem."""
        return not self.errors


def _json_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(q for q in p.rglob("*.json") if q.is_file())
            if not found:  # checking nothing must not read as "all valid"
                raise ValueError(
                    f"{p}: a folder with no .json files (give leaderboard JSON files or folders holding them)"
                )
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise ValueError(f"{p}: no such file or directory (give leaderboard JSON files or folders holding them)")
    return out


def validate_paths(paths: Iterable[str | os.PathLike[str]]) -> ValidationReport:
    """Validate JSON files, and every ``*.json`` under the folders, in ``paths``.

    Every problem of an existing file, whatever its bytes, is reported as a line (never raised).

    Raises:
        ValueError: a path does not exist, or is a folder without a ``.json`` file.

    """
    report = ValidationReport(files=_json_files(paths))
    for f in report.files:
        try:
            errors = validate_entry(json.loads(f.read_text(encoding="utf-8")), str(f))
        except UnicodeDecodeError:
            errors = [f"{f}: not UTF-8 text (a leaderboard entry is a JSON file)"]
        except json.JSONDecodeError as e:
            errors = [f"{f}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})"]
        except RecursionError:
            errors = [f"{f}: not valid JSON (nested too deeply)"]
        except ValueError as e:  # e.g. an integer too long for int(): not a JSONDecodeError
            errors = [f"{f}: not valid JSON ({e})"]
        except OSError as e:
            errors = [f"{f}: cannot read ({e.strerror or e})"]
        errors = [_printable(line) for line in errors]
        if errors:
            report.errors.extend(errors)
            report.invalid.append(f)
    return report
