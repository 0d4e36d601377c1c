"""Users' star ratings of movies."""
