"""Users and their demographics."""
