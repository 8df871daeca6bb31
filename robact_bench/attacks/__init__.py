"""Attacks: adapters over the reference libraries (torchattacks, AutoAttack) and the PGD used in training."""
