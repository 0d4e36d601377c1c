"""movierec's machine-learning library: MovieLens data, the two-tower model, training, evaluation.

A pure library: it never imports the web service, the dashboard or database sessions.
"""
