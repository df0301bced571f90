"""The serving example answers over HTTP on localhost and the load test measures it."""

from __future__ import annotations

import json
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture
def server():
    sys.path.insert(0, str(EXAMPLES))
    try:
        import serve

        srv = serve.make_server(0, n_users=300, n_items=200)
    finally:
        sys.path.remove(str(EXAMPLES))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.loads(r.read())


def test_server_recommends_caches_and_invalidates(server):
    first = get(server, "/recommend?user=3&n=5")
    assert len(first["items"]) == 5 and first["latency_ms"] >= 0
    req = urllib.request.Request(
        f"http://127.0.0.1:{server}/interactions", data=json.dumps({"user": 3, "items": first["items"][:2]}).encode(),
        method="POST", headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert json.loads(r.read())["status"] == "ok"
    again = get(server, "/recommend?user=3&n=5")
    assert not set(again["items"]) & set(first["items"][:2])
    with pytest.raises(urllib.error.HTTPError) as err:
        get(server, "/recommend?user=999999")
    assert err.value.code == 400
    assert get(server, "/health")["status"] == "ok"


def test_load_test_reports_latency(server):
    sys.path.insert(0, str(EXAMPLES))
    try:
        import load_test
    finally:
        sys.path.remove(str(EXAMPLES))
    report = load_test.run(server, requests=200, concurrency=4, n_users=300)
    assert report["errors"] == 0 and report["qps"] > 0 and report["p99_ms"] >= report["p50_ms"]
