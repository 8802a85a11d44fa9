"""What every benchmark driver in scripts/bench shares: one copy, imported by aws.py, bake.py, build.py,
checkout.py and rotate.py.

    import benchlib
    from benchlib import ROOT, fail, say
    benchlib.configure("aws")            # messages as "[bench:aws] ..."

  - messages: `say`, `fail` (prefixed with the script's name, optionally the time);
  - the interpreter: `prefer_venv` (re-run under .venv), `run_main` (SIGTERM, scripts/setup, .venv, main);
  - children's environments: `loopback_env` (fake AWS keys, no proxies, loopback endpoints), `clean_env`
    (no proxies, no CI/Kiln variables, for children that need no AWS), `check_loopback`;
  - Kiln's binaries: `find_swift`, `build` (`swift build -c release --static-swift-stdlib ...`, as shipped);
  - stand-ins: `start_standin`, `standin_oneshot` (over scripts/standins/harness.py);
  - loopback clients: `http_json`, `boto3_client`;
  - the section: `write_section` (between a script's `<!-- bench:NAME:start/end -->` markers in
    docs/benchmarks.md), `median`, `percentile`, `fmt_number`, `fmt_ms`, `fmt_ratio`, `ratio`;
  - the machine: `machine_facts`, `load_average`, `warn_if_busy`, `is_busy`, `load_note`, `git_head`, `swift_version`,
    `package_versions`, `run_text`;
  - artifacts: `write_artifact`, `iso8601` (from scripts/standins/artifacts.py).

Why here and not in scripts/standins: nothing but the benchmarks writes docs/benchmarks.md, builds release
binaries or reports machine facts, and the stand-ins' tests should not carry them. What the tests, the demo and
the benchmarks all do lives under scripts/standins, and this module uses it from there: starting and stopping a
stand-in (standins/harness.py: `StandIn`, `stop`, `command`), the loopback check (standins/common.py) and Kiln's
artifact envelope (standins/artifacts.py, which the demo uses too).

Nothing here touches the network: every endpoint is checked to be on 127.0.0.0/8, every client is built with
proxies off.
"""
import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.realpath(os.path.abspath(__file__)))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCRIPTS = os.path.join(ROOT, "scripts")
VENV = os.path.join(ROOT, ".venv")
VENV_PYTHON = os.path.join(VENV, "bin", "python")
STANDIN = os.path.join(SCRIPTS, "standin")
SETUP = os.path.join(SCRIPTS, "setup")
DOCS = os.path.join(ROOT, "docs", "benchmarks.md")
REGION = "us-east-1"

if SCRIPTS not in sys.path:
    sys.path.insert(0, SCRIPTS)
from standins import artifacts, common, harness  # noqa: E402
from standins.artifacts import iso8601, write_artifact  # noqa: E402,F401  (re-exported)

# --------------------------------------------------------------------------
# Messages.

_NAME = "bench"
_CLOCK = False


def configure(name, clock=False):
    """Name the messages `[bench:NAME] ...` (with `clock`, `[bench:NAME HH:MM:SS] ...`)."""
    global _NAME, _CLOCK
    _NAME, _CLOCK = "bench:%s" % name, clock


def say(message):
    prefix = "%s %s" % (_NAME, time.strftime("%H:%M:%S")) if _CLOCK else _NAME
    sys.stderr.write("[%s] %s\n" % (prefix, message))
    sys.stderr.flush()


def fail(message, code=1):
    say("error: " + message)
    raise SystemExit(code)


# --------------------------------------------------------------------------
# The interpreter.

def prefer_venv(script, argv):
    """Re-run `script` under the project's .venv (boto3, moto, awscli) when started by another python3.
    KILN_BENCH_NO_VENV=1 keeps the interpreter as it is (and is set before the re-run: never a loop)."""
    if os.environ.get("KILN_BENCH_NO_VENV") or not os.path.exists(VENV_PYTHON):
        return
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    os.environ["KILN_BENCH_NO_VENV"] = "1"  # never loop
    os.execv(VENV_PYTHON, [VENV_PYTHON, os.path.abspath(script)] + list(argv))


def run_main(main, script, setup=True):
    """A driver's `__main__`: SIGTERM exits (so that `finally` stops the stand-ins), scripts/setup first when there
    is no .venv yet (with `setup`, unless --no-setup), then `main(argv)` under .venv."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if setup and not os.path.exists(VENV_PYTHON) and "--no-setup" not in sys.argv:
        subprocess.run([SETUP], cwd=ROOT, check=True)
    prefer_venv(script, sys.argv[1:])
    sys.exit(main(sys.argv[1:]))


def python():
    """The interpreter for stand-ins and Python workers: .venv's, else this one."""
    return VENV_PYTHON if os.path.exists(VENV_PYTHON) else sys.executable


# --------------------------------------------------------------------------
# Children's environments.

def _without(drop_prefixes=(), drop_names=()):
    """This environment without any proxy variable (`*_proxy`, either case), the variables named in `drop_names`
    and those starting with one of `drop_prefixes`."""
    drop_prefixes = tuple(drop_prefixes)
    return {k: v for k, v in os.environ.items()
            if not k.lower().endswith("_proxy") and k not in drop_names
            and not (drop_prefixes and k.startswith(drop_prefixes))}


def loopback_env(endpoint=None, drop_prefixes=(), extra=None):
    """For children that talk AWS: no proxies, no AWS_ variable of this environment (nor any starting with
    `drop_prefixes`), then fake keys, the region, no metadata, no config or credentials file, no pager,
    NO_PROXY=127.0.0.1,localhost, AWS_ENDPOINT_URL=`endpoint` when given, and `extra`."""
    env = _without(("AWS_",) + tuple(drop_prefixes))
    env.update({
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_PAGER": "",
        "NO_PROXY": "127.0.0.1,localhost",
    })
    if endpoint:
        check_loopback(endpoint)
        env["AWS_ENDPOINT_URL"] = endpoint
    if extra:
        env.update(extra)
    return env


def clean_env(drop_prefixes=("CI_", "KILN_", "GITLAB_", "GIT_"), drop_names=(), extra=None):
    """For children that need no AWS: no proxies (NO_PROXY=*), none of the variables starting with
    `drop_prefixes` or named in `drop_names`, LC_ALL=C, instance metadata off; then `extra`."""
    env = _without(drop_prefixes, drop_names)
    env.update({"NO_PROXY": "*", "no_proxy": "*", "LC_ALL": "C", "AWS_EC2_METADATA_DISABLED": "true"})
    if extra:
        env.update(extra)
    return env


def check_loopback(url):
    """Stop the run (`fail`) for an endpoint off 127.0.0.0/8 (the check of scripts/standins/common.py)."""
    try:
        common.check_loopback(url)
    except SystemExit as refused:
        fail(str(refused))


# --------------------------------------------------------------------------
# Kiln's binaries.

SWIFT_CANDIDATES = ("/opt/swift/usr/bin/swift", "/usr/share/swift/usr/bin/swift")


def find_swift(required=True):
    """`swift` on PATH, else a toolchain in a usual place; none: `fail` (or None when not `required`)."""
    import shutil
    swift = shutil.which("swift")
    if swift:
        return swift
    for candidate in SWIFT_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    if required:
        fail("no Swift toolchain on PATH")
    return None


def build(products, env=None, scratch=".build-bench"):
    """`swift build -c release --static-swift-stdlib --scratch-path SCRATCH --product P` for each of `products`
    (in ROOT, with `env`); returns the folder of the binaries (`--show-bin-path`). Linked as scripts/install-runtime
    links what users run (the Swift runtime inside the binary): a dynamic build starts slower and maps about 7 MiB
    more, which a benchmark would charge to Kiln. A failed build shows the end of its output and fails."""
    if isinstance(products, str):
        products = [products]
    scratch = os.path.join(ROOT, scratch)
    base = [find_swift(), "build", "-c", "release", "--static-swift-stdlib", "--scratch-path", scratch]
    for product in products:
        say("building %s (release, %s)" % (product, os.path.relpath(scratch, ROOT)))
        result = subprocess.run(base + ["--product", product], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if result.returncode != 0:
            sys.stderr.write(result.stdout[-6000:])
            fail("swift build --product %s failed (exit %d)" % (product, result.returncode))
    return subprocess.run(base + ["--show-bin-path"], cwd=ROOT, env=env, check=True,
                          stdout=subprocess.PIPE, text=True).stdout.strip()


# --------------------------------------------------------------------------
# Stand-ins.

def start_standin(name, args, env, log_path, grace=10, timeout=90):
    """One long-running `scripts/standin NAME ARGS` (a harness.StandIn): under .venv's Python, in ROOT, with `env`
    as its whole environment and its stderr in `log_path`; waited for up to `timeout` s; its `url` checked to be on
    loopback. `stop()` closes its stdin, waits `grace` s, then SIGTERM and 5 s, then SIGKILL. It stays in this
    process group, so that a Ctrl-C reaches it too. Any failure to start: `fail`."""
    try:
        return harness.StandIn(name, *args, env=env, python=python(), cwd=ROOT, log=log_path, timeout=timeout,
                               grace=grace, term_timeout=5, new_session=False, loopback=True)
    except harness.StandinError as error:
        fail("%s: %s (log: %s)" % (name, error, log_path))


def standin_oneshot(name, args, env):
    """Run a one-shot `scripts/standin NAME ARGS` (e.g. `world`) in ROOT with `env`; return its stdout.
    A non-zero exit shows the end of its stderr and fails."""
    result = subprocess.run(harness.command(name, *args, python=python()), cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stderr[-3000:])
        fail("standin %s exited %d" % (name, result.returncode))
    return result.stdout


# --------------------------------------------------------------------------
# Loopback clients.

def http_json(url, method="GET", body=None, timeout=5):
    """A JSON request to a loopback stand-in, never through a proxy; the answer's JSON (None when empty)."""
    import json
    import urllib.request
    check_loopback(url)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with opener.open(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


def boto3_client(service, endpoint):
    """A boto3 client for one loopback endpoint, fake keys, the benchmarks' region."""
    import boto3
    check_loopback(endpoint)
    return boto3.session.Session(region_name=REGION).client(
        service, endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing")


# --------------------------------------------------------------------------
# The section.

INTRO = ("# Benchmarks\n\nMeasured on the project's own machines with local stand-ins only (loopback). "
         "Each section is written by the script named in its heading; re-run it to refresh that "
         "section alone.\n\n")


def markers(name):
    """The start and end markers of a script's section: `<!-- bench:NAME:start -->`, `<!-- bench:NAME:end -->`."""
    return "<!-- bench:%s:start -->" % name, "<!-- bench:%s:end -->" % name


def wait_or_kill(proc, timeout):
    """`proc.wait(timeout)`; on any failure (a timeout, Ctrl-C) the whole
    process group of `proc` (started with start_new_session) is killed and
    reaped before the exception goes on."""
    try:
        return proc.wait(timeout=timeout)
    except BaseException:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait()
        raise


def publish(opts, name, title, section, measurements, began):
    """How every benchmark ends: its measurements to `--json` (if given), its
    section to stdout (`--no-write`) or into `--output` between its markers,
    and how long it took."""
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(measurements, f, indent=1, sort_keys=True)
    if opts.no_write:
        sys.stdout.write(section)
    else:
        write_section(opts.output, name, section)
        say("wrote the %s section of %s" % (title, os.path.relpath(opts.output, ROOT)))
    say("done in %.0f s" % (time.monotonic() - began))


def write_section(path, name, section):
    """Put `section` (its markers included, a final newline) in place of the text between NAME's markers in `path`,
    keeping the rest of the file; appended when the markers are not there; after INTRO in a new or empty file.
    Written atomically."""
    start, end = markers(name)
    text = open(path).read() if os.path.exists(path) else ""
    if start in text and end in text and text.index(start) < text.index(end):
        before = text[:text.index(start)]
        after = text[text.index(end) + len(end):]
        if after.startswith("\n"):
            after = after[1:]
        text = before + section + after
    elif text.strip():
        text = text.rstrip("\n") + "\n\n" + section
    else:
        text = INTRO + section
    artifacts.write_text_atomically(path, text)


def median(values):
    import statistics
    return statistics.median(values)


def percentile(values, q):
    """Nearest-rank percentile (q in 0..100)."""
    import math
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


MS_STEPS = ((100, 0), (10, 1), (0, 2))


def fmt_number(value, steps=MS_STEPS, suffix=""):
    """`value` with the digits of the first (threshold, digits) step whose threshold abs(value) reaches (the last
    step when none does, NaN included), then `suffix`; "–" for None."""
    if value is None:
        return "–"
    digits = steps[-1][1]
    for threshold, step_digits in steps:
        if abs(value) >= threshold:
            digits = step_digits
            break
    return "%.*f%s" % (digits, value, suffix)


def fmt_ms(value):
    """Milliseconds: 1234, 12.3, 1.23; "–" for None."""
    return fmt_number(value, MS_STEPS)


def fmt_ratio(value, digits=2):
    """A ratio: 1.23×; "–" for None."""
    return fmt_number(value, ((0, digits),), "×")


def ratio(value, reference, digits=2):
    """value / reference as a ratio (1.23×); "–" when either is missing or the reference is not above 0."""
    if value is None or reference is None or not reference > 0:
        return "–"
    return fmt_ratio(value / reference, digits)


# --------------------------------------------------------------------------
# The machine.

def run_text(argv, env=None, timeout=60):
    """A command's output (stdout and stderr), stripped; "" when it cannot run or takes longer than `timeout`."""
    try:
        return subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=timeout).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine_facts():
    """date (local, "%Y-%m-%d %H:%M %Z"), nproc, cpu (model name), memory ("24 GiB"), memory_gib (24),
    os ("Linux 6.1.0"), kernel ("6.1.0")."""
    import platform
    info = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "nproc": os.cpu_count()}
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info["cpu"] = model
    info["memory"], info["memory_gib"] = "?", 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    gib = int(line.split()[1]) / 1024 / 1024
                    info["memory"], info["memory_gib"] = "%.0f GiB" % gib, round(gib)
                    break
    except (OSError, ValueError, IndexError):
        pass
    info["os"] = "%s %s" % (platform.system(), platform.release())
    info["kernel"] = platform.release()
    return info


def load_average():
    """The 1-minute load average."""
    return os.getloadavg()[0]


def is_busy(*loads):
    """Any of `loads` above half the CPUs."""
    return max(loads) > 0.5 * (os.cpu_count() or 1)


def load_note(before):
    """The sentence a section prints beside its load averages: what the load says of the figures.

    Judged by the load before the run: the load after also counts the benchmark's own work (twenty bodies
    booting, a build), so it says nothing of other users. Derived from the load alone: a benchmark cannot know
    who else used the machine, so it never says."""
    cpus = os.cpu_count() or 1
    if is_busy(before):
        return ("The machine was busy when the run began (load average %.2f on %d CPUs): other work is in these "
                "figures, so they are upper bounds; compare within a round." % (before, cpus))
    return ("The machine was otherwise quiet when the run began (load average %.2f on %d CPUs; the load after "
            "counts the benchmark's own work)." % (before, cpus))


def warn_if_busy(load):
    """Say so when `load` is above half the CPUs: other work will be in the numbers."""
    if is_busy(load):
        say("warning: load average %.2f on %d CPU(s): other work will be in the numbers"
            % (load, os.cpu_count() or 1))


def git_head(untracked=True, env=None):
    """(ROOT's short commit, or "" when git cannot tell; whether the tree has local changes: untracked files count
    with `untracked`)."""
    commit = run_text(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], env=env)
    if not commit or "\n" in commit or " " in commit:
        commit = ""
    status = ["git", "-C", ROOT, "status", "--porcelain"] + ([] if untracked else ["--untracked-files=no"])
    try:
        dirty = subprocess.run(status, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               timeout=60).stdout.strip() != ""
    except (OSError, subprocess.TimeoutExpired):
        dirty = False
    return commit, dirty


def swift_version():
    """(the toolchain's version, e.g. "6.3.1", or None; the line of `swift --version` that says it, else its first
    line, else "")."""
    swift = find_swift(required=False)
    lines = run_text([swift, "--version"]).splitlines() if swift else []
    for line in lines:
        if "Swift version" in line:
            return line.split("version", 1)[1].split()[0], line.strip()
    return None, (lines[0].strip() if lines else "")


def package_versions(names):
    """{name: version} of installed Python packages, "?" for those not installed."""
    from importlib import metadata
    info = {}
    for name in names:
        try:
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info[name] = "?"
    return info
