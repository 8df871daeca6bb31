"""Training configs shipped with the package (YAML; ``robact-bench list configs``)."""
