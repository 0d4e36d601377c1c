"""Baselines the two-tower model is measured against: popularity, the seed model, matrix factorisation."""
