"""Start stand-ins from tests: `with running("moto") as info: info["url"]`."""
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
    info = json.loads(line)
    if not info.get("ready"):
        raise StandinError("bad ready line: %r" % line)
    return info


def stop(proc, timeout=10):
    """Terminate a stand-in (and its process group) and wait for it."""
    if proc.poll() is None:
        try:
            proc.stdin.close()
        except Exception:
            pass
        try:
            proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    # Whatever is left in the stand-in's own process group goes too.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if proc.poll() is None:
        proc.wait(timeout)
    for f in (proc.stdin, proc.stdout):
        try:
            f and f.close()
        except Exception:
            pass


def start(name, *args, timeout=30, env=None, stderr=None):
    """Start `scripts/standin NAME ARGS...`; return (proc, ready_dict)."""
    e = dict(os.environ)
    e["AWS_EC2_METADATA_DISABLED"] = "true"
    e.setdefault("AWS_ACCESS_KEY_ID", "testing")
    e.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    e["PYTHONUNBUFFERED"] = "1"
    if env:
        e.update(env)
    proc = subprocess.Popen([sys.executable, LAUNCHER, name] + [str(x) for x in args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                            env=e, start_new_session=True)
    try:
        info = _read_ready_line(proc, timeout)
    except BaseException:
        stop(proc)
        raise
    return proc, info


@contextlib.contextmanager
def running(name, *args, timeout=30, env=None, stderr=None):
    proc, info = start(name, *args, timeout=timeout, env=env, stderr=stderr)
    info = dict(info)
    info["_proc"] = proc
    try:
        yield info
    finally:
        stop(proc)


def run_oneshot(name, *args, timeout=120, env=None):
    """Run a one-shot stand-in (e.g. `world`) and return its parsed JSON stdout."""
    e = dict(os.environ)
    e["AWS_EC2_METADATA_DISABLED"] = "true"
    if env:
        e.update(env)
    out = subprocess.run([sys.executable, LAUNCHER, name] + [str(x) for x in args],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=e,
                         timeout=timeout, check=True)
    return json.loads(out.stdout)
