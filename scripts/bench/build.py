#!/usr/bin/env python3
"""scripts/bench/build.py: what kiln-build adds over running the same commands in a shell.

    scripts/bench/build.py [--runs 15] [--pack-runs 3] [--pack-mb 200] [--pack-files 2000]
                           [--output docs/benchmarks.md | --no-write] [--bin-dir DIR] [--json FILE]

About 3 to 5 minutes on a 2-CPU machine (most of it gzip over the 200 MB tree).

One command. It

  1. builds kiln-build in release (`swift build -c release --static-swift-stdlib --scratch-path
     .build-bench --product kiln-build`; `--bin-dir` skips it);
  2. generates a sample project in a temporary folder: kiln.yml (several
     variants, chosen with `--config`), the checkout.json kiln-checkout would
     have left in kiln/, three build commands and one test command that print
     50,000 lines between them (stdout and stderr) and a test command that
     writes a JUnit report of 1,000 test cases (50 skipped) in 10 suites,
     and a 200 MB tree of 2,000 files (text and random bytes) for packaging;
  3. overhead, `--runs` rounds (order rotated each round), each output going
     to a log file:
       shell          sh -c 'c1 && c2 && c3 && t1' (the same commands, same
                      variables KILN_VERSION, KILN_COMMIT, KILN_APPLICATION)
       kiln           kiln-build: the same commands, build.junit merging the
                      report, build.package.paths a 2-file folder
       kiln no junit  the same without build.junit
       shell quiet /  the same commands with their output sent to /dev/null
       kiln quiet     by the commands themselves (what streaming costs)
       sh true /      one `true` command (start-up and the fixed cost of a run:
       kiln true      config, checkout.json, build.json, a tiny package)
       kiln --version the process alone
  4. packaging, `--pack-runs` rounds (order rotated): `tar czf out.tar.gz app`,
     Kiln's own tar command line (GNU tar, `--sort=name`, normalised owner,
     modes and time, `gzip -n -6`) run from a shell, and kiln-build with one
     `true` command and `build.package.paths: [app/]`; and `sha256sum` of the
     result (kiln-build hashes its artifact);
  5. writes medians and paired differences/ratios to the "Build stage"
     section of docs/benchmarks.md (between `<!-- bench:build:start -->` and
     `<!-- bench:build:end -->`; the rest of the file is kept).

The temporary folder is removed at the end, also on failure, Ctrl-C or
SIGTERM. Nothing touches the network: the checkout.json names a loopback URL
nobody contacts, and kiln-build gets no CI or proxy variables.
"""
import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time

import benchlib
from benchlib import ROOT, fail, fmt_ms, median, ratio, say

benchlib.configure("build", clock=True)
MARK_START, MARK_END = benchlib.markers("build")

APPLICATION = "demo"
VERSION = "v1.4.0-2-gccccccc"
COMMIT = "c" * 40
COMMIT_TIME = 1_780_000_000  # 2026-05-28, the packed files' time
JUNIT_TESTS = 1000
JUNIT_SUITES = 10
SKIP_EVERY = 20  # 50 skipped

# The project's commands. Each prints lines as a compiler or a test runner
# would; together 50,000 lines (40,000 on stdout, 10,000 on stderr).
BUILD_COMMANDS = [
    ("compile",
     "rm -rf dist reports && mkdir -p dist && "
     "awk 'BEGIN { for (i = 1; i <= 20000; i++) "
     "printf \"[%d/20000] Compiling Module%03d Sources/Module%03d/File%05d.swift (whole module, -O)\\n\", "
     "i, i % 200, i % 200, i }'"),
    ("codegen",
     "awk 'BEGIN { for (i = 1; i <= 10000; i++) "
     "printf \"warning: Sources/Gen/Model%04d.swift:%d:7: variable was never mutated; consider let\\n\", "
     "i, i % 400 }' >&2"),
    ("link",
     "awk 'BEGIN { for (i = 1; i <= 10000; i++) "
     "printf \"ld: adding Module%03d.o (%d symbols, %d bytes)\\n\", i % 200, i * 7, i * 131 }' && "
     "printf '#!/bin/sh\\necho demo %s\\n' \"$KILN_VERSION\" > dist/app && chmod 755 dist/app && "
     "echo \"$KILN_VERSION $KILN_COMMIT\" > dist/VERSION"),
]
TEST_COMMANDS = [
    ("unit tests",
     "mkdir -p reports/unit && awk -v n=%d -v s=%d -v k=%d 'BEGIN { "
     "print \"<?xml version=\\\"1.0\\\" encoding=\\\"UTF-8\\\"?>\" > \"reports/unit/junit.xml\"; "
     "print \"<testsuites>\" > \"reports/unit/junit.xml\"; "
     "per = n / s; "
     "for (j = 0; j < s; j++) { "
     "printf \"<testsuite name=\\\"Suite%%02d\\\" tests=\\\"%%d\\\" time=\\\"1.5\\\">\\n\", j, per > \"reports/unit/junit.xml\"; "
     "for (i = 0; i < per; i++) { c = j * per + i; "
     "printf \"test Suite%%02d.test_case_%%04d ... \", j, c; "
     "if (c %% k == k - 1) { print \"skipped\"; "
     "printf \"  <testcase classname=\\\"app.Suite%%02d\\\" name=\\\"test_case_%%04d\\\" time=\\\"0\\\"><skipped message=\\\"needs a database\\\"/></testcase>\\n\", j, c > \"reports/unit/junit.xml\" } "
     "else { print \"ok\"; "
     "printf \"  <testcase classname=\\\"app.Suite%%02d\\\" name=\\\"test_case_%%04d\\\" time=\\\"0.%%03d\\\"><system-out>checked %%d &amp; %%d &lt; %%d</system-out></testcase>\\n\", j, c, c %% 997, c, c + 1, c + 2 > \"reports/unit/junit.xml\" } "
     "} "
     "print \"</testsuite>\" > \"reports/unit/junit.xml\" } "
     "print \"</testsuites>\" > \"reports/unit/junit.xml\"; "
     "for (i = 0; i < 9000; i++) printf \"  log: fixture %%d ready in %%d ms\\n\", i, i %% 37 }'"
     % (JUNIT_TESTS, JUNIT_SUITES, SKIP_EVERY)),
]
OUTPUT_LINES = 20000 + 10000 + 10000 + (JUNIT_TESTS + 9000)


def clean_env(extra=None):
    """What every measured command gets: no proxies, no CI, Kiln, GitLab, git or AWS variables, none of tar's
    and gzip's own (SOURCE_DATE_EPOCH, GZIP, TAR_OPTIONS)."""
    return benchlib.clean_env(drop_prefixes=("CI_", "KILN_", "GITLAB_", "GIT_", "AWS_"),
                              drop_names=("SOURCE_DATE_EPOCH", "GZIP", "TAR_OPTIONS"), extra=extra)


# ---------------------------------------------------------------- the sample project

def yaml_string(text):
    """A YAML scalar for any one-line string: JSON's double-quoted form is YAML too."""
    return json.dumps(text)


def kiln_yml(commands, tests, junit, package_paths):
    lines = ["application: %s" % APPLICATION, "build:"]
    for key, entries in (("commands", commands), ("test", tests)):
        if entries:
            lines.append("  %s:" % key)
            for name, run in entries:
                lines.append("    - name: %s" % yaml_string(name))
                lines.append("      run: %s" % yaml_string(run))
    if junit:
        lines.append("  junit:")
        lines += ["    - %s" % yaml_string(g) for g in junit]
    lines.append("  package:")
    lines.append("    paths: [%s]" % ", ".join(yaml_string(p) for p in package_paths))
    return "\n".join(lines) + "\n"


def quiet(entries):
    return [(name, "{ %s ; } >/dev/null 2>&1" % run) for name, run in entries]


def write_checkout(project):
    """checkout.json as kiln-checkout writes it: the envelope and CheckoutResult's fields."""
    benchlib.write_artifact(os.path.join(project, "kiln", "checkout.json"), "checkout", {
        "repository": "http://127.0.0.1:1/group/demo.git", "commit": COMMIT, "shortCommit": COMMIT[:8],
        "ref": "main", "pipelineID": "9", "versionString": VERSION, "commitTime": benchlib.iso8601(COMMIT_TIME),
        "subject": "Benchmark sample", "strategy": "clone", "submodules": [], "bytesReceived": 1,
        "objectsReceived": 1, "phases": {"fetch": 0.1, "checkout": 0.1},
    }, producer=("kiln-checkout", "bench"))


def make_project(project):
    os.makedirs(project)
    write_checkout(project)
    os.makedirs(os.path.join(project, "tiny"))
    for name in ("a.txt", "b.txt"):
        with open(os.path.join(project, "tiny", name), "w") as f:
            f.write("tiny package file %s\n" % name)
    configs = {
        "kiln": kiln_yml(BUILD_COMMANDS, TEST_COMMANDS, ["reports/**/*.xml"], ["dist/"]),
        "kiln-nojunit": kiln_yml(BUILD_COMMANDS, TEST_COMMANDS, [], ["dist/"]),
        "kiln-quiet": kiln_yml(quiet(BUILD_COMMANDS), quiet(TEST_COMMANDS), [], ["dist/"]),
        "kiln-true": kiln_yml([("nothing", "true")], [], [], ["tiny/"]),
        "kiln-pack": kiln_yml([("nothing", "true")], [], [], ["app/"]),
    }
    paths = {}
    for name, text in configs.items():
        paths[name] = os.path.join(project, "%s.yml" % name)
        with open(paths[name], "w") as f:
            f.write(text)
    return paths


def make_tree(top, total_bytes, files, seed=0x6B696C6E):
    """`files` files under top/ in 40 folders, `total_bytes` in all: about 55% text
    (compressible: source, logs, JSON), 45% random bytes (images, archives)."""
    rng = random.Random(seed)
    syll = ["ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zi", "po", "qu", "ex", "an", "or", "il", "ut"]
    vocab = ["".join(rng.choice(syll) for _ in range(rng.randint(1, 4))) for _ in range(4000)]
    vocab += ["func", "let", "var", "return", "if", "else", "for", "in", "struct", "(", ")", "{", "}", "=", "+",
              "\"id\":", "\"name\":", "INFO", "DEBUG", "2026-05-28T12:00:00Z"]
    words = rng.choices(vocab, k=1_600_000)
    pool = bytearray()
    at = 0
    while at < len(words):
        n = rng.randint(4, 14)
        pool += (" ".join(words[at:at + n]) + "\n").encode()
        at += n
    pool = bytes(pool)
    weights = [rng.lognormvariate(0, 1.2) for _ in range(files)]
    scale = total_bytes / sum(weights)
    sizes = [max(1, int(w * scale)) for w in weights]
    sizes[-1] += total_bytes - sum(sizes)
    kinds = {"text": 0, "random": 0}
    for index, size in enumerate(sizes):
        folder = os.path.join(top, "part%02d" % (index % 40))
        os.makedirs(folder, exist_ok=True)
        text = rng.random() < 0.55
        if text and size < len(pool):
            start = rng.randrange(len(pool) - size)
            data = pool[start:start + size]
            name = "file%04d.%s" % (index, rng.choice(["swift", "json", "log", "txt", "html"]))
            kinds["text"] += size
        else:
            data = rng.randbytes(size)
            name = "file%04d.%s" % (index, rng.choice(["png", "bin", "woff2", "jpg"]))
            kinds["random"] += size
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
    return {"files": files, "bytes": total_bytes, "folders": 40, "text_bytes": kinds["text"],
            "random_bytes": kinds["random"], "largest": max(sizes), "smallest": min(sizes)}


# ---------------------------------------------------------------- measuring

def timed(argv, env, cwd, log_path):
    """Wall time (ms) from spawn to exit; output (both streams) appended to log_path."""
    with open(log_path, "ab") as log:
        started = time.monotonic_ns()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
        code = benchlib.wait_or_kill(proc, 900)
        elapsed = (time.monotonic_ns() - started) / 1e6
    if code != 0:
        with open(log_path, "rb") as f:
            tail = f.read()[-3000:].decode(errors="replace")
        fail("%s exited %d:\n%s" % (" ".join(argv[:3]), code, tail))
    return elapsed


def kiln_commands_seconds(project):
    with open(os.path.join(project, "kiln", "build.json")) as f:
        document = json.load(f)
    if document.get("outcome") != "passed":
        fail("kiln-build's outcome is %r" % document.get("outcome"))
    return sum(c["durationSeconds"] for c in document["commands"]), document


def machine_facts(bin_dir, prebuilt):
    info = benchlib.machine_facts()

    def first_line(argv):
        return (benchlib.run_text(argv).splitlines() or ["?"])[0].strip()

    info["kiln"] = first_line([os.path.join(bin_dir, "kiln-build"), "--version"])
    git, dirty = benchlib.git_head()
    git = git or "?"
    info["kiln_build"] = ("prebuilt binaries from --bin-dir; tree at %s" % git if prebuilt else
                          "release build of %s%s" % (git, " with local changes" if dirty else ""))
    swift, first = benchlib.swift_version()
    info["swift"] = "Swift " + swift if swift else (first or "?")
    info["tar"] = first_line(["tar", "--version"])
    info["gzip"] = first_line(["gzip", "--version"])
    info["sh"] = os.path.realpath("/bin/sh")
    info["python"] = platform.python_version()
    return info


def filesystem_of(path):
    try:
        out = subprocess.run(["df", "-PT", path], stdout=subprocess.PIPE, text=True).stdout.splitlines()[-1]
        return out.split()[1]
    except (OSError, IndexError):
        return "?"


# ---------------------------------------------------------------- the run

def main(argv):
    p = argparse.ArgumentParser(prog="scripts/bench/build.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=15, help="overhead rounds (default 15)")
    p.add_argument("--pack-runs", type=int, default=3, help="packaging rounds (default 3)")
    p.add_argument("--pack-mb", type=int, default=200, help="size of the packed tree in MB (10^6; default 200)")
    p.add_argument("--pack-files", type=int, default=2000, help="files in the packed tree (default 2000)")
    p.add_argument("--output", default=benchlib.DOCS)
    p.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    p.add_argument("--bin-dir", help="use kiln-build from here instead of building")
    p.add_argument("--work-dir", help="make the temporary folder in DIR (default: the system's)")
    p.add_argument("--json", metavar="FILE", help="also write every measurement as JSON")
    opts = p.parse_args(argv)
    if min(opts.runs, opts.pack_runs, opts.pack_mb, opts.pack_files) < 1:
        fail("counts must be at least 1", 64)
    for tool in ("tar", "gzip", "sha256sum", "awk"):
        if not shutil.which(tool):
            fail("%s is not on PATH" % tool)

    began = time.monotonic()
    bin_dir = os.path.abspath(opts.bin_dir) if opts.bin_dir else benchlib.build("kiln-build")
    kiln = os.path.join(bin_dir, "kiln-build")
    if not os.access(kiln, os.X_OK):
        fail("%s is not built" % kiln)

    work = tempfile.mkdtemp(prefix="kiln-bench-build-", dir=opts.work_dir)
    try:
        results, facts = run(opts, kiln, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        say("removed %s" % work)

    info = machine_facts(bin_dir, prebuilt=bool(opts.bin_dir))
    info.update(facts)
    section = render(results, info, opts)
    benchlib.publish(opts, "build", "build", section, {"info": info, "results": results}, began)
    return 0


def run(opts, kiln, work):
    project = os.path.join(work, "project")
    logs = os.path.join(work, "logs")
    out = os.path.join(work, "out")
    os.makedirs(logs)
    os.makedirs(out)
    configs = make_project(project)
    facts = {"filesystem": filesystem_of(work), "load_before": benchlib.load_average()}
    benchlib.warn_if_busy(facts["load_before"])

    job = {"CI_PROJECT_DIR": project, "CI_PROJECT_NAME": APPLICATION, "HOME": work}
    kiln_env = clean_env(job)
    # What kiln-build gives the commands, given to the shell's commands too.
    shell_env = clean_env({"HOME": work, "KILN_VERSION": VERSION, "KILN_COMMIT": COMMIT,
                           "KILN_APPLICATION": APPLICATION})
    everything = BUILD_COMMANDS + TEST_COMMANDS
    shell_loud = " && ".join("{ %s ; }" % run for _, run in everything)
    shell_quiet = " && ".join("{ %s ; }" % run for _, run in quiet(everything))

    durations = {}

    def kiln_case(config):
        def go(log):
            ms = timed([kiln, "--config", configs[config]], kiln_env, project, log)
            inside, document = kiln_commands_seconds(project)
            durations.setdefault(config, []).append([c["durationSeconds"] * 1000 for c in document["commands"]])
            return ms, inside * 1000
        return go

    def shell_case(script):
        def go(log):
            return timed(["/bin/sh", "-c", script], shell_env, project, log), None
        return go

    overhead_cases = [
        ("shell", shell_case(shell_loud)),
        ("kiln", kiln_case("kiln")),
        ("kiln-nojunit", kiln_case("kiln-nojunit")),
        ("shell-quiet", shell_case(shell_quiet)),
        ("kiln-quiet", kiln_case("kiln-quiet")),
        ("sh-true", shell_case("true")),
        ("kiln-true", kiln_case("kiln-true")),
        ("kiln-version", lambda log: (timed([kiln, "--version"], kiln_env, project, log), None)),
    ]

    # Check the sample once (untimed), which also warms the caches.
    say("warm-up: every overhead case once")
    for name, case in overhead_cases:
        case(os.path.join(logs, "warmup-%s.log" % name))
    timed([kiln, "--config", configs["kiln"]], kiln_env, project, os.path.join(logs, "check.log"))
    _, document = kiln_commands_seconds(project)
    counts = document["tests"]["counts"]
    if counts != {"tests": JUNIT_TESTS, "failures": 0, "errors": 0, "skipped": JUNIT_TESTS // SKIP_EVERY}:
        fail("the sample's JUnit report counts %r" % counts)
    with open(os.path.join(logs, "warmup-shell.log"), "rb") as f:
        lines = f.read().count(b"\n")
    if lines != OUTPUT_LINES:
        fail("the sample's commands printed %d lines, expected %d" % (lines, OUTPUT_LINES))
    merged_bytes = os.path.getsize(os.path.join(project, "kiln", "junit.xml"))
    report_bytes = os.path.getsize(os.path.join(project, "reports", "unit", "junit.xml"))
    with open(os.path.join(logs, "warmup-kiln.log"), "rb") as f:
        kiln_log = f.read()
    facts.update({"output_lines": lines, "output_bytes": os.path.getsize(os.path.join(logs, "warmup-shell.log")),
                  "kiln_log_bytes": len(kiln_log), "report_bytes": report_bytes, "merged_bytes": merged_bytes,
                  "counts": counts})

    durations.clear()  # the warm-up's are not counted
    overhead = {name: {"wall_ms": [], "commands_ms": []} for name, _ in overhead_cases}
    for round_ in range(opts.runs):
        shift = round_ % len(overhead_cases)
        order = overhead_cases[shift:] + overhead_cases[:shift]
        say("overhead round %d/%d" % (round_ + 1, opts.runs))
        for name, case in order:
            log = os.path.join(logs, "%s.log" % name)
            if os.path.exists(log):
                os.unlink(log)
            ms, inside = case(log)
            overhead[name]["wall_ms"].append(ms)
            if inside is not None:
                overhead[name]["commands_ms"].append(inside)

    # Packaging.
    say("generating the %d MB tree (%d files)" % (opts.pack_mb, opts.pack_files))
    started = time.monotonic()
    facts["tree"] = make_tree(os.path.join(project, "app"), opts.pack_mb * 1_000_000, opts.pack_files)
    facts["tree"]["seconds"] = round(time.monotonic() - started, 1)
    os.sync()
    kiln_artifact = os.path.join(project, "kiln", "%s-%s.tar.gz" % (APPLICATION, VERSION))
    plain_out = os.path.join(out, "plain.tar.gz")
    same_out = os.path.join(out, "kiln-flags.tar.gz")
    kiln_tar = ("tar --create --file=%s '--use-compress-program=gzip -n -6' --format=gnu --sort=name "
                "--mtime=@%d --owner=0 --group=0 --numeric-owner --mode=a+rX,u+w,go-w --no-acls --no-xattrs "
                "--no-selinux --exclude=./kiln --directory=%s -- ./app" % (same_out, COMMIT_TIME, project))
    plain_env = clean_env({"HOME": work})
    pack_cases = [
        ("tar-czf", lambda log: (timed(["/bin/sh", "-c", "tar czf %s app" % plain_out], plain_env, project, log),
                                 None)),
        ("tar-kiln-flags", lambda log: (timed(["/bin/sh", "-c", kiln_tar], plain_env, project, log), None)),
        ("kiln-pack", kiln_case("kiln-pack")),
        ("kiln-true", kiln_case("kiln-true")),
    ]
    packing = {name: {"wall_ms": [], "commands_ms": []} for name, _ in pack_cases}
    packing["sha256sum"] = {"wall_ms": []}
    digests = {"tar-kiln-flags": set(), "kiln-pack": set()}
    sizes = {}
    for round_ in range(opts.pack_runs):
        shift = round_ % 3
        order = pack_cases[:3][shift:] + pack_cases[:3][:shift] + pack_cases[3:]
        say("packaging round %d/%d" % (round_ + 1, opts.pack_runs))
        for name, case in order:
            for stale in (plain_out, same_out):
                if os.path.exists(stale):
                    os.unlink(stale)
            ms, inside = case(os.path.join(logs, "pack-%s.log" % name))
            packing[name]["wall_ms"].append(ms)
            if inside is not None:
                packing[name]["commands_ms"].append(inside)
            if name == "tar-czf":
                sizes["tar-czf"] = os.path.getsize(plain_out)
            elif name == "tar-kiln-flags":
                sizes["tar-kiln-flags"] = os.path.getsize(same_out)
                digest = subprocess.run(["sha256sum", same_out], stdout=subprocess.PIPE, text=True).stdout.split()[0]
                digests["tar-kiln-flags"].add(digest)
                packing["sha256sum"]["wall_ms"].append(
                    timed(["sha256sum", same_out], plain_env, out, os.path.join(logs, "sha256sum.log")))
            elif name == "kiln-pack":
                _, document = kiln_commands_seconds(project)
                sizes["kiln-pack"] = document["artifact"]["size"]
                digests["kiln-pack"].add(document["artifact"]["sha256"])
                if not os.path.exists(kiln_artifact):
                    fail("kiln-build did not write %s" % kiln_artifact)
    facts["load_after"] = benchlib.load_average()
    facts["sizes"] = sizes
    facts["digests"] = {k: sorted(v) for k, v in digests.items()}
    facts["reproducible"] = len(digests["kiln-pack"]) == 1 and digests["kiln-pack"] == digests["tar-kiln-flags"]
    return {"overhead": overhead, "packing": packing, "command_ms": durations}, facts


# ---------------------------------------------------------------- the section

def paired(a, b):
    """Median of the per-round differences a − b, and of the ratios a / b."""
    return median([x - y for x, y in zip(a, b)]), median([x / y for x, y in zip(a, b) if y > 0])


def render(results, info, opts):
    ov = results["overhead"]
    pk = results["packing"]
    w = {k: v["wall_ms"] for k, v in ov.items()}
    lines = [MARK_START, "## Build stage (scripts/bench/build.py)", ""]
    load = "%.2f before, %.2f after" % (info["load_before"], info["load_after"])
    lines.append(
        "Run %s on %s CPU(s) (%s), %s memory, %s, load average (1 min) %s; Kiln %s (%s, %s), %s, %s, "
        "/bin/sh is %s, Python %s; the project in a temporary folder on %s." % (
            info["date"], info["nproc"], info["cpu"], info["memory"], info["os"], load, info["kiln"],
            info["kiln_build"], info["swift"], info["tar"], info["gzip"], info["sh"], info["python"],
            info["filesystem"]))
    lines.append("")
    busy = benchlib.is_busy(info["load_before"], info["load_after"])
    if busy:
        lines.append("**Warning:** the machine was busy (load average %s on %s CPUs): other work is in these "
                     "numbers, and differences of a few tens of milliseconds are within the noise." % (
                         load, info["nproc"]))
        lines.append("")
    t = info["tree"]
    lines.append(
        "The sample project is generated by the script: three build commands and one test command (`awk` "
        "loops) that print %s lines, %.1f MB, between them (a quarter on stderr), the test command also writing "
        "a JUnit report of %d test cases in %d suites (%d skipped, %.0f KB), `build.junit: reports/**/*.xml`, "
        "and the checkout.json kiln-checkout would have left. kiln-build runs without `GITLAB_CI` (plain log "
        "lines) and with no CI variables but `CI_PROJECT_DIR` and `CI_PROJECT_NAME`. Every process's stdout "
        "and stderr go to a log file (kiln-build streams the commands' output into its stderr, %.1f MB with its "
        "own lines). The shell is `sh -c 'c1 && c2 && c3 && t1'` with the variables kiln-build gives the "
        "commands (`KILN_VERSION`, `KILN_COMMIT`, `KILN_APPLICATION`); it merges no report and packs nothing, "
        "so kiln-build packs a two-file folder here. Each of %d rounds runs every case once, order rotated; "
        "medians, and medians of the per-round differences." % (
            "{:,}".format(info["output_lines"]), info["output_bytes"] / 1e6, info["counts"]["tests"],
            JUNIT_SUITES, info["counts"]["skipped"], info["report_bytes"] / 1e3, info["kiln_log_bytes"] / 1e6,
            opts.runs))
    lines.append("")
    lines.append("| case | runs | wall (ms), median | range (ms) | commands, per build.json (ms) |")
    lines.append("| --- | ---: | ---: | ---: | ---: |")
    labels = [
        ("shell", "`sh -c` the four commands"),
        ("kiln", "kiln-build: the four commands, JUnit merge, tiny package"),
        ("kiln-nojunit", "kiln-build, no `build.junit`"),
        ("shell-quiet", "`sh -c` the four commands, output to /dev/null"),
        ("kiln-quiet", "kiln-build, the commands' output to /dev/null, no `build.junit`"),
        ("sh-true", "`sh -c true`"),
        ("kiln-true", "kiln-build, one `true` command, tiny package"),
        ("kiln-version", "`kiln-build --version` (the process alone)"),
    ]
    for key, label in labels:
        inside = ov[key]["commands_ms"]
        lines.append("| %s | %d | %s | %s–%s | %s |" % (
            label, len(w[key]), fmt_ms(median(w[key])), fmt_ms(min(w[key])), fmt_ms(max(w[key])),
            fmt_ms(median(inside)) if inside else "–"))
    lines.append("")
    c = {k: v["commands_ms"] for k, v in ov.items()}
    total, total_ratio = paired(w["kiln"], w["shell"])
    outside = {k: [a - b for a, b in zip(w[k], c[k])] for k in ("kiln", "kiln-nojunit", "kiln-quiet", "kiln-true")}
    merge, _ = paired(outside["kiln"], outside["kiln-nojunit"])
    running, running_ratio = paired(c["kiln"], w["shell"])
    per_command = median([(a - (x - y)) / 4 for a, x, y in zip(c["kiln-quiet"], w["shell-quiet"], w["sh-true"])])
    n = len(BUILD_COMMANDS) + len(TEST_COMMANDS)
    lines.append("What kiln-build adds (ms; medians of the per-round differences; \"commands\" is the sum of the "
                 "commands' `durationSeconds` in build.json, from spawn to the end of their output):")
    lines.append("")
    lines.append("| part | how it is measured | ms | ratio |")
    lines.append("| --- | --- | ---: | ---: |")
    lines.append("| **everything** (start-up, %d commands, %s lines, %s-test merge, tiny package) | "
                 "kiln-build − shell, wall | **%s** | **%s** |" % (
                     n, "{:,}".format(info["output_lines"]), "{:,}".format(info["counts"]["tests"]),
                     fmt_ms(total), ratio(total_ratio, 1)))
    lines.append("| start-up and fixed cost (arguments, kiln.yml, checkout.json, a tiny package, build.json) | "
                 "kiln-build `true`: wall − commands | %s | – |" % fmt_ms(median(outside["kiln-true"])))
    lines.append("| of which the process alone (Swift runtime, Foundation, argument parsing) | "
                 "`kiln-build --version` − `sh -c true` | %s | – |" % fmt_ms(paired(w["kiln-version"], w["sh-true"])[0]))
    lines.append("| everything outside the commands, full run | kiln-build: wall − commands | %s | – |" %
                 fmt_ms(median(outside["kiln"])))
    lines.append("| of which the JUnit merge, %s tests | (wall − commands) with `build.junit` − without | %s | – |" % (
        "{:,}".format(info["counts"]["tests"]), fmt_ms(merge)))
    lines.append("| running the %d commands | kiln-build commands − shell wall | %s | %s |" % (
        n, fmt_ms(running), ratio(running_ratio, 1)))
    def best(config):
        """The sum over the commands of each one's fastest run: without the runner's 100 ms waits."""
        runs = results["command_ms"][config][:len(w[config])]
        return sum(min(run[i] for run in runs) for i in range(len(runs[0])))

    best_running = best("kiln") - min(w["shell"])
    best_streaming = (best("kiln-nojunit") - best("kiln-quiet")) - (min(w["shell"]) - min(w["shell-quiet"]))
    lines.append("| running the %d commands, best of %d | Σ each command's fastest run − the shell's fastest (biased low: a sum of minima) | %s | %s |" % (
        n, len(w["shell"]), fmt_ms(best_running), ratio(best("kiln"), min(w["shell"]))))
    lines.append("| of which streaming %s lines, best of %d | the same, (loud − quiet) kiln-build − (loud − quiet) shell "
                 "| %s | – |" % ("{:,}".format(info["output_lines"]), len(w["shell"]), fmt_ms(best_streaming)))
    lines.append("| one command that prints nothing | (kiln-build quiet commands − (shell quiet − `sh -c true`)) / %d "
                 "| %s | – |" % (n, fmt_ms(per_command)))
    lines.append("")
    silent = [d for k in ("kiln-quiet", "kiln-true") for run in results["command_ms"].get(k, []) for d in run]
    slow = sum(1 for d in silent if d >= 100)
    lines.append(
        "%d of %d commands that print nothing (the quiet and `true` runs) took 100 ms or more, the rest a few ms: "
        "the process runner (`ProcessRunner.run`) polls with a 100 ms timeout, and once both pipes have closed it "
        "polls no descriptor at all, so when the child has not yet been reaped at that moment the loop sleeps the "
        "whole 100 ms before looking again. It is in every command Kiln runs (packaging's `tar` too), "
        "0 or 100 ms at random, and is most of the per-command cost and of the run-to-run spread above." % (
            slow, len(silent)))
    lines.append("")

    # Packaging.
    p = {k: v["wall_ms"] for k, v in pk.items()}
    sizes = info["sizes"]
    lines.append(
        "Packaging: a generated tree of %s files in %d folders, %.0f MB (%.0f%% text: source, JSON, logs; "
        "%.0f%% random bytes: images, archives; %s B to %.1f MB a file). `tar czf` is GNU tar with gzip's "
        "default level (6); Kiln runs GNU tar with `--sort=name`, `--format=gnu`, one `--mtime`, owner and "
        "group 0, modes `a+rX,u+w,go-w`, no ACLs or extended attributes, and `gzip -n -6` (reproducible: the "
        "same files give the same bytes), then hashes the result (SHA-256) for build.json; the same tar command "
        "line run from a shell is the middle row. kiln-build packs with one `true` command; its packaging part "
        "is kiln-build − kiln-build with a tiny package (same round). %d rounds, order rotated; medians." % (
            "{:,}".format(t["files"]), t["folders"], t["bytes"] / 1e6, 100.0 * t["text_bytes"] / t["bytes"],
            100.0 * t["random_bytes"] / t["bytes"], "{:,}".format(t["smallest"]), t["largest"] / 1e6,
            opts.pack_runs))
    lines.append("")
    lines.append("| case | runs | wall (ms), median | range (ms) | / `tar czf` | output (MB) |")
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    ref = p["tar-czf"]
    pack_part = [a - b for a, b in zip(p["kiln-pack"], pk["kiln-true"]["wall_ms"])]
    rows = [
        ("`tar czf out.tar.gz app`", p["tar-czf"], "%.1f" % (sizes["tar-czf"] / 1e6)),
        ("Kiln's tar command line, from a shell", p["tar-kiln-flags"], "%.1f" % (sizes["tar-kiln-flags"] / 1e6)),
        ("`sha256sum` of that output", p["sha256sum"], "–"),
        ("kiln-build packing `app/` (whole run)", p["kiln-pack"], "%.1f" % (sizes["kiln-pack"] / 1e6)),
        ("kiln-build's packaging part (− kiln-build with a tiny package)", pack_part, "–"),
    ]
    for label, values, size in rows:
        lines.append("| %s | %d | %s | %s–%s | %s | %s |" % (
            label, len(values), fmt_ms(median(values)), fmt_ms(min(values)), fmt_ms(max(values)),
            ratio(median([a / b for a, b in zip(values, ref)]), 1), size))
    lines.append("")
    lines.append("Ratios are medians of the per-round ratios. kiln-build's artifact was %s (SHA-256 %s…)." % (
        "the same in every round and byte-for-byte the tar command line's output from the shell"
        if info["reproducible"] else "**not** the same in every round or not the shell's output",
        (info["digests"]["kiln-pack"] or ["?"])[0][:16]))
    lines.append("")
    lines.append("Re-run with `scripts/bench/build.py` (a few minutes; `--help` for the options).")
    lines.append(MARK_END)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    # Nothing from .venv is needed; it runs under it when there is one, as the other drivers (house style).
    benchlib.run_main(main, __file__, setup=False)
