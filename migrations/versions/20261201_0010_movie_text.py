"""A movie's description and tags, which the movie tower reads (ml/features.py: hashed words and tags).

`movies.description` is a nullable TEXT (at most 4,000 characters, as the import bounds it): one value
a movie, read whole, never searched. Tags go in a table of their own, `movie_tags` (movie_id, position,
tag), rather than a separated text column: a tag is free text (MovieLens users type any character, `|`
and `,` included), so no separator is safe, and rows keep each tag whole. The key is the tag's
position (0 = the most applied), not the tag: the order decides which tags survive the 32-a-movie
bound, and under MySQL's utf8mb4_unicode_ci "Café" and "cafe" are one key where SQLite has two, so
uniqueness is the reader's job (it normalises tags), the same on every backend. A movie's tags go
with it (ON DELETE CASCADE), as its genre links do.

A downgrade refuses while a movie has a description or tags, as 0008 and 0009 refuse to lose data:
clear them first (`UPDATE movies SET description = NULL; DELETE FROM movie_tags`).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def upgrade() -> None:
    with op.batch_alter_table("movies") as batch:
        batch.add_column(sa.Column("description", sa.Text(), nullable=True))
    op.create_table(
        "movie_tags",
        sa.Column("movie_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["movie_id"], ["movies.id"], name=op.f("fk_movie_tags_movie_id_movies"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("movie_id", "position", name=op.f("pk_movie_tags")),
        **MYSQL,
    )


def downgrade() -> None:
    bind = op.get_bind()
    described = bind.execute(sa.text("SELECT COUNT(*) FROM movies WHERE description IS NOT NULL")).scalar()
    tagged = bind.execute(sa.text("SELECT COUNT(DISTINCT movie_id) FROM movie_tags")).scalar()
    if described or tagged:
        raise RuntimeError(
            f"{described} movies have a description and {tagged} have tags, which this schema cannot hold"
        )
    op.drop_table("movie_tags")
    with op.batch_alter_table("movies") as batch:
        batch.drop_column("description")
