import json
import signal
import subprocess
import sys

from standins.harness import LAUNCHER, running


def _start(*args, cwd="/"):
    p = subprocess.Popen([sys.executable, LAUNCHER] + list(args), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=cwd)
    line = p.stdout.readline()
    return p, json.loads(line)


def test_ready_line_only_and_exit_on_stdin_eof_from_any_cwd():
    p, info = _start("http-fixture", cwd="/")
    try:
        assert info["ready"] is True and info["name"] == "http-fixture"
        assert info["pid"] == p.pid and info["port"] > 0 and info["url"].startswith("http://127.0.0.1:")
        p.stdin.close()
        assert p.stdout.read() == b""  # nothing after the ready line on stdout
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_exits_on_sigterm_and_on_stdin_eof():
    for how in ("eof", "term"):
        p, info = _start("http-fixture")
        try:
            if how == "eof":
                p.stdin.close()
            else:
                p.send_signal(signal.SIGTERM)
            assert p.wait(10) == 0
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_harness_stops_on_exception():
    proc = None
    try:
        with running("http-fixture") as f:
            proc = f["_proc"]
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert proc.poll() is not None
