"""Every ORM model, imported in one place so the metadata is complete (Alembic reads it)."""

from admin.models import AdminSession, SignInFailures
from api.access.models import ApiKey
from api.db import Base
from api.movies.models import Genre, Movie, MovieTag, movie_genres
from api.ratings.models import Rating
from api.recommend.models import KeptList
from api.users.models import Occupation, User
from api.versions.models import Activation, ModelVersion

metadata = Base.metadata

__all__ = [
    "Activation", "AdminSession", "ApiKey", "Genre", "KeptList", "ModelVersion", "Movie", "MovieTag",
    "Occupation", "Rating", "SignInFailures", "User", "metadata", "movie_genres",
]  # fmt: skip
