"""Validate leaderboard entries against the JSON Schema shipped in the package.

The schema (``schemas/entry.schema.json``) states RobustBench's ``model_info`` fields with their
exact types (percentage strings, ``eps`` as ``"8/255"`` or ``"0.5"``, an integer
``number_forward_passes``...) and our ``robact`` block. Validation is done by ``jsonschema``
(Draft 2020-12); this module only turns its errors into one line each: the file, the field and
what was expected.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from robact_bench.parsing import one_line

SCHEMA_FILE = "entry.schema.json"


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    """The entry JSON Schema (a dict), read from the package."""
    text = resources.files("robact_bench.leaderboard").joinpath("schemas", SCHEMA_FILE).read_text()
    return json.loads(text)


@lru_cache(maxsize=1)
def _validator() -> Any:
    import jsonschema

    schema = load_schema()
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


def validate_entry(entry: Any, source: str = "<entry>") -> list[str]:
    """Every problem of one entry, each a line ``<source>: <field>: <what was wrong and expected>``."""
    try:
        errors = sorted(_validator().iter_errors(entry), key=lambda e: [str(p) for p in e.absolute_path])
    except RecursionError:
        return [_printable(f"{source}: nested too deeply to validate")]
    return [_printable(f"{source}: {_message(e)}") for e in errors]


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
