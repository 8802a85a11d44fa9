"""`standin git`: smart-HTTP git server (git http-backend as CGI) with Basic auth,
plus the GitLab repository archive API.

    scripts/standin git --root DIR [--user kiln] [--password secret]
        [--project ID=PATH ...] [--stall KIND=BYTES ...]
        [--host 127.0.0.1] [--port 0] [--no-stdin-watch] [-v]

Git: any /<path>.git/... request (Basic auth user/password, else 401 with
`WWW-Authenticate: Basic realm="kiln"`) runs `git http-backend` with
GIT_PROJECT_ROOT=DIR, GIT_HTTP_EXPORT_ALL=1, REMOTE_USER=user (so pushes are
allowed). Chunked request bodies are de-chunked (spooled to a temp file) and
given to the CGI with an exact CONTENT_LENGTH; gzip bodies pass through with
HTTP_CONTENT_ENCODING. The CGI answer is streamed back (chunked).

Archive: GET /api/v4/projects/<ID>/repository/archive.tar.gz?sha=<commit>
with header `JOB-TOKEN: <password>` (else 401) -> `git archive --format=tar.gz`
of the commit (404 for an unknown sha or project). <ID> is either the
url-encoded project path (group%2Frepo -> DIR/group/repo.git, or DIR/group/repo)
or a number: mapped by --project ID=PATH, else, if DIR holds exactly one
repository, that one. `sha` may be any commit-ish; default HEAD.

Fault: --stall upload_pack=BYTES (the answer to git-upload-pack, where the
pack is) or --stall archive=BYTES sends the first BYTES of the answer's body,
then stops sending and keeps the connection open (until the stand-in stops,
at most STALL_SECONDS): a server that stalls mid-pack. git http-backend and
git archive still do the real work; only what reaches the client is cut.

GET /__kiln_git/stats (no auth): {"requests": {kind: n}, "bytes_out": {kind: n},
"status": {code: n},
"request_encodings": {"chunked": n, "gzip": n}} with kinds info_refs, upload_pack, receive_pack, archive,
other_git, unauthorized, not_found, and "stalled": {kind: n} for answers cut by --stall.

Ready line: {"ready", "name": "git", "url", "host", "port", "root", "user", "pid"}
"""
import argparse
import base64
import hmac
import json
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from . import common

log = logging.getLogger("standin.git")

ARCHIVE_PREFIX = "/api/v4/projects/"
ARCHIVE_SUFFIX = "/repository/archive.tar.gz"
STALL_KINDS = ("upload_pack", "archive")
# A stalled answer is held open at most this long (bounded, as every loop here).
STALL_SECONDS = 600


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests, self.bytes_out, self.status = {}, {}, {}
        self.request_encodings = {}
        self.stalled = {}

    def add_stall(self, kind):
        with self.lock:
            self.stalled[kind] = self.stalled.get(kind, 0) + 1

    def add_encoding(self, name):
        with self.lock:
            self.request_encodings[name] = self.request_encodings.get(name, 0) + 1

    def add(self, kind, status, nbytes):
        with self.lock:
            self.requests[kind] = self.requests.get(kind, 0) + 1
            self.bytes_out[kind] = self.bytes_out.get(kind, 0) + nbytes
            self.status[str(status)] = self.status.get(str(status), 0) + 1

    def as_dict(self):
        with self.lock:
            return {"requests": dict(self.requests), "bytes_out": dict(self.bytes_out),
                    "status": dict(self.status),
                    "request_encodings": dict(self.request_encodings),
                    "stalled": dict(self.stalled)}


def find_repos(root):
    out = []
    for dirpath, dirnames, _ in os.walk(root):
        if os.path.isfile(os.path.join(dirpath, "HEAD")) and os.path.isdir(os.path.join(dirpath, "objects")):
            out.append(dirpath)
            dirnames[:] = []
        elif os.path.isdir(os.path.join(dirpath, ".git")):
            out.append(dirpath)
            dirnames[:] = []
    return sorted(out)


def git_kind(path, query):
    if path.endswith("/info/refs"):
        return "info_refs"
    if path.endswith("/git-upload-pack"):
        return "upload_pack"
    if path.endswith("/git-receive-pack"):
        return "receive_pack"
    return "other_git"


def make_handler(cfg, stats):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            log.info(fmt, *args)

        # -- helpers -------------------------------------------------------
        def _simple(self, kind, status, body, headers=None, ctype="text/plain"):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            stats.add(kind, status, len(body))

        def _authorized_basic(self):
            h = self.headers.get("Authorization") or ""
            if not h.lower().startswith("basic "):
                return False
            try:
                user, _, pw = base64.b64decode(h[6:].strip()).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return hmac.compare_digest(user, cfg.user) and hmac.compare_digest(pw, cfg.password)

        def _read_body_to(self, f):
            te = (self.headers.get("Transfer-Encoding") or "").lower()
            n = 0
            if "chunked" in te:
                while True:
                    line = self.rfile.readline(65537)
                    if not line:
                        raise ConnectionError("eof in chunked body")
                    size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                            pass
                        break
                    left = size
                    while left:
                        chunk = self.rfile.read(min(left, 1 << 16))
                        if not chunk:
                            raise ConnectionError("eof in chunk")
                        f.write(chunk)
                        left -= len(chunk)
                    n += size
                    self.rfile.readline(3)
            else:
                left = int(self.headers.get("Content-Length") or 0)
                while left:
                    chunk = self.rfile.read(min(left, 1 << 16))
                    if not chunk:
                        raise ConnectionError("eof in body")
                    f.write(chunk)
                    left -= len(chunk)
                    n += len(chunk)
            f.flush()
            f.seek(0)
            return n

        def _start_chunked(self, status, headers):
            self.send_response(status)
            for k, v in headers:
                if k.lower() in ("content-length", "transfer-encoding", "connection"):
                    continue
                self.send_header(k, v)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

        def _chunk(self, data):
            if data:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            return len(data)

        def _end_chunks(self):
            self.wfile.write(b"0\r\n\r\n")

        def _stream(self, kind, source):
            """Sends what `source` (a child's stdout) gives, in chunks, then the
            last chunk; with --stall for this kind, stops after that many bytes
            and holds the connection. Returns the bytes sent."""
            limit = cfg.stall.get(kind)
            sent = 0
            while True:
                data = source.read1(1 << 16)
                if not data:
                    break
                if limit is not None and sent + len(data) >= limit:
                    sent += self._chunk(data[:limit - sent])
                    self.wfile.flush()
                    stats.add_stall(kind)
                    log.info("stalling %s after %d bytes", kind, sent)
                    cfg.stopping.wait(STALL_SECONDS)
                    self.close_connection = True
                    return sent
                sent += self._chunk(data)
            self._end_chunks()
            return sent

        # -- dispatch --------------------------------------------------------
        def _handle(self):
            u = urlsplit(self.path)
            path = unquote(u.path) if not u.path.startswith(ARCHIVE_PREFIX) else u.path
            if path.rstrip("/") == "/__kiln_git/stats":
                return self._simple("stats", 200, json.dumps(stats.as_dict()).encode(),
                                    ctype="application/json")
            if path.startswith(ARCHIVE_PREFIX) and path.endswith(ARCHIVE_SUFFIX):
                return self._archive(path, u.query)
            if not self._authorized_basic():
                # drain the body so the client sees the 401 rather than a reset
                with tempfile.TemporaryFile() as f:
                    try:
                        self._read_body_to(f)
                    except (ConnectionError, ValueError):
                        self.close_connection = True
                return self._simple("unauthorized", 401, b"unauthorized\n",
                                    {"WWW-Authenticate": 'Basic realm="kiln"'})
            return self._cgi(path, u.query)

        do_GET = do_POST = do_HEAD = _handle

        def _cgi(self, path, query):
            kind = git_kind(path, query)
            with tempfile.SpooledTemporaryFile(max_size=8 << 20) as body:
                try:
                    n = self._read_body_to(body)
                except (ConnectionError, ValueError) as e:
                    log.warning("bad request body: %s", e)
                    self.close_connection = True
                    return
                env = {
                    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "HOME": cfg.home,
                    "GIT_CONFIG_NOSYSTEM": "1",
                    "GIT_PROJECT_ROOT": cfg.root,
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "GATEWAY_INTERFACE": "CGI/1.1",
                    "SERVER_PROTOCOL": "HTTP/1.1",
                    "SERVER_SOFTWARE": "kiln-standin-git",
                    "PATH_INFO": path,
                    "REQUEST_METHOD": self.command,
                    "QUERY_STRING": query,
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                    "CONTENT_LENGTH": str(n),
                    "REMOTE_USER": cfg.user,
                    "AUTH_TYPE": "Basic",
                    "REMOTE_ADDR": self.client_address[0],
                }
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    stats.add_encoding("chunked")
                if self.headers.get("Content-Encoding"):
                    stats.add_encoding(self.headers["Content-Encoding"])
                    env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
                if self.headers.get("Git-Protocol"):
                    env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
                body.seek(0)
                proc = subprocess.Popen(["git", "http-backend"], env=env, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                cfg.track(proc)

                def feed():
                    try:
                        while True:
                            chunk = body.read(1 << 16)
                            if not chunk:
                                break
                            proc.stdin.write(chunk)
                    except OSError:
                        pass
                    finally:
                        try:
                            proc.stdin.close()
                        except OSError:
                            pass

                def drain_err():
                    err = proc.stderr.read()
                    if err:
                        log.info("http-backend: %s", err.decode("utf-8", "replace").strip())

                feeder = threading.Thread(target=feed, daemon=True)
                feeder.start()
                errt = threading.Thread(target=drain_err, daemon=True)
                errt.start()
                try:
                    status, headers = 200, []
                    while True:
                        line = proc.stdout.readline()
                        if not line or line in (b"\r\n", b"\n"):
                            break
                        k, _, v = line.decode("latin-1").rstrip("\r\n").partition(":")
                        v = v.strip()
                        if k.lower() == "status":
                            status = int(v.split()[0])
                        else:
                            headers.append((k, v))
                    self._start_chunked(status, headers)
                    sent = self._stream(kind, proc.stdout)
                    stats.add(kind, status, sent)
                finally:
                    feeder.join(30)
                    proc.stdout.close()
                    try:
                        proc.wait(30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                    errt.join(5)
                    cfg.untrack(proc)

        def _archive(self, path, query):
            if not hmac.compare_digest(self.headers.get("JOB-TOKEN") or "", cfg.password):
                return self._simple("unauthorized", 401, b'{"message":"401 Unauthorized"}',
                                    ctype="application/json")
            pid = unquote(path[len(ARCHIVE_PREFIX):-len(ARCHIVE_SUFFIX)])
            repo = cfg.repo_for(pid)
            if not repo:
                return self._simple("not_found", 404, b'{"message":"404 Project Not Found"}',
                                    ctype="application/json")
            sha = (parse_qs(query).get("sha") or ["HEAD"])[0]
            if sha.startswith("-"):
                return self._simple("not_found", 404, b'{"message":"404 Not Found"}',
                                    ctype="application/json")
            r = subprocess.run(["git", "-C", repo, "rev-parse", "--verify", "--quiet",
                                sha + "^{commit}"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, env=cfg.git_env())
            if r.returncode != 0:
                return self._simple("not_found", 404, b'{"message":"404 Commit Not Found"}',
                                    ctype="application/json")
            commit = r.stdout.decode().strip()
            name = os.path.basename(repo[:-4] if repo.endswith(".git") else repo)
            proc = subprocess.Popen(["git", "-C", repo, "archive", "--format=tar.gz",
                                     "--prefix=%s-%s-%s/" % (name, commit, commit), commit],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    env=cfg.git_env())
            cfg.track(proc)
            try:
                self._start_chunked(200, [
                    ("Content-Type", "application/octet-stream"),
                    ("Content-Disposition", 'attachment; filename="%s-%s.tar.gz"' % (name, commit))])
                sent = self._stream("archive", proc.stdout)
                stats.add("archive", 200, sent)
            finally:
                proc.stdout.close()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                cfg.untrack(proc)

    return H


class Config:
    def __init__(self, root, user, password, projects, stall=None):
        self.root = os.path.realpath(root)
        self.user, self.password = user, password
        self.projects = projects
        self.stall = stall or {}
        self.stopping = threading.Event()
        self.home = tempfile.mkdtemp(prefix="kiln-git-home-")
        self.procs = set()
        self.lock = threading.Lock()

    def git_env(self):
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.home,
                "GIT_CONFIG_NOSYSTEM": "1"}

    def track(self, p):
        with self.lock:
            self.procs.add(p)

    def untrack(self, p):
        with self.lock:
            self.procs.discard(p)

    def kill_all(self):
        with self.lock:
            for p in list(self.procs):
                try:
                    p.kill()
                except OSError:
                    pass
        shutil.rmtree(self.home, ignore_errors=True)

    def _inside(self, p):
        p = os.path.realpath(p)
        return p if (p == self.root or p.startswith(self.root + os.sep)) and os.path.isdir(p) else None

    def repo_for(self, pid):
        if pid.isdigit():
            if pid in self.projects:
                pid = self.projects[pid]
            else:
                repos = find_repos(self.root)
                return repos[0] if len(repos) == 1 else None
        pid = pid.strip("/")
        for cand in (pid + ".git", pid):
            r = self._inside(os.path.join(self.root, cand))
            if r:
                return r
        return None


def main(argv):
    p = argparse.ArgumentParser(prog="standin git", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_common_args(p)
    p.add_argument("--root", required=True)
    p.add_argument("--user", default="kiln")
    p.add_argument("--password", default="kiln-secret")
    p.add_argument("--project", action="append", default=[], metavar="ID=PATH")
    p.add_argument("--stall", action="append", default=[], metavar="KIND=BYTES",
                   help="stall the answer of KIND (%s) after BYTES bytes of its body" % ", ".join(STALL_KINDS))
    a = p.parse_args(argv)
    stall = {}
    for spec in a.stall:
        kind, _, size = spec.partition("=")
        if kind not in STALL_KINDS or not size.isdigit():
            p.error("--stall %s: expected KIND=BYTES with KIND one of %s" % (spec, ", ".join(STALL_KINDS)))
        stall[kind] = int(size)
    common.setup_logging("git", a.verbose)
    common.check_loopback(a.host)
    projects = {}
    for spec in a.project:
        k, _, v = spec.partition("=")
        projects[k] = v
    lifetime = common.Lifetime(watch_stdin=not a.no_stdin_watch)
    cfg = Config(a.root, a.user, a.password, projects, stall)
    stats = Stats()

    class S(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            log.debug("error serving %s", client_address, exc_info=True)

    srv = S((a.host, a.port), make_handler(cfg, stats))
    threading.Thread(target=srv.serve_forever, name="git", daemon=True).start()
    host, port = srv.server_address[:2]
    common.announce("git", url="http://%s:%d" % (host, port), host=host, port=port,
                    root=cfg.root, user=a.user)
    reason = lifetime.wait()
    log.info("stopping (%s)", reason)
    cfg.stopping.set()
    srv.shutdown()
    srv.server_close()
    cfg.kill_all()
    return 0
