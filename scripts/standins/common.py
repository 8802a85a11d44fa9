"""Shared plumbing for long-running stand-ins: ready line, stop on SIGTERM/SIGINT/stdin EOF."""
import json
import logging
import os
import signal
import sys
import threading

LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


def setup_logging(name, verbose=False):
    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if verbose else logging.INFO,
                        format=LOG_FORMAT)
    return logging.getLogger("standin." + name)


def fake_aws_env():
    """Fake credentials, no instance metadata: boto3 must never leave loopback."""
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def check_loopback(url_or_host):
    """Refuse any endpoint that is not on 127.0.0.0/8 (or localhost)."""
    from urllib.parse import urlsplit
    host = urlsplit(url_or_host).hostname if "://" in url_or_host else url_or_host
    if host == "localhost" or (host or "").startswith("127."):
        return
    raise SystemExit("refusing non-loopback endpoint %r" % url_or_host)


def add_common_args(parser, port=True):
    if port:
        parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=0, help="port to bind (default 0 = any free port)")
    parser.add_argument("--no-stdin-watch", action="store_true",
                        help="do not exit when stdin reaches EOF (for running in the background by hand)")
    parser.add_argument("-v", "--verbose", action="store_true")


class Lifetime:
    """Stop event set by SIGTERM, SIGINT or EOF on stdin."""

    def __init__(self, watch_stdin=True):
        self.stop = threading.Event()
        self.reason = None
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        if watch_stdin:
            threading.Thread(target=self._watch_stdin, name="stdin-watch", daemon=True).start()

    def _on_signal(self, signum, frame):
        self.reason = "signal %d" % signum
        self.stop.set()

    def _watch_stdin(self):
        try:
            while True:
                data = os.read(sys.stdin.fileno(), 4096)
                if not data:
                    break
        except (OSError, ValueError):
            pass
        if not self.reason:
            self.reason = "stdin EOF"
        self.stop.set()

    def wait(self):
        # Event.wait with a timeout keeps the main thread responsive to signals.
        while not self.stop.wait(0.5):
            pass
        return self.reason


def announce(name, **fields):
    """Print the single ready line (JSON) on stdout and flush it."""
    d = {"ready": True, "name": name}
    d.update(fields)
    d.setdefault("pid", os.getpid())
    sys.stdout.write(json.dumps(d, sort_keys=False) + "\n")
    sys.stdout.flush()
    return d
