"""A bounded load test of examples/serve.py on localhost.

    python examples/serve.py --port 8000 &
    python examples/load_test.py --port 8000 --requests 5000 --concurrency 8

Sends a fixed number of GET /recommend requests for random users (only to 127.0.0.1) from a
few threads, then reports throughput and latency percentiles, and stops.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def run(port: int, requests: int, concurrency: int, n_users: int, seed: int = 0, timeout: float = 10.0) -> dict:
    if requests < 1 or concurrency < 1:
        raise ValueError("requests and concurrency must be >= 1")
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, size=requests)
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()

    def one(user: int) -> None:
        nonlocal errors
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/recommend?user={user}&n=10", timeout=timeout) as r:
                json.loads(r.read())
            ok = True
        except Exception:
            ok = False
        elapsed = (time.perf_counter() - t0) * 1000.0
        with lock:
            if ok:
                latencies.append(elapsed)
            else:
                errors += 1

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, users.tolist()))
    wall = time.perf_counter() - t0
    lat = np.asarray(latencies) if latencies else np.asarray([np.nan])
    return {
        "requests": requests, "errors": errors, "seconds": wall, "qps": len(latencies) / wall,
        "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
        "mean_ms": float(statistics.fmean(lat)) if latencies else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--users", type=int, default=5000, help="user ids are drawn from [0, users)")
    args = parser.parse_args()
    print(json.dumps(run(args.port, args.requests, args.concurrency, args.users), indent=2))


if __name__ == "__main__":
    main()
