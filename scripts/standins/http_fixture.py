"""`standin http-fixture`: a tiny HTTP server for testing an HTTP client.

    scripts/standin http-fixture [--host 127.0.0.1] [--port 0] [--no-stdin-watch] [-v]

Endpoints (any method):
  /status/N            answers status N (body "status N\\n", none for 1xx/204/304)
  /echo[...]           JSON {method, path, query (raw), args ({k: [v]}), headers ([[k, v]]),
                       body (text if UTF-8, else null), body_base64, body_length, chunked}
                       (any path under /echo/ echoes too)
  /sleep/S             sleeps S seconds (float) then 200 "slept S\\n"
  /headers?name=value  200 with those response headers set (repeatable)
  /bytes/N             N bytes (deterministic pattern, application/octet-stream)
  /redirect?to=URL[&status=302]   redirect to URL (default status 302)
  /count               JSON {path: requests so far}
Ready line: {"ready", "name": "http-fixture", "url", "host", "port", "pid"}
"""
import argparse
import base64
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, parse_qsl, urlsplit

from . import common

log = logging.getLogger("standin.http-fixture")


def make_handler(counts, lock):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            log.debug(fmt, *args)

        def _body(self):
            te = (self.headers.get("Transfer-Encoding") or "").lower()
            if "chunked" in te:
                out = []
                while True:
                    size = int(self.rfile.readline(65537).split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(out), True
                    out.append(self.rfile.read(size))
                    self.rfile.readline(3)
            n = int(self.headers.get("Content-Length") or 0)
            return (self.rfile.read(n) if n else b""), False

        def _send(self, status, body=b"", ctype="text/plain", headers=()):
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            if status >= 200 and status not in (204, 304):
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
            else:
                body = b""
            self.end_headers()
            if body and self.command != "HEAD":
                self.wfile.write(body)

        def _handle(self):
            u = urlsplit(self.path)
            parts = [p for p in u.path.split("/") if p]
            body, chunked = self._body()
            with lock:
                counts[u.path] = counts.get(u.path, 0) + 1
            head = parts[0] if parts else ""
            try:
                if head == "status" and len(parts) == 2:
                    n = int(parts[1])
                    return self._send(n, b"status %d\n" % n)
                if head == "echo":
                    try:
                        text = body.decode("utf-8")
                    except UnicodeDecodeError:
                        text = None
                    d = {"method": self.command, "path": u.path, "query": u.query,
                         "args": parse_qs(u.query, keep_blank_values=True),
                         "headers": [[k, v] for k, v in self.headers.items()],
                         "body": text, "body_base64": base64.b64encode(body).decode(),
                         "body_length": len(body), "chunked": chunked}
                    return self._send(200, json.dumps(d).encode(), "application/json")
                if head == "sleep" and len(parts) == 2:
                    s = float(parts[1])
                    time.sleep(s)
                    return self._send(200, b"slept %s\n" % parts[1].encode())
                if head == "headers":
                    return self._send(200, b"ok\n", headers=parse_qsl(u.query, keep_blank_values=True))
                if head == "bytes" and len(parts) == 2:
                    n = int(parts[1])
                    pattern = bytes(range(256))
                    data = (pattern * (n // 256 + 1))[:n]
                    return self._send(200, data, "application/octet-stream")
                if head == "redirect":
                    q = parse_qs(u.query)
                    to = (q.get("to") or ["/"])[0]
                    st = int((q.get("status") or ["302"])[0])
                    return self._send(st, b"redirect\n", headers=[("Location", to)])
                if head == "count":
                    with lock:
                        return self._send(200, json.dumps(counts).encode(), "application/json")
            except ValueError as e:
                return self._send(400, ("bad request: %s\n" % e).encode())
            return self._send(404, b"not found\n")

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle

    return H


def main(argv):
    p = argparse.ArgumentParser(prog="standin http-fixture", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_common_args(p)
    a = p.parse_args(argv)
    common.setup_logging("http-fixture", a.verbose)
    common.check_loopback(a.host)
    lifetime = common.Lifetime(watch_stdin=not a.no_stdin_watch)

    class S(ThreadingHTTPServer):
        daemon_threads = True

    srv = S((a.host, a.port), make_handler({}, threading.Lock()))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    host, port = srv.server_address[:2]
    common.announce("http-fixture", url="http://%s:%d" % (host, port), host=host, port=port)
    reason = lifetime.wait()
    log.info("stopping (%s)", reason)
    srv.shutdown()
    srv.server_close()
    return 0
