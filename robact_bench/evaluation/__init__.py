"""Evaluation: the protocol runner, scoring under randomness, diagnostics and the EvalResult record."""
