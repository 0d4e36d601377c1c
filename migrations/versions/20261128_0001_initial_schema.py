"""Initial schema: users and occupations, movies and genres, ratings, model versions.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}

# The ML-1M occupations and genres: fixed vocabularies, so they ship with the schema.
OCCUPATIONS = [
    "other or not specified", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist", "self-employed",
    "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
]
GENRES = [
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War",
    "Western",
]


def _created_at() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(), server_default=sa.func.current_timestamp(), nullable=False)


def upgrade() -> None:
    occupations = op.create_table(
        "occupations",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_occupations")),
        sa.UniqueConstraint("name", name=op.f("uq_occupations_name")),
        **MYSQL,
    )
    genres = op.create_table(
        "genres",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_genres")),
        sa.UniqueConstraint("name", name=op.f("uq_genres_name")),
        **MYSQL,
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("gender", sa.String(length=1), nullable=False),
        sa.Column("age", sa.SmallInteger(), nullable=False),
        sa.Column("occupation_id", sa.SmallInteger(), nullable=False),
        sa.Column("zip_code", sa.String(length=10), nullable=False),
        _created_at(),
        sa.CheckConstraint("gender IN ('F', 'M')", name=op.f("ck_users_gender")),
        sa.CheckConstraint("age IN (1, 18, 25, 35, 45, 50, 56)", name=op.f("ck_users_age_bucket")),
        sa.ForeignKeyConstraint(
            ["occupation_id"], ["occupations.id"],
            name=op.f("fk_users_occupation_id_occupations"), ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        **MYSQL,
    )
    op.create_index(op.f("ix_users_occupation_id"), "users", ["occupation_id"])
    op.create_table(
        "movies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("year", sa.SmallInteger(), nullable=True),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_movies")),
        **MYSQL,
    )
    op.create_index(op.f("ix_movies_title"), "movies", ["title"])
    op.create_index(op.f("ix_movies_year"), "movies", ["year"])
    op.create_table(
        "movie_genres",
        sa.Column("movie_id", sa.Integer(), nullable=False),
        sa.Column("genre_id", sa.SmallInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["genre_id"], ["genres.id"], name=op.f("fk_movie_genres_genre_id_genres"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["movie_id"], ["movies.id"], name=op.f("fk_movie_genres_movie_id_movies"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("movie_id", "genre_id", name=op.f("pk_movie_genres")),
        **MYSQL,
    )
    op.create_index(op.f("ix_movie_genres_genre_id"), "movie_genres", ["genre_id"])
    op.create_table(
        "ratings",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("movie_id", sa.Integer(), nullable=False),
        sa.Column("rating", sa.SmallInteger(), nullable=False),
        sa.Column("rated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("rating BETWEEN 1 AND 5", name=op.f("ck_ratings_rating_range")),
        sa.ForeignKeyConstraint(
            ["movie_id"], ["movies.id"], name=op.f("fk_ratings_movie_id_movies"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_ratings_user_id_users"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("user_id", "movie_id", name=op.f("pk_ratings")),
        **MYSQL,
    )
    op.create_index("ix_ratings_movie_id_rating", "ratings", ["movie_id", "rating"])
    op.create_index("ix_ratings_user_id_rated_at", "ratings", ["user_id", "rated_at"])
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("progress", sa.JSON(), nullable=True),
        sa.Column("started_by", sa.String(length=64), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=True),
        sa.Column("artifact_path", sa.String(length=512), nullable=True),
        sa.Column("collection_name", sa.String(length=128), nullable=True),
        _created_at(),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed')", name=op.f("ck_model_versions_status")
        ),
        sa.CheckConstraint(
            "is_active IS NULL OR is_active = 1", name=op.f("ck_model_versions_active_true_or_null")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("is_active", name=op.f("uq_model_versions_is_active")),
        **MYSQL,
    )
    op.bulk_insert(occupations, [{"id": i, "name": name} for i, name in enumerate(OCCUPATIONS)])
    op.bulk_insert(genres, [{"id": i, "name": name} for i, name in enumerate(GENRES, start=1)])


def downgrade() -> None:
    # Indexes go with their tables (MySQL refuses to drop one a foreign key still needs).
    for table in ("model_versions", "ratings", "movie_genres", "movies", "users", "genres", "occupations"):
        op.drop_table(table)
