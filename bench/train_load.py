"""API throughput while the dashboard retrains: wrk on GraphQL `recommendations`, idle and during training.

Uses the MySQL database and model of bench/serve.py (movierec_bench_serve; built on first use), starts
the API as deployed (`movierec serve --workers N`), measures req/s idle, then signs in to the
dashboard, starts a retrain (the real training process) and measures again while it trains. Prints
both, the ratio (target >= 0.5) and the machine's load average; writes
bench/results/train_load.json. Needs `wrk`.

    .venv/bin/python bench/train_load.py --data-dir ../shared/datasets/ml-1m-head
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.serve import (
    LUA,
    RESULTS,
    ROOT,
    bench_key,
    prepare,
    run_wrk,
    serve_command,
    stack_env,
    stack_parser,
    wait_ready,
)

PASSWORD = "bench-password-1"


def start_retrain(base: str, epochs: int) -> tuple[httpx.Client, int]:
    """Sign in to the dashboard, start a retrain and return the client and the version's id."""
    client = httpx.Client(base_url=base, timeout=30)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/admin/login").text)
    assert token
    client.post("/admin/login", data={"password": PASSWORD, "csrf_token": token.group(1)})
    page = client.get("/admin/").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token, "sign-in failed"
    response = client.post("/admin/retrain", data={"csrf_token": token.group(1), "epochs": str(epochs)})
    match = re.search(r"/admin/runs/(\d+)$", response.headers.get("location", ""))
    assert match, f"retrain refused: {response.headers.get('location')}"
    return client, int(match.group(1))


def progress(client: httpx.Client, version_id: int) -> dict[str, Any]:
    run: dict[str, Any] = client.get(f"/admin/runs/{version_id}/progress").json()
    return run


def main() -> None:
    parser = stack_parser(__doc__)
    parser.add_argument("--duration", type=int, default=20, help="seconds of load per measurement")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the served model, when built")
    parser.add_argument("--train-epochs", type=int, default=8, help="epochs of the retrain under load")
    parser.add_argument("--fresh", action="store_true", help="rebuild database and model")
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args()
    db_url, env = stack_env(args, MOVIEREC_ADMIN_PASSWORD=PASSWORD)
    prepare(args, env)
    engine = create_engine(db_url)
    with engine.connect() as connection:
        users = connection.execute(text("SELECT MAX(user_id) FROM ratings")).scalar_one()
    engine.dispose()
    base = f"http://127.0.0.1:{args.port}"
    url, script = f"{base}/graphql", LUA.replace("USERS", str(users)).replace("API_KEY", bench_key(db_url))
    server = subprocess.Popen(
        serve_command(args, args.port),
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,  # the access log
    )
    try:
        wait_ready(f"{base}/readyz")
        run_wrk(url, script, args.connections, 3, seed=1)  # warm-up
        load_idle = os.getloadavg()[0]
        idle = run_wrk(url, script, args.connections, args.duration, seed=2)
        client, version_id = start_retrain(base, args.train_epochs)
        deadline = time.monotonic() + 600
        while True:  # measure once the worker trains (its data loading is over)
            run = progress(client, version_id)
            step = (run.get("progress") or {}).get("step")
            if run["status"] == "running" and step:
                break
            assert run["status"] in ("queued", "running"), run
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(1)
        load_training = os.getloadavg()[0]
        busy = run_wrk(url, script, args.connections, args.duration, seed=3)
        after = progress(client, version_id)
        assert after["status"] == "running", f"training ended during the measurement: {after['status']}"
    finally:
        server.terminate()  # stops the training too; the run is recorded as failed (interrupted)
        server.wait(timeout=60)
    ratio = busy["req_per_s"] / idle["req_per_s"]
    summary = {
        "dataset": args.data_dir,
        "connections": args.connections,
        "workers": args.workers,
        "duration_s": args.duration,
        "idle_req_per_s": round(idle["req_per_s"], 1),
        "idle_p99_ms": round(idle["p99_ms"], 2),
        "training_req_per_s": round(busy["req_per_s"], 1),
        "training_p99_ms": round(busy["p99_ms"], 2),
        "errors": idle["errors"] + busy["errors"],
        "ratio": round(ratio, 3),
        "training_percent_at_end": (after.get("progress") or {}).get("percent"),
        "load_average_1m_before": round(load_idle, 2),
        "load_average_1m_training": round(load_training, 2),
        "cpus": os.cpu_count(),
    }
    print(f"\nidle      {idle['req_per_s']:8.1f} req/s  p99 {idle['p99_ms']:7.1f} ms")
    print(f"training  {busy['req_per_s']:8.1f} req/s  p99 {busy['p99_ms']:7.1f} ms")
    print(
        f"ratio {ratio:.3f} (target >= 0.5); 1-min load average {load_idle:.2f} before, "
        f"{load_training:.2f} training, on {os.cpu_count()} CPUs"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "train_load.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
