"""GraphQL type for the data the database holds, as its newest import recorded it."""

from __future__ import annotations

from datetime import datetime

import strawberry

from api.datasets.models import ImportedDataset


@strawberry.type(description="The data the database holds, as its newest import recorded it.")
class Dataset:
    description: str = strawberry.field(
        description="Where it came from, e.g. 'MovieLens 1M (official archive)'."
    )
    layout: str = strawberry.field(
        description="The layout read: ml-1m, ml-100k, movielens-csv, csv or recbole."
    )
    synthetic: bool = strawberry.field(
        description="True for the synthetic sample: its titles look real, its users and ratings are made up."
    )
    imported_at: datetime = strawberry.field(description="When it was imported (UTC).")
    users: int = strawberry.field(description="Users after the import.")
    movies: int = strawberry.field(description="Movies after the import.")
    ratings: int = strawberry.field(description="Ratings after the import.")

    @classmethod
    def from_row(cls, row: ImportedDataset) -> Dataset:
        return cls(
            description=row.description,
            layout=row.layout,
            synthetic=row.synthetic,
            imported_at=row.imported_at,
            users=row.users,
            movies=row.movies,
            ratings=row.ratings,
        )
