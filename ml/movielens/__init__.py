"""Datasets: the types every reader returns (format.py), a reader per layout the import reads
(layouts.py picks one), the official ML-1M download and two synthetic generators."""
