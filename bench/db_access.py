"""How a request's database read should leave the event loop: a worker thread, or an async driver.

Every `recommendations` request makes one read (the user's row, kept list and ratings, USER_READ). This
runs that read --reads times from --concurrency coroutines on one event loop, each way, taking
turns for --rounds rounds, and prints reads per second and the process's CPU per read (medians):
- threads: PyMySQL in a worker thread with its own ORM session, at most 8 threads at a time; and
  the same with a Core connection instead of a session;
- async: SQLAlchemy's asyncio extension on the event loop, a Core connection with aiomysql in a
  transaction; a Core connection in autocommit with asyncmy, no session; and the API's way
  (api.db.run_on: the operation's session, its statement run on the session's connection in
  autocommit, no ROLLBACK on the connection's return to the pool), with asyncmy (the API's driver)
  and with aiomysql.
Needs the bench database of bench/serve.py and the dev extra (aiomysql).

    .venv/bin/python bench/db_access.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TypeVar

from anyio import CapacityLimiter, to_thread
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from api.db import make_async_engine, make_engine, make_session_factory, run_on
from api.recommend.pipeline import USER_SELECT, read_user

T = TypeVar("T")
DEFAULT_URL = "mysql+pymysql://root@127.0.0.1:3306/movierec_bench_serve"
HISTORY_LENGTH = 50  # the default model's


async def measure(
    call: Callable[[T], Awaitable[object]], items: Sequence[T], concurrency: int
) -> tuple[float, float]:
    """Return calls per second and CPU ms per call of awaiting call(item) for every item,
    `concurrency` at a time (bench/milvus_access.py times its searches so too)."""
    queue = list(items)

    async def worker() -> None:
        while queue:
            await call(queue.pop())

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return len(items) / wall, cpu / len(items) * 1000


async def main(args: argparse.Namespace) -> None:
    url = make_url(args.url)
    engine = make_engine(args.url, pool_size=8, pool_pre_ping=False)
    sessions = make_session_factory(engine)
    limiter = CapacityLimiter(8)
    async_engine = create_async_engine(url.set(drivername="mysql+aiomysql"), pool_size=8)
    api_engine = make_async_engine(args.url, pool_size=8)  # the API's
    aiomysql_engine = make_async_engine(args.url, pool_size=8, mysql_driver="aiomysql")

    def read_in_session(user_id: int) -> object:
        with sessions() as session:
            return session.execute(USER_SELECT, {"user_id": user_id, "limit": HISTORY_LENGTH}).one()

    def read_in_connection(user_id: int) -> object:
        with engine.connect() as connection:
            parameters = {"user_id": user_id, "limit": HISTORY_LENGTH}
            return connection.execute(USER_SELECT, parameters).one()

    async def threads(user_id: int) -> object:
        return await to_thread.run_sync(read_in_session, user_id, limiter=limiter)

    async def threads_core(user_id: int) -> object:
        return await to_thread.run_sync(read_in_connection, user_id, limiter=limiter)

    async def on_loop(user_id: int) -> object:
        async with async_engine.connect() as connection:
            parameters = {"user_id": user_id, "limit": HISTORY_LENGTH}
            return (await connection.execute(USER_SELECT, parameters)).one()

    def read_on(engine: AsyncEngine) -> Callable[[int], Awaitable[object]]:
        async def session_read(user_id: int) -> object:  # as the API reads: on a session of its own (run_on)
            work = partial(read_user, user_id=user_id, history_length=HISTORY_LENGTH)
            return await run_on(AsyncSession(engine, expire_on_commit=False), work)

        return session_read

    by_api, by_aiomysql = read_on(api_engine), read_on(aiomysql_engine)

    async def no_session(user_id: int) -> object:
        async with api_engine.connect() as connection:
            parameters = {"user_id": user_id, "limit": HISTORY_LENGTH}
            return (await connection.execute(USER_SELECT, parameters)).one()

    rng = random.Random(0)
    users = [rng.randint(1, args.users) for _ in range(args.reads)]
    ways = {
        "thread, ORM session (PyMySQL)": threads,
        "thread, Core connection (PyMySQL)": threads_core,
        "event loop, Core connection (aiomysql)": on_loop,
        "event loop, autocommit connection (asyncmy)": no_session,
        "event loop, autocommit read (aiomysql)": by_aiomysql,
        "event loop, autocommit read (API, asyncmy)": by_api,
    }
    for way in ways.values():  # warm pools and caches
        await measure(way, users[:200], args.concurrency)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
    for _ in range(args.rounds):
        for name, way in ways.items():
            results[name].append(await measure(way, users, args.concurrency))
    print(f"{args.reads} reads, {args.concurrency} at a time, medians of {args.rounds} rounds taking turns")
    for name, runs in results.items():
        rate = statistics.median(r for r, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"{name:42} {rate:8.0f} reads/s  {cpu:.3f} ms CPU/read")
    await async_engine.dispose()
    await api_engine.dispose()
    await aiomysql_engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=os.environ.get("MOVIEREC_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--reads", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--users", type=int, default=2998)
    asyncio.run(main(parser.parse_args()))
