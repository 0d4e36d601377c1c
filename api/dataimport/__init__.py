"""Bulk import of MovieLens-format data into the database."""
