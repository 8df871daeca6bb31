"""Issue 14: a model outside the registry, evaluated with evaluate(), exported as a leaderboard entry.

A user's own module (a tiny CNN defined here, trained with a plain torch loop) is evaluated on real
digits; ``robact-bench export`` turns its eval.json into an entry whose absent blocks are declared,
the schema rejects tampered entries, and the rendered table marks the row as not ours.
"""

import contextlib
import copy
import io
import json
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from leaderboard_entries import make_entry
from torch import nn

from robact_bench import evaluate, export_entry, to_robustbench
from robact_bench.cli import main
from robact_bench.data import balanced_subset
from robact_bench.fileio import atomic_write_json
from robact_bench.leaderboard.export import PROVENANCE_NOTES, SCHEMA_ID, read_result
from robact_bench.leaderboard.render import build_rows, load_entries, render_html, render_markdown
from robact_bench.leaderboard.schema import validate_entry
from robact_bench.models import ModelSpec
from robact_bench.training.config import TrainConfig
from robact_bench.training.loop import train_model

ARCH = "TinyCNN (1 conv, 1 linear)"
SPEC = ModelSpec("mlp2", "relu", arch_kwargs={"img_size": 8, "hidden": [32, 32]}).to_dict()
OUR_TRAINING = {"recipe": "standard", "config": {"epochs": 15, "lr": 3e-3, "seed": 0}, "history": [], "seconds": 1.0}
EVAL = {"attacks": ("pgd20", "apgd-ce"), "eps": 0.1, "n_examples": 40, "sweeps": False, "progress": False}


class TinyCNN(nn.Module):
    """A user's model: not built from our registry, trained outside robact_bench."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.max_pool2d(F.relu(self.conv(x)), 2).flatten(1))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: one torch thread is as fast, and far faster on a busy machine (no oversubscription)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_result(digits):
    xtr, ytr, xte, yte = digits
    keep = balanced_subset(ytr, 500)
    torch.manual_seed(0)
    model = TinyCNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):  # full-batch steps on 500 real training digits
        opt.zero_grad()
        F.cross_entropy(model(xtr[keep]), ytr[keep]).backward()
        opt.step()
    return evaluate(model.eval(), xte, yte, "basic", model_name="MyTinyCNN", title="My tiny CNN", dataset="digits",
                    **EVAL)  # fmt: skip


@pytest.fixture(scope="module")
def eval_json(tmp_path_factory, tiny_result):
    return atomic_write_json(tmp_path_factory.mktemp("eval") / "eval.json", tiny_result.to_dict())


@pytest.fixture(scope="module")
def exported(tmp_path_factory, eval_json):
    """``robact-bench export`` on the saved eval.json; returns (board, entry, stdout lines)."""
    board = tmp_path_factory.mktemp("lb") / "digits" / "Linf"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):  # capsys is per test; this fixture is per module
        code = main(["export", str(eval_json), "--out", str(board), "--name", "MyTinyCNN", "--architecture", ARCH,
                     "--link", "https://example.org/tiny", "--authors", "A. User"])  # fmt: skip
    assert code == 0
    return board, json.loads((board / "MyTinyCNN.json").read_text()), out.getvalue().splitlines()


@pytest.fixture(scope="module")
def our_result(digits):
    """One of our own models: a registry spec, trained by our loop (a real training record)."""
    xtr, ytr, xte, yte = digits
    keep = balanced_subset(ytr, 500)
    cfg = TrainConfig(recipe="standard", epochs=3, lr=3e-3, batch_size=100, seed=0)
    torch.manual_seed(0)
    model = ModelSpec.from_dict(SPEC).build()
    history = train_model(model, xtr[keep], ytr[keep], cfg, progress=False)
    training = {"recipe": "standard", "config": cfg.to_dict(), "history": history, "seconds": 0.5}
    return evaluate(model.eval(), xte, yte, "basic", model_name="MLP2_ReLU_Natural", title="MLP-2 ReLU",
                    dataset="digits", spec=SPEC, training=training, **EVAL)  # fmt: skip


def _pct2(x: float) -> str:
    return f"{100 * x:.2f}"


def test_the_result_is_of_a_model_outside_the_registry(tiny_result):
    assert tiny_result.model == {} and tiny_result.training == {}
    assert tiny_result.n_examples == 40 and [a.name for a in tiny_result.attacks] == ["pgd20", "apgd-ce"]
    # a trained model, attacked: clean well above chance, AutoAttack below clean
    assert tiny_result.clean_acc >= 0.6
    assert tiny_result.autoattack_acc is not None and tiny_result.autoattack_acc < tiny_result.clean_acc
    assert tiny_result.robust_acc <= tiny_result.autoattack_acc


def test_cli_export_writes_a_valid_entry_that_declares_its_absent_blocks(exported, tiny_result, capsys):
    board, entry, stdout = exported
    assert sorted(p.name for p in board.iterdir()) == ["MyTinyCNN.json"]  # no temporary file left behind
    assert stdout[-1] == f"written: {board / 'MyTinyCNN.json'}"
    summary = json.loads(stdout[0])
    assert summary["provenance"] == {"trained_by": "external", "missing": ["model", "training"]}
    assert entry["clean_acc"] == _pct2(tiny_result.clean_acc) == summary["clean_acc"]
    assert entry["autoattack_acc"] == _pct2(tiny_result.autoattack_acc) == summary["autoattack_acc"]
    assert float(entry["clean_acc"]) == pytest.approx(100 * tiny_result.clean_acc, abs=0.005)
    assert (entry["name"], entry["architecture"], entry["dataset"], entry["eps"]) == ("My tiny CNN", ARCH, "digits",
                                                                                       "0.1")  # fmt: skip
    assert (entry["link"], entry["authors"], entry["venue"], entry["reported"]) == ("https://example.org/tiny",
                                                                                     "A. User", "", "")  # fmt: skip
    rb = entry["robact"]
    assert rb["schema"] == SCHEMA_ID == "robact_bench.entry/4"
    assert rb["provenance"] == {"trained_by": "external", "missing": ["model", "training"]}
    assert rb["model"] is None and rb["training"] is None
    assert rb["model_name"] == rb["group"] == "MyTinyCNN"
    assert rb["seed"] == 0 and rb["seeds"] == {"training": None, "evaluation": 0}
    assert rb["evaluation"]["robust_acc"] == tiny_result.robust_acc
    assert rb["evaluation"]["n_examples"] == 40 and set(rb["evaluation"]["per_attack"]) == {"pgd20", "apgd-ce"}
    assert PROVENANCE_NOTES[("model", "training")] in entry["footnote"]
    assert validate_entry(entry) == []
    assert main(["leaderboard", "validate", str(board)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 files checked: 1 valid, 0 invalid"


def test_the_python_call_writes_the_same_entry(exported, tiny_result, eval_json, tmp_path):
    _, cli_entry, _ = exported
    kw = {"name": "MyTinyCNN", "architecture": ARCH, "link": "https://example.org/tiny", "authors": "A. User"}
    path = export_entry(tiny_result, tmp_path / "a", **kw)
    assert path == tmp_path / "a" / "MyTinyCNN.json"
    assert json.loads(path.read_text()) == cli_entry
    # from the saved file: the JSON reader gives back the same result
    assert read_result(eval_json) == tiny_result
    assert json.loads(export_entry(eval_json, tmp_path / "b", **kw).read_text()) == cli_entry
    assert to_robustbench(tiny_result, architecture=ARCH)["robact"]["provenance"]["missing"] == ["model", "training"]
    with pytest.raises(ValueError, match=r"no model spec .* state its architecture"):
        to_robustbench(tiny_result)
    with pytest.raises(ValueError, match="exists: pass overwrite=True"):
        export_entry(tiny_result, tmp_path / "a", **kw)
    assert export_entry(tiny_result, tmp_path / "a", overwrite=True, **kw) == path


def _tamper_model_present(rb):
    rb["model"] = dict(SPEC)


def _tamper_model_undeclared(rb):
    rb["provenance"]["missing"] = ["training"]


def _tamper_training_present(rb):
    rb["training"] = {**OUR_TRAINING, "config_hash": "0123456789abcdef"}


def _tamper_no_provenance(rb):
    del rb["provenance"]


def _tamper_trained_by(rb):
    rb["provenance"]["trained_by"] = "robact_bench"


def _tamper_block_removed(rb):
    del rb["model"]


def _tamper_old_schema(rb):
    rb["schema"] = "robact_bench.entry/3"
    del rb["provenance"]


def _tamper_unknown_block(rb):
    rb["provenance"]["missing"] = ["model", "training", "weights"]


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (_tamper_model_present, "robact.model: got {"),  # declared absent, but present
        (_tamper_model_undeclared, "robact.model: got null"),  # absent, but not declared
        (_tamper_training_present, "robact.training: got {"),
        (_tamper_no_provenance, "robact.provenance: missing (a required field)"),
        (_tamper_trained_by, 'robact.provenance.trained_by: got "robact_bench"; expected "external"'),
        (_tamper_block_removed, "robact.model: missing (a required field)"),  # a block is null, never left out
        (_tamper_old_schema, "robact.model: got null"),  # a /3 entry has every block
        (_tamper_unknown_block, "robact.provenance.missing.2"),
    ],
)
def test_a_tampered_entry_is_rejected(exported, tmp_path, capsys, tamper, expected):
    _, entry, _ = exported
    bad = copy.deepcopy(entry)
    tamper(bad["robact"])
    path = tmp_path / "MyTinyCNN.json"
    path.write_text(json.dumps(bad))
    assert main(["leaderboard", "validate", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert any(line.startswith(f"{path}: {expected}") for line in out), out
    assert out[-1] == "1 files checked: 0 valid, 1 invalid"


def test_render_marks_the_row_that_is_not_ours(exported, tiny_result, our_result, tmp_path, capsys):
    _, entry, _ = exported
    folder = tmp_path / "board"
    folder.mkdir()
    (folder / "MyTinyCNN.json").write_text(json.dumps(entry))
    # one of our own models beside it: a registry spec and our training record, the full blocks
    ours = our_result
    assert ours.indices == tiny_result.indices  # the same points: the paired comparison is possible
    own = json.loads(export_entry(ours, folder, baseline=True).read_text())
    assert own["robact"]["provenance"] == {"trained_by": "robact_bench", "missing": []}
    assert own["robact"]["model"] == SPEC and own["robact"]["training"]["recipe"] == "standard"
    assert [h["epoch"] for h in own["robact"]["training"]["history"]] == [1, 2, 3]
    assert (own["authors"], own["venue"], own["architecture"]) == ("robact_bench", "robact_bench", "mlp2")
    assert "External model" not in own.get("footnote", "")

    assert main(["leaderboard", "render", str(folder)]) == 0
    assert "written:" in capsys.readouterr().out
    table = (folder / "README.md").read_text()
    rows = {g: [line for line in table.splitlines() if f"| {t} (`{g}`)" in line]
            for g, t in (("MyTinyCNN", "My tiny CNN"), ("MLP2_ReLU_Natural", "MLP-2 ReLU"))}  # fmt: skip
    assert [len(v) for v in rows.values()] == [1, 1]
    rows = {"My tiny CNN": rows["MyTinyCNN"][0], "MLP-2 ReLU": rows["MLP2_ReLU_Natural"][0]}
    assert "(`MyTinyCNN`) **[external†]**" in rows["My tiny CNN"]
    assert "†" not in rows["MLP-2 ReLU"] and "**[baseline]**" in rows["MLP-2 ReLU"]
    assert "† My tiny CNN (MyTinyCNN): architecture and training not ours (unknown to robact_bench)." in table
    assert "† Not ours: the entry has no robact.model and/or robact.training record" in table
    page = (folder / "index.html").read_text()
    tr = [line for line in page.splitlines() if line.startswith("<tr data-model=")]
    mine = next(line for line in tr if 'data-model="MyTinyCNN"' in line)
    theirs = next(line for line in tr if 'data-model="MLP2_ReLU_Natural"' in line)
    assert 'class="not-ours"' in mine and '<span class="badge external"' in mine and ">external†</span>" in mine
    assert "not-ours" not in theirs and "badge external" not in theirs
    assert '<p class="note not-ours">† My tiny CNN (MyTinyCNN): architecture and training not ours' in page
    # the statistics read the external entry too: compared with our baseline on the same 40 points
    row = next(r for r in build_rows(load_entries(folder))["deterministic"] if r.group == "MyTinyCNN")
    assert row.missing == ("model", "training")
    assert [c["baseline"] for c in row.versus] == ["MLP2_ReLU_Natural"] and "difference" in row.versus[0]
    assert row.versus[0]["difference"] == pytest.approx(tiny_result.robust_acc - ours.robust_acc)


def test_partly_ours_entries_declare_exactly_what_they_lack(tiny_result):
    # a registry architecture trained elsewhere (robact-bench convert, then eval): the model block stays
    converted = replace(tiny_result, model=SPEC, training={"name": "converted", "dataset": "digits"})
    e = to_robustbench(converted)
    assert e["robact"]["provenance"] == {"trained_by": "external", "missing": ["training"]}
    assert e["robact"]["model"] == SPEC and e["robact"]["training"] is None and e["architecture"] == "mlp2"
    assert PROVENANCE_NOTES[("training",)] in e["footnote"] and validate_entry(e) == []
    # our training loop on a module of the user's: the training block stays
    trained = replace(tiny_result, training=OUR_TRAINING)
    e = to_robustbench(trained, architecture=ARCH)
    assert e["robact"]["provenance"] == {"trained_by": "robact_bench", "missing": ["model"]}
    assert e["robact"]["model"] is None and e["robact"]["training"]["recipe"] == "standard"
    assert PROVENANCE_NOTES[("model",)] in e["footnote"] and validate_entry(e) == []
    # `robact-bench train` then `eval`: train_seconds, a nested seed, the history left out by eval
    run = {"recipe": "pgd_at", "config": {"train": {"seed": 3}}, "train_seconds": 12.5, "name": "x"}
    e = to_robustbench(replace(tiny_result, model=SPEC, training=run))
    assert e["robact"]["provenance"] == {"trained_by": "robact_bench", "missing": []}
    tr = e["robact"]["training"]
    assert (tr["seconds"], tr["history"], e["robact"]["seed"]) == (12.5, [], 3) and validate_entry(e) == []
    with pytest.raises(ValueError, match="partial training record"):
        to_robustbench(replace(tiny_result, training={"recipe": "standard"}), architecture=ARCH)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "MyTinyCNN: the result has no model spec (not a model of our registry): state its architecture"),
        (["--architecture", "x", "--name", "../up"], "name '../up': use letters, digits"),
        (["--architecture", "x", "--group", "a b"], "group 'a b': use letters, digits"),
    ],
)
def test_cli_bad_input_is_one_line_and_writes_nothing(eval_json, tmp_path, capsys, args, message):
    assert main(["export", str(eval_json), "--out", str(tmp_path / "lb"), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"robact-bench: error: {message}"), err
    assert not (tmp_path / "lb").exists()


def test_cli_refuses_what_is_not_an_evaluation_result(exported, eval_json, tmp_path, capsys):
    board, _, _ = exported
    cases = [
        (board / "MyTinyCNN.json", "a leaderboard entry, not an evaluation result"),
        (tmp_path / "nothing.json", "file not found"),
        (tmp_path / "list.json", "not an evaluation result (a JSON object"),
        (tmp_path / "other.json", "not an evaluation result (evaluation result 'EvalResult' does not take accuracy"),
        (tmp_path / "partial.json", "not an evaluation result (EvalResult.__init__() missing"),
    ]
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "other.json").write_text('{"model_name": "x", "accuracy": 1}')
    (tmp_path / "partial.json").write_text('{"model_name": "x", "attacks": []}')
    for path, message in cases:
        assert main(["export", str(path), "--out", str(tmp_path / "lb"), "--architecture", "x"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (path, err)
    assert not (tmp_path / "lb").exists()
    # an existing entry is kept unless --overwrite
    before = (board / "MyTinyCNN.json").read_bytes()
    assert main(["export", str(eval_json), "--out", str(board), "--architecture", "x"]) == 2
    assert "MyTinyCNN.json exists: pass overwrite=True (--overwrite)" in capsys.readouterr().err
    assert (board / "MyTinyCNN.json").read_bytes() == before


def test_synthetic_rows_are_marked_by_what_they_lack():
    entries = [
        ("Ours_s0", make_entry("Ours", 0, clean="90.00", reported="", aa="50.00", missing=())),
        ("Conv_s0", make_entry("Conv", 0, clean="80.00", reported="", aa="40.00", missing=("training",))),
        ("Arch_s0", make_entry("Arch", 0, clean="70.00", reported="", aa="30.00", missing=("model",))),
        ("Old_s0", make_entry("Old", 0, clean="60.00", reported="", aa="20.00")),  # no provenance: ours, as before
    ]
    rows = {r.group: r for r in build_rows(entries)["deterministic"]}
    assert {g: r.missing for g, r in rows.items()} == {"Ours": (), "Conv": ("training",), "Arch": ("model",),
                                                       "Old": ()}  # fmt: skip
    md = render_markdown(entries)
    lines = {g: next(line for line in md.splitlines() if f"(`{g}`)" in line) for g in rows}
    assert "**[external training†]**" in lines["Conv"] and "**[external architecture†]**" in lines["Arch"]
    assert "†" not in lines["Ours"] and "†" not in lines["Old"]
    assert "† Conv model (Conv): architecture from our registry; training not ours (unknown to robact_bench)." in md
    assert "† Arch model (Arch): architecture not ours (unknown to robact_bench); trained by robact_bench." in md
    page = render_html(entries)
    assert page.count('<span class="badge external"') == 2 and page.count('class="note not-ours"') == 3
    # a board of our own models only renders exactly as before: no marker, no note
    plain = [e for e in entries if e[0] in ("Ours_s0", "Old_s0")]
    assert "†" not in render_markdown(plain) and "not-ours" not in render_html(plain)


def test_entries_of_the_previous_schema_stay_valid(our_result):
    """robact_bench.entry/3 files (the boards committed before provenance): every block present, none declared."""
    old = to_robustbench(our_result)
    assert old["robact"]["provenance"] == {"trained_by": "robact_bench", "missing": []}
    old["robact"]["schema"] = "robact_bench.entry/3"
    del old["robact"]["provenance"]
    assert validate_entry(old) == []
    rows = [r for rs in build_rows([("old", old)]).values() for r in rs]
    assert len(rows) == 1 and rows[0].missing == ()


def test_export_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["export", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: robact-bench export") and "EVAL_JSON" in out and "--architecture" in out
