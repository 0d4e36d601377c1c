"""Title search by words: the matching movies ranked by relevance, with a keyset position for pages.

A search is the words of its text (letters and digits; everything else separates words, so no input
is ever search syntax). A movie matches when each word begins a word of its title; it ranks first
when each is a whole word of its title, then by how many people rated it, then by id. SQLite answers
from its FTS5 table, MySQL/MariaDB from a FULLTEXT index (migration 0012) over `title_words`, the
title with every word marked by a prefix: InnoDB indexes no word shorter than three characters nor
its stopwords, and "Up", "It" or "The" marked are neither.

Each tier is its own statement, ordered by rating count. A search of only common words ("the", "st")
matches thousands of titles, and ranking them all is what made it slow: its tiers are first looked
for among the MOST_RATED most rated movies, read in their order, and the index is asked only when
those do not fill the page."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    and_,
    column,
    literal_column,
    or_,
    select,
    text,
    true,
)
from sqlalchemy.dialects.mysql import match

from api.movies.models import Movie

MAX_WORDS = 8  # a search's words past these are left out: each costs an index lookup
WORD = re.compile(r"[^\W_]+")
MARK = "w_"  # migration 0012 writes it before every word of title_words
TITLE_WORDS: ColumnElement[str] = literal_column("movies.title_words", String)  # MySQL's only
# A tier's page is first looked for among this many most-rated movies, in their order: a word in many
# titles fills it there, where ranking all of its titles would be slow.
MOST_RATED = 2_000
# InnoDB's default stopwords (INFORMATION_SCHEMA.INNODB_FT_DEFAULT_STOPWORD): common in titles too.
COMMON_WORDS = frozenset((
    "about", "are", "com", "for", "from", "how", "that", "the", "this", "was", "what", "when", "where",
    "who", "will", "with", "und", "www",
))  # fmt: skip


@dataclass(frozen=True, order=True)
class Position:
    """Where a movie stands in a search's order: tier 0 (every word whole) before 1, more ratings first."""

    tier: int
    rating_count: int
    id: int

    def cursor_value(self) -> str:
        return f"{self.tier}.{self.rating_count}.{self.id}"


def parse_position(raw: str) -> Position | None:
    """Return the position a cursor's value names, or None when it names none."""
    parts = raw.split(".")
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() and len(p) <= 10 for p in parts):
        return None
    tier, count, movie_id = (int(p) for p in parts)
    if tier > 1 or count >= 2**31 or movie_id >= 2**31:
        return None
    return Position(tier, count, movie_id)


def search_words(search: str) -> list[str]:
    """Return the search's distinct words, lower-cased, at most MAX_WORDS."""
    return list(dict.fromkeys(w.casefold() for w in WORD.findall(search)))[:MAX_WORDS]


@dataclass(frozen=True)
class Relevance:
    """A search's conditions on movies: tier 0 (`whole`, every word a whole title word), tier 1 (`prefix`
    and not `whole`), each read through the title index (`indexed`) or tested title by title."""

    whole: ColumnElement[bool]
    prefix: ColumnElement[bool]

    def tier(self, tier: int) -> ColumnElement[bool]:
        """Return the condition of the movies in a tier."""
        return self.whole if tier == 0 else and_(self.prefix, ~self.whole)


def indexed(words: list[str], dialect: str) -> Relevance:
    """Return what a search of `words` (non-empty) asks of the movies, read through the title index."""
    return _mysql(words) if dialect == "mysql" else _sqlite(words)


def scanned(words: list[str], dialect: str) -> Relevance | None:
    """Return what a search asks of the movies tested title by title, for a few movies read in order; None
    when it names a word in few titles, as the index then finds them all at once for less."""
    if not all(_common(w) for w in words):
        return None
    if dialect != "mysql":  # FTS5 reads a word's list of titles at once, cheaper than a test per title
        return _sqlite(words)
    return Relevance(
        and_(*(TITLE_WORDS.regexp_match(rf"\b{MARK}{w}\b") for w in words)),
        and_(*(TITLE_WORDS.contains(MARK + w, autoescape=True) for w in words)),
    )


def _sqlite(words: list[str]) -> Relevance:
    # Each word quoted: FTS5 reads what is inside double quotes as text, never as operators.
    prefixes = " AND ".join(f'"{w}"*' for w in words)
    whole = " AND ".join(f'"{w}"' for w in words)
    found = text("SELECT rowid FROM movie_search WHERE movie_search MATCH :prefixes")
    exact = text("SELECT rowid FROM movie_search WHERE movie_search MATCH :whole")
    rowid = column("rowid", Integer)
    return Relevance(
        Movie.id.in_(exact.bindparams(whole=whole).columns(rowid)),
        Movie.id.in_(found.bindparams(prefixes=prefixes).columns(rowid)),
    )


def _mysql(words: list[str]) -> Relevance:
    # InnoDB reads the whole list of a word in many titles ("the") for every search that names it: such
    # words are tested only on the titles the others found, when there are others.
    rare = [w for w in words if not _common(w)] or words
    whole: list[ColumnElement[bool]] = [_match(" ".join(f"+{MARK}{w}" for w in rare)) > 0]
    prefix: list[ColumnElement[bool]] = [_match(" ".join(f"+{MARK}{w}*" for w in rare)) > 0]
    for word in (w for w in words if w not in rare):
        whole.append(TITLE_WORDS.regexp_match(rf"\b{MARK}{word}\b"))
        prefix.append(TITLE_WORDS.contains(MARK + word, autoescape=True))
    return Relevance(and_(*whole), and_(*prefix))


def _common(word: str) -> bool:
    """Whether a word is likely in many titles: one or two characters, or one of InnoDB's stopwords."""
    return len(word) <= 2 or word in COMMON_WORDS


def _match(query: str) -> ColumnElement[float]:
    return match(TITLE_WORDS, against=query, in_boolean_mode=True)


def most_rated_floor() -> Select[int]:
    """Return the statement reading the rating count of the MOST_RATED-th most rated movie."""
    return select(Movie.rating_count).order_by(Movie.rating_count.desc()).offset(MOST_RATED - 1).limit(1)


def after_position(position: Position, tier: int) -> ColumnElement[bool]:
    """Return the condition on a tier's movies that come after `position` in a search's order."""
    if position.tier < tier:
        return true()
    return or_(
        Movie.rating_count < position.rating_count,
        and_(Movie.rating_count == position.rating_count, Movie.id > position.id),
    )
