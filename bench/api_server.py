"""The benchmark's API: 200,000 order records in pages of 100 behind 20 ms of latency per request, served by a
threaded HTTP server on loopback. `/orders?page=N` answers `{"results": [...], "next": URL or null, "count": N}`,
so both next-URL pagination (the handbook's) and page numbers work.

    python api_server.py PORT [--records 200000] [--page-size 100] [--latency-ms 20]

Page bodies are built once at start, so the server spends its time waiting, not encoding."""
import argparse
import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


def record(i):
    return {
        "order_id": i,
        "customer_id": i % 5000,
        "order_total": round((i % 997) * 1.37, 2),
        "order_status": ["completed", "pending", "cancelled"][i % 3],
        "created_at": f"2026-03-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z",
        "customer": {"country": ["DE", "FR", "US", "BR", "JP"][i % 5], "segment": ["smb", "enterprise"][i % 2]},
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--page-size", type=int, default=100)
    ap.add_argument("--latency-ms", type=float, default=20)
    args = ap.parse_args()
    pages = -(-args.records // args.page_size)
    base = f"http://127.0.0.1:{args.port}/orders"
    bodies = {}
    for p in range(1, pages + 1):
        first = (p - 1) * args.page_size + 1
        rows = [record(i) for i in range(first, min(first + args.page_size, args.records + 1))]
        nxt = f"{base}?page={p + 1}" if p < pages else None
        bodies[p] = json.dumps({"results": rows, "next": nxt, "count": args.records}).encode()
    empty = json.dumps({"results": [], "next": None, "count": args.records}).encode()
    delay = args.latency_ms / 1000

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: without this, Nagle and delayed ACKs add 40 ms to every
        # keep-alive response.
        disable_nagle_algorithm = True

        def do_GET(self):
            q = parse_qs(urlparse(self.path).query)
            page = int(q.get("page", ["1"])[0])
            time.sleep(delay)
            body = bodies.get(page, empty)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
