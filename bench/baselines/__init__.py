"""Baselines bench/quality.py measures the two-tower model against: popularity, EASE, ItemKNN, matrix
factorisation and the seed model."""
