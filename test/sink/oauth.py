#!/usr/bin/env python3
"""OAuth 2.0 token endpoint for pg_eventbus tests (client-credentials grant)
that also serves as a target checking the tokens it issued.

Paths:
  POST|GET|PUT /token    the token endpoint: grant_type=client_credentials in
                         the form body (or the query string), the client
                         authenticated by HTTP Basic (client_id:client_secret)
                         or by client_id/client_secret form fields; answers
                         {"access_token", "token_type": "Bearer", "expires_in"}
                         or 401 {"error": "invalid_client"}; 503 while failing
  ANY  /api/...          a target: 200 when "Authorization: Bearer T" carries
                         a token issued here that has not expired or been
                         revoked, else 401
  POST /_config          JSON body: {"client_id", "client_secret",
                         "expires_in", "fail": bool, "revoke_all": bool}
  GET  /_stats           {"issued": n, "token_requests": [...]} (each request
                         to /token: method, headers, form, query, status)
Requests are recorded in --log as sink.py records them (path, headers, body).
"""
import argparse
import base64
import json
import os
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LOCK = threading.Lock()
CONFIG = {"client_id": "client-1", "client_secret": "secret-1",
          "expires_in": 3600, "fail": False}
TOKENS = {}        # token -> expiry (time.time())
STATS = {"issued": 0, "token_requests": []}
LOG = {"file": None}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def _answer(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self, body, status):
        rec = {"time": time.time(), "method": self.command, "path": self.path,
               "headers": {k.lower(): v for k, v in self.headers.items()},
               "body": body.decode("utf-8", "replace"), "status": status}
        with LOCK:
            if LOG["file"] is not None:
                LOG["file"].write(json.dumps(rec) + "\n")
                LOG["file"].flush()

    def _token(self, url, body):
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        params = dict(query, **form)
        client_id = params.get("client_id")
        client_secret = params.get("client_secret")
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            client_id, client_secret = user, pw
        with LOCK:
            cfg = dict(CONFIG)
        if cfg["fail"]:
            status, answer = 503, {"error": "temporarily_unavailable"}
        elif params.get("grant_type") != "client_credentials":
            status, answer = 400, {"error": "unsupported_grant_type"}
        elif client_id != cfg["client_id"] or client_secret != cfg["client_secret"]:
            status, answer = 401, {"error": "invalid_client"}
        else:
            token = secrets.token_urlsafe(24)
            with LOCK:
                TOKENS[token] = time.time() + cfg["expires_in"]
                STATS["issued"] += 1
            status, answer = 200, {"access_token": token, "token_type": "Bearer",
                                   "expires_in": cfg["expires_in"]}
        with LOCK:
            STATS["token_requests"].append({
                "time": time.time(), "method": self.command,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "form": form, "query": query, "status": status})
        self._answer(status, answer)

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        url = urlsplit(self.path)
        if url.path == "/token":
            self._token(url, body)
            return
        if url.path == "/_config":
            with LOCK:
                new = json.loads(body or b"{}")
                if new.pop("revoke_all", False):
                    TOKENS.clear()
                CONFIG.update(new)
            self._answer(200, CONFIG)
            return
        if url.path == "/_stats":
            with LOCK:
                self._answer(200, STATS)
            return
        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else None
        with LOCK:
            ok = token is not None and TOKENS.get(token, 0) > time.time()
        status = 200 if ok else 401
        self._record(body, status)
        self._answer(status, {"ok": ok})

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


class Server(ThreadingHTTPServer):
    daemon_threads = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    args = ap.parse_args()
    if args.log:
        LOG["file"] = open(args.log, "a", encoding="utf-8")
    server = Server((args.host, args.port), Handler)
    port = server.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.rename(tmp, args.port_file)
    print(f"oauth listening on {args.host}:{port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
