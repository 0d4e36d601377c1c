"""schema.graphql, which front ends generate types from, must match the code."""

from __future__ import annotations

from pathlib import Path

from api.graphql.schema import build_schema

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"


def test_schema_file_matches_the_code() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == build_schema().as_str() + "\n", (
        "schema.graphql is stale: run `movierec schema --out schema.graphql`"
    )


def test_schema_names_every_operation() -> None:
    sdl = build_schema().as_str()
    for field in (
        "movie(",
        "movies(",
        "user(",
        "users(",
        "genres",
        "recommendations(",
        "similarMovies(",
        "recommendationsForProfile(",
        "modelInfo",
        "createUser(",
        "rateMovie(",
        "deleteRating(",
        "createMovie(",
    ):
        assert field in sdl
