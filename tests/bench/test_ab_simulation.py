"""bench/ab_simulation.py on tiny sizes: a served app, simulated users, an A/B and two A/A experiments,
and results that agree with what the users did."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
USERS, BATCH, SESSIONS, AA_SEEDS = 80, 40, 2, 2
TIMEOUT_S = 600  # a stuck server would otherwise hang the suite

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_tiny_run_writes_results_that_agree_with_the_simulated_users(tmp_path: Path) -> None:
    out = tmp_path / "ab.json"
    command = [
        sys.executable, "bench/ab_simulation.py", "--users", str(USERS), "--movies", "100",
        "--batch", str(BATCH), "--sessions", str(SESSIONS), "--aa-seeds", str(AA_SEEDS), "--clients", "4",
        "--workers", "1", "--port", str(free_port()), "--work-dir", str(tmp_path / "work"), "--out", str(out),
        "--set", "epochs=1", "embedding_dim=8", "hidden_dim=16", "output_dim=8",
    ]  # fmt: skip
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]

    summary = json.loads(out.read_text())
    assert summary["command"].startswith(".venv/bin/python bench/ab_simulation.py --users 80")
    assert summary["parameters"]["users"] == USERS and summary["parameters"]["database"] == "sqlite"
    assert set(summary["offline"]) == {"strong", "weak"}
    ab, aa = summary["ab"], summary["aa"]
    assert len(ab["looks"]) == math.ceil(USERS / BATCH)
    assert [look["users"] for look in ab["looks"]] == [BATCH, USERS]  # every user asked, in its batch
    final = ab["final"]
    # every request was one list shown, written as one impression of the experiment
    assert final["requests"] == USERS * SESSIONS == final["impressions"] == final["written"]
    assert final["clicks"] > 0 and final["feedback_rows"] == final["clicks"]
    assert sum(arm["positive_impressions"] for arm in final["arms"].values()) > 0
    assert ab["mismatches"] == [] and final["errors"] == {}
    versions = {arm["version"] for arm in final["arms"].values()}
    assert versions == {summary["offline"]["strong"]["version"], summary["offline"]["weak"]["version"]}

    assert len(aa["seeds"]) == AA_SEEDS and len(aa["p_values"]) == AA_SEEDS
    assert aa["control_version"] == summary["offline"]["strong"]["version"] != aa["treatment_version"]
    for seed in aa["seeds"]:
        assert seed["requests"] == USERS * SESSIONS == seed["impressions"]
        assert seed["mismatches"] == [] and seed["errors"] == {}
        assert isinstance(seed["sample_ratio_ok"], bool)
    p_values = [look["p_value"] for look in ab["looks"]] + aa["p_values"]
    p_values += [look["srm_p_value"] for look in ab["looks"]] + [s["srm_p_value"] for s in aa["seeds"]]
    assert all(0.0 <= p <= 1.0 for p in p_values)
    assert aa["below_0_05"] == sum(p < 0.05 for p in aa["p_values"])
