"""The query recorder's matching on a real evaluation: the same points as the brute-force rule, and its cost.

A benchmark, not a test. :class:`~robact_bench.attacks.record.QueryRecorder` maps every row a
library queries to the evaluation point whose clean image is the only one within the threat
model's radius of it (:mod:`robact_bench.attacks.record` explains the fast path). This script runs
``robact-bench eval`` on a checkpoint with the recorder's ``_map`` wrapped: every call is mapped
twice, by the recorder and by the rule itself (the exact distance of the row to every clean image
of the chunk, a row mapping to a point only when that point is the only one within the radius,
with the recorder's full-batch rule first), and the script counts the rows where the two differ
and times both. If the checkpoint folder holds the ``eval.json`` of a published board row, the
fresh per-point counts are compared with it as well (pass that row's ``--n-examples`` and
settings).

Usage (from the repository root; run it alone, ``flock /tmp/heavy.lock ...`` on a shared machine)::

    python benchmarks/recorder_matching.py --n-examples 364 [--out FILE.json]
        --checkpoint weights/digits/Linf/MLP2_ReLU_PGDAT_s0

Every argument after the known ones goes to ``robact-bench eval`` as it is (the defaults are the
shipped boards' settings: ``--suite adaptive --eps 0.1 --eot-iter 10``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from robact_bench import cli
from robact_bench.attacks import record


def reference_map(rec: record.QueryRecorder, inp: torch.Tensor) -> torch.Tensor:
    """The rule by brute force: the only clean image within the radius of each row, else -1."""
    flat = inp.detach().flatten(1).to(rec._flat.dtype)
    b, n = flat.shape[0], rec._flat.shape[0]
    rows = torch.full((b,), -1, dtype=torch.long)
    if flat.shape[1] != rec._flat.shape[1] or b == 0:
        return rows
    if b == n:  # the recorder's full-batch rule: row i is point i when every row is within the radius
        ident = torch.arange(b)
        if not rec.bounded or bool((rec._distance(flat, ident) <= rec._radius).all()):
            return ident
    if not rec.bounded:
        return rows
    for r in range(b):
        d = flat[r].unsqueeze(0) - rec._flat
        dist = d.abs().amax(1) if rec.norm == "Linf" else d.norm(dim=1)
        near = torch.nonzero(dist <= rec._radius).flatten()
        if len(near) == 1:
            rows[r] = near[0]
    return rows


def main() -> int:
    """Run the evaluation with both mappings, print and write the counts and times."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--n-examples", type=int, required=True)
    p.add_argument("--out", type=Path, default=None, help="write the report as JSON here too")
    args, rest = p.parse_known_args()
    stats: dict[str, Any] = {"calls": 0, "rows": 0, "rows_mapped": 0, "rows_differing": 0,
                             "recorder_s": 0.0, "reference_s": 0.0}  # fmt: skip
    fast = record.QueryRecorder._map

    def both(self: record.QueryRecorder, inp: torch.Tensor) -> torch.Tensor:
        t = time.perf_counter()
        got = fast(self, inp)
        stats["recorder_s"] += time.perf_counter() - t
        t = time.perf_counter()
        want = reference_map(self, inp)
        stats["reference_s"] += time.perf_counter() - t
        stats["calls"] += 1
        stats["rows"] += len(got)
        stats["rows_mapped"] += int((want >= 0).sum())
        stats["rows_differing"] += int((got.cpu() != want).sum())
        return got

    record.QueryRecorder._map = both  # type: ignore[method-assign]
    defaults = ["--suite", "adaptive", "--eps", "0.1", "--eot-iter", "10"]
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "eval.json"
        argv = ["eval", "--checkpoint", str(args.checkpoint), "--n-examples", str(args.n_examples),
                *defaults, *rest, "--out", str(result), "--no-progress"]  # fmt: skip
        rc = cli.main(argv)
        if rc != 0:
            return rc
        fresh = json.loads(result.read_text())
    report: dict[str, Any] = {"argv": [*argv[:-3], "--no-progress"], **stats}  # without the temporary --out
    published = args.checkpoint / "eval.json"
    if published.is_file():
        old = json.loads(published.read_text())
        if old.get("indices") == fresh["indices"]:
            per = {a["name"]: a["counts"] for a in old["attacks"]}
            report["published_counts_differing"] = {
                "robust": sum(a != b for a, b in zip(fresh["robust_counts"], old["robust_counts"], strict=True)),
                **{a["name"]: sum(x != y for x, y in zip(a["counts"], per[a["name"]], strict=True))
                   for a in fresh["attacks"] if a["name"] in per},
            }  # fmt: skip
    for key in ("recorder_s", "reference_s"):
        report[key] = round(report[key], 3)
    text = json.dumps(report, indent=1)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0 if stats["rows_differing"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
