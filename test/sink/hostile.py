#!/usr/bin/env python3
"""Hostile HTTP target for pg_eventbus tests: a raw TCP server that reads
each request and then misbehaves as its path says.  Connections are kept
alive after the well-formed answers, so libcurl reuses them.

Paths (any method; the query string is ignored unless said otherwise):
  /ok                     200, Content-Length 0 (keep-alive)
  /slow-ok                200 after 300 ms (keep-alive; opens parallel
                          connections when several requests come at once)
  /http09                 an HTTP/0.9 answer: body text, no status line
  /huge-status            status line "HTTP/1.1 99999999999 Huge"
  /status/CODE            status line "HTTP/1.1 CODE Odd", Content-Length 0
  /no-status              header lines without a status line
  /garbage                binary garbage, then close
  /truncated-headers      the header section cut in the middle, then close
  /short-body             Content-Length 100, 3 bytes, then close
  /long-body              200 with Content-Length 2 and 4096 bytes after it
  /bad-chunked            chunked encoding with an invalid chunk size
  /cut-chunked            one chunk, then close without the last chunk
  /reset                  reset the connection (RST) after reading
  /silent                 read the request, never answer
  /endless-headers        200, then header lines for ever
  /endless-100            "100 Continue" answers for ever
  /huge-body              200, Content-Length 10 GB, zeros for ever
  /huge-body-500          the same with status 500
  /trickle                200 status line, then one header byte a second
  /retry-after/VALUE      503 with "Retry-After: VALUE" (URL-decoded)
  /_received              200 with the JSON array of recorded requests

Every request is recorded (and appended to --log as a JSON line) with time,
method, path, headers (names lower-cased), body, status (0 here) and the
connection's number.  When an answer that streams for ever ends (the client
closed), a line with path "!sent PATH" and "bytes" (what was sent) is
recorded too.  The port, chosen by the system unless --port is given, is
written to --port-file once listening.
"""
import argparse
import json
import os
import socket
import struct
import sys
import threading
import time
from urllib.parse import unquote, urlsplit

LOCK = threading.Lock()
RECEIVED = []
STATE = {"log": None, "conns": 0}
MAX_HEAD = 65536


def record(rec):
    line = json.dumps(rec)
    with LOCK:
        RECEIVED.append(rec)
        if STATE["log"] is not None:
            STATE["log"].write(line + "\n")
            STATE["log"].flush()


def read_request(sock, buf):
    """Reads one request; returns (method, path, headers, body, rest) or
    None when the client closed."""
    while b"\r\n\r\n" not in buf:
        if len(buf) > MAX_HEAD:
            return None
        data = sock.recv(65536)
        if not data:
            return None
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target = lines[0].split(" ")[:2]
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0") or 0)
    while len(rest) < length:
        data = sock.recv(65536)
        if not data:
            return None
        rest += data
    return method, target, headers, rest[:length], rest[length:]


def stream(sock, path, chunk, delay=0.0, limit=None):
    """Sends chunk again and again until the client goes away (or limit
    bytes); records how much was sent."""
    sent = 0
    try:
        while limit is None or sent < limit:
            sock.sendall(chunk)
            sent += len(chunk)
            if delay:
                time.sleep(delay)
    except OSError:
        pass
    record({"time": time.time(), "path": "!sent " + path, "bytes": sent})


def simple(status, reason="OK", extra=""):
    return (f"HTTP/1.1 {status} {reason}\r\n{extra}"
            "Content-Length: 0\r\n\r\n").encode("latin-1")


def answer(sock, path):
    """Answers one request; returns True to keep the connection open."""
    parts = [p for p in urlsplit(path).path.split("/") if p]
    mode = parts[0] if parts else ""
    if mode == "ok":
        sock.sendall(simple(200))
        return True
    if mode == "slow-ok":
        time.sleep(0.3)
        sock.sendall(simple(200))
        return True
    if mode == "http09":
        sock.sendall(b"hello, this is HTTP/0.9\n")
        return False
    if mode == "huge-status":
        sock.sendall(b"HTTP/1.1 99999999999 Huge\r\nContent-Length: 0\r\n\r\n")
        return False
    if mode == "status" and len(parts) >= 2:
        sock.sendall(simple(parts[1], "Odd"))
        return False
    if mode == "no-status":
        sock.sendall(b"Content-Type: text/plain\r\nContent-Length: 0\r\n\r\n")
        return False
    if mode == "garbage":
        sock.sendall(bytes(range(256)) * 4)
        return False
    if mode == "truncated-headers":
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/pl")
        return False
    if mode == "short-body":
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
        return False
    if mode == "long-body":
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                     + b"X" * 4096)
        time.sleep(0.5)
        return False
    if mode == "bad-chunked":
        sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"zz\r\nhello\r\n0\r\n\r\n")
        return False
    if mode == "cut-chunked":
        sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"5\r\nhello\r\n")
        return False
    if mode == "reset":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        struct.pack("ii", 1, 0))
        return False
    if mode == "silent":
        try:
            while sock.recv(65536):
                pass
        except OSError:
            pass
        return False
    if mode == "endless-headers":
        sock.sendall(b"HTTP/1.1 200 OK\r\n")
        stream(sock, path, b"X-Junk: " + b"j" * 1000 + b"\r\n")
        return False
    if mode == "endless-100":
        stream(sock, path, b"HTTP/1.1 100 Continue\r\n\r\n")
        return False
    if mode in ("huge-body", "huge-body-500"):
        status = 500 if mode == "huge-body-500" else 200
        sock.sendall(f"HTTP/1.1 {status} X\r\nContent-Length: 10737418240\r\n\r\n"
                     .encode())
        stream(sock, path, b"\0" * 65536)
        return False
    if mode == "trickle":
        sock.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        stream(sock, path, b"s", delay=1.0, limit=3600)
        return False
    if mode == "retry-after" and len(parts) >= 2:
        value = unquote(parts[1])
        sock.sendall(simple(503, "Busy", f"Retry-After: {value}\r\n"))
        return True
    if mode == "_received":
        with LOCK:
            data = json.dumps(RECEIVED).encode()
        sock.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(data)}\r\n\r\n"
                     .encode() + data)
        return True
    sock.sendall(simple(404, "Not Found"))
    return True


def serve(sock):
    with LOCK:
        STATE["conns"] += 1
        conn = STATE["conns"]
    buf = b""
    try:
        while True:
            req = read_request(sock, buf)
            if req is None:
                break
            method, path, headers, body, buf = req
            if not path.startswith("/_"):
                record({"time": time.time(), "method": method, "path": path,
                        "headers": headers,
                        "body": body.decode("utf-8", "replace"),
                        "status": 0, "conn": conn})
            if not answer(sock, path):
                break
    except OSError:
        pass
    finally:
        sock.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    args = ap.parse_args()

    if args.log:
        STATE["log"] = open(args.log, "a", encoding="utf-8")
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((args.host, args.port))
    srv.listen(1024)
    port = srv.getsockname()[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.rename(tmp, args.port_file)
    print(f"hostile target listening on {args.host}:{port}", file=sys.stderr,
          flush=True)
    try:
        while True:
            sock, _ = srv.accept()
            threading.Thread(target=serve, args=(sock,), daemon=True).start()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
