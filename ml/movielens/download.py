"""Download, verify and unpack the official MovieLens 1M archive into a cache directory."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from ml.movielens.layouts import ML1M_FILES
from ml.progress import progress as progress_display

logger = logging.getLogger(__name__)

ML1M_URL = "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
ML1M_MD5 = "c4d9eecfca2ab87c1945afe126590906"
_CHUNK = 1 << 16


class DownloadError(RuntimeError):
    """The archive could not be fetched, did not match its checksum, or did not hold ML-1M."""


def download_ml1m(
    cache_dir: Path, *, url: str = ML1M_URL, md5: str = ML1M_MD5, progress: bool = True, timeout: float = 10
) -> Path:
    """Return cache_dir/"ml-1m" holding users.dat, movies.dat and ratings.dat, downloading it if needed."""
    target = cache_dir / "ml-1m"
    if _is_complete(target):
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    archive = cache_dir / "ml-1m.zip"
    if not (archive.is_file() and _md5_of(archive) == md5.lower()):
        _fetch(url, archive, md5=md5.lower(), progress=progress, timeout=timeout)
    _extract(archive, target)
    return target


def _is_complete(directory: Path) -> bool:
    """Return whether directory holds every ML-1M data file, none of them empty."""
    return all((directory / name).is_file() and (directory / name).stat().st_size > 0 for name in ML1M_FILES)


def _md5_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()


def _fetch(url: str, archive: Path, *, md5: str, progress: bool, timeout: float) -> None:
    """Download url to archive through a temporary file, renamed into place only once its md5 matches."""
    logger.info("downloading %s to %s", url, archive)
    handle, name = tempfile.mkstemp(prefix=".ml-1m-", suffix=".part", dir=archive.parent)
    partial = Path(name)
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with progress_display(total, "ml-1m.zip", "B", enabled=progress, unit_scale=True) as bar:
                for block in iter(lambda: response.read(_CHUNK), b""):
                    out.write(block)
                    bar.update(len(block))
    except (OSError, ValueError) as error:  # urllib's errors are OSErrors
        partial.unlink(missing_ok=True)
        reason = getattr(error, "reason", None) or error
        if isinstance(error, urllib.error.HTTPError):
            error.close()  # it holds the open response; left to the garbage collector it warns
            reason = error  # its str() carries the status code, its reason only the text
        raise DownloadError(f"could not download {url}: {reason}") from error
    actual = _md5_of(partial)
    if actual != md5:
        partial.unlink(missing_ok=True)
        raise DownloadError(f"checksum mismatch for {url}: expected md5 {md5}, got {actual}; file deleted")
    os.replace(partial, archive)


def _extract(archive: Path, target: Path) -> None:
    """Unpack the ml-1m folder of archive into target, replacing any incomplete earlier copy."""
    with tempfile.TemporaryDirectory(
        prefix=".ml-1m-", dir=target.parent, ignore_cleanup_errors=True
    ) as staging:
        try:
            with zipfile.ZipFile(archive) as zipped:
                zipped.extractall(staging)  # extractall drops absolute paths and ".." parts
        except zipfile.BadZipFile as error:
            raise DownloadError(f"{archive} is not a valid zip archive: {error}") from error
        unpacked = Path(staging) / "ml-1m"
        if not _is_complete(unpacked):
            raise DownloadError(f"{archive} has no ml-1m/ folder with {', '.join(ML1M_FILES)}")
        if target.exists():
            shutil.rmtree(target)
        os.replace(unpacked, target)
    logger.info("unpacked MovieLens 1M into %s", target)
