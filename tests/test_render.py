import base64
import hashlib
import io
import logging
import re
from html.parser import HTMLParser
from pathlib import Path

import markupsafe
import pytest
from leaderboard_entries import SCRIPT_FOOTNOTE, make_entry, reliable, synthetic_entries, unreliable, write_entries
from PIL import Image

from robact_bench.leaderboard.render import (
    PLOTS,
    build_rows,
    load_entries,
    merge_footnotes,
    plot_captions,
    plot_figures,
    render_directory,
    render_html,
    render_markdown,
    render_plots,
    setting_warnings,
)

BOARD = Path(__file__).resolve().parents[1] / "leaderboards" / "digits" / "Linf"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Hand-computed: mean and sample standard deviation (n - 1) of the per-seed percentages.
EXPECTED = {
    "deterministic": [
        # group, clean, reported, autoattack, robust, against the baselines, passes, n, seeds, verdict,
        # naive numbers overstate, footnote
        ("Det_A", "98.17 ± 1.26", "92.17 ± 1.26", "89.17 ± 1.04", "89.17 ± 1.04", "–", "1", "100", "3 (0, 1, 2)",
         "no sign of an inflated number", "–", "Baseline ReLU PGD-AT."),
        ("Det_B", "99.00 ± 0.71", "95.50 ± 0.71", "94.00 ± 1.41", "81.25 ± 1.77", "–", "1", "100", "2 (0, 1)",
         "⚠ **unreliable: transfer_beats_whitebox (seed 0); seed 1: no sign of an inflated number**", "–",
         "Transfer attacks beat PGD."),
    ],
    "randomized": [
        # the randomized table has the all-passes-right column after robust (– without per-point data)
        ("Old_D", "97.00", "75.00", "65.00", "65.00", "–", "–", "5 x 8", "50", "1", "–", "–",
         'Old format &lt;script&gt;alert("x")&lt;/script&gt; &amp; a\\|b'),
        ("Rand_C", "95.50 ± 0.71", "85.50 ± 0.71", "71.00 ± 1.41", "62.00 ± 2.83", "–", "–", "10 x 20", "100",
         "2 (0, 1)", "no sign of an inflated number", "–",
         "Numbers that differ are given per seed (0 / 1). Seed 0 / 1 note."),
    ],
}  # fmt: skip


def md_tables(text):
    """{section heading: [[cell, ...], ...]} of the Markdown tables (header and rule left out)."""
    out, section = {}, None
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:]
            out[section] = []
        elif line.startswith("| ") and section is not None:
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            out[section].append(cells)
    return {k: v[1:] for k, v in out.items() if v}  # drop the header row (the rule starts with "|-")


def test_markdown_rows_aggregate_seeds_and_rank_per_track():
    md = render_markdown(synthetic_entries(), title="Synthetic")
    assert md.startswith("# Synthetic\n")
    assert "do not edit by hand" in md
    tables = md_tables(md)
    assert list(tables) == ["Deterministic models", "Randomized models"]
    for (track, expected), rows in zip(EXPECTED.items(), tables.values(), strict=True):
        assert len(rows) == len(expected), track
        for rank, (row, exp) in enumerate(zip(rows, expected, strict=True), 1):
            group, *cells = exp
            assert row[0] == str(rank)
            assert f"(`{group}`)" in row[1]
            assert row[2:] == cells, (track, group)
    # the baseline mark sits on the baseline only
    det = tables["Deterministic models"]
    assert det[0][1] == "Det A (ReLU, PGD-AT) (`Det_A`) **[baseline]**"
    assert "baseline" not in det[1][1]
    assert "Threat model: Linf, eps = 0.1." in md


def test_ranking_uses_external_then_autoattack_mean_over_seeds():
    rows = build_rows(synthetic_entries())
    det = rows["deterministic"]
    # Det_B has the higher AutoAttack mean (94.00 > 89.17) but its external mean is 81.25
    assert [r.group for r in det] == ["Det_A", "Det_B"]
    assert [r.rank for r in det] == [1, 2]
    assert det[1].autoattack.mean == pytest.approx(94.0)
    assert det[1].robust.mean == pytest.approx(81.25)
    assert det[1].robust.std == pytest.approx(2.5 / 2**0.5)
    # the old-format entry falls back to model_name as group and to `stochastic` for its track
    rnd = rows["randomized"]
    assert [(r.group, r.stems) for r in rnd] == [("Old_D", ("old_d",)), ("Rand_C", ("Rand_C_s0", "Rand_C_s1"))]
    assert rnd[0].seeds == (None,) and rnd[1].seeds == (0, 1)
    assert det[1].unreliable and not det[0].unreliable and not any(r.unreliable for r in rnd)


def test_group_unreliable_when_any_seed_is_and_top_level_flag_counts():
    entries = [
        ("a0", make_entry("A", 0, clean="90.00", reported="50.00", aa="40.00")),
        ("a1", make_entry("A", 1, clean="90.00", reported="50.00", aa="42.00")),
    ]
    entries[1][1]["unreliable"] = True  # RobustBench's own flag, no masking block
    [row] = build_rows(entries)["deterministic"]
    assert row.unreliable and row.verdict == "unreliable (seed 1); seed 0: no verdict"
    entries[1][1]["unreliable"] = False
    [row] = build_rows(entries)["deterministic"]
    assert not row.unreliable and row.verdict == "–"


def test_missing_values_show_a_dash_and_seed_counts():
    entries = [
        ("a0", make_entry("A", 0, clean="90.00", reported="50.00", aa="40.00", masking={"unreliable": False})),
        ("a1", make_entry("A", 1, clean="92.00", reported="52.00")),  # no AutoAttack, no masking block
    ]
    [row] = build_rows(entries)["deterministic"]
    assert row.autoattack.text() == "40.00 (1 of 2 seeds)"
    assert row.clean.text() == "91.00 ± 1.41"
    assert row.verdict == "no sign of an inflated number (1 of 2 seeds checked: seed 0)"
    [(_, e)] = entries[:1]
    bare = {k: v for k, v in e.items() if k not in ("autoattack_acc", "robact")}
    [row] = build_rows([("bare", bare)])["deterministic"]
    assert (row.group, row.autoattack.text(), row.robust.text(), row.n_examples, row.verdict) == (
        "bare", "–", "–", "–", "–",
    )  # fmt: skip
    assert row.passes == "1"  # RobustBench's number_forward_passes


@pytest.mark.parametrize(
    ("masking", "verdict"),
    [
        ({"unreliable": None, "failed": [], "not_judged": [], "checks": []}, "–"),  # no check ran
        ({"unreliable": False, "checks": [{"name": "a", "passed": None}, {"name": "b", "passed": None}]}, "not judged"),
        ({"unreliable": False, "checks": [{"name": "a", "passed": None}, {"name": "b", "passed": True}]},
         "no sign of an inflated number"),
        ({"unreliable": True, "failed": ["b"], "checks": [{"name": "b", "passed": False}]}, "unreliable: b"),
    ],
)  # fmt: skip
def test_masking_verdict_states(masking, verdict):
    e = make_entry("A", 0, clean="90.00", reported="50.00", aa="40.00", masking=masking)
    [row] = build_rows([("a", e)])["deterministic"]
    assert row.verdict == verdict
    assert row.unreliable is verdict.startswith("unreliable")


def test_duplicate_seed_warns():
    e = make_entry("A", 0, clean="90.00", reported="50.00", aa="40.00")
    with pytest.warns(UserWarning, match=r"seed\(s\) 0 appear in more than one file \(a, b\)"):
        build_rows([("a", e), ("b", e)])


def test_markdown_and_html_are_deterministic():
    entries = synthetic_entries()
    assert render_markdown(entries) == render_markdown(synthetic_entries())
    plots = list(PLOTS)
    assert render_html(entries, plots=plots) == render_html(synthetic_entries(), plots=plots)


class _Page(HTMLParser):
    """Tables, rows, scripts and every src/href of a page."""

    def __init__(self):
        super().__init__()
        self.tables, self.urls, self.scripts, self.tags = [], [], [], []
        self._cell, self._script = None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        self.urls += [(tag, k, v) for k, v in attrs if k in ("src", "href")]
        if tag == "table":
            self.tables.append({"track": a.get("data-track"), "rows": []})
        elif tag == "tr" and "data-model" in a:
            self.tables[-1]["rows"].append({"model": a["data-model"], "class": a.get("class", ""), "cells": []})
        elif tag == "td" and self.tables and self.tables[-1]["rows"]:
            self._cell = {"sort": a.get("data-sort"), "text": ""}
            self.tables[-1]["rows"][-1]["cells"].append(self._cell)
        elif tag == "script":
            self._script = ""

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None
        elif tag == "script":
            self.scripts.append(self._script)
            self._script = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data
        if self._script is not None:
            self._script += data


def test_html_tables_rows_and_sort_keys():
    page = _Page()
    page.feed(render_html(synthetic_entries(), title="T"))
    assert [t["track"] for t in page.tables] == ["deterministic", "randomized"]
    for table, expected in zip(page.tables, EXPECTED.values(), strict=True):
        assert [r["model"] for r in table["rows"]] == [e[0] for e in expected]
        for row, exp in zip(table["rows"], expected, strict=True):
            assert len(row["cells"]) == (13 if table["track"] == "deterministic" else 14)
            assert [c["text"] for c in row["cells"][2:6]] == list(exp[1:5])
    det_b = page.tables[0]["rows"][1]
    assert "unreliable" in det_b["class"].split()
    verdict = "⚠ unreliable: transfer_beats_whitebox (seed 0); seed 1: no sign of an inflated number"
    assert det_b["cells"][10]["text"] == verdict
    assert "baseline" in page.tables[0]["rows"][0]["class"].split()
    # "mean ± std" cells sort by the mean; missing values have an empty key
    det_a = page.tables[0]["rows"][0]
    assert float(det_a["cells"][2]["sort"]) == pytest.approx((98.0 + 97.0 + 99.5) / 3, abs=1e-6)
    assert float(det_a["cells"][0]["sort"]) == 1


def test_html_is_self_contained_and_escapes_entry_text():
    text = render_html(synthetic_entries(), plots=["per_attack"])
    page = _Page()
    page.feed(text)
    assert page.urls == [("link", "href", "data:,"), ("img", "src", "plots/per_attack.png")]
    assert "iframe" not in page.tags and "object" not in page.tags
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", text)
    assert "fetch(" not in text and "XMLHttpRequest" not in text and "import(" not in text
    # one script, ours: the footnote's <script> is text, and the policy admits only our script's hash
    assert len(page.scripts) == 1 and text.count("<script") == 1
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; a|b" in text  # Jinja2's autoescape
    assert SCRIPT_FOOTNOTE not in text
    digest = base64.b64encode(hashlib.sha256(page.scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in text
    # a name and a file stem with quotes cannot break out of the cell or the title attribute
    e = make_entry("x", 0, clean="1.00", reported="1.00", aa="1.00", name='x"><img src=//evil>')
    p2 = _Page()
    p2.feed(render_html([('x"><img src=//evil>', e)]))
    assert p2.tables[0]["rows"][0]["cells"][1]["text"] == 'x"><img src=//evil> x'
    assert p2.urls == [("link", "href", "data:,")]
    # a group name with quotes never reaches the page: the schema admits [A-Za-z0-9_.-] only
    e = make_entry('x"><img src=//evil>', 0, clean="1.00", reported="1.00", aa="1.00")
    with pytest.raises(ValueError, match=r"^x: robact\.group: got"):
        render_html([("x", e)])


def test_extra_sections_come_after_the_tables():
    md = render_markdown(synthetic_entries(), extra_markdown="## Statistics\n\nStat text.")
    assert md.index("## Statistics") > md.rindex("Seed 0 / 1 note.")
    assert md.endswith("Stat text.\n")
    page = render_html(synthetic_entries(), extra_html='<section id="stats">S</section>')
    assert page.rindex("</table>") < page.index('<section id="stats">') < page.index("<script>")


def _png_ok(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "PNG" and im.size == (900, 500), (path, im.size)
        colors = im.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colors is not None and len(colors) > 20, f"{path} looks blank"
        assert im.info.get("Software") is None


def test_plots_are_pngs_of_the_documented_size_and_reproducible(tmp_path):
    written = render_plots(synthetic_entries(), tmp_path / "a")
    assert [p.name for p in written] == [f"{n}.png" for n in PLOTS]
    for p in written:
        _png_ok(p)
    again = render_plots(synthetic_entries(), tmp_path / "b")
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in written]
    assert not list((tmp_path / "a").glob(".*.tmp"))  # atomic writes leave no temporary file


def test_plots_without_data_are_not_written(tmp_path, caplog):
    entries = [
        (f"s{i}", make_entry("A", i, clean="90.00", reported="50.00", aa=a, per_attack={"pgd20": 0.5}))
        for i, a in enumerate(("40.00", "42.00"))
    ]
    out = tmp_path / "plots"
    out.mkdir()
    (out / "acc_vs_eps.png").write_bytes(b"stale")  # from an earlier render with sweeps
    with caplog.at_level(logging.INFO, logger="robact_bench.leaderboard.render"):
        written = render_plots(entries, out)
    assert [p.name for p in written] == ["per_attack.png"]
    assert sorted(p.name for p in out.iterdir()) == ["per_attack.png"]
    for name in ("acc_vs_eps", "acc_vs_steps", "training_curves"):
        assert f"skipping {name}.png" in caplog.text
    # only skipped sweeps: still no eps plot
    entries[0][1]["robact"]["evaluation"]["sweeps"] = [{"kind": "eps", "attack": "square", "skipped": "why"}]
    assert [p.name for p in render_plots(entries, out)] == ["per_attack.png"]
    assert render_plots([], tmp_path / "empty") == []


def test_render_directory_writes_readme_page_and_plots(tmp_path):
    write_entries(tmp_path, synthetic_entries())
    (tmp_path / "notes.txt").write_text("not an entry")
    (tmp_path / "evil.py").write_text("raise SystemExit('executed')")
    paths = render_directory(tmp_path, title="Synthetic", extra_markdown="## Stats", extra_html="<p>stats</p>")
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
        "README.md", "index.html", *(f"plots/{n}.png" for n in PLOTS),
    ]  # fmt: skip
    readme = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert readme == render_markdown(
        load_entries(tmp_path), title="Synthetic", extra_markdown="## Stats", plots=list(PLOTS)
    )
    assert readme.count("](plots/") == 4
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert page.count('<img src="plots/') == 4 and "<p>stats</p>" in page
    before = {p: p.read_bytes() for p in paths}
    render_directory(tmp_path, title="Synthetic", extra_markdown="## Stats", extra_html="<p>stats</p>")
    assert {p: p.read_bytes() for p in paths} == before


def test_load_entries_reads_json_only_sorted_by_stem(tmp_path):
    write_entries(tmp_path, [("b", {"name": "B"}), ("a", {"name": "A"}), ("c_1", {"name": "C"})])
    (tmp_path / "z.py").write_text("raise SystemExit")
    (tmp_path / "sub.json").mkdir()
    assert load_entries(tmp_path) == [("a", {"name": "A"}), ("b", {"name": "B"}), ("c_1", {"name": "C"})]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a JSON object (got a JSON list)"),
        ('"text"', "not a JSON object (got a JSON str)"),
    ],
)
def test_bad_files_raise_one_line_naming_the_file(tmp_path, content, problem):
    (tmp_path / "ok.json").write_text('{"name": "ok"}')
    (tmp_path / "broken.json").write_text(content)
    with pytest.raises(ValueError) as info:
        load_entries(tmp_path)
    msg = str(info.value)
    assert "broken.json" in msg and problem in msg and "\n" not in msg


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("clean_acc", "abc", 'clean_acc: got "abc"; expected a percentage string'),
        ("external", "nan", 'external: got "nan"; expected a percentage string'),
        ("footnote", 3, "footnote: got 3; expected"),
        ("robact", [], "robact: got []; expected"),
    ],
)
def test_bad_fields_name_the_file_with_the_schemas_words(field, value, problem):
    e = make_entry("A", 0, clean="90.00", reported="50.00", aa="40.00")
    e[field] = value
    with pytest.raises(ValueError) as info:
        render_markdown([("bad_file", e)])
    assert str(info.value).startswith(f"bad_file: {problem}") and "\n" not in str(info.value)
    e = make_entry("A", 0, clean="90.00", reported="50.00", aa="40.00", track="quantum")
    with pytest.raises(ValueError, match=r'^bad_file: robact\.track: got "quantum"; expected deterministic or rand'):
        build_rows([("bad_file", e)])
    # a missing field is no error on the page (shown as "–"); the schema's type rules are
    e = make_entry("A", 0, clean="90.00", reported="50.00")
    e["robact"]["evaluation"]["n_examples"] = "100"
    with pytest.raises(ValueError, match=r'^bad_file: robact\.evaluation\.n_examples: got "100"; expected'):
        build_rows([("bad_file", e)])


def test_committed_leaderboard_renders(tmp_path):
    entries = load_entries(BOARD)
    assert len(entries) == 30  # 10 models x 3 seeds
    rows = build_rows(entries)
    assert sum(len(r) for r in rows.values()) == 10  # one row per model
    by_stem = dict(entries)
    for track, rs in rows.items():
        for r in rs:
            assert len(r.stems) == 3
            seeds = [by_stem[stem] for stem in r.stems]
            assert all(e["robact"]["track"] == track for e in seeds)
            headline = [float(e.get("external", e.get("autoattack_acc"))) for e in seeds]
            assert r.robust.mean == pytest.approx(sum(headline) / 3)
        robust = [r.robust.mean for r in rs]
        assert robust == sorted(robust, reverse=True)
    write_entries(tmp_path, entries)
    paths = render_directory(tmp_path, title="digits, Linf")
    names = {p.name for p in paths}
    assert {"per_attack.png", "training_curves.png"} <= names
    for p in paths:
        if p.suffix == ".png":
            _png_ok(p)


def test_robustbench_reference_entries_render(reference_dir):
    boards = sorted({p.parent for p in reference_dir.rglob("*.json")})
    total = 0
    for board in boards:
        entries = load_entries(board)
        rows = build_rows(entries)
        assert rows["randomized"] == [], board
        det = rows["deterministic"]
        assert len(det) == len(entries), board  # no robact block: every file is its own group
        total += len(det)
        ranked = [e.get("external", e.get("autoattack_acc")) for _, e in entries]
        known = sorted((float(v) for v in ranked if v is not None), reverse=True)
        assert [r.robust.mean for r in det] == known + [None] * (len(ranked) - len(known)), board
        flagged = {stem for stem, e in entries if e.get("unreliable") is True}
        assert {r.stems[0] for r in det if r.unreliable} == flagged, board
        assert len(md_tables(render_markdown(entries))["Deterministic models"]) == len(entries)
        page = render_html(entries)
        notes = [" ".join(e["footnote"].split()) for _, e in entries if e.get("footnote")]
        assert all(str(markupsafe.escape(n)) in page for n in notes), board
    assert total == 143
    # RobustBench writes "null" / "" for a number it does not have
    for reported in ("null", ""):
        [row] = build_rows([("x", {"name": "x", "clean_acc": "90.00", "reported": reported})])["deterministic"]
        assert (row.reported.text(), row.autoattack.text()) == ("–", "–")


# --------------------------------------------------------------------------- readability (issue 15)

# the footnotes of one real row (mnist5k LeNet5_ReLU_DReLUHeadBinding), shortened
_CHECKS = "Our number may still be inflated (robact_bench checks, docs/gradient-masking.md): "
_ZERO = "zero_input_gradients: {} of 50 points have an all-zero input gradient."
_UNAVAILABLE = "unavailable_gradients: 6 robust points without a usable gradient in any of apgd-ce, pgd20; "
_TAIL = "{}% is the worst case per point over all our attacks; AutoAttack standard alone: {}%. Caps m in [0.142, {}]."
REAL_NOTES = [
    _CHECKS + _ZERO.format(6) + " " + _TAIL.format("78.00", "78.00", "0.43"),
    _CHECKS + _UNAVAILABLE + _ZERO.format(7) + " " + _TAIL.format("78.00", "78.00", "0.424"),
    _CHECKS + _UNAVAILABLE + _ZERO.format(7) + " " + _TAIL.format("70.00", "72.00", "0.391"),
]


def test_footnote_says_the_common_text_once_and_the_numbers_per_seed():
    merged = merge_footnotes(["0", "1", "2"], REAL_NOTES)
    assert merged == (
        "Numbers that differ are given per seed (0 / 1 / 2). "
        "[seed 0] " + _CHECKS + _ZERO.format(6) + " "
        "[seeds 1, 2] " + _CHECKS + _UNAVAILABLE + _ZERO.format(7) + " "
        "78.00 / 78.00 / 70.00% is the worst case per point over all our attacks; AutoAttack standard alone: "
        "78.00 / 78.00 / 72.00%. Caps m in [0.142, 0.43 / 0.424 / 0.391]."
    )
    assert merged.count("is the worst case per point") == 1
    # equal footnotes stay one; numbers inside names (pgd20, 2-of-3) are text, not values
    assert merge_footnotes(["0", "1"], ["Same text.", "Same text."]) == "Same text."
    assert merge_footnotes(["0", "1"], ["pgd20 at 5.", "pgd20 at 6."]) == (
        "Numbers that differ are given per seed (0 / 1). pgd20 at 5 / 6."
    )
    assert merge_footnotes(["0", "1"], ["", ""]) == ""
    # in the page: the row's footnote holds the common text once, not once per seed
    entries = [
        (f"g{i}", make_entry("G", i, clean="90.00", reported="50.00", aa="40.00", footnote=note))
        for i, note in enumerate(REAL_NOTES)
    ]
    [row] = build_rows(entries)["deterministic"]
    assert row.footnote == merged
    assert render_markdown(entries).count("is the worst case per point over all our attacks") == 1
    page = _Page()
    page.feed(render_html(entries))
    assert page.tables[0]["rows"][0]["cells"][-1] == {"sort": None, "text": merged}  # sorted by its text
    assert render_html(entries).count("is the worst case per point over all our attacks") == 1


def test_verdict_says_which_seed_had_which_sign():
    masks = [unreliable("zero_input_gradients"), unreliable("unavailable_gradients", "zero_input_gradients"),
             reliable()]  # fmt: skip
    entries = [
        (f"g{i}", make_entry("G", i, clean="90.00", reported="50.00", aa="40.00", masking=m, per_attack={"x": 0.4}))
        for i, m in enumerate(masks)
    ]
    entries[0][1]["robact"]["masking"]["overstated"] = ["no_eot_overstates"]
    [row] = build_rows(entries)["deterministic"]
    assert row.unreliable
    assert row.verdict == (
        "unreliable: zero_input_gradients (seeds 0, 1), unavailable_gradients (seed 1); "
        "seed 2: no sign of an inflated number"
    )
    assert row.overstated == ("no_eot_overstates (seed 0)",)
    page = _Page()
    page.feed(render_html(entries))
    assert page.tables[0]["rows"][0]["cells"][10]["text"] == "⚠ " + row.verdict
    assert page.tables[0]["rows"][0]["cells"][11]["text"] == "no_eot_overstates (seed 0)"
    assert f"⚠ **{row.verdict}**" in render_markdown(entries)


def test_eps_and_steps_plots_name_their_attack_and_mark_the_evaluation_eps():
    figs = plot_figures(synthetic_entries())
    eps_ax = figs["acc_vs_eps"].axes[0]
    assert eps_ax.get_title() == "Robust accuracy vs eps: apgd-ce (one attack)"
    marks = [ln for ln in eps_ax.get_lines() if ln.get_label() == "evaluation eps = 0.1"]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [0.1, 0.1]
    assert figs["acc_vs_steps"].axes[0].get_title() == "Robust accuracy vs attack steps: pgd at eps = 0.1 (one attack)"
    captions = plot_captions(build_rows(synthetic_entries()))
    assert captions["acc_vs_eps"].startswith("Robust accuracy (expected rule) under apgd-ce vs eps (the eps sweep)")
    assert "The dotted line marks the evaluation's eps = 0.1, where the tables are measured." in captions["acc_vs_eps"]
    assert captions["acc_vs_steps"].startswith(
        "Robust accuracy (expected rule) under pgd at eps = 0.1 (the evaluation's eps) vs its number of steps"
    )
    md = render_markdown(synthetic_entries(), plots=list(PLOTS))
    assert md.count(captions["acc_vs_eps"]) == 1 and md.count(captions["acc_vs_steps"]) == 1
    page = render_html(synthetic_entries(), plots=list(PLOTS))
    assert f"<figcaption>{markupsafe.escape(captions['acc_vs_steps'])}</figcaption>" in page


def test_rows_evaluated_with_different_n_k_r_carry_a_warning():
    rows = build_rows(synthetic_entries())
    warning = (
        "Not comparable side by side: these rows were evaluated with different n (examples) 50 (Old_D), "
        "100 (Rand_C); K (EOT samples) 8 (Old_D), 20 (Rand_C); R (scoring passes) 5 (Old_D), 10 (Rand_C)."
    )
    assert setting_warnings(rows["randomized"]) == [warning]
    assert setting_warnings(rows["deterministic"]) == []  # same n, K = 1, R = 1
    md = render_markdown(synthetic_entries())
    assert md.count("⚠ Not comparable side by side") == 1
    randomized = md[md.index("## Randomized models"):]
    assert randomized.index(f"⚠ {warning}") < randomized.index("| # |")
    assert f'<p class="warning">⚠ {warning}</p>' in render_html(synthetic_entries())
    # only n differs: only n is named; a group whose seeds differ is named at each value
    entries = [
        ("a0", make_entry("A", 0, clean="90.00", reported="50.00", aa="40.00", n=100)),
        ("a1", make_entry("A", 1, clean="90.00", reported="50.00", aa="40.00", n=200)),
        ("b0", make_entry("B", 0, clean="90.00", reported="50.00", aa="30.00", n=100)),
    ]
    assert setting_warnings(build_rows(entries)["deterministic"]) == [
        "Not comparable side by side: these rows were evaluated with different n (examples) 100 (A, B), 200 (A)."
    ]


def test_templates_and_static_files_ship_as_package_data():
    import fnmatch

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    root = Path(__file__).resolve().parents[1]
    pyproject = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    globs = pyproject["tool"]["setuptools"]["package-data"]["robact_bench.leaderboard"]
    package = root / "robact_bench" / "leaderboard"
    files = sorted(p.relative_to(package).as_posix() for d in ("templates", "static") for p in (package / d).iterdir())
    assert files == ["static/board.css", "static/board.js", "templates/blocks.html.j2", "templates/blocks.md.j2",
                     "templates/board.html.j2", "templates/board.md.j2"]  # fmt: skip
    assert all(any(fnmatch.fnmatch(f, g) for g in globs) for f in files), (files, globs)
    assert any(d.startswith("jinja2>=3.1") for d in pyproject["project"]["dependencies"])
    assert "jinja2>=3.1" in (root / "requirements" / "cpu.txt").read_text(encoding="utf-8").split()
