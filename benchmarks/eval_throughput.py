"""Evaluation-engine benchmark (not a test): batched vs sequential EOT, and attack throughput.

Prints, on the machine it runs on, in one run:

1. **Batched vs sequential EOT, same number of gradient evaluations.** pyautoattack's APGD-CE
   (``n_iter`` iterations) on a BReLU LeNet-5: *sequential* is the library's own loop
   (``eot_iter = K`` forward-backward passes per iteration on the model); *batched* is
   ``eot_iter = 1`` on :class:`~robact_bench.attacks.eot.EOTModel` (the K samples of a batch in
   one forward pass, chunked). Both evaluate ``n_iter * K`` sampled gradients per point.
2. **Engine attack throughput vs the raw forward-backward bound.** The engine's PGD-k
   (``robact_bench.evaluate(..., "brelu_paper", attacks=("pgd20",))`` on a ReLU LeNet-5):
   image-steps per second of the attack (as timed by the adapter) divided by the images per
   second of a bare ``forward + input-gradient`` loop of the same model at the same batch size.

Every figure is the median of ``--repeats`` runs, the two sides of each ratio measured in the
same run, interleaved. Models are untrained (timing does not depend on the weights). Usage::

    python benchmarks/eval_throughput.py [--threads 2] [--points 100] [--k 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from robact_bench import create_model, evaluate
from robact_bench.attacks.eot import EOTModel


def _apgd_seconds(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, eot_iter: int, n_iter: int) -> float:
    from pyautoattack.autopgd_base import APGDAttack

    atk = APGDAttack(model, n_restarts=1, n_iter=n_iter, eps=0.1, norm="Linf", eot_iter=eot_iter, seed=0,
                     loss="ce", device=x.device)  # fmt: skip
    t0 = time.perf_counter()
    atk.perturb(x, y)
    return time.perf_counter() - t0


def _fwd_bwd_rate(model: torch.nn.Module, x: torch.Tensor, reps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(reps):
        xi = x.clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(xi), torch.zeros(len(x), dtype=torch.long), reduction="sum")
        torch.autograd.grad(loss, xi)
    return reps * len(x) / (time.perf_counter() - t0)


def main() -> None:
    """Run both measurements and print one JSON object."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--points", type=int, default=100)
    p.add_argument("--k", type=int, default=10, help="EOT samples")
    p.add_argument("--n-iter", type=int, default=20, help="APGD iterations")
    p.add_argument("--steps", type=int, default=20, help="PGD steps of the throughput measurement")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.rand(args.points, 1, 28, 28)
    y = torch.randint(0, 10, (args.points,))

    brelu = create_model("lenet5", act_layer="brelu").eval()
    seq, bat = [], []
    for _ in range(args.repeats):
        seq.append(_apgd_seconds(brelu, x, y, eot_iter=args.k, n_iter=args.n_iter))
        bat.append(_apgd_seconds(EOTModel(brelu, args.k), x, y, eot_iter=1, n_iter=args.n_iter))
    s_med, b_med = statistics.median(seq), statistics.median(bat)

    relu = create_model("lenet5", act_layer="relu").eval()
    # labels the model gets right, so PGD runs on every point for every step
    with torch.no_grad():
        y_ok = relu(x).argmax(1)
    attack_rate, raw_rate = [], []
    for _ in range(args.repeats):
        r = evaluate(relu, x, y_ok, "brelu_paper", eps=0.1, attacks=("pgd20",), sweeps=False, progress=False,
                     batch_size=args.points)  # fmt: skip
        attack_rate.append(args.points * 20 / r.attack("pgd20").record["seconds"])
        raw_rate.append(_fwd_bwd_rate(relu, x, 20))
    a_med, r_med = statistics.median(attack_rate), statistics.median(raw_rate)
    print(
        json.dumps(
            {
                "threads": args.threads,
                "points": args.points,
                "eot": {
                    "model": "LeNet-5 BReLU (28x28)",
                    "attack": f"pyautoattack APGD-CE, {args.n_iter} iterations, K = {args.k}",
                    "gradient_evaluations_per_point": args.n_iter * args.k,
                    "sequential_s": [round(v, 3) for v in seq],
                    "batched_s": [round(v, 3) for v in bat],
                    "sequential_over_batched": round(s_med / b_med, 3),
                },
                "throughput": {
                    "model": "LeNet-5 ReLU (28x28)",
                    "attack": "engine pgd20 (torchattacks PGD, 20 steps)",
                    "attack_img_steps_per_s": round(a_med),
                    "raw_fwd_bwd_img_per_s": round(r_med),
                    "ratio": round(a_med / r_med, 3),
                    "runs_ratio": [round(a / r, 3) for a, r in zip(attack_rate, raw_rate, strict=True)],
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
