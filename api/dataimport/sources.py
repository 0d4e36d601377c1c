"""Where an import's files come from: the official ML-1M archive, the synthetic sample or a directory."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from api.settings import Settings

SAMPLE_SIZE = {"users": 1000, "movies": 600, "ratings_per_user": (20, 150), "seed": 0}


@dataclass(frozen=True)
class Source:
    directory: Path
    description: str
    notice: str | None = None  # one line for the operator, e.g. why the sample replaced ML-1M
    synthetic: bool = False  # the synthetic sample: titles that look real, users and ratings made up


def resolve_source(source: str, settings: Settings) -> Source:
    """Return the directory of MovieLens files that `source` names: ml-1m (downloaded or cached), sample,
    a directory, or auto: the settings' data dir if set, else ML-1M, else the sample with a notice."""
    from ml.movielens.download import DownloadError, download_ml1m
    from ml.movielens.synthetic import write_synthetic

    if source == "auto" and settings.data_dir is not None:
        if not settings.data_dir.is_dir():
            raise FileNotFoundError(f"MOVIEREC_DATA_DIR is {settings.data_dir}, which is not a directory")
        return Source(settings.data_dir, f"the dataset in {settings.data_dir}")
    if source == "auto":
        try:
            return resolve_source("ml-1m", settings)
        except DownloadError as error:
            notice = f"ML-1M could not be downloaded ({error}); using the synthetic sample instead."
            return replace(resolve_source("sample", settings), notice=notice)
    if source == "ml-1m":
        return Source(download_ml1m(settings.var_dir / "cache"), "MovieLens 1M (official archive)")
    if source == "sample":
        directory = settings.var_dir / "sample"
        write_synthetic(directory, **SAMPLE_SIZE)  # type: ignore[arg-type]
        about = f"synthetic sample ({SAMPLE_SIZE['users']} users, {SAMPLE_SIZE['movies']} movies)"
        return Source(directory, about, synthetic=True)
    path = Path(source)
    if not path.is_dir():
        raise FileNotFoundError(f"{source} is neither ml-1m, sample, auto nor a directory")
    return Source(path, f"the dataset in {path}")
