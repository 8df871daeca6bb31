"""Interop with the libraries around us: each module sits beside the layer it adapts.

* :mod:`robact_bench.interop.art`: an ART ``PyTorchClassifier`` for our models that keeps a
  stochastic model stochastic under ART's ``eval()`` (beside :mod:`robact_bench.attacks`).
* :mod:`robact_bench.interop.robustbench`: our checkpoints in RobustBench's model zoo, so that
  ``robustbench.utils.load_model`` returns them without downloading (beside
  :mod:`robact_bench.models`). RobustBench is an optional extra, imported only when called.

Nothing here is imported by ``import robact_bench``; import the module you need.
"""
