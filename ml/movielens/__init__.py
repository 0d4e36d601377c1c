"""Datasets: the types every reader returns (format.py), the readers of every layout (ml1m.py and
layouts.py, which picks one, on tables.py), the official ML-1M download and two synthetic generators."""
