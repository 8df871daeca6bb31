"""The dataset families: the facts each registered dataset reads from its :class:`DatasetFamily`.

=========  ==========================================  ==============================================
family     datasets                                    facts
=========  ==========================================  ==============================================
``mnist``  ``mnist``, ``mnist5k``, ``digits``          normalization 0.1307 / 0.3081 (MNIST's
                                                       training statistics); the symmetric-activation
                                                       paper's Table 2 grid; attacks at the D-ReLU
                                                       paper's MNIST bound eps = 0.1
``cifar``  ``cifar10``, ``cifar100``,                  CIFAR-10's per-channel training statistics;
           ``cifar10_sample``                          the paper's Table 4 grid; the BReLU and
                                                       TRADES papers' CIFAR attacks
=========  ==========================================  ==============================================

Recipe defaults (``recipe_defaults``) are the values a recipe sets for the family over its own
dataset-independent ones (:mod:`robact_bench.training.recipes`):

* ``pgd_at``: MNIST-like eps 0.1, step eps/4, 7 steps; CIFAR the BReLU paper's eps 0.03, step
  0.00784, 7 steps.
* ``trades``: MNIST-like the same attack as ``pgd_at`` (so the two compare); CIFAR the TRADES
  paper's eps 0.031, step 0.007, 10 steps.
* ``saf``: the symmetric-activation paper's random/mean training: MNIST delta 0.3, mean noise
  0.3, no third hybrid term; CIFAR delta 0.03, mean noise 0.1, a3 = 1/9.
* ``fast_at``: MNIST-like eps 0.1, step 0.125; CIFAR eps 8/255, step 10/255 (Wong et al.).

A new dataset registers with one of these families or a new :class:`DatasetFamily`; nothing in
the package looks at a dataset's name or channel count to find these numbers.
"""

from __future__ import annotations

from robact_bench.data import DatasetFamily

__all__ = ["CIFAR", "MNIST"]

_MNIST_ATTACK = {"eps": 0.1, "step_size": 0.025, "steps": 7}

MNIST = DatasetFamily(
    name="mnist",
    mean=(0.1307,),
    std=(0.3081,),
    # Suppressing the Unusual, Table 2 (on [0, 1] pixels; 0 is the "clean" column)
    saf_betas=(0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.40, 0.50),
    recipe_defaults={
        "pgd_at": _MNIST_ATTACK,
        "trades": _MNIST_ATTACK,
        "saf": {"hybrid_a3": 0.0, "saf_delta": 0.3, "saf_mean_sigma": 0.3},
        "fast_at": {"eps": 0.1, "step_size": 0.125},
    },
    description="handwritten digits, 1 channel: MNIST's statistics, the MNIST grid and attack budgets",
)

CIFAR = DatasetFamily(
    name="cifar",
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616),
    # Suppressing the Unusual, Table 4
    saf_betas=(0.0, 0.010, 0.015, 0.020, 0.025, 0.030, 0.035, 0.040, 0.045, 0.050, 0.075, 0.100, 0.150),
    recipe_defaults={
        "pgd_at": {"eps": 0.03, "step_size": 0.00784, "steps": 7},
        "trades": {"eps": 0.031, "step_size": 0.007, "steps": 10},
        "saf": {"hybrid_a3": 1.0 / 9.0, "saf_delta": 0.03, "saf_mean_sigma": 0.1},
        "fast_at": {"eps": 8 / 255, "step_size": 10 / 255},
    },
    description="32x32 RGB images: CIFAR-10's statistics, the CIFAR-10 grid and attack budgets",
)
