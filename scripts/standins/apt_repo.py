"""`standin apt-repo`: serves Kiln's local package repository (scripts/setup-apt-repo) on loopback.

    scripts/standin apt-repo [--root DIR] [--host 127.0.0.1] [--port 0] [--no-stdin-watch] [-v]

An instance body's apt reaches only 127.0.0.0/8: this serves the flat
repository the set-up filled (Packages, Release, pool/*.deb), read only,
GET and HEAD. The ready line carries the sources.list line a body needs:

    deb [trusted=yes] http://127.0.0.1:PORT/ ./

(`trusted=yes`: the Release file is not signed; sources.list(5), "trusted").
Ready line: {"ready", "name": "apt-repo", "url", "host", "port", "pid", "root", "sources_line", "packages"}
"""
import argparse
import functools
import json
import logging
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

from . import common

log = logging.getLogger("standin.apt-repo")
DEFAULT_ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                            ".apt-repo")
STAMP = ".kiln-apt-repo.json"


class RepositoryMissing(SystemExit):
    pass


def check_repository(root):
    """The packages the set-up put there, or a clear reason it is not a repository."""
    stamp = os.path.join(root, STAMP)
    for needed in ("Packages", "Release", STAMP):
        if not os.path.isfile(os.path.join(root, needed)):
            raise RepositoryMissing("%s is not Kiln's package repository (no %s): run scripts/setup "
                                    "(scripts/setup-apt-repo fills it)" % (root, needed))
    with open(stamp) as f:
        return json.load(f).get("packages", [])


class _Handler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        log.debug(fmt, *args)

    def list_directory(self, path):
        # apt never lists folders; nothing else needs to.
        self.send_error(404)
        return None

    def do_POST(self):
        self.send_error(405)

    do_PUT = do_DELETE = do_PATCH = do_POST


def serve(root, host="127.0.0.1", port=0):
    """A running server for the repository at root (a daemon thread), and its URL."""
    common.check_loopback(host)
    handler = functools.partial(_Handler, directory=os.path.abspath(root))
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="apt-repo", daemon=True).start()
    return server, "http://%s:%d/" % (host, server.server_address[1])


def sources_line(url):
    return "deb [trusted=yes] %s ./" % url


def main(argv):
    parser = argparse.ArgumentParser(prog="standin apt-repo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=DEFAULT_ROOT, help="the repository folder (default .apt-repo)")
    common.add_common_args(parser)
    args = parser.parse_args(argv)
    common.setup_logging("apt-repo", args.verbose)
    packages = check_repository(args.root)
    lifetime = common.Lifetime(watch_stdin=not args.no_stdin_watch)
    server, url = serve(args.root, args.host, args.port)
    common.announce("apt-repo", url=url, host=args.host, port=server.server_address[1],
                    root=os.path.abspath(args.root), sources_line=sources_line(url), packages=packages)
    reason = lifetime.wait()
    log.info("stopping (%s)", reason)
    server.shutdown()
    return 0
