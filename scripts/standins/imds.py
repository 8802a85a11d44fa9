"""`standin imds`: a loopback fake of EC2 instance metadata v2 and of the ECS
container credentials endpoint, for testing credential providers.

    scripts/standin imds [--role kiln-role] [--expires-in SECONDS] [--auth-token TOKEN]
                         [--refresh-delay SECONDS] [--fail-refresh]
                         [--host 127.0.0.1] [--port 0] [--no-stdin-watch] [-v]

Instance metadata v2, as EC2 answers it:
  PUT /latest/api/token  (needs X-aws-ec2-metadata-token-ttl-seconds)  -> a session token
  GET /latest/meta-data/iam/security-credentials/        -> the role name
  GET /latest/meta-data/iam/security-credentials/ROLE    -> credentials JSON
  Both GETs need X-aws-ec2-metadata-token with a token it issued: 401 otherwise
  (v1-style calls without a token are refused, as with HttpTokens=required).
Container credentials (ECS):
  GET /ecs/credentials  (needs Authorization: TOKEN when --auth-token is given) -> credentials JSON
Each credentials answer has a new key, ASIAKILNFAKE0001, 0002, ..., secret
"fake-secret-N", token "fake-session-N", and Expiration now + N x --expires-in
(each new set lasts longer, so a test with a shifted clock can tell a needed
refresh from a needless one). --refresh-delay holds every credentials answer
after the first that long (a slow refresh, for testing who waits on it).
--fail-refresh answers every credentials request after the first with 500 (a
metadata service that broke after the job started; each is still counted).
GET /__kiln_imds/stats -> {"tokens", "credentials", "rejected"}.
Ready line: {"ready", "name": "imds", "url", "host", "port", "pid", "role"}
"""
import argparse
import datetime
import json
import logging
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import common

log = logging.getLogger("standin.imds")


def main(argv):
    p = argparse.ArgumentParser(prog="standin imds", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_common_args(p)
    p.add_argument("--role", default="kiln-role")
    p.add_argument("--expires-in", type=float, default=3600.0)
    p.add_argument("--auth-token", default=None)
    p.add_argument("--refresh-delay", type=float, default=0.0)
    p.add_argument("--fail-refresh", action="store_true")
    a = p.parse_args(argv)
    common.check_loopback(a.host)
    common.setup_logging("imds", a.verbose)

    lock = threading.Lock()
    state = {"tokens": 0, "credentials": 0, "rejected": 0, "issued": set()}

    def credentials():
        with lock:
            state["credentials"] += 1
            n = state["credentials"]
        if n > 1 and a.refresh_delay > 0:
            time.sleep(a.refresh_delay)
        if n > 1 and a.fail_refresh:
            return None
        expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=a.expires_in * n)
        return {"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": "ASIAKILNFAKE%04d" % n,
                "SecretAccessKey": "fake-secret-%d" % n, "Token": "fake-session-%d" % n,
                "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "LastUpdated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            log.debug(fmt, *args)

        def _send(self, status, body, ctype="text/plain"):
            data = body.encode() if isinstance(body, str) else body
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _reject(self, why):
            with lock:
                state["rejected"] += 1
            self._send(401, why + "\n")

        def do_PUT(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            if self.path != "/latest/api/token":
                return self._send(404, "not found\n")
            if not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                return self._send(400, "missing X-aws-ec2-metadata-token-ttl-seconds\n")
            token = secrets.token_urlsafe(24)
            with lock:
                state["tokens"] += 1
                state["issued"].add(token)
            self._send(200, token)

        def do_GET(self):
            if self.path == "/__kiln_imds/stats":
                with lock:
                    body = {k: v for k, v in state.items() if k != "issued"}
                return self._send(200, json.dumps(body), "application/json")
            if self.path == "/ecs/credentials":
                if a.auth_token and self.headers.get("Authorization") != a.auth_token:
                    return self._reject("bad container authorization token")
                return self._credentials()
            prefix = "/latest/meta-data/iam/security-credentials/"
            if not self.path.startswith(prefix):
                return self._send(404, "not found\n")
            with lock:
                known = self.headers.get("X-aws-ec2-metadata-token") in state["issued"]
            if not known:
                return self._reject("IMDSv2 session token required")
            rest = self.path[len(prefix):]
            if rest == "":
                return self._send(200, a.role)
            if rest != a.role:
                return self._send(404, "no such role\n")
            return self._credentials()

        def _credentials(self):
            answer = credentials()
            if answer is None:
                return self._send(500, "internal error (--fail-refresh)\n")
            return self._send(200, json.dumps(answer), "application/json")

    lifetime = common.Lifetime(watch_stdin=not a.no_stdin_watch)
    server = ThreadingHTTPServer((a.host, a.port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    common.announce("imds", url="http://%s:%d" % (host, port), host=host, port=port, role=a.role)
    lifetime.wait()
    server.shutdown()
    server.server_close()
    return 0
