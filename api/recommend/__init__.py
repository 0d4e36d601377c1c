"""Recommendations: encode the user, search the active collection, explain with the user's favourites."""
