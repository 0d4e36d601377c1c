"""The typed Milvus adapter: collections of movie vectors, searched by inner product."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import math
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt
from anyio import to_thread
from pymilvus import AsyncMilvusClient, DataType, MilvusClient, MilvusException

from api.vectors.lite import is_embedded, is_lite_file, lite_environment

log = logging.getLogger(__name__)
# milvus-lite 2.5 imports pkg_resources, deprecated by setuptools; the warning says nothing to operators.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

GENRES_CAPACITY = 18  # max_capacity of the genres array field: all of a movie's genres
UNKNOWN_YEAR = 0  # Milvus Lite has no nullable scalars: year 0 stands for "not known"
INSERT_BATCH = 2_000


class VectorStoreError(RuntimeError):
    """Milvus could not be reached or refused an operation."""


@dataclass(frozen=True)
class IndexSpec:
    """How a collection's vectors are indexed and searched."""

    index_type: str
    build: dict[str, Any]  # index-building parameters
    search: dict[str, Any]  # per-search parameters


EXACT_BELOW = 50_000  # rows; below this an exact (FLAT) scan answers within a few milliseconds
NPROBE = 64  # lists an IVF search scans: the fewest that meet the recall target (docs/figures.md)
MAX_TOPK = 16_384  # Milvus answers at most this many hits per query vector (its topk bound)
MAX_NQ = 1_024  # query vectors per batched search here, to bound one answer's size
READ_BATCH = 512  # ids per get (vector_rows): Lite reads large batches far slower


def choose_index(uri: str, rows: int) -> IndexSpec:
    """Return the index for about `rows` vectors: FLAT below EXACT_BELOW rows and on Milvus Lite, which
    answers IVF from a low-recall interim index whatever the parameters; else IVF_FLAT with about
    4·sqrt(rows) lists (a power of two), which with NPROBE met the recall and latency targets HNSW missed."""
    if rows < EXACT_BELOW or is_embedded(uri):
        return IndexSpec("FLAT", {}, {})
    nlist = 2 ** round(math.log2(4 * math.sqrt(rows)))
    return IndexSpec("IVF_FLAT", {"nlist": nlist}, {"nprobe": NPROBE})


@dataclass(frozen=True)
class Hit:
    movie_id: int
    score: float


@dataclass(frozen=True)
class CollectionStats:
    name: str
    row_count: int
    dim: int
    metric: str
    index_type: str
    index_params: dict[str, Any]
    load_state: str
    indexed_rows: int  # rows the index covers; a server builds it after a flush seals them
    pending_rows: int  # sealed rows waiting for the index build (searched exactly meanwhile)


class VectorStore:
    """Collections of movie_id, a float vector, genres and year. Requests `search` on the event loop
    (AsyncMilvusClient: less CPU than a worker thread); the rest, batch searches too, is synchronous."""

    def __init__(self, uri: str, *, timeout: int = 5) -> None:
        self.uri = uri
        # Whole seconds: pymilvus bounds its retries by the timeout only when it is an int.
        self.timeout = int(timeout)
        self._search_params: dict[str, dict[str, Any]] = {}  # per collection, from its index
        self._client = self._connect()  # for Milvus Lite, starts its server first
        self._async: AsyncMilvusClient | None = None  # made on the event loop that searches

    def _options(self, alias: str) -> dict[str, Any]:
        """Return a client's arguments. An alias of its own: pymilvus shares one connection per URI
        otherwise, and closing one store would cut every other store of the process on the same Milvus."""
        return dict(uri=self.uri, timeout=self.timeout, alias=f"{alias}-{uuid.uuid4().hex}")

    def _connect(self) -> MilvusClient:
        lite = lite_environment(self.uri) if is_lite_file(self.uri) else contextlib.nullcontext()
        try:
            with lite:  # a Lite file: the client starts its server
                return MilvusClient(**self._options("movierec"))
        except MilvusException as error:
            raise VectorStoreError(f"cannot connect to Milvus at {self.uri}: {error}") from error

    def close(self) -> None:
        """Close the store; one that searched on an event loop closes there with aclose()."""
        self._client.close()

    async def aclose(self) -> None:
        """Close the store and the event loop's client (pymilvus awaits its grpc.aio channel's close)."""
        await self._drop_loop_client()
        self.close()

    async def _drop_loop_client(self) -> None:
        client, self._async = self._async, None
        if client is not None:
            with contextlib.suppress(Exception):  # its server may be as dead as the connection
                await client.close()

    def exists(self, name: str) -> bool:
        return bool(self._call("has_collection", name))

    def create(
        self, name: str, *, dim: int, expected_rows: int = 0, index: IndexSpec | None = None
    ) -> IndexSpec:
        """Create an empty collection called name (dropping a leftover one) and return its index:
        `index`, or choose_index's for `expected_rows` on this Milvus."""
        self.drop(name)  # a leftover one; dropping a missing collection is no error
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("movie_id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field(
            "genres",
            DataType.ARRAY,
            element_type=DataType.VARCHAR,
            max_capacity=GENRES_CAPACITY,
            max_length=32,
        )
        schema.add_field("year", DataType.INT64)
        spec = index or choose_index(self.uri, expected_rows)
        if is_embedded(self.uri) and expected_rows >= EXACT_BELOW:
            log.warning(
                "Milvus Lite will scan all %d movies of %s for every search (FLAT, its only index): "
                "requests that compute their answer slow down with the catalogue; a Milvus server "
                "indexes it (docs/deploy.md)",
                expected_rows, name,
            )  # fmt: skip
        index_params = self._client.prepare_index_params()
        index_params.add_index(
            field_name="vector", index_type=spec.index_type, metric_type="IP", params=spec.build
        )
        # Bounded: searches don't wait for a time tick; upsert() makes its rows visible before it returns.
        self._call(
            "create_collection", name, schema=schema, index_params=index_params, consistency_level="Bounded"
        )
        self._search_params[name] = spec.search
        return spec

    def upsert(
        self,
        name: str,
        movie_ids: Sequence[int] | npt.NDArray[np.int64],
        vectors: npt.NDArray[np.float32],
        genres: Sequence[Sequence[str]],
        years: Sequence[int | None],
    ) -> None:
        """Insert or replace the vectors of the given movies, in batches."""
        if not (len(movie_ids) == len(vectors) == len(genres) == len(years)):
            raise ValueError("movie_ids, vectors, genres and years must have the same length")
        rows = (
            {
                "movie_id": int(m),
                "vector": v.astype(np.float32).tolist(),
                "genres": list(g)[:GENRES_CAPACITY],
                "year": int(y) if y is not None else UNKNOWN_YEAR,
            }
            for m, v, g, y in zip(movie_ids, vectors, genres, years, strict=True)
        )
        while batch := list(itertools.islice(rows, INSERT_BATCH)):
            self._call("upsert", name, batch)
        self._barrier(name)

    def _barrier(self, name: str) -> None:
        """Return once every search, from any client, sees the writes acknowledged before this call: a
        Strong query waits until they are applied, and a query node's serviceable time never goes back."""
        self._call("query", name, filter="", output_fields=["count(*)"], consistency_level="Strong")

    def flush(self, name: str) -> None:
        """Seal what was inserted so that Milvus builds the index over it (after a bulk load)."""
        self._call("flush", name)

    async def search(
        self, name: str, vector: npt.NDArray[np.float32], *, limit: int, expr: str = ""
    ) -> list[Hit]:
        """Return the limit movies of highest inner product with vector that satisfy expr, awaited on
        the event loop; on a Milvus Lite file, a failed search is made once more in a thread (_call),
        which restarts a dead server, and the next search makes a new client: a server restarted by
        any call listens on a new socket."""
        if name not in self._search_params:  # one blocking read per collection
            await to_thread.run_sync(self._params_for, name)
        request = _search_request(vector, limit, expr, self._search_params[name])
        try:
            if self._async is None:
                # A Lite file's server was started by the synchronous client: pymilvus finds its socket.
                self._async = AsyncMilvusClient(**self._options("movierec-async"))
            # The whole call is bounded: the client waits for its channel without a deadline.
            async with asyncio.timeout(self.timeout):
                return _hit_lists(await self._async.search(name, timeout=self.timeout, **request))[0]
        except (MilvusException, grpc.RpcError, TimeoutError) as error:
            if not is_lite_file(self.uri):  # a server's channel reconnects by itself: this raises
                await to_thread.run_sync(self._raise_unless_restartable, error, "search")
        await self._drop_loop_client()
        again = functools.partial(self._call, "search", name, **request)
        return _hit_lists(await to_thread.run_sync(again))[0]

    def search_many(
        self,
        name: str,
        vectors: npt.NDArray[np.float32],
        *,
        limit: int,
        expr: str = "",
        params: dict[str, Any] | None = None,
    ) -> list[list[Hit]]:
        """Return the limit movies of highest inner product with each row of vectors that satisfy expr,
        in one synchronous request, for batch work; params replace the collection's search parameters."""
        if not 0 < limit <= MAX_TOPK or not 0 < len(vectors) <= MAX_NQ:
            raise ValueError(f"a batched search takes 1 to {MAX_NQ} vectors and a limit of 1 to {MAX_TOPK}")
        request = _search_request(vectors, limit, expr, self._params_for(name) if params is None else params)
        return _hit_lists(self._call("search", name, **request))

    def vectors(self, name: str, movie_ids: Sequence[int]) -> dict[int, npt.NDArray[np.float32]]:
        """Return the stored vectors of the given movies (absent ids are left out)."""
        ids, vectors = self.vector_rows(name, movie_ids)
        return dict(zip(ids.tolist(), vectors, strict=True))

    def delete(self, name: str, movie_ids: Sequence[int]) -> None:
        """Remove the given movies' vectors (absent ids are ignored)."""
        self._call("delete", name, ids=[int(i) for i in movie_ids])
        self._barrier(name)

    def vector_rows(
        self, name: str, movie_ids: Sequence[int]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Return those of the given movies that have a vector (ids ascending) and their vectors, row
        for row, READ_BATCH ids a request (Milvus Lite's query iterator fails on a vector field)."""
        wanted = sorted({int(i) for i in movie_ids})
        ids: list[int] = []
        rows: list[list[float]] = []
        for start in range(0, len(wanted), READ_BATCH):
            for row in self._call(
                "get", name, ids=wanted[start : start + READ_BATCH], output_fields=["vector"]
            ):
                ids.append(int(row["movie_id"]))
                rows.append(row["vector"])
        found = np.asarray(ids, dtype=np.int64)
        order = np.argsort(found, kind="stable")
        vectors = np.asarray(rows, dtype=np.float32) if rows else np.empty((0, 0), dtype=np.float32)
        return found[order], vectors[order]

    def count(self, name: str) -> int:
        """Return the rows a search sees now (a server's collection statistics count only flushed rows)."""
        rows = self._call("query", name, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def stats(self, name: str) -> CollectionStats:
        """Return the figures the dashboard shows for a collection."""
        description = self._call("describe_collection", name)
        dim = next(int(f["params"]["dim"]) for f in description["fields"] if f["name"] == "vector")
        index = self._call("describe_index", name, "vector") or {}
        load_state = str(self._call("get_load_state", name).get("state"))  # a LoadState prints its name
        reserved = {
            "index_type",
            "metric_type",
            "field_name",
            "index_name",
            "dim",
            "total_rows",
            "indexed_rows",
            "pending_index_rows",
            "state",
        }
        # A server answers no query on a collection it has not loaded; its statistics then count the
        # flushed rows, all of them once a build or activation has flushed.
        rows = (
            self.count(name)
            if load_state == "Loaded"
            else int(self._call("get_collection_stats", name)["row_count"])
        )
        return CollectionStats(
            name=name,
            row_count=rows,
            dim=dim,
            metric=str(index.get("metric_type", "IP")),
            index_type=str(index.get("index_type", "FLAT")),
            index_params={k: v for k, v in index.items() if k not in reserved},
            load_state=load_state,
            indexed_rows=int(index.get("indexed_rows", 0)),
            pending_rows=int(index.get("pending_index_rows", 0)),
        )

    def load(self, name: str) -> None:
        """Load a collection into memory for searching. A restarted Milvus Lite loads a collection
        only at its first search (and says NotLoad until then); a server reloads what was loaded."""
        self._call("load_collection", name)

    def release(self, name: str) -> None:
        """Free a collection's memory on the query nodes; searches fail until load()."""
        self._call("release_collection", name)

    def collections(self) -> list[str]:
        """Return the names of every collection in this Milvus."""
        return sorted(self._call("list_collections"))

    def drop(self, name: str) -> None:
        self._call("drop_collection", name)
        self._search_params.pop(name, None)

    def _params_for(self, name: str) -> dict[str, Any]:
        """Return the search parameters that suit the collection's index (read once per collection)."""
        if name not in self._search_params:
            index = self._call("describe_index", name, "vector") or {}
            ivf = str(index.get("index_type", "FLAT")).startswith("IVF")
            self._search_params[name] = {"nprobe": NPROBE} if ivf else {}
        return self._search_params[name]

    def ping(self) -> bool:
        """Return whether Milvus answers."""
        try:
            self._client.list_collections(timeout=self.timeout)
        except Exception:  # any failure means "not reachable"
            return False
        return True

    def _raise_unless_restartable(self, error: Exception, method: str) -> None:
        """Raise what failed unless the store's own Milvus Lite server died and a new client would
        restart it. A server's gRPC channel reconnects by itself once it answers again, and a new
        client would wait in pymilvus's untimed Connect call while the server does not answer."""
        if self.ping():
            raise VectorStoreError(f"Milvus {method} failed: {describe(error)}") from error
        if not is_lite_file(self.uri):
            raise VectorStoreError(f"Milvus at {self.uri} is unavailable: {describe(error)}") from error

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a client method; when the store's Milvus Lite server died, restart it and retry once."""
        try:
            return getattr(self._client, method)(*args, timeout=self.timeout, **kwargs)
        except (MilvusException, grpc.RpcError) as error:
            # pymilvus raises a deadline that passed (a server that stopped answering) as grpc's own.
            self._raise_unless_restartable(error, method)
        return self._restart_and_call(method, *args, **kwargs)

    def _restart_and_call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Replace the client of a Milvus Lite file, which restarts its server, and call it once more."""
        from milvus_lite.server_manager import server_manager_instance

        log.warning("Milvus Lite at %s stopped answering; restarting it", self.uri)
        with contextlib.suppress(Exception):  # the old connection may be as dead as its server
            self._client.close()
        try:
            server_manager_instance.release_server(self.uri)  # its socket's server was ours
            self._client = self._connect()
            return getattr(self._client, method)(*args, timeout=self.timeout, **kwargs)
        except (MilvusException, grpc.RpcError, VectorStoreError) as error:
            raise VectorStoreError(f"Milvus at {self.uri} is unavailable: {describe(error)}") from error


def _search_request(
    vector: npt.NDArray[np.float32], limit: int, expr: str, params: dict[str, Any]
) -> dict[str, Any]:
    return {
        "data": np.atleast_2d(vector).astype(np.float32).tolist(),  # one row per query vector
        "limit": limit,
        "filter": expr,
        "search_params": {"metric_type": "IP", "params": params},
        # Also on collections created Strong: upsert()'s barrier makes writes visible without a time tick.
        "consistency_level": "Bounded",
    }


def _hit_lists(results: Any) -> list[list[Hit]]:
    return [[Hit(movie_id=int(hit["id"]), score=float(hit["distance"])) for hit in hits] for hits in results]


def describe(error: Exception) -> str:
    """Return the message of a pymilvus or grpc error, without grpc's debug dump."""
    if isinstance(error, MilvusException):
        return str(error.message)
    if isinstance(error, grpc.RpcError):
        return f"{error.code().name}: {error.details()}"
    if isinstance(error, TimeoutError):
        return "no answer in time"
    return str(error)
