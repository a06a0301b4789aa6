#!/usr/bin/env python3
"""HTTP sink for pg_eventbus tests: a target that answers as scripted by the
request path and records what it received.

Paths (any method):
  /status/CODE                  answer CODE
  /status/A-then-B[-then-C...]  answer A to the first request of each
                                (path, webhook-id), B to the second, ...;
                                the last code repeats
  /delay/MS[/CODE]              wait MS milliseconds, then answer CODE (200)
  /close                        close the connection without answering
  /batch-failures/K             a batch (JSON array body): answer 200 with
                                {"batchItemFailures": [...]} listing the id of
                                every K-th item (the 1st, the K+1th, ...) not
                                listed before, and "not-an-event-id"
  /_received                    GET: JSON array of the recorded requests
  /_count                       GET: number of requests recorded
  /_reset                       forget everything recorded
  /_fail/CODE                   from now on answer CODE to every other path
                                (a target that is down); /_fail/0 ends it
  anything else                 answer 200
Query parameters: retry_after=V adds "Retry-After: V"; body=TEXT sets the
response body.

Recorded per request (also appended to --log as JSON lines): time, method,
path, headers (names lower-cased), body, status; with --raw also body_base64,
the bytes received, for checking signatures.  --fast answers 204 at once
and only counts requests (for benchmarks).  The port, chosen by the system
unless --port is given, is written to --port-file once listening.
"""
import argparse
import base64
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LOCK = threading.Lock()
RECEIVED = []
COUNTERS = {}
FAILED_ITEMS = set()
STATE = {"count": 0, "log": None, "fast": False, "raw": False, "fail": 0}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "eventbus-sink/1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _answer(self, status, body=b"", extra=None):
        self.send_response(status)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        if self.command == "HEAD" or status in (204, 304) or status < 200:
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _record(self, body, status):
        rec = {
            "time": time.time(),
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("utf-8", "replace"),
            "status": status,
        }
        if STATE["raw"]:
            rec["body_base64"] = base64.b64encode(body).decode("ascii")
        line = json.dumps(rec)
        with LOCK:
            RECEIVED.append(rec)
            if STATE["log"] is not None:
                STATE["log"].write(line + "\n")
                STATE["log"].flush()

    def _handle(self):
        body = self._read_body()
        if STATE["fast"]:
            with LOCK:
                STATE["count"] += 1
            self._answer(204)
            return

        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        query = parse_qs(url.query)
        extra = {}
        if "retry_after" in query:
            extra["Retry-After"] = query["retry_after"][0]
        resp_body = query.get("body", [""])[0].encode()

        if parts[:1] == ["_received"]:
            with LOCK:
                data = json.dumps(RECEIVED).encode()
            self._answer(200, data, {"Content-Type": "application/json"})
            return
        if parts[:1] == ["_count"]:
            with LOCK:
                n = len(RECEIVED)
            self._answer(200, str(n).encode())
            return
        if parts[:1] == ["_reset"]:
            with LOCK:
                RECEIVED.clear()
                COUNTERS.clear()
                FAILED_ITEMS.clear()
            self._answer(200)
            return

        if parts[:1] == ["_fail"] and len(parts) >= 2:
            STATE["fail"] = int(parts[1])
            self._answer(200)
            return
        if STATE["fail"]:
            self._record(body, STATE["fail"])
            self._answer(STATE["fail"])
            return

        status = 200
        if parts[:1] == ["close"]:
            self._record(body, 0)
            self.close_connection = True
            return
        if parts[:1] == ["delay"] and len(parts) >= 2:
            time.sleep(int(parts[1]) / 1000.0)
            if len(parts) >= 3:
                status = int(parts[2])
        elif parts[:1] == ["batch-failures"] and len(parts) >= 2:
            every = int(parts[1])
            try:
                items = json.loads(body)
            except ValueError:
                items = []
            failed = []
            with LOCK:
                for i, item in enumerate(items if isinstance(items, list) else []):
                    ident = item.get("id") if isinstance(item, dict) else None
                    if i % every == 0 and ident and ident not in FAILED_ITEMS:
                        FAILED_ITEMS.add(ident)
                        failed.append(ident)
            failed.append("not-an-event-id")
            resp_body = json.dumps({"batchItemFailures": [
                {"itemIdentifier": f} for f in failed]}).encode()
        elif parts[:1] == ["status"] and len(parts) >= 2:
            codes = [int(c) for c in parts[1].split("-then-")]
            key = (url.path, self.headers.get("webhook-id", ""))
            with LOCK:
                n = COUNTERS.get(key, 0)
                COUNTERS[key] = n + 1
            status = codes[min(n, len(codes) - 1)]

        self._record(body, status)
        self._answer(status, resp_body, extra)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    ap.add_argument("--fast", action="store_true")
    ap.add_argument("--raw", action="store_true")
    args = ap.parse_args()

    STATE["fast"] = args.fast
    STATE["raw"] = args.raw
    if args.log:
        STATE["log"] = open(args.log, "a", encoding="utf-8")
    server = Server((args.host, args.port), Handler)
    port = server.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.rename(tmp, args.port_file)
    print(f"sink listening on {args.host}:{port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
