"""A bounded loopback load test of the playground: 8 clients, 80 requests, within 30 s, 127.0.0.1 only.

Every answer is 200 or 503 (busy: at most as many requests compute as there are cores), none is lost,
and the server's resident memory stays bounded. p50 / p95 are printed (and kept in the test's tmp_path).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "playground_latency.py"


def _bench():
    spec = importlib.util.spec_from_file_location("playground_latency", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(120)
def test_eight_clients_eighty_requests_all_answered_200_or_503(tmp_path):
    bench = _bench()
    port = bench.free_port()
    process = bench.start_server(port)
    try:
        before = bench.rss_mib(process.pid)
        load = bench.load_test(f"http://127.0.0.1:{port}", clients=8, per_client=10, limit_s=30.0)
        after = bench.rss_mib(process.pid)
    finally:
        process.terminate()
        process.wait(10)
    (tmp_path / "load.json").write_text(
        json.dumps({**load, "rss_before_mib": before, "rss_after_mib": after})
    )
    print(f"load test: {load}; server memory {before:.0f} → {after:.0f} MiB")
    assert load["answered"] == load["requests"] == 80
    assert set(load["status_counts"]) <= {"200", "503"}
    assert int(load["status_counts"].get("200", 0)) > 0
    assert load["wall_s"] <= 30
    assert after < before + 400, "the server's memory grew by more than 400 MiB under 80 requests"
