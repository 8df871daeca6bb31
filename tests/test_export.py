import json

import pytest
from contract import ALWAYS, TYPES

from robact_bench.evaluation.config import EvalConfig
from robact_bench.evaluation.engine import run_evaluation
from robact_bench.evaluation.result import EvalResult
from robact_bench.leaderboard.export import format_eps, pct, to_robustbench, write_entry
from robact_bench.leaderboard.render import load_entries, render_markdown


@pytest.fixture(scope="module")
def results(digits_relu, digits_brelu, digits):
    _, _, xte, yte = digits
    cfg = EvalConfig(suite="basic", eps=0.1, n_examples=20, eot_iter=2, passes=3,
                     attacks=("pgd7_reported", "pgd20", "apgd-ce"))  # fmt: skip
    spec = {"arch": "mlp2", "act": "relu", "act_kwargs": {}, "arch_kwargs": {"img_size": 8}, "num_classes": 10}
    training = {"recipe": "standard", "config": {"epochs": 15, "lr": 3e-3, "seed": 0}, "history": [], "seconds": 1.0}
    return [
        run_evaluation(m, xte, yte, cfg, model_name=n, title=n, dataset="digits", spec={**spec, "act": n},
                       training=training, progress=False)
        for n, m in (("relu", digits_relu), ("brelu", digits_brelu))
    ]


def _is_pct(s):
    return isinstance(s, str) and 0 <= float(s) <= 100 and len(s.split(".")[1]) == 2


def test_export_has_robustbench_types(results):
    for r in results:
        e = to_robustbench(r)
        assert ALWAYS <= set(e)
        for k, v in e.items():
            if k != "robact":
                assert isinstance(v, TYPES[k]), (k, v)
        assert type(e["number_forward_passes"]) is int and type(e["additional_data"]) is bool
        for k in ("clean_acc", "autoattack_acc"):
            assert _is_pct(e[k]), (k, e[k])
        # reported is the paper's number: none given, so "" as RobustBench writes it; ours never goes there
        assert e["reported"] == "" and to_robustbench(r, reported="61.30")["reported"] == "61.30"
        assert e["eps"] == "0.1"
        assert e["clean_acc"] == pct(r.clean_acc)
        ev = e["robact"]["evaluation"]
        assert ev["n_examples"] == 20 and ev["robust_acc"] == r.robust_acc
        assert set(ev["per_attack"]) == {"pgd7_reported", "pgd20", "apgd-ce"}
        assert ev["per_attack"]["pgd20"]["backend"] == "torchattacks"
        assert json.loads(json.dumps(e)) == e  # plain JSON


def test_export_agrees_with_the_real_robustbench_files(results, reference_dir):
    """Every key we emit outside 'robact' exists in the real files with the same type."""
    seen: dict[str, set] = {}
    for f in reference_dir.rglob("*.json"):
        for k, v in json.loads(f.read_text()).items():
            seen.setdefault(k, set()).add(type(v))
    assert len(list(reference_dir.rglob("*.json"))) == 143
    for r in results:
        for k, v in to_robustbench(r).items():
            if k == "robact":
                continue
            assert k in seen, k
            assert type(v) in seen[k], (k, type(v), seen[k])


def test_external_and_footnote_for_a_random_model(results):
    brelu = to_robustbench(results[1])
    assert "Randomized track" in brelu["footnote"] and "3 forward passes" in brelu["footnote"]
    assert brelu["number_forward_passes"] == 3 and brelu["robact"]["track"] == "randomized"
    assert brelu["robact"]["evaluation"]["passes"] == 3
    # on the randomized track external always holds our headline (the ranking number)
    assert brelu["external"] == pct(results[1].robust_acc)
    sc = brelu["robact"]["evaluation"]["scores"]
    for what in ("clean", "headline", "autoattack"):
        for rule in ("expected", "majority", "all_right"):
            lo, hi = sc[what][rule]["ci95"]
            assert lo <= sc[what][rule]["value"] <= hi, (what, rule)
    assert sc["headline"]["all_right"]["value"] == results[1].robust_acc_all_right
    relu = to_robustbench(results[0])
    assert "external" not in relu or results[0].robust_acc < results[0].autoattack_acc


def test_eps_and_percent_formats():
    assert format_eps(8 / 255) == "8/255" and format_eps(0.031) == "0.031" and format_eps(0.1) == "0.1"
    assert format_eps(16 / 255) == "16/255" and format_eps(0.3) == "0.3"
    assert pct(0.8492) == "84.92" and pct(1.0) == "100.00" and pct(0.0) == "0.00"
    with pytest.raises(ValueError):
        pct(float("nan"))


def test_result_round_trip_and_table(results, tmp_path):
    r = results[0]
    assert EvalResult.from_dict(json.loads(json.dumps(r.to_dict()))) == r
    for res in results:
        write_entry(to_robustbench(res), tmp_path, res.model_name)
    table = render_markdown(load_entries(tmp_path))
    # one table per track, each with its one model ranked first
    assert table.index("Deterministic") < table.index("Randomized")
    rows = [line for line in table.splitlines() if line.startswith("| 1 ")]
    assert len(rows) == 2
    assert "relu" in rows[0] and "brelu" in rows[1]
