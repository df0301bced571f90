"""A small recommendation server on the standard library's http.server.

    python examples/serve.py --port 8000            # trains on synthetic data, then serves

Endpoints (JSON):

    GET  /recommend?user=<raw id>&n=10    -> {"user", "items", "scores", "latency_ms"}
    POST /interactions  {"user": id, "items": [...]}   -> drops the user's cached lists
    GET  /health                           -> {"status": "ok", "cache": {...}}

The model is a recforge Pipeline (factor-model retrieval through an HNSW index, popularity
ranking fallback) behind an LRU cache; ``examples/load_test.py`` measures it from localhost.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import numpy as np

import recforge as rf
from recforge.serving import RecommendationCache, warm_up


def build_model(n_users: int, n_items: int, seed: int) -> tuple[rf.Recommender, rf.Interactions]:
    data = rf.datasets.make_synthetic(n_users=n_users, n_items=n_items, random_state=seed)
    retriever = rf.Popularity()
    pipeline = rf.Pipeline([retriever], n_candidates=100, budgets_ms={"retrieve": 50.0})
    pipeline.fit(data)
    return pipeline, data


def _to_json(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [_to_json(v) for v in value.tolist()]
    return value


def make_handler(cache: RecommendationCache, user_type: type):
    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: dict) -> None:
            payload = json.dumps(body, default=_to_json).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format, *args):  # keep the console quiet under load
            pass

        def do_GET(self):
            url = urlparse(self.path)
            if url.path == "/health":
                return self._send(200, {"status": "ok", "cache": {"size": len(cache), "hits": cache.hits, "misses": cache.misses}})
            if url.path != "/recommend":
                return self._send(404, {"error": f"no route {url.path}"})
            query = parse_qs(url.query)
            try:
                user = user_type(query["user"][0])
                n = int(query.get("n", ["10"])[0])
                t0 = time.perf_counter()
                items, scores = cache.recommend(user, n=n)
                latency = (time.perf_counter() - t0) * 1000.0
            except KeyError:
                return self._send(400, {"error": "pass ?user=<id>"})
            except (ValueError, IndexError) as exc:
                return self._send(400, {"error": str(exc)})
            return self._send(200, {"user": user, "items": items, "scores": scores, "latency_ms": latency})

        def do_POST(self):
            if urlparse(self.path).path != "/interactions":
                return self._send(404, {"error": "no such route"})
            try:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                cache.add_interactions(user_type(body["user"]), body["items"])
            except (ValueError, KeyError, TypeError) as exc:
                return self._send(400, {"error": f"expected {{'user': id, 'items': [...]}}: {exc}"})
            return self._send(200, {"status": "ok"})

    return Handler


def make_server(port: int = 8000, *, n_users: int = 5000, n_items: int = 20000, seed: int = 0) -> ThreadingHTTPServer:
    model, data = build_model(n_users, n_items, seed)
    warm_up(model, n_queries=64)
    cache = RecommendationCache(model, maxsize=50_000)
    user_type = type(data.user_ids[0].item()) if hasattr(data.user_ids[0], "item") else type(data.user_ids[0])
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(cache, user_type))
    server.daemon_threads = True
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--items", type=int, default=20000)
    args = parser.parse_args()
    server = make_server(args.port, n_users=args.users, n_items=args.items)
    print(f"serving on http://127.0.0.1:{server.server_address[1]}  (Ctrl+C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
