"""Every layout `movierec data import` reads, and which one a directory holds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ml.movielens.csv_layouts import load_generic_csv, load_movielens_csv
from ml.movielens.format import Dataset
from ml.movielens.ml1m import load_ml1m
from ml.movielens.ml100k import load_ml100k


@dataclass(frozen=True)
class Layout:
    name: str
    description: str
    load: Callable[[Path, list[str]], Dataset]  # the directory, a list the reader adds notes to


LAYOUTS = {
    layout.name: layout
    for layout in (
        Layout("ml-1m", "MovieLens 1M (users.dat, movies.dat, ratings.dat)", lambda d, _: load_ml1m(d)),
        Layout("ml-100k", "MovieLens 100K (u.user, u.item, u.data)", lambda d, _: load_ml100k(d)),
        Layout("movielens-csv", "a MovieLens CSV release like ml-latest or ml-25m (movies.csv, ratings.csv)",
               load_movielens_csv),
        Layout("csv", "the generic CSV layout (movies.csv, ratings.csv, optional users.csv)",
               load_generic_csv),
    )
}  # fmt: skip


@dataclass
class Loaded:
    dataset: Dataset
    layout: Layout
    notes: list[str] = field(default_factory=list)  # what was left out or assumed, for the operator


def detect(directory: Path) -> Layout:
    """Return the layout of a directory's files, or raise FileNotFoundError saying what was looked for."""
    if (directory / "ratings.dat").is_file():
        return LAYOUTS["ml-1m"]
    if (directory / "u.data").is_file():
        return LAYOUTS["ml-100k"]
    ratings = directory / "ratings.csv"
    if ratings.is_file():
        with ratings.open(encoding="utf-8", errors="replace") as handle:
            header = handle.readline()
        return LAYOUTS["movielens-csv" if header.startswith("userId,") else "csv"]
    raise FileNotFoundError(
        f"{directory} holds no dataset: looked for ratings.dat (ML-1M), u.data (ML-100K) or ratings.csv "
        "(a MovieLens CSV release, or the generic CSV layout)"
    )


def load(directory: Path, layout: str = "auto") -> Loaded:
    """Return the dataset in a directory, read in the layout named or detected."""
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a directory")
    chosen = detect(directory) if layout == "auto" else LAYOUTS[layout]
    notes: list[str] = []
    return Loaded(chosen.load(directory, notes), chosen, notes)
