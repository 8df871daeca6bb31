"""Property-based tests (hypothesis): whatever a user types or a file holds, errors are one clean line.

Three targets, each fed several hundred generated inputs (the counts are printed at the end of
the run by ``tests/conftest.py``):

* ``cli-parsing``: ``--eps``, ``--norm``, ``--steps``, ``--n-examples``, ``--sweep-eps`` and friends,
  random and malformed, through ``robact_bench.cli.main`` in command lines that can never start
  real work (a run folder or checkpoint that does not exist);
* ``config-loader``: random YAML documents and mutated configs through ``load_config_file`` and
  ``resolve_run_config`` (and ``robact-bench train -c FILE`` where they fail): ``ValueError``, one line;
* ``leaderboard-validator``: random JSON, mutated committed entries and random bytes through
  ``validate_paths`` (never raises) and ``robact-bench leaderboard validate`` (exit 1, one line per
  problem naming the file; 0 when valid).

Settings come from the ``robact`` profile in conftest (derandomized, no deadline, no database).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from robact_bench.cli import main, nonnegative_int, parse_eps, parse_number, positive_int  # noqa: E402
from robact_bench.leaderboard.schema import validate_paths  # noqa: E402
from robact_bench.training.config import RunConfig, load_config_file, resolve_run_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MISSING = "/nonexistent-robact-property-target"  # never created: no command line here can start work
ENTRIES = sorted((ROOT / "leaderboards" / "digits" / "Linf").glob("*.json"))

# Inputs tried per target and the unexpected exceptions seen; conftest prints them at the end.
INPUTS_TRIED: dict[str, int] = {"cli-parsing": 0, "config-loader": 0, "leaderboard-validator": 0}
TRACEBACKS: dict[str, int] = {"count": 0}


def _settings(max_examples: int) -> settings:
    """The conftest profile (derandomized, no deadline, no database) with this many examples per property."""
    return settings(
        max_examples=max_examples,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )


def _tried(target: str) -> None:
    INPUTS_TRIED[target] += 1


@contextlib.contextmanager
def _expect(*allowed: type[BaseException]):
    """Let ``allowed`` exceptions through to the caller; count (and re-raise) any other."""
    try:
        yield
    except allowed:
        raise
    except BaseException:
        TRACEBACKS["count"] += 1
        raise


def _cli(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` in-process: (exit code, stdout, stderr); argparse's SystemExit is caught.

    The streams encode as a real process's do (UTF-8; stdout strict, stderr backslashreplace), so
    a message that cannot be printed fails here as it would in a terminal.
    """
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", newline="\n")
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace", newline="\n")
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), _expect(SystemExit):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    texts = []
    for stream in (out, err):
        stream.flush()
        texts.append(stream.buffer.getvalue().decode("utf-8"))
    if "Traceback" in texts[1]:
        TRACEBACKS["count"] += 1
    return code, texts[0], texts[1]


def _one_error_line(code: object, out: str, err: str) -> str:
    assert isinstance(code, int) and code != 0, (code, err)
    assert "Traceback" not in err and out == "", (out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n"), err
    assert lines[0].startswith("robact-bench") and "error" in lines[0], lines[0]
    return lines[0]


# --- strategies --------------------------------------------------------------------------------------------------

_NUMBERISH_TEXT = st.from_regex(r"\A\s?[-+]?\d{0,4}\.?\d{0,4}([eE][-+]?\d{1,4})?(/[-+]?\d{0,4}\.?\d{0,3})?\s?\Z")
_SPECIAL = st.sampled_from(
    ["", " ", "nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e309", "1e-400", "-0", "0", "1", "1.0", "8", "255",
     "8/255", "8 / 255", "1/0", "0/0", "-1/255", "1/-255", "2/1", "1e999/1", "1/1e999", "0x10", "1_0", "1__0",
     "１", "٣", "½", "1/2/3", "/", "1/", "/2", "--", "-", "9" * 5000, "0." + "9" * 5000, "1" + "0" * 400,
     "8/255\n", "\t0.1\t", "0.1\x00", "e", "E5", ".", "+.5", "-.5", "1e", "0.1 0.2", "True", "None", "∞", "\u2028"]
)  # fmt: skip
NUMBERISH = st.one_of(
    _SPECIAL,
    _NUMBERISH_TEXT,
    st.floats().map(repr),
    st.integers().map(str),
    st.integers(min_value=-(10**600), max_value=10**600).map(str),
    st.fractions().map(str),
    st.text(max_size=12),
)
NORMS = st.one_of(st.sampled_from(["Linf", "L2", "linf", "l2", "Linf ", "L1", "", "inf"]), st.text(max_size=6))
# Values in argv positions of nargs="+" flags (--sweep-eps): argparse reads "-x" as an option there
# (and "-h" as --help, exit 0), so such tokens are left to the flags written as --flag=VALUE.
_NEG_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")


def _list_item_ok(v: str) -> bool:
    return not v.startswith("-") or bool(_NEG_NUMBER.match(v))


EXTRA = st.lists(st.text(max_size=8).filter(lambda v: not v.startswith("-")), max_size=2)


def _accepts(parse, text: str) -> bool:
    try:
        parse(text)
    except argparse.ArgumentTypeError:
        return False
    return True


def _check_parse_stage(line: str, flags: dict[str, tuple[object, str | list[str]]], extra: list[str], reached: str):
    """The error came from argparse iff some value is bad (by the flag's own parser) or argv has extras."""
    bad = {f for f, (parse, value) in flags.items()
           if not all(_accepts(parse, v) for v in (value if isinstance(value, list) else [value]))}  # fmt: skip
    if not line.endswith("--help)"):  # the command ran: parsing accepted everything
        assert not bad and not extra, (bad, extra, line)
        assert reached in line, line
    else:
        assert bad or extra, line
        assert line.endswith("--help)"), line
        named = re.match(r"robact-bench \w+: error: argument (--[\w-]+)", line)
        if named:
            assert named.group(1) in bad, (named.group(1), bad, line)
        else:
            assert "unrecognized arguments" in line and extra, line


# --- cli-parsing --------------------------------------------------------------------------------------------------


@_settings(350)
@given(eps=NUMBERISH, steps=NUMBERISH, n=NUMBERISH, seed=NUMBERISH, extra=EXTRA)
def test_report_flags_never_crash_and_fail_in_one_line(eps, steps, n, seed, extra):
    _tried("cli-parsing")
    argv = ["report", MISSING, f"--eps={eps}", f"--steps={steps}", f"--n-examples={n}", f"--seed={seed}", *extra]
    line = _one_error_line(*_cli(argv))
    flags = {"--eps": (parse_eps, eps), "--steps": (positive_int, steps), "--n-examples": (positive_int, n),
             "--seed": (nonnegative_int, seed)}  # fmt: skip
    _check_parse_stage(line, flags, extra, f"{MISSING}: no finished runs")


@_settings(300)
@given(
    eps=NUMBERISH,
    norm=NORMS,
    n=NUMBERISH,
    sweep=st.lists(NUMBERISH.filter(_list_item_ok), min_size=1, max_size=3),
    sweep_steps=st.lists(NUMBERISH.filter(_list_item_ok), min_size=1, max_size=2),
    extra=EXTRA,
)
def test_eval_flags_never_crash_and_fail_in_one_line(eps, norm, n, sweep, sweep_steps, extra):
    _tried("cli-parsing")
    argv = ["eval", "--checkpoint", MISSING, f"--eps={eps}", f"--norm={norm}", f"--n-examples={n}",
            "--sweep-eps", *sweep, "--sweep-steps", *sweep_steps, *extra]  # fmt: skip
    line = _one_error_line(*_cli(argv))

    def norm_ok(text: str) -> None:
        if text not in ("Linf", "L2"):
            raise argparse.ArgumentTypeError(text)

    flags = {"--eps": (parse_number, eps), "--norm": (norm_ok, norm), "--n-examples": (positive_int, n),
             "--sweep-eps": (parse_number, sweep), "--sweep-steps": (positive_int, sweep_steps)}  # fmt: skip
    _check_parse_stage(line, flags, extra, f"--checkpoint {MISSING}: no model.json there")


@_settings(200)
@given(eps=NUMBERISH, steps=NUMBERISH, beta=NUMBERISH, extra=EXTRA)
def test_train_flags_never_crash_and_fail_in_one_line(eps, steps, beta, extra):
    _tried("cli-parsing")
    argv = ["train", "-c", MISSING + ".yaml", f"--eps={eps}", f"--steps={steps}", f"--trades-beta={beta}", *extra]
    line = _one_error_line(*_cli(argv))

    def int_ok(text: str) -> None:
        try:
            int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(text) from None

    flags = {"--eps": (parse_number, eps), "--steps": (int_ok, steps), "--trades-beta": (parse_number, beta)}
    _check_parse_stage(line, flags, extra, f"no config file '{MISSING}.yaml'")


@_settings(250)
@given(
    value=st.one_of(
        st.fractions(min_value=0, max_value=1, max_denominator=10**6).map(lambda f: ("frac", f)),
        st.decimals(min_value=0, max_value=1, places=8).map(lambda d: ("dec", d)),
        st.floats(min_value=1.0, max_value=1e300, exclude_min=True).map(lambda f: ("above", f)),
        st.floats(max_value=-1e-300, allow_infinity=False).map(lambda f: ("below", f)),
        st.integers(min_value=1, max_value=10**6).map(lambda k: ("steps", k)),
    ),
    pad=st.sampled_from(["", " ", "\t"]),
)
def test_valid_values_parse_exactly_and_invalid_ones_say_why(value, pad):
    _tried("cli-parsing")
    kind, v = value
    if kind == "frac":
        text = f"{pad}{v.numerator}/{v.denominator}{pad}"
        assert parse_eps(text) == float(Fraction(v.numerator, v.denominator))
    elif kind == "dec":
        text = f"{pad}{v}{pad}"
        assert parse_eps(text) == float(str(v))
    elif kind == "above":
        with pytest.raises(argparse.ArgumentTypeError, match=r"eps must be in \[0, 1\] .*: for 0\.\.255 units write"):
            parse_eps(repr(v))
    elif kind == "below":
        with pytest.raises(argparse.ArgumentTypeError, match=r"^eps must be a finite number >= 0; got "):
            parse_eps(repr(v))
    else:
        assert positive_int(f"{pad}{v}{pad}") == v and nonnegative_int(str(v - 1)) == v - 1
        text = str(v)
    if kind in ("frac", "dec"):  # and the same text passes through the CLI's parser to the command
        line = _one_error_line(*_cli(["report", MISSING, "--eps", text.strip() or "0", "--steps", "3"]))
        assert line == f"robact-bench: error: {MISSING}: no finished runs (<name>/seed<k>/model.json) found"


# --- config-loader ------------------------------------------------------------------------------------------------

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**500), max_value=10**500),
    st.floats(),  # NaN and infinities included
    st.text(max_size=12),
    st.sampled_from(["8/255", "1/0", "nan", ".inf", "lenet5", "mlp2", "relu", "brelu", "pgd_at", "trades", "digits",
                     "mnist5k", "sgd", "plateau", "none", "null", "1e400", "0x1F", "1_000"]),
)  # fmt: skip
JUNK = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers(), st.booleans()), inner, max_size=3),
    ),
    max_leaves=8,
)
_TRAIN_KEYS = ["recipe", "epochs", "batch_size", "optimizer", "lr", "weight_decay", "momentum", "scheduler", "eps",
               "step_size", "steps", "trades_beta", "early_stopping_patience", "val_fraction", "drelu_lr", "seed",
               "val_robust", "hybrid_p", "saf_mean_copies"]  # fmt: skip
_MODEL_KEYS = [
    "arch",
    "act",
    "act_kwargs",
    "num_classes",
    "arch_kwargs",
    "drelu_head",
    "drelu_head_m_init",
    "rbf_output",
]
_TOP_KEYS = ["name", "description", "dataset", "n_train", "model", "train"]
KEYS = st.one_of(st.sampled_from(_TOP_KEYS + _TRAIN_KEYS + _MODEL_KEYS), st.text(max_size=10), st.integers())


def _base_config() -> dict:
    return {"name": "prop", "dataset": "digits", "model": {"arch": "mlp2", "act": "relu"},
            "train": {"recipe": "standard", "epochs": 1, "lr": 0.003}}  # fmt: skip


MUTATION = st.tuples(
    st.sampled_from(["top", "model", "train"]),
    st.sampled_from(["set", "delete", "replace-section"]),
    KEYS,
    JUNK,
)


def _mutate(config: dict, mutations: list[tuple]) -> dict:
    for where, op, key, value in mutations:
        section = config if where == "top" else config.get(where)
        if op == "replace-section" and where != "top":
            config[where] = value
        elif isinstance(section, dict):
            if op == "delete":
                section.pop(key, None)
            else:
                section[key] = value
    return config


def _check_config_error(exc: ValueError) -> None:
    msg = str(exc)
    assert msg and len(msg.splitlines()) == 1 and msg == msg.strip(), repr(msg)


def _resolve(data: object, source: str) -> RunConfig | None:
    """resolve_run_config: a RunConfig (fingerprintable), or None after a one-line ValueError."""
    with _expect(ValueError):
        try:
            run = resolve_run_config(data, source=source)
        except ValueError as exc:
            _check_config_error(exc)
            return None
        assert re.fullmatch(r"[0-9a-f]{64}", run.fingerprint())
        return run


def _load(path: Path) -> tuple[object, str] | None:
    with _expect(ValueError):
        try:
            return load_config_file(path)
        except ValueError as exc:
            _check_config_error(exc)
            assert path.name in str(exc), str(exc)
            return None


def _cli_train_rejects(path: Path, workdir: Path) -> None:
    """`robact-bench train -c FILE` on a file the library rejected: exit 2, one line, nothing trained."""
    code, out, err = _cli(["train", "-c", str(path), "--out", str(workdir / "never"), "--no-progress"])
    line = _one_error_line(code, out, err)
    assert code == 2 and line.startswith("robact-bench: error: "), line
    assert not (workdir / "never").exists()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("properties")


_YAML_PIECES = st.sampled_from(
    ["name: x\n", "model: {arch: mlp2}\n", "train: {lr: 0.1\n", "train: [1, 2]\n", "- a\n", "? [1, 2]\n: 3\n",
     "a: &x [1]\nb: *x\n", "<<: {name: y}\n", "!!python/object/apply:os.system ['true']\n", "x: !!binary aGk=\n",
     "t: 2020-01-01\n", "d: !!set {a, b}\n", "name: |\n  multi\n  line\n", "\t\n", "%YAML 1.1\n---\n", "---\n...\n",
     "\x00", "\ufeff", "{", "[" * 50, "a:\n" + " " * 3 + "b: c\n", "'unterminated\n", "name: \"a\\nb\"\n",
     "train: {lr: .nan}\n", "train: {eps: 1" + "0" * 400 + "}\n", "n_train: 99999999999999999999999\n"]
)  # fmt: skip


@_settings(250)
@given(doc=st.one_of(st.text(max_size=60), st.lists(_YAML_PIECES, min_size=1, max_size=4).map("".join)))
def test_random_yaml_documents_fail_with_one_line_value_errors(doc, workdir):
    _tried("config-loader")
    path = workdir / "random.yaml"
    path.write_text(doc, encoding="utf-8", errors="surrogatepass")
    loaded = _load(path)
    if loaded is not None and _resolve(loaded[0], loaded[1]) is None:
        _cli_train_rejects(path, workdir)


@_settings(300)
@given(mutations=st.lists(MUTATION, min_size=1, max_size=3))
def test_mutated_configs_resolve_or_fail_with_one_line_value_errors(mutations, workdir):
    _tried("config-loader")
    data = _mutate(_base_config(), mutations)
    try:
        text = yaml.safe_dump(data)
    except (yaml.YAMLError, TypeError):  # not representable in YAML: the resolver gets the dict itself
        text = None
    direct = _resolve(data, "mutated.yaml")
    if text is None:
        return
    path = workdir / "mutated.yaml"
    path.write_text(text, encoding="utf-8")
    loaded = _load(path)
    assert loaded is not None  # safe_dump wrote it, safe_load reads it
    via_file = _resolve(loaded[0], loaded[1])
    if via_file is None:
        _cli_train_rejects(path, workdir)
    elif direct is not None:
        assert via_file.fingerprint() == direct.fingerprint()


@_settings(150)
@given(data=JUNK, overrides=st.dictionaries(st.sampled_from(["run", "model", "train", "other"]), JUNK, max_size=2))
def test_the_resolver_takes_any_python_value(data, overrides):
    _tried("config-loader")
    with _expect(ValueError):
        try:
            resolve_run_config(data, overrides=overrides, source="api")
        except ValueError as exc:
            _check_config_error(exc)


# --- leaderboard-validator ----------------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=10,
)


def _validate(path: Path) -> None:
    """validate_paths never raises on an existing file; the CLI prints the same lines and exits 1 or 0."""
    with _expect():
        report = validate_paths([path])
    assert report.files == [path]
    assert report.invalid == ([path] if report.errors else [])
    for line in report.errors:
        assert line.startswith(f"{path}: ") and len(line.splitlines()) == 1, repr(line)
    code, out, err = _cli(["leaderboard", "validate", str(path)])
    assert err == "" and "Traceback" not in out, err
    bad = 1 if report.errors else 0
    assert out.splitlines() == [*report.errors, f"1 files checked: {1 - bad} valid, {bad} invalid"], out
    assert code == bad


@_settings(200)
@given(doc=JSON_VALUES)
def test_random_json_documents_are_reported_never_raised(doc, workdir):
    _tried("leaderboard-validator")
    path = workdir / "random.json"
    path.write_text(json.dumps(doc), encoding="utf-8", errors="surrogatepass")
    _validate(path)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


@_settings(180)
@given(
    entry=st.sampled_from(ENTRIES),
    edits=st.lists(
        st.tuples(
            st.integers(min_value=0), st.sampled_from(["set", "delete", "add"]), JSON_VALUES, st.text(max_size=8)
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_mutated_committed_entries_are_reported_never_raised(entry, edits, workdir):
    _tried("leaderboard-validator")
    doc = json.loads(entry.read_text(encoding="utf-8"))
    for index, op, value, new_key in edits:
        paths = [p for p in _paths(doc) if p]
        target = paths[index % len(paths)]
        parent = doc
        for part in target[:-1]:
            parent = parent[part]
        if op == "delete":
            del parent[target[-1]]
        elif op == "add" and isinstance(parent, dict):
            parent[new_key] = value
        else:
            parent[target[-1]] = value
    path = workdir / entry.name
    path.write_text(json.dumps(doc), encoding="utf-8", errors="surrogatepass")
    _validate(path)


@_settings(120)
@given(
    data=st.one_of(
        st.binary(max_size=64),
        st.sampled_from(
            [
                b"\xff\xfe{}",
                b"\xef\xbb\xbf{}",
                b'{"a": \xff}',
                b"[" * 50,
                b"1" * 5000,
                b"NaN",
                b'{"name": "\\ud800"}',
                b'{"x\\ny": 1}',
                b"",
                b"\x00",
            ]
        ),
    )
)
def test_non_json_bytes_and_invalid_utf8_are_reported_never_raised(data, workdir):
    _tried("leaderboard-validator")
    path = workdir / "bytes.json"
    path.write_bytes(data)
    _validate(path)


def test_a_committed_entry_is_valid_and_one_problem_is_one_line(workdir):
    assert len(ENTRIES) >= 10
    _validate(ENTRIES[0])
    assert validate_paths([ENTRIES[0]]).ok
    doc = json.loads(ENTRIES[0].read_text(encoding="utf-8"))
    del doc["eps"]
    doc["clean_acc"] = 91.5
    path = workdir / "two_problems.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    report = validate_paths([path])
    assert len(report.errors) == 2
    assert report.errors[0] == f"{path}: eps: missing (a required field)"
    assert report.errors[1] == f"{path}: clean_acc: got 91.5; expected {_desc('clean_acc')}"


def _desc(field: str) -> str:
    from robact_bench.leaderboard.schema import load_schema

    schema = load_schema()
    prop = schema["properties"][field]
    if "$ref" in prop:
        prop = schema["$defs"][prop["$ref"].rsplit("/", 1)[1]]
    return prop["description"]


def test_deep_nesting_is_a_one_line_error_not_a_recursion_error(workdir):
    """Nesting deeper than Python's recursion limit: PyYAML and json raise RecursionError; we do not."""
    path = workdir / "deep.yaml"
    path.write_text("[" * 1000, encoding="utf-8")
    with pytest.raises(ValueError) as info:
        load_config_file(path)
    assert str(info.value) == "deep.yaml: not valid YAML (nested too deeply)"
    _cli_train_rejects(path, workdir)
    path = workdir / "deep.json"
    path.write_text("[" * 1100 + "]" * 1100, encoding="utf-8")
    _validate(path)
    assert validate_paths([path]).errors == [f"{path}: not valid JSON (nested too deeply)"]


@pytest.mark.parametrize(
    ("key", "shown"), [("a\nb", "a\\nb"), ("x\u2028y", "x\\u2028y"), ("\ud800", "\\ud800"), ("c\rd", "c\\rd")]
)
def test_field_names_with_line_breaks_or_surrogates_stay_one_printable_line(key, shown, workdir):
    doc = json.loads(ENTRIES[0].read_text(encoding="utf-8"))
    doc[key] = 1
    path = workdir / "odd_key.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    report = validate_paths([path])
    assert len(report.errors) == 1
    assert report.errors[0].startswith(f"{path}: {shown}: unknown field (allowed: additional_data, architecture, ")
    _validate(path)  # and the CLI prints it (stdout is strict UTF-8)
