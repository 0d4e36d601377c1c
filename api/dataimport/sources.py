"""Where an import's files come from: the official ML-1M archive, the synthetic sample or a directory."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from api.settings import Settings

log = logging.getLogger(__name__)

SAMPLE_SIZE = {"users": 1000, "movies": 600, "ratings_per_user": (20, 150), "seed": 0}


@dataclass(frozen=True)
class Source:
    directory: Path
    description: str
    notice: str | None = None  # one line for the operator, e.g. why the sample replaced ML-1M


def resolve_source(source: str, settings: Settings) -> Source:
    """Return the directory of MovieLens files that `source` names.

    `auto` is the data dir from settings if set, else ML-1M downloaded (or cached), else the
    synthetic sample with a notice saying so. `ml-1m` and `sample` insist on theirs; anything
    else is a directory path.
    """
    from ml.movielens.download import DownloadError, download_ml1m

    if source == "auto":
        if settings.data_dir is not None:
            if not Path(settings.data_dir).is_dir():
                raise FileNotFoundError(f"MOVIEREC_DATA_DIR is {settings.data_dir}, which is not a directory")
            return Source(Path(settings.data_dir), f"MovieLens files in {settings.data_dir}")
        try:
            return Source(download_ml1m(settings.cache_dir), "MovieLens 1M (official archive)")
        except DownloadError as error:
            sample = _sample(settings)
            return Source(
                sample.directory,
                sample.description,
                notice=f"ML-1M could not be downloaded ({error}); using the synthetic sample instead.",
            )
    if source == "ml-1m":
        return Source(download_ml1m(settings.cache_dir), "MovieLens 1M (official archive)")
    if source == "sample":
        return _sample(settings)
    path = Path(source)
    if not path.is_dir():
        raise FileNotFoundError(f"{source} is neither ml-1m, sample, auto nor a directory")
    return Source(path, f"MovieLens files in {path}")


def _sample(settings: Settings) -> Source:
    from ml.movielens.synthetic import write_synthetic

    directory = settings.var_dir / "sample"
    write_synthetic(directory, **SAMPLE_SIZE)  # type: ignore[arg-type]
    return Source(
        directory, f"synthetic sample ({SAMPLE_SIZE['users']} users, {SAMPLE_SIZE['movies']} movies)"
    )
