#!/usr/bin/env python3
"""The demo application: a tiny HTTP service with a health endpoint.

GET /health answers 200 once the service is ready, with the release that
answers and its environment (JSON: status, version, environment); GET / says
the same. It reads its settings from /etc/demo/env (written at boot by the
user_init script) and the environment."""
import http.server
import json
import os
import sys

VERSION = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "VERSION")).read().strip() \
    if os.path.exists(os.path.join(os.path.dirname(os.path.abspath(__file__)), "VERSION")) else "dev"


def settings(path="/etc/demo/env"):
    values = {}
    if os.path.exists(path):
        for line in open(path):
            if "=" in line and not line.startswith("#"):
                key, _, value = line.rstrip("\n").partition("=")
                values[key] = value
    return values


def health():
    """What /health answers: this release and the environment user_init configured."""
    return {"app": "demo", "status": "ok", "version": VERSION, "environment": settings().get("ENVIRONMENT", "?")}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path in ("/health", "/"):
            body, status = (json.dumps(health()) + "\n").encode(), 200
        else:
            body, status = b"not found\n", 404
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main(argv):
    port = int(argv[1]) if len(argv) > 1 else int(os.environ.get("PORT", "8080"))
    http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()


if __name__ == "__main__":
    main(sys.argv)
