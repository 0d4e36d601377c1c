"""Encoding one user: Paddle's inference predictor over the saved user tower against dygraph.

Loads the active model version of the bench database of bench/serve.py and encodes --users real
users (their demographics and 50 latest ratings) each way, taking turns for --rounds rounds, one
user per call as a request does; prints p50 ms per user of each way (medians of rounds) and checks
that both give the same vectors.

    .venv/bin/python bench/encode.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from api.db import make_engine, make_session_factory
from api.recommend.kept import read_users
from api.users.models import User
from api.versions.models import ModelVersion as VersionRow
from ml.inputs import to_tensors
from ml.paddle_setup import paddle
from ml.serving import HistoryItem, LoadedModel, UserFeatures

DEFAULT_URL = "mysql+pymysql://root@127.0.0.1:3306/movierec_bench_serve"


def main(args: argparse.Namespace) -> None:
    sessions = make_session_factory(make_engine(args.url))
    with sessions() as session:
        path = session.execute(
            select(VersionRow.artifact_path).where(VersionRow.is_active.is_(True))
        ).scalar_one()
        model = LoadedModel.load(Path(path))
        ids = list(session.execute(select(User.id).order_by(User.id).limit(args.users)).scalars())
        users = [
            (UserFeatures(user.gender, user.age, user.occupation_id, user.zip_code, user_id), user.history)
            for user_id, user in read_users(session=session, ids=ids, length=model.history_length)
        ]
    at = int(time.time())

    def dygraph(features: UserFeatures, history: list[HistoryItem]) -> np.ndarray:
        arrays = model.user_arrays([(features, history)], at=at)
        with paddle.no_grad():
            return model.model.encode_users(to_tensors(arrays)).numpy()[0]

    def predictor(features: UserFeatures, history: list[HistoryItem]) -> np.ndarray:
        return model.encode_user(features, history, at=at)

    for features, history in users[:20]:
        np.testing.assert_allclose(predictor(features, history), dygraph(features, history), atol=1e-5)
    ways = {"inference predictor (served)": predictor, "dygraph": dygraph}
    medians: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.rounds):
        for name, encode in ways.items():
            times = []
            for features, history in users:
                started = time.perf_counter()
                encode(features, history)
                times.append((time.perf_counter() - started) * 1000)
            medians[name].append(statistics.median(times))
    print(f"{len(users)} users, one per call, medians of {args.rounds} rounds taking turns; same vectors")
    for name, runs in medians.items():
        print(f"{name:30} p50 {statistics.median(runs):.3f} ms a user")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=os.environ.get("MOVIEREC_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    main(parser.parse_args())
