"""CI smoke run of the load-test harness: every scenario, tiny counts, secure and baseline.

Real processes on loopback (a served gateway, the plaintext baseline, forked client
workers); the whole file takes seconds, so the harness cannot rot unnoticed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.histogram import Histogram, bucket_bounds, bucket_index
from loadtest.report import add_ratios, table
from loadtest.scenarios import SCENARIOS, Options, ScenarioError, run_scenario, store_table

REPO = Path(__file__).resolve().parent.parent


def tiny() -> Options:
    return Options(
        duration_s=0.6, workers=2, concurrency=2, window=4, sizes=(3,), sessions=8,
        rates=(200.0,), churn_rate=100.0, progress=False,
    )  # fmt: skip


def _positive(d: dict, key: str) -> None:
    assert d[key] > 0, (key, d)


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_smoke(name: str) -> None:
    result = run_scenario(name, tiny())
    assert set(result) == {"plain", "secure"}
    for kind in ("plain", "secure"):
        r = result[kind]
        if name == "connect-rate":
            _positive(r, "rate_per_s")
            assert r["latency_us"]["p50"] > 0
        elif name in ("relay", "churn"):
            _positive(r, "throughput_per_s")
            assert r["delivered"] == r["published"], r
            for p in ("p50", "p90", "p99", "max"):
                assert r["latency_us"][p] > 0
        elif name == "fan-out":
            f = r["3"]
            _positive(f, "deliveries_per_s")
            assert f["delivered"] == 3 * f["published"], f
        elif name == "idle":
            assert r["sessions"] == 8
            assert r["rss_loaded_kb"] > 0
        elif name == "sweep":
            (pt,) = r["points"]
            _positive(pt, "throughput_per_s")
        if name == "churn":
            _positive(r, "churn_per_s")
        assert not r.get("errors"), r.get("errors")
    result["ratios"] = add_ratios(name, result)
    assert any(v is not None for v in result["ratios"].values())
    assert "ratio" in table(name, result)


def test_cli_writes_json_and_rejects_redis_store_outside_relay(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "loadtest", "relay", "--duration", "0.5", "--window", "4",
         "--results", str(tmp_path), "--quiet"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    (path,) = tmp_path.glob("relay-*.json")
    data = json.loads(path.read_text())
    assert data["result"]["secure"]["throughput_per_s"] > 0
    assert data["result"]["plain"]["throughput_per_s"] > 0
    assert data["result"]["ratios"]["delivered msgs / s"] > 0
    assert data["machine"]["nproc"] >= 1
    rej = subprocess.run(
        [sys.executable, "-m", "loadtest", "fan-out", "--store", "redis", "--quiet"],
        cwd=REPO, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert rej.returncode == 2
    assert "relay scenario only" in rej.stderr


def test_relay_with_redis_store_next_to_memory_store() -> None:
    """--store redis: own redis-server, gateway with --redis --cluster-key-file."""
    opts = tiny()
    opts.store = "redis"
    result = run_scenario("relay", opts)
    for kind in ("plain", "secure", "secure_memory"):
        _positive(result[kind], "throughput_per_s")
        assert result[kind]["delivered"] == result[kind]["published"], result[kind]
        assert not result[kind]["errors"], result[kind]["errors"]
    assert result["store_ratios"]["delivered msgs / s"] > 0
    assert "redis store vs memory store" in store_table(result)
    opts.url = "ws://127.0.0.1:1"
    with pytest.raises(ScenarioError, match="own gateway"):
        run_scenario("relay", opts)


def test_histogram_percentiles_within_resolution() -> None:
    h = Histogram()
    values = list(range(1, 100_001))
    h.record_many(values)
    for p in (50, 90, 99):
        exact = values[int(len(values) * p / 100) - 1]
        got = h.percentile(p)
        assert got is not None and exact <= got <= exact * 1.02
    assert h.percentile(100) == 100_000 and h.min == 1
    other = Histogram.from_dict(h.to_dict())
    other.merge(h)
    assert other.count == 200_000 and other.percentile(50) == h.percentile(50)
    for v in (0, 1, 127, 128, 129, 10**6, 10**12):
        lo, hi = bucket_bounds(bucket_index(v))
        assert lo <= v <= hi
