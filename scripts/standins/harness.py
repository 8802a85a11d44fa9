"""Start and stop stand-ins from tests, the demo and the benchmarks.

    with running("moto") as info: info["url"]           # tests, the demo
    moto = StandIn("moto", env=env, log="moto.log")      # the benchmarks (scripts/bench/benchlib.py)
    ...; moto.url; moto.stop()

One way to start `scripts/standin NAME ARGS...` (`command`), wait for its one
JSON ready line (`StandIn`), and stop it (`stop`): stdin closed (every
stand-in exits on EOF), then SIGTERM, then SIGKILL.
"""
import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time

SCRIPTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCHER = os.path.join(SCRIPTS, "standin")


class StandinError(RuntimeError):
    pass


def command(name, *args, python=None):
    """The argv that runs `scripts/standin NAME ARGS...` under `python` (default: this interpreter)."""
    return [python or sys.executable, LAUNCHER, name] + [str(x) for x in args]


def _read_ready_line(proc, timeout):
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buf = b""
    deadline = time.monotonic() + timeout
    try:
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise StandinError("no ready line within %.0fs" % timeout)
            if not sel.select(left):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                raise StandinError("stand-in exited before ready (rc=%s)" % proc.poll())
            buf += chunk
    finally:
        sel.close()
    line = buf.split(b"\n", 1)[0]
    try:
        info = json.loads(line)
    except ValueError:
        info = None
    if not isinstance(info, dict) or not info.get("ready"):
        raise StandinError("bad ready line: %r" % line)
    return info


def stop(proc, timeout=10, grace=0, kill_group=True):
    """Stop a stand-in and wait for it: close its stdin (it exits on EOF) and give it `grace` seconds, then
    SIGTERM and `timeout` seconds, then SIGKILL. With `kill_group` (it was started in a session of its own)
    whatever is left in its process group is killed too."""
    if proc.poll() is None:
        try:
            proc.stdin.close()
        except Exception:
            pass
        if grace:
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
    if kill_group:
        # Whatever is left in the stand-in's own process group goes too.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    elif proc.poll() is None:
        try:
            proc.kill()
        except ProcessLookupError:
            pass
    if proc.poll() is None:
        proc.wait(timeout)
    for f in (proc.stdin, proc.stdout):
        try:
            f and f.close()
        except Exception:
            pass


def _check_loopback(url):
    from . import common
    try:
        common.check_loopback(url)
    except SystemExit as refused:
        raise StandinError(str(refused))


class StandIn:
    """One long-running `scripts/standin NAME ARGS...`, started and waited for; `stop()` (or the end of a `with`)
    ends it. `ready` is its ready line, `url` the URL in it.

    env: the child's whole environment (default: this one); python: the interpreter (default: this one);
    log: a path for its stderr (opened here, closed on stop), or stderr: a file; timeout: seconds to wait for the
    ready line; grace, term_timeout: seconds after closing stdin, and after SIGTERM (see `stop`; at least the ready
    line's `stop_seconds` when it has one); new_session: in a
    session of its own, so that a Ctrl-C does not reach it and its whole group is killed at the end; loopback:
    refuse a `url` off 127.0.0.0/8 (StandinError, as every failure to start; it is stopped first)."""

    def __init__(self, name, *args, env=None, python=None, cwd=None, log=None, stderr=None, timeout=30,
                 grace=0, term_timeout=10, new_session=True, loopback=True):
        self.name = name
        self.grace = grace
        self.term_timeout = term_timeout
        self.new_session = new_session
        self.log = open(log, "w") if log else None
        self.proc = None
        self.ready = {}
        try:
            self.proc = subprocess.Popen(command(name, *args, python=python), cwd=cwd, env=env,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self.log if self.log else stderr, start_new_session=new_session)
            self.ready = _read_ready_line(self.proc, timeout)
            self.url = self.ready.get("url")
            if loopback and self.url:
                _check_loopback(self.url)
        except BaseException:
            self.stop()
            raise

    def stop(self):
        if self.proc is not None:
            # A stand-in that needs longer to stop says so in its ready line (moto with bodies: its bodies'
            # shutdown and unmounts); killing it sooner would leave what it was about to clean.
            needs = self.ready.get("stop_seconds", 0)
            stop(self.proc, timeout=max(self.term_timeout, needs), grace=self.grace, kill_group=self.new_session)
        if self.log:
            self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def standin_env(env=None):
    """This environment with instance metadata off, fake AWS keys (unless set) and unbuffered output; then `env`."""
    e = dict(os.environ)
    e["AWS_EC2_METADATA_DISABLED"] = "true"
    e.setdefault("AWS_ACCESS_KEY_ID", "testing")
    e.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    e["PYTHONUNBUFFERED"] = "1"
    if env:
        e.update(env)
    return e


@contextlib.contextmanager
def running(name, *args, timeout=30, env=None, stderr=None):
    # Stopped by StandIn.stop, which waits the ready line's stop_seconds: moto with bodies needs them.
    standin = StandIn(name, *args, env=standin_env(env), stderr=stderr, timeout=timeout, loopback=False)
    info = dict(standin.ready)
    info["_proc"] = standin.proc
    try:
        yield info
    finally:
        standin.stop()


def run_oneshot(name, *args, timeout=120, env=None):
    """Run a one-shot stand-in (e.g. `world`) and return its parsed JSON stdout."""
    e = dict(os.environ)
    e["AWS_EC2_METADATA_DISABLED"] = "true"
    if env:
        e.update(env)
    out = subprocess.run(command(name, *args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=e,
                         timeout=timeout, check=True)
    return json.loads(out.stdout)
