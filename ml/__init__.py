"""movierec's machine-learning library: MovieLens data, the two-tower model, training, evaluation."""
