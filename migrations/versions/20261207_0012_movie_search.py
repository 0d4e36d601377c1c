"""Title search by words, ranked by how many people rated each movie.

`movies.rating_count` is how many ratings the movie has, kept by the ratings' only writer
(api/ratings/writes.py) in the transaction of each write: a search ranks by it without counting
ratings, and finds the most rated movies by its index. Triggers on `ratings` would deadlock on
MySQL (the foreign-key check's shared lock on the movie, then the trigger's exclusive one, in two
transactions at once).

MySQL/MariaDB get `title_words`, a stored generated column that is the title with "w_" before each
word, and a FULLTEXT index on it, which InnoDB keeps itself: InnoDB indexes no word shorter than
innodb_ft_min_token_size (3) nor its stopwords ("it", "the"), which marked words are not. The column
is not in the ORM models: nothing but a search reads it. SQLite gets an FTS5 table over the title
(external content: it holds only the index, its rowid is the movie's id), kept in step with
`movies` by three triggers. A later migration that rebuilds `movies` in batch
mode (copy, drop, rename) drops those triggers and must create them again.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FULLTEXT_INDEX = "ix_movies_title_words"
# MariaDB's PCRE writes a group back as \\1, MySQL 8's ICU as $1.
MYSQL_WORDS = (
    "ALTER TABLE movies ADD COLUMN title_words VARCHAR(1024) "
    "AS (REGEXP_REPLACE(title, '([[:alnum:]]+)', 'w_{group}')) STORED, "
    f"ADD FULLTEXT INDEX {FULLTEXT_INDEX} (title_words)"
)
SQLITE_SEARCH = (
    # unicode61 with remove_diacritics 2: "cafe" finds "Café", as MySQL's collation does
    "CREATE VIRTUAL TABLE movie_search USING fts5(title, content='movies', content_rowid='id', "
    "tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER movie_search_insert AFTER INSERT ON movies BEGIN "
    "INSERT INTO movie_search (rowid, title) VALUES (new.id, new.title); END",
    "CREATE TRIGGER movie_search_delete AFTER DELETE ON movies BEGIN "
    "INSERT INTO movie_search (movie_search, rowid, title) VALUES ('delete', old.id, old.title); END",
    "CREATE TRIGGER movie_search_update AFTER UPDATE OF title ON movies BEGIN "
    "INSERT INTO movie_search (movie_search, rowid, title) VALUES ('delete', old.id, old.title); "
    "INSERT INTO movie_search (rowid, title) VALUES (new.id, new.title); END",
    "INSERT INTO movie_search (movie_search) VALUES ('rebuild')",
)


def upgrade() -> None:
    op.add_column("movies", sa.Column("rating_count", sa.Integer(), nullable=False, server_default="0"))
    op.create_index(op.f("ix_movies_rating_count"), "movies", ["rating_count"])
    if op.get_bind().dialect.name == "mysql":
        op.execute(
            "UPDATE movies JOIN (SELECT movie_id, COUNT(*) AS n FROM ratings GROUP BY movie_id) AS counted "
            "ON counted.movie_id = movies.id SET movies.rating_count = counted.n"
        )
        bind = op.get_bind()
        mariadb = "mariadb" in str(bind.exec_driver_sql("SELECT VERSION()").scalar_one()).lower()
        # exec_driver_sql: SQLAlchemy's text() would read ":alnum" as a parameter
        bind.exec_driver_sql(MYSQL_WORDS.format(group="\\\\1" if mariadb else "$1"))
        return
    op.execute("UPDATE movies SET rating_count = (SELECT COUNT(*) FROM ratings WHERE movie_id = movies.id)")
    for statement in SQLITE_SEARCH:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "mysql":
        op.execute(f"ALTER TABLE movies DROP INDEX {FULLTEXT_INDEX}, DROP COLUMN title_words")
    else:
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER movie_search_{trigger}")
        op.execute("DROP TABLE movie_search")
    op.drop_index(op.f("ix_movies_rating_count"), "movies")
    with op.batch_alter_table("movies") as batch:
        batch.drop_column("rating_count")
