"""Datasets: the types every reader returns (format.py), the readers of every layout (layouts.py, which
picks one, and recbole.py, on tables.py), the official ML-1M download and two synthetic generators."""
