"""Tests of the ML-1M download against a real local HTTP server serving a small archive."""

from __future__ import annotations

import hashlib
import http.server
import io
import socket
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ml.movielens.download import DownloadError, download_ml1m
from ml.movielens.layouts import load_ml1m

USERS = "1::F::1::10::48067\n2::M::56::16::70072\n"
MOVIES = "1::Toy Story (1995)::Animation|Children's|Comedy\n2::Misérables, Les (1995)::Drama|Musical\n"
RATINGS = "1::1::5::978300760\n2::2::3::978302109\n"


def build_zip(members: dict[str, str]) -> bytes:
    """Return the bytes of a zip archive holding members, encoded like ML-1M."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for name, text in members.items():
            zipped.writestr(name, text.encode("latin-1"))
    return buffer.getvalue()


ARCHIVE = build_zip({"ml-1m/users.dat": USERS, "ml-1m/movies.dat": MOVIES, "ml-1m/ratings.dat": RATINGS})
ARCHIVE_MD5 = hashlib.md5(ARCHIVE).hexdigest()


class Server:
    """A local HTTP server in a thread that serves files from a dict and counts requests."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requests = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                body = owner.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep the test output clean

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str) -> str:
        """Return the full URL of a served path."""
        return self.base + path


@pytest.fixture
def server() -> Iterator[Server]:
    """Return a running local server holding the small archive at /ml-1m.zip."""
    running = Server({"/ml-1m.zip": ARCHIVE})
    running.thread.start()
    try:
        yield running
    finally:
        running.httpd.shutdown()
        running.httpd.server_close()
        running.thread.join()


def leftovers(cache: Path) -> list[str]:
    """Return the names in cache other than the archive and the extracted folder."""
    return sorted(p.name for p in cache.iterdir() if p.name not in ("ml-1m", "ml-1m.zip"))


def test_downloads_verifies_and_extracts(server: Server, tmp_path: Path) -> None:
    target = download_ml1m(tmp_path, url=server.url("/ml-1m.zip"), md5=ARCHIVE_MD5, progress=True)
    assert target == tmp_path / "ml-1m"
    data = load_ml1m(target)
    assert [m.title for m in data.movies] == ["Toy Story (1995)", "Misérables, Les (1995)"]
    assert (tmp_path / "ml-1m.zip").read_bytes() == ARCHIVE
    assert leftovers(tmp_path) == []


def test_second_call_uses_the_cache_without_network(server: Server, tmp_path: Path) -> None:
    url = server.url("/ml-1m.zip")
    download_ml1m(tmp_path, url=url, md5=ARCHIVE_MD5, progress=False)
    again = download_ml1m(tmp_path, url="http://127.0.0.1:9/unreachable.zip", md5=ARCHIVE_MD5)
    assert again == tmp_path / "ml-1m"
    assert server.requests == 1


def test_incomplete_extraction_is_redone_from_the_cached_archive(server: Server, tmp_path: Path) -> None:
    target = download_ml1m(tmp_path, url=server.url("/ml-1m.zip"), md5=ARCHIVE_MD5, progress=False)
    (target / "ratings.dat").unlink()
    download_ml1m(tmp_path, url=server.url("/ml-1m.zip"), md5=ARCHIVE_MD5, progress=False)
    assert (target / "ratings.dat").read_text(encoding="latin-1") == RATINGS
    assert server.requests == 1


def test_checksum_mismatch_is_an_error_and_leaves_no_file(server: Server, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="checksum mismatch") as caught:
        download_ml1m(tmp_path, url=server.url("/ml-1m.zip"), md5="0" * 32, progress=False)
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_http_error_is_a_download_error(server: Server, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="404"):
        download_ml1m(tmp_path, url=server.url("/missing.zip"), md5=ARCHIVE_MD5, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_refused_connection_is_a_download_error(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"could not download http://127\.0\.0\.1:9/") as caught:
        download_ml1m(tmp_path, url="http://127.0.0.1:9/ml-1m.zip", md5=ARCHIVE_MD5, progress=False)
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_silent_server_times_out(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/ml-1m.zip"
        with pytest.raises(DownloadError, match="timed out"):
            download_ml1m(tmp_path, url=url, md5=ARCHIVE_MD5, progress=False, timeout=0.2)
    assert list(tmp_path.iterdir()) == []


def test_archive_without_ml1m_files_is_an_error(server: Server, tmp_path: Path) -> None:
    wrong = build_zip({"other/readme.txt": "not movielens"})
    server.files["/wrong.zip"] = wrong
    with pytest.raises(DownloadError, match="no ml-1m/ folder"):
        download_ml1m(tmp_path, url=server.url("/wrong.zip"), md5=hashlib.md5(wrong).hexdigest())
    assert not (tmp_path / "ml-1m").exists()
    assert leftovers(tmp_path) == []
