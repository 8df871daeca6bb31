"""The seed papers' headline claims as data, and their audit on a leaderboard.

Each :class:`Claim` states what a paper claims, in which setting it measured it, the numbers it
printed, the attacks of its protocol (as our attack names) and the comparison it makes. On a
board, :func:`audit` finds the claim's model and its references (by group name), and tests the
claim twice on the same points, seed by seed:

* under **the paper's protocol**: the paper's attacks as the paper ran them (for a random model:
  without EOT, as the BReLU paper), scored by expected accuracy (the mean of what a single pass
  would report);
* under **the adaptive evaluation**: the same attacks adapted (EOT on a random model), and our
  headline (worst case per point over every attack).

Each comparison is :func:`robact_bench.leaderboard.inference.paired_comparison` (paired sign-flip
test of the mean per-point difference, McNemar's exact test on 0/1 outcomes; paired bootstrap
interval), Holm-adjusted over
the claim's comparisons of one protocol, decided by :func:`~robact_bench.leaderboard.inference.decide`.
A claim is **supported** under a protocol when every comparison is significantly in the claimed
direction, **not supported** when at least one is significantly against it, and **inconclusive**
otherwise. The audit's verdict is the adaptive evaluation's; the paper protocol's is shown beside it.

Sources: *Robustness through Random Activation: Adversarial Training with Bernoulli Rectified
Linear Units* (anonymous submission), Table 3; *Dynamic-Max-Value ReLU*, Tables 1 and 5; Zhao and
Griffin, *Suppressing the Unusual: towards Robust CNNs using Symmetric Activation Functions*, Table 2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from robact_bench.leaderboard.inference import ALPHA, decide, holm, paired_comparison

HEADLINE = "headline"
"""The attack name that stands for the headline (worst case per point over every attack)."""

CLAIM_VERDICTS = ("supported", "not supported", "inconclusive")


@dataclass(frozen=True)
class ClaimAttack:
    """One attack a claim is made under.

    Attributes:
        label: As the paper names it (``"PGD-20"``).
        paper: The paper's numbers in %, in the claim's metric: ``{"subject": .., <reference>: ..}``
            (a reference the paper has no number for is absent).
        protocol: Our attacks that run it as the paper did, in order of preference (the first an
            entry has is used: a random model's ``fgsm-noeot``, a deterministic model's ``fgsm``).
        adaptive: Our adaptive counterparts, in the same way; ``headline`` for the worst case.

    """

    label: str
    paper: Mapping[str, float]
    protocol: tuple[str, ...]
    adaptive: tuple[str, ...]


@dataclass(frozen=True)
class Claim:
    """A seed paper's headline claim.

    Attributes:
        name: Short identifier.
        paper: The paper (title, venue), and where the numbers are.
        claim: What it claims, in one sentence.
        subject: The suffix of the claim's model's group name on our boards (``"_BReLU_PGDAT"``).
        references: ``{label: group suffix}`` of the models it claims to beat.
        metric: ``accuracy`` (higher is better) or ``error`` (lower is better; ``1 - accuracy``).
        paper_setting: The paper's setting: architecture, data, eps, points, training, test time.
        attacks: The attacks of the claim.
        note: What the paper leaves open, or what we had to choose.

    """

    name: str
    paper: str
    claim: str
    subject: str
    references: Mapping[str, str]
    metric: str
    paper_setting: Mapping[str, str]
    attacks: tuple[ClaimAttack, ...]
    note: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


CLAIMS: tuple[Claim, ...] = (
    Claim(
        name="brelu_beats_relu_pgdat",
        paper="Robustness through Random Activation: Adversarial Training with Bernoulli Rectified Linear Units "
        "(anonymous submission), Table 3",
        claim="BReLU with PGD adversarial training is more robust than ReLU with the same training under FGSM, "
        "PGD-20 and CW (+15, +8 and +54 points on CIFAR-10, ResNet-18)",
        subject="_BReLU_PGDAT",
        references={"ReLU + PGD-AT": "_ReLU_PGDAT"},
        metric="accuracy",
        paper_setting={
            "architecture": "ResNet-18",
            "data": "CIFAR-10 (validation set; the best of 100 epochs)",
            "eps": "0.0314 (Linf)",
            "points": "not stated (the CIFAR-10 test set); 5 runs",
            "training": "PGD-7 adversarial training, eps 0.03, step 0.00784, AdamW, 100 epochs",
            "test time": "one forward pass, no EOT (BReLU stays random at test time)",
        },
        attacks=(
            ClaimAttack("FGSM", {"subject": 67.0, "ReLU + PGD-AT": 52.3}, ("fgsm-noeot", "fgsm"), ("fgsm",)),
            ClaimAttack("PGD-20", {"subject": 50.0, "ReLU + PGD-AT": 42.4}, ("pgd20-noeot", "pgd20"), ("pgd20",)),
            ClaimAttack("CW", {"subject": 72.4, "ReLU + PGD-AT": 18.1}, ("cw-noeot", "cw"), ("cw",)),
            ClaimAttack("worst case", {}, (), (HEADLINE,)),
        ),
        note="The paper gives no PGD step size, no CW settings and no number of test points, and uses no EOT; "
        "ours: PGD step eps/4 with a random start, torchattacks' CW (c 1, 50 steps) projected onto the Linf ball.",
    ),
    Claim(
        name="drelu_beats_adversarial_training",
        paper="Dynamic-Max-Value ReLU, Table 1 (MNIST) and Table 5 (Square, CIFAR-10)",
        claim="D-ReLU, trained without adversarial examples, is more robust than PGD adversarial training and "
        "TRADES under APGD (CE and DLR) and Square",
        subject="_ReLU_DReLUHead",
        references={"ReLU + PGD-AT": "_ReLU_PGDAT", "ReLU + TRADES-6": "_ReLU_TRADES6"},
        metric="accuracy",
        paper_setting={
            "architecture": "a dense network with two hidden layers and a D-ReLU layer before the output",
            "data": "MNIST test set (10,000 images); Square only on CIFAR-10 (shallow CNN)",
            "eps": "0.1 (Linf)",
            "points": "the whole test set; 3 runs",
            "training": "natural training + lambda * sum m^2 (m starts at 100); AT = 10 epochs of PGD fine-tuning; "
            "TRADES beta 1 and 6",
            "test time": "deterministic",
        },
        attacks=(
            ClaimAttack("APGD-CE", {"subject": 96.93, "ReLU + PGD-AT": 87.63, "ReLU + TRADES-6": 89.57},
                        ("apgd-ce",), (HEADLINE,)),
            ClaimAttack("APGD-DLR", {"subject": 97.03, "ReLU + PGD-AT": 87.47, "ReLU + TRADES-6": 89.13},
                        ("apgd-dlr",), (HEADLINE,)),
            ClaimAttack("Square", {"subject": 51.33, "ReLU + TRADES-6": 49.30}, ("square-alone",), (HEADLINE,)),
        ),
        note="The paper names no attack library, steps or Square queries; ours: AutoAttack's APGD (100 iterations) "
        "and Square (5,000 queries), each on every point. Its Square numbers are CIFAR-10's (no MNIST Square row, "
        "no PGD-AT row). The adaptive number is our worst case (with the BPDA transfer attack).",
    ),
    Claim(
        name="mrelu_rm_beats_plain",
        paper="Zhao and Griffin, Suppressing the Unusual: towards Robust CNNs using Symmetric Activation Functions, "
        "Table 2",
        claim="LeNet-5 with mReLU, a final 1-D RBF layer, random and mean training (mReLU-r-m) makes fewer errors "
        "than the plain CNN on FGS adversarial samples (error 0.030 vs 0.537 at beta = 0.1 on MNIST)",
        subject="_mReLU_RBF_SAF",
        references={"plain (ReLU, natural)": "_ReLU_Natural"},
        metric="error",
        paper_setting={
            "architecture": "LeNet-5 (plain: no activation after the convolutions, ReLU after fc1)",
            "data": "MNIST test set (10,000 images)",
            "eps": "beta = 0.1 on [0, 1] pixels (Linf, one step)",
            "points": "the whole test set",
            "training": "plain: 20 epochs; mReLU-r-m: hybrid loss, random and mean training",
            "test time": "deterministic; an input is rejected when every confidence is below 0.5",
        },
        attacks=(
            ClaimAttack("FGS (eq. 10)", {"subject": 3.0, "plain (ReLU, natural)": 53.7}, ("saf-fgs",), ("saf-fgs",)),
            ClaimAttack("worst case", {}, (), (HEADLINE,)),
        ),
        note="Errors are 100 - accuracy (a wrong label); the paper's rejection of low-confidence inputs is not "
        "applied here (the saf_paper suite reports it). Our plain network has ReLU after the convolutions too.",
    ),
)


def _find(groups: Mapping[str, Any], suffix: str) -> str | None:
    found = sorted(g for g in groups if g.endswith(suffix))
    return found[0] if found else None


def _resolve(names: Sequence[str], per_seed: Sequence[Mapping[str, Any]]) -> str | None:
    """The first of ``names`` that every seed's entry has (``headline`` always exists)."""
    for name in names:
        if name == HEADLINE or all(name in ev.get("per_attack", {}) for ev in per_seed):
            return name
    return None


def _values(ev: Mapping[str, Any], name: str) -> list[float] | None:
    passes = int(ev.get("passes", 1))
    if name == HEADLINE:
        counts = (ev.get("points") or {}).get("headline")
    else:
        counts = (ev.get("per_attack", {}).get(name) or {}).get("counts")
    if not counts:
        return None
    return [c / passes for c in counts]


def _same_points(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]) -> bool:
    ia = [(ev.get("points") or {}).get("indices") for ev in a]
    ib = [(ev.get("points") or {}).get("indices") for ev in b]
    return all(x is not None and x == y for x, y in zip(ia, ib, strict=True))


def compare_groups(subject: Mapping[int, Mapping[str, Any]], reference: Mapping[int, Mapping[str, Any]],
                   subject_attack: str, reference_attack: str, *, alpha: float = ALPHA) -> dict[str, Any]:  # fmt: skip
    """Paired comparison of one accuracy of two groups (``{seed: evaluation block}``) on their common seeds.

    Returns :func:`~robact_bench.leaderboard.inference.paired_comparison`'s dict plus ``seeds``,
    ``subject_mean`` and ``reference_mean`` (expected accuracy), or ``{"skipped": reason}``.
    """
    seeds = sorted(set(subject) & set(reference))
    if not seeds:
        return {"skipped": "no seed in common"}
    a_evs, b_evs = [subject[s] for s in seeds], [reference[s] for s in seeds]
    if not _same_points(a_evs, b_evs):
        return {"skipped": "the two were not evaluated on the same points"}
    a = [_values(ev, subject_attack) for ev in a_evs]
    b = [_values(ev, reference_attack) for ev in b_evs]
    if any(v is None for v in a + b):
        return {"skipped": "per-point counts are missing (an entry older than robact_bench.entry/3)"}
    out = paired_comparison(a, b, alpha=alpha)  # type: ignore[arg-type]
    out["seeds"] = seeds
    out["subject_mean"] = sum(sum(v) / len(v) for v in a) / len(a)  # type: ignore[arg-type]
    out["reference_mean"] = sum(sum(v) / len(v) for v in b) / len(b)  # type: ignore[arg-type]
    return out


def _verdict(decision: str) -> str:
    return {"better": "supported", "worse": "not supported"}.get(decision, "inconclusive")


def _overall(verdicts: Sequence[str]) -> str:
    if not verdicts:
        return "inconclusive"
    if all(v == "supported" for v in verdicts):
        return "supported"
    if any(v == "not supported" for v in verdicts):
        return "not supported"
    return "inconclusive"


def _metric(claim: Claim, acc: float) -> float:
    return 100 * (1 - acc) if claim.metric == "error" else 100 * acc


def audit_claim(claim: Claim, groups: Mapping[str, Mapping[int, Mapping[str, Any]]],
                meta: Mapping[str, Mapping[str, Any]], *, alpha: float = ALPHA) -> dict[str, Any]:  # fmt: skip
    """Audit one claim on a board.

    ``groups`` maps group -> {seed: ``robact.evaluation``}; ``meta`` maps group -> its setting
    (``{"architecture", "dataset", "eps", "n", "seeds", "track", ...}``).
    """
    subject = _find(groups, claim.subject)
    refs = {label: _find(groups, suffix) for label, suffix in claim.references.items()}
    base = {"name": claim.name, "paper": claim.paper, "claim": claim.claim, "metric": claim.metric,
            "paper_setting": dict(claim.paper_setting), "note": claim.note}  # fmt: skip
    missing = [claim.subject.strip("_")] if subject is None else []
    missing += [claim.references[label].strip("_") for label, g in refs.items() if g is None]
    if missing:
        return {**base, "verdict": "not tested", "reason": f"the board has no {', '.join(missing)} row"}
    rows: list[dict[str, Any]] = []
    for atk in claim.attacks:
        for label, ref in refs.items():
            assert subject is not None and ref is not None
            row: dict[str, Any] = {
                "attack": atk.label,
                "reference": label,
                "reference_group": ref,
                "paper_subject": atk.paper.get("subject"),
                "paper_reference": atk.paper.get(label),
            }
            for protocol, names in (("paper", atk.protocol), ("adaptive", atk.adaptive)):
                if not names:
                    continue
                s_name = _resolve(names, list(groups[subject].values()))
                r_name = _resolve(names, list(groups[ref].values()))
                if s_name is None or r_name is None:
                    row[protocol] = {"skipped": f"the board's entries lack {' / '.join(names)}"}
                    continue
                cmp = compare_groups(groups[subject], groups[ref], s_name, r_name, alpha=alpha)
                if "skipped" not in cmp:
                    cmp.update(subject_attack=s_name, reference_attack=r_name,
                               subject_value=_metric(claim, cmp["subject_mean"]),
                               reference_value=_metric(claim, cmp["reference_mean"]))  # fmt: skip
                row[protocol] = cmp
            rows.append(row)
    verdicts: dict[str, str] = {}
    for protocol in ("paper", "adaptive"):
        tested = [r[protocol] for r in rows if protocol in r and "skipped" not in r[protocol]]
        for cmp, p_adj in zip(tested, holm([c["p"] for c in tested], alpha), strict=True):
            cmp["p_holm"] = p_adj
            cmp["decision"] = decide(p_adj, cmp["ci95"], alpha)
            cmp["verdict"] = _verdict(cmp["decision"])
        verdicts[protocol] = _overall([c["verdict"] for c in tested]) if tested else "not tested"
    assert subject is not None
    setting = dict(meta.get(subject, {}))
    return {**base, "subject_group": subject, "our_setting": setting, "comparisons": rows,
            "verdict_paper_protocol": verdicts["paper"], "verdict": verdicts["adaptive"], "alpha": alpha}  # fmt: skip


def audit(groups: Mapping[str, Mapping[int, Mapping[str, Any]]], meta: Mapping[str, Mapping[str, Any]], *,
          claims: Sequence[Claim] = CLAIMS, alpha: float = ALPHA) -> list[dict[str, Any]]:  # fmt: skip
    """:func:`audit_claim` for every claim (JSON-ready)."""
    return [audit_claim(c, groups, meta, alpha=alpha) for c in claims]
