"""The datasets imported: where each came from and whether it is synthetic."""
