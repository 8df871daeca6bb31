"""Training: pure losses, recipes, the configuration and the seeded training loop."""
