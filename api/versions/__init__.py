"""Trained model versions: training runs, their metrics and which one serves."""
