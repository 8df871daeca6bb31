"""Board files shipped with the package (YAML; ``robact-bench list boards``, ``robact-bench run BOARD``)."""
