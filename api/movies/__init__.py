"""Movies and their genres."""
