"""The rendered leaderboard page in a real headless Chromium (Debian's package), driven by Playwright.

Skips when the browser (``/usr/bin/chromium``, or ``$ROBACT_CHROMIUM``) or the ``playwright``
Python package is missing. Playwright only drives the system browser: no ``playwright install``.
Set ``ROBACT_SCREENSHOT_DIR`` to keep the screenshots. Every page is opened 1,400 px wide and must
fit it: no table wider than its container and no horizontal scrolling of the page.
"""

import functools
import http.server
import os
import shutil
import statistics
import threading
from pathlib import Path

import pytest
from leaderboard_entries import make_entry, synthetic_entries, write_entries

from robact_bench.leaderboard.render import render_directory

CHROMIUM = Path(os.environ.get("ROBACT_CHROMIUM", "/usr/bin/chromium"))
WIDTH = 1400
BOARDS = Path(__file__).resolve().parents[1] / "leaderboards"
COMMITTED = sorted(p.parent for p in BOARDS.glob("*/*/index.html"))
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    # nothing but localhost resolves: the page must not need the network
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]

if not CHROMIUM.is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")


def browser_entries():
    """The synthetic entries plus more groups, so that each sort has something to reorder."""
    extra = []
    for group, clean, aa, ext in (
        ("Det_E", ("91.00", "93.00", "92.00"), ("70.00", "72.00", "71.00"), None),
        ("Det_F", ("100.00",), ("60.00",), ("55.00",)),
        ("Det_G", ("85.00", "87.00"), (None, None), None),
        ("Det_H", ("98.10", "98.30"), ("8.00", "9.50"), None),
    ):
        for seed, c in enumerate(clean):
            e = make_entry(group, seed, clean=c, reported="50.00", aa=aa[seed], external=ext and ext[seed])
            extra.append((f"{group}_s{seed}", e))
    for seed, (c, aa) in enumerate((("90.00", "75.00"), ("91.00", "76.00"), ("92.00", "77.00"))):
        e = make_entry("Rand_I", seed, track="randomized", clean=c, reported="80.00", aa=aa, passes=10, eot=20)
        extra.append((f"Rand_I_s{seed}", e))
    return synthetic_entries() + extra


def expected_groups(entries):
    """{track: {group: {"clean": mean, "autoattack": mean|None, "robust": mean|None, "seeds": n}}}, from the JSON."""
    raw = {}
    for stem, e in entries:
        rb = e.get("robact", {})
        track = rb.get("track") or ("randomized" if rb.get("evaluation", {}).get("stochastic") else "deterministic")
        group = rb.get("group") or rb.get("model_name") or stem
        raw.setdefault(track, {}).setdefault(group, []).append(e)

    def mean(values):
        values = [float(v) for v in values if v is not None]
        return statistics.fmean(values) if values else None

    return {
        track: {
            g: {
                "name": es[0]["name"],
                "clean": mean(e["clean_acc"] for e in es),
                "autoattack": mean(e.get("autoattack_acc") for e in es),
                "robust": mean(e.get("external", e.get("autoattack_acc")) for e in es),
                "seeds": len(es),
            }
            for g, es in groups.items()
        }
        for track, groups in raw.items()
    }


def ranked(groups):
    """RobustBench's order: robust accuracy high to low, missing last, ties by group name."""
    return sorted(groups, key=lambda g: (groups[g]["robust"] is None, -(groups[g]["robust"] or 0), g))


def sorted_by(groups, initial, key, *, descending):
    """The page's sort: by ``key``, missing values last in both directions, ties keep the ranked order."""
    pos = {g: i for i, g in enumerate(initial)}
    present = [g for g in initial if groups[g][key] is not None]
    missing = [g for g in initial if groups[g][key] is None]
    value = (lambda g: groups[g][key].lower()) if key == "name" else (lambda g: groups[g][key])
    present.sort(key=lambda g: pos[g])
    present.sort(key=value, reverse=descending)  # stable: ties stay in ranked order
    return present + missing


_WIDTHS = """() => ({
  page: [document.documentElement.scrollWidth, document.documentElement.clientWidth],
  tables: Array.from(document.querySelectorAll("table")).map(
    t => [t.closest("section") ? t.closest("section").id || t.closest("section").className : "", t.scrollWidth,
          t.parentElement.clientWidth]),
})"""


def assert_fits(page):
    """No table is wider than its container (clipped or scrolled) and the page does not scroll sideways."""
    widths = page.evaluate(_WIDTHS)
    assert widths["tables"], "no table on the page"
    too_wide = [t for t in widths["tables"] if t[1] > t[2]]
    assert too_wide == [], f"tables wider than their container at {WIDTH} px: {too_wide}"
    assert widths["page"][0] <= widths["page"][1], f"the page scrolls sideways at {WIDTH} px: {widths['page']}"


def screenshot(page, path):
    """A full-page PNG; its path is printed (and the file copied to $ROBACT_SCREENSHOT_DIR when set)."""
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"\nscreenshot ({WIDTH} px wide): {path}")
    keep = os.environ.get("ROBACT_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        print(f"screenshot: {shutil.copy(path, Path(keep) / path.name)}")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("board")
    entries = browser_entries()
    write_entries(root, entries)
    render_directory(root, title="Browser test board")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"root": root, "entries": entries, "http": f"http://127.0.0.1:{server.server_address[1]}/"}
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        yield b
        b.close()


@pytest.mark.parametrize("scheme", ["http", "file"])
def test_page_in_chromium(site, browser, scheme, tmp_path):
    root = site["root"]
    base = site["http"] if scheme == "http" else root.as_uri() + "/"
    page = browser.new_page(viewport={"width": WIDTH, "height": 900})
    problems, requests = [], []
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(base + "index.html", wait_until="load")

    # every request stays in the rendered folder: the page itself and its plots
    plots = sorted(p.name for p in (root / "plots").glob("*.png"))
    assert len(plots) == 4
    assert sorted(requests) == sorted([base + "index.html", *(f"{base}plots/{n}" for n in plots)])
    loaded = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete && i.naturalWidth)")
    assert loaded == [900] * 4  # every plot decoded at its real width

    groups = expected_groups(site["entries"])
    assert [t for t in page.eval_on_selector_all("table.board", "ts => ts.map(t => t.dataset.track)")] == [
        "deterministic",
        "randomized",
    ]
    for track in ("deterministic", "randomized"):
        sel = f"table.board[data-track={track}]"
        headers = page.eval_on_selector_all(f"{sel} thead th", "ths => ths.map(t => t.textContent.trim())")
        # the randomized table alone has the all-passes-right column
        assert ("Robust, all passes right" in headers) is (track == "randomized")

        def order(sel=sel):
            return page.eval_on_selector_all(f"{sel} tbody tr", "rows => rows.map(r => r.dataset.model)")

        def click(title, sel=sel, headers=headers):
            page.click(f"{sel} thead th:nth-child({headers.index(title) + 1}) button")
            return page.get_attribute(f"{sel} thead th:nth-child({headers.index(title) + 1})", "aria-sort")

        initial = order()
        assert len(initial) == len(groups[track]), track  # one row per model group
        assert initial == ranked(groups[track]), track
        for title, key in (
            ("Clean", "clean"),
            ("AutoAttack", "autoattack"),
            ("Robust (worst case / external)", "robust"),
            ("Seeds", "seeds"),
            ("Model", "name"),
        ):
            assert click(title) == "ascending"
            assert order() == sorted_by(groups[track], initial, key, descending=False), (track, title, "asc")
            assert click(title) == "descending"
            assert order() == sorted_by(groups[track], initial, key, descending=True), (track, title, "desc")
        # the table starts sorted by rank: a click on "#" reverses it, a second restores it
        assert click("#") == "ascending"
        assert order() == initial
        assert click("#") == "descending"
        assert order() == initial[::-1]
        assert click("#") == "ascending"
        assert order() == initial

    # the unreliable group is marked, its footnote and the escaped <script> footnote are visible text
    det_b = page.locator('tr[data-model="Det_B"]')
    assert "unreliable" in det_b.get_attribute("class").split()
    assert "unreliable: transfer_beats_whitebox" in det_b.inner_text()
    assert det_b.evaluate("r => getComputedStyle(r.cells[0]).backgroundColor") != "rgba(0, 0, 0, 0)"
    assert 'Old format <script>alert("x")</script> & a|b' in page.locator('tr[data-model="Old_D"]').inner_text()
    assert page.locator("td.footnote").filter(has_text="Transfer attacks beat PGD.").count() == 1

    assert_fits(page)
    screenshot(page, tmp_path / f"leaderboard_{scheme}.png")
    page.close()
    assert problems == []


@pytest.mark.parametrize("board", COMMITTED, ids=[str(b.relative_to(BOARDS)) for b in COMMITTED])
def test_committed_page_fits_1400_px(browser, board, tmp_path):
    page = browser.new_page(viewport={"width": WIDTH, "height": 900})
    problems, requests = [], []
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    page.on("request", lambda r: requests.append(r.url))
    base = board.as_uri() + "/"
    page.goto(base + "index.html", wait_until="load")
    assert all(url.startswith(base) for url in requests), requests
    assert page.eval_on_selector_all("table.board", "ts => ts.map(t => t.dataset.track)") == [
        "deterministic",
        "randomized",
    ]
    assert_fits(page)
    screenshot(page, tmp_path / f"{board.parent.name}_{board.name}.png")
    page.close()
    assert problems == []
