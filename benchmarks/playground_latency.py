"""The playground's latencies against a live server on 127.0.0.1 (the numbers the README quotes).

* first frame of a 4-optimizer race: from sending ``POST /api/race`` to receiving the ``frame`` event of
  step 0, server warm (after 3 warm-up races), median and worst of 20;
* a 10,000-start basin map (100 × 100 starts, 200 steps of SGD with momentum, one batched tensor):
  the server's compute time and the whole request, median of 5;
* a loopback load test: 8 clients, 80 requests (races, basin maps, meta), p50 / p95 latency, how many
  were answered 503 (busy: concurrency = cores), the server's resident memory before and after.

Run: ``.venv/bin/python benchmarks/playground_latency.py`` (prints a table, writes JSON with --json PATH).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

RACE = {
    "landscape": "two-minima",
    "steps": 200,
    "start": [1.6, 1.2],
    "optimizers": ["sgd(lr=0.05)", "sgd(lr=0.05, momentum=0.9)", "adam(lr=0.1)", "rmsprop(lr=0.01)"],
}
BASINS = {
    "landscape": "two-minima",
    "optimizer": "sgd(lr=0.05, momentum=0.9)",
    "resolution": 100,
    "steps": 200,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int) -> subprocess.Popen:
    """The playground in its own process (so its memory can be read), on 127.0.0.1:port."""
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    code = (
        "import uvicorn; from descentlab.playground.server import create_app; "
        f"uvicorn.run(create_app(port={port}), host='127.0.0.1', port={port}, log_level='warning')"
    )
    process = subprocess.Popen([sys.executable, "-c", code], env=env)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/meta", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the playground server did not start")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def first_frame(client: httpx.Client) -> float:
    """Seconds from sending a race to receiving its first frame (the stream is then read to the end)."""
    began = time.perf_counter()
    first = None
    with client.stream("POST", "/api/race", json=RACE) as response:
        for line in response.iter_lines():
            if first is None and line == "event: frame":
                first = time.perf_counter() - began
    return first


def basin_map(client: httpx.Client) -> tuple[float, float]:
    began = time.perf_counter()
    data = client.post("/api/basins", json=BASINS).json()
    return data["seconds"], time.perf_counter() - began


def load_test(base: str, clients: int = 8, per_client: int = 10, limit_s: float = 30.0) -> dict:
    """``clients`` threads × ``per_client`` requests each (a race, a basin map or meta in turn)."""
    latencies, statuses, lock = [], [], threading.Lock()

    def worker(index: int) -> None:
        with httpx.Client(base_url=base, timeout=limit_s) as client:
            for i in range(per_client):
                kind = (index + i) % 3
                began = time.perf_counter()
                try:
                    if kind == 0:
                        with client.stream("POST", "/api/race", json=RACE) as response:
                            for _ in response.iter_bytes():
                                pass
                            status = response.status_code
                    elif kind == 1:
                        status = client.post("/api/basins", json={**BASINS, "resolution": 50}).status_code
                    else:
                        status = client.get("/api/meta").status_code
                except httpx.HTTPError as error:  # a lost request: counted, never hidden
                    status = f"{type(error).__name__}: {error}"
                with lock:
                    latencies.append(time.perf_counter() - began)
                    statuses.append(status)

    began = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(limit_s)
    ordered = sorted(latencies)
    return {
        "requests": clients * per_client,
        "answered": len(statuses),
        "wall_s": time.perf_counter() - began,
        "status_counts": {str(s): statuses.count(s) for s in sorted(set(statuses), key=str)},
        "p50_ms": 1000 * ordered[len(ordered) // 2] if ordered else None,
        "p95_ms": 1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] if ordered else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    port = free_port()
    process = start_server(port)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=60) as client:
            for _ in range(3):
                first_frame(client)
            frames = [first_frame(client) for _ in range(20)]
            basin_map(client)
            basins = [basin_map(client) for _ in range(5)]
        memory_before = rss_mib(process.pid)
        load = load_test(base)
        memory_after = rss_mib(process.pid)
    finally:
        process.terminate()
        process.wait(10)
    results = {
        "first_frame_ms_median": 1000 * statistics.median(frames),
        "first_frame_ms_max": 1000 * max(frames),
        "basin_map_compute_ms_median": 1000 * statistics.median(b[0] for b in basins),
        "basin_map_request_ms_median": 1000 * statistics.median(b[1] for b in basins),
        "load": load,
        "server_rss_mib_before_load": memory_before,
        "server_rss_mib_after_load": memory_after,
        "cores": os.cpu_count(),
    }
    print(
        f"first frame of a 4-optimizer race: median {results['first_frame_ms_median']:.1f} ms, "
        f"worst {results['first_frame_ms_max']:.1f} ms (target ≤ 100 ms)"
    )
    print(
        f"10,000-start basin map (200 steps): compute {results['basin_map_compute_ms_median']:.0f} ms, "
        f"request "
        f"{results['basin_map_request_ms_median']:.0f} ms (target ≤ 1 s)"
    )
    print(
        f"load test, 8 clients × 10 requests: {load['answered']}/{load['requests']} answered in "
        f"{load['wall_s']:.1f} s, statuses {load['status_counts']}, p50 {load['p50_ms']:.0f} ms, p95 "
        f"{load['p95_ms']:.0f} ms; server memory {memory_before:.0f} → {memory_after:.0f} MiB"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
