#!/usr/bin/env python3
"""scripts/bench/checkout.py: Kiln's checkout strategies against what gitlab-runner does with git.

    scripts/bench/checkout.py [--runs 5] [--output docs/benchmarks.md | --no-write]
                              [--work-dir DIR] [--bin-dir DIR] [--json FILE] [--keep-work]

About 12 minutes on a 2-CPU machine (the first run adds ~20 s to generate the repository).

One command. It

  1. builds kiln-checkout in release (`swift build -c release --scratch-path
     .build-bench-checkout --product kiln-checkout`; `--bin-dir` skips it);
  2. generates a large repository with `git fast-import` (5,100 commits,
     20,300 files, ~130 MB packed: text files edited over the history and
     binary assets rewritten with random bytes in every commit), repacks it
     (`repack -a -d -f -b`, as a server would hold it) and caches it under
     `.bench-data/checkout-v<N>/` (gitignored; keyed by generator version),
     so a second run skips this;
  3. serves it over smart HTTP with Basic auth on 127.0.0.1
     (`scripts/standin git`, also GitLab's archive API), `main` at commit
     5,000 ("A") first, to make the warm runner's state (a Kiln cache made by
     `kiln-checkout --cache-dir` at A), then `main` at commit 5,100 ("B");
  4. runs, per round (order rotated each round), all against B:
       kiln clone      KILN_GIT_STRATEGY=clone into an empty folder
       kiln archive    KILN_GIT_STRATEGY=archive (GitLab archive API)
       runner depth20  git init; git remote add; git fetch --depth 20 --prune
                       with the pipeline and branch refspecs; git checkout -f;
                       git clean -ffdx  (gitlab-runner's cold sequence)
       git clone       git clone (full history)
       kiln fetch warm KILN_GIT_STRATEGY=fetch --cache-dir, from a copy of the
                       warm state (100 new commits to receive)
       git fetch warm  git fetch (same refspecs) + checkout -f + clean -ffdx
                       into a copy of the same warm repository
     once with the build folders on disk (the system's temporary folder, as
     on a runner) and once in memory (/dev/shm, tmpfs: the tools' own costs
     without the file system; `--work-dir DIR` for one place only),
     measuring wall time, bytes the server sent (its /__kiln_git/stats, the
     same measure for every tool) and peak RSS (`/usr/bin/time -f %M`, the
     largest process of each command including its children);
  5. writes medians and paired ratios to the "Checkout" section of
     docs/benchmarks.md (between `<!-- bench:checkout:start -->` and
     `<!-- bench:checkout:end -->`; the rest of the file is kept), and the raw
     numbers to `.bench-data/checkout-last-run.json` (or `--json FILE`).

Temporary folders are removed and the git server stopped at the end, also on
failure or Ctrl-C. Nothing leaves 127.0.0.0/8: proxies are unset and the only
URL is the loopback stand-in.
"""
import argparse
import base64
import datetime
import json
import os
import platform
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import benchlib
from benchlib import ROOT, median, say

benchlib.configure("checkout", clock=True)
GEN_VERSION = 1
DATA = os.path.join(ROOT, ".bench-data")
MARK_START, MARK_END = benchlib.markers("checkout")

# The generated repository.
DIRS = 200                 # src/mNNN/
FILES_PER_DIR = 101        # 20,200 text files
ASSETS = 100               # assets/aNN.bin, rewritten with random bytes
BASE_COMMITS = 5000        # "A": the warm runner's state
NEW_COMMITS = 100          # "B" = A + 100: the pipeline's commit
PROJECT = "group/big"
USER = "gitlab-ci-token"
PIPELINE_A, PIPELINE_B = "1001", "1002"
DEPTH = 20

CASES = ["kiln-clone", "kiln-archive", "runner-depth20", "git-clone", "kiln-fetch-warm", "git-fetch-warm"]
LABEL = {
    "kiln-clone": "Kiln clone (cold)",
    "kiln-archive": "Kiln archive (cold)",
    "runner-depth20": "runner: git fetch --depth 20 (cold)",
    "git-clone": "git clone, full (cold)",
    "kiln-fetch-warm": "Kiln fetch --cache-dir (warm, +100 commits)",
    "git-fetch-warm": "git fetch (warm, same clone, +100 commits)",
}


def clean_env(extra=None):
    """The environment every measured command gets: no proxies, no user or
    system git config, no prompts."""
    env = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}
    env.update(extra or {})
    return benchlib.clean_env(drop_prefixes=("GIT_", "CI_", "KILN_", "GITLAB_"), extra=env)


def git(*args, cwd=None, env=None, capture=True, check=True):
    r = subprocess.run(["git"] + list(args), cwd=cwd, env=env or clean_env({"HOME": DATA}),
                       stdout=subprocess.PIPE if capture else subprocess.DEVNULL, stderr=subprocess.PIPE)
    if check and r.returncode != 0:
        raise RuntimeError("git %s failed (%d): %s" % (" ".join(args[:3]), r.returncode, r.stderr.decode(errors="replace")[-2000:]))
    return r.stdout.decode().strip() if capture else ""


# ---------------------------------------------------------------- generation

def generate(repo):
    """Writes the repository with git fast-import. Deterministic: the same
    generator version gives the same commits."""
    rng = random.Random(0x6B696C6E + GEN_VERSION)
    syll = ["ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zi", "po", "qu", "ex", "an", "or", "il", "ut"]
    vocab = ["".join(rng.choice(syll) for _ in range(rng.randint(1, 4))) for _ in range(3000)]
    vocab += ["func", "let", "var", "return", "if", "else", "for", "in", "struct", "(", ")", "{", "}", "=", "+"]

    def line():
        return (" ".join(rng.choices(vocab, k=rng.randint(4, 14))) + "\n").encode()

    def text_file():
        return b"".join(line() for _ in range(rng.randint(10, 30)))

    os.makedirs(repo)
    git("init", "-q", "--bare", repo)
    git("symbolic-ref", "HEAD", "refs/heads/main", cwd=repo)
    proc = subprocess.Popen(["git", "fast-import", "--quiet", "--done"], cwd=repo, stdin=subprocess.PIPE,
                            env=clean_env({"HOME": DATA}))
    out = proc.stdin
    texts = {}
    t0 = 1_600_000_000
    total = BASE_COMMITS + NEW_COMMITS

    def blob_cmd(path, data):
        out.write(b"M 100644 inline %s\ndata %d\n" % (path.encode(), len(data)))
        out.write(data)
        out.write(b"\n")

    for i in range(1, total + 1):
        changes = []
        if i <= DIRS:
            d = i - 1
            for f in range(FILES_PER_DIR):
                path = "src/m%03d/f%03d.txt" % (d, f)
                texts[path] = text_file()
                changes.append((path, texts[path]))
            if d < ASSETS:
                changes.append(("assets/a%02d.bin" % d, rng.randbytes(32 * 1024)))
            message = "Add module m%03d" % d
        else:
            for _ in range(4):
                path = "src/m%03d/f%03d.txt" % (rng.randrange(DIRS), rng.randrange(FILES_PER_DIR))
                lines = texts[path].split(b"\n")
                pos = rng.randrange(len(lines))
                if rng.random() < 0.3 and len(lines) > 5:
                    lines[pos] = line().rstrip(b"\n")
                else:
                    lines.insert(pos, line().rstrip(b"\n"))
                texts[path] = b"\n".join(lines)
                changes.append((path, texts[path]))
            changes.append(("assets/a%02d.bin" % rng.randrange(ASSETS), rng.randbytes(rng.randint(16, 32) * 1024)))
            message = "Change %d: %s" % (i, " ".join(rng.choices(vocab, k=6)))
        when = t0 + i * 900
        msg = message.encode()
        out.write(b"commit refs/heads/main\nmark :%d\n" % i)
        out.write(b"author Bench Author <bench@example.invalid> %d +0000\n" % when)
        out.write(b"committer Bench Author <bench@example.invalid> %d +0000\n" % when)
        out.write(b"data %d\n%s\n" % (len(msg), msg))
        if i > 1:
            out.write(b"from :%d\n" % (i - 1))
        for path, data in changes:
            blob_cmd(path, data)
        out.write(b"\n")
        if i % 500 == 0:
            say("generating: %d/%d commits" % (i, total))
    out.write(b"reset refs/bench/b\nfrom :%d\n\n" % total)
    out.write(b"reset refs/bench/a\nfrom :%d\n\n" % BASE_COMMITS)
    out.write(b"reset refs/heads/main\nfrom :%d\n\n" % BASE_COMMITS)
    out.write(b"reset refs/pipelines/%s\nfrom :%d\n\n" % (PIPELINE_A.encode(), BASE_COMMITS))
    out.write(b"reset refs/pipelines/%s\nfrom :%d\n\n" % (PIPELINE_B.encode(), total))
    out.write(b"done\n")
    out.close()
    if proc.wait() != 0:
        raise RuntimeError("git fast-import failed")
    # Served as a GitLab server holds it: one pack with a bitmap. Random
    # assets are not delta candidates (saves minutes of futile search).
    with open(os.path.join(repo, "info", "attributes"), "w") as f:
        f.write("*.bin -delta\n")
    git("config", "uploadpack.allowAnySHA1InWant", "true", cwd=repo)
    git("config", "repack.writeBitmaps", "true", cwd=repo)
    say("repacking (git repack -a -d -f -b)")
    git("repack", "-q", "-a", "-d", "-f", "-b", "--window=10", "--depth=50", cwd=repo)
    git("prune", cwd=repo)


def repo_stats(repo):
    a = git("rev-parse", "refs/bench/a", cwd=repo)
    b = git("rev-parse", "refs/bench/b", cwd=repo)
    files = 0
    tip_bytes = 0
    for row in git("ls-tree", "-r", "-l", b, cwd=repo).splitlines():
        files += 1
        tip_bytes += int(row.split()[3])
    counts = dict(l.split(": ", 1) for l in git("count-objects", "-v", cwd=repo).splitlines())
    return {
        "generator": GEN_VERSION, "a": a, "b": b,
        "commits_a": int(git("rev-list", "--count", a, cwd=repo)),
        "commits_b": int(git("rev-list", "--count", b, cwd=repo)),
        "files": files, "tip_bytes": tip_bytes,
        "packed_bytes": int(counts["size-pack"]) * 1024, "objects": int(counts["in-pack"]),
        "loose": int(counts["count"]),
    }


def prepare_repository():
    base = os.path.join(DATA, "checkout-v%d" % GEN_VERSION)
    serve_root = os.path.join(base, "root")
    repo = os.path.join(serve_root, PROJECT + ".git")
    ready = os.path.join(base, "READY.json")
    if os.path.exists(ready):
        with open(ready) as f:
            stats = json.load(f)
        say("using the cached repository %s (generator v%d)" % (os.path.relpath(repo, ROOT), GEN_VERSION))
        git("symbolic-ref", "HEAD", "refs/heads/main", cwd=repo)
        return serve_root, repo, stats
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(serve_root)
    say("generating the repository in %s (once; a few minutes)" % os.path.relpath(repo, ROOT))
    started = time.monotonic()
    generate(repo)
    stats = repo_stats(repo)
    stats["generation_seconds"] = round(time.monotonic() - started, 1)
    with open(ready + ".tmp", "w") as f:
        json.dump(stats, f, indent=2)
    os.rename(ready + ".tmp", ready)
    say("generated in %.0fs: %d commits, %d files, %.1f MB packed" % (
        stats["generation_seconds"], stats["commits_b"], stats["files"], stats["packed_bytes"] / 1e6))
    return serve_root, repo, stats



# ---------------------------------------------------------------- server

class GitServer:
    """`scripts/standin git` on 127.0.0.1 (a benchlib stand-in; stopped by closing its stdin)."""

    def __init__(self, root, password, log_path):
        self.standin = benchlib.start_standin(
            "git", ["--root", root, "--user", USER, "--password", password, "--host", "127.0.0.1"],
            clean_env({"HOME": os.path.dirname(log_path), "KILN_STANDIN_NO_VENV": "1"}), log_path, grace=15)
        self.url = self.standin.url

    def stats(self):
        return benchlib.http_json(self.url + "/__kiln_git/stats", timeout=30)

    def sent(self):
        out = self.stats()["bytes_out"]
        return sum(v for k, v in out.items() if k != "stats")

    def stop(self):
        self.standin.stop()


# ---------------------------------------------------------------- measuring

class Failure(Exception):
    pass


def timed(cmd, env, log_path, cwd=None):
    """Runs one command under /usr/bin/time: (wall seconds, peak RSS KiB).
    The RSS is the largest of the process and the children it waited for."""
    fd, tfile = tempfile.mkstemp(prefix="time-", dir=os.path.dirname(log_path))
    os.close(fd)
    with open(log_path, "ab") as log:
        log.write(("$ %s\n" % " ".join(cmd)).encode())
        log.flush()
        started = time.monotonic()
        # Its own process group, so that a failure or Ctrl-C stops the whole command.
        proc = subprocess.Popen(["/usr/bin/time", "-o", tfile, "-f", "%e %M"] + cmd, env=env, cwd=cwd,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        try:
            returncode = benchlib.wait_or_kill(proc, 1800)
        except BaseException:
            os.unlink(tfile)
            raise
        wall = time.monotonic() - started
    with open(tfile) as f:
        last = f.read().strip().splitlines()[-1]
    os.unlink(tfile)
    if returncode != 0:
        with open(log_path, "rb") as f:
            tail = f.read()[-3000:].decode(errors="replace")
        raise Failure("%s exited %d:\n%s" % (cmd[0] if not cmd[0].endswith("kiln-checkout") else "kiln-checkout",
                                             returncode, tail))
    return wall, int(last.split()[1])


def count_files(top):
    n = 0
    for dirpath, dirnames, filenames in os.walk(top):
        if dirpath == top:
            dirnames[:] = [d for d in dirnames if d not in (".git", "kiln")]
            filenames = [f for f in filenames if f != ".git"]
        n += len(filenames)
    return n


class Bench:
    def __init__(self, binary, server, password, stats, work):
        self.binary = binary
        self.server = server
        self.password = password
        self.stats = stats
        self.work = work
        self.home = os.path.join(work, "home")
        os.makedirs(self.home, exist_ok=True)
        self.repo_url = server.url + "/" + PROJECT + ".git"
        self.logs = os.path.join(work, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.refspecs = ["+refs/pipelines/%s:refs/pipelines/%s" % (PIPELINE_B, PIPELINE_B),
                         "+refs/heads/main:refs/remotes/origin/main"]
        self.warm_pristine = os.path.join(work, "warm-pristine")
        self.warm = os.path.join(work, "warm")

    # environments --------------------------------------------------------
    def kiln_env(self, target, strategy, commit, pipeline):
        return clean_env({
            "HOME": self.home, "CI_PROJECT_DIR": target, "CI_REPOSITORY_URL": self.repo_url,
            "CI_COMMIT_SHA": commit, "CI_COMMIT_REF_NAME": "main", "CI_JOB_TOKEN": self.password,
            "CI_PIPELINE_ID": pipeline, "CI_SERVER_URL": self.server.url, "CI_PROJECT_PATH": PROJECT,
            "KILN_GIT_STRATEGY": strategy})

    def git_env(self):
        token = base64.b64encode(("%s:%s" % (USER, self.password)).encode()).decode()
        # The credentials go through the environment: never on a command line or in .git/config.
        return clean_env({"HOME": self.home, "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
                          "GIT_CONFIG_VALUE_0": "Authorization: Basic " + token})

    # one measured case ----------------------------------------------------
    def measure(self, name, steps, target, log_path, check_head=None):
        os.sync()
        before = self.server.sent()
        wall, rss = 0.0, 0
        for cmd, env, cwd in steps:
            w, m = timed(cmd, env, log_path, cwd=cwd)
            wall += w
            rss = max(rss, m)
        sent = self.server.sent() - before
        files = count_files(target)
        if files != self.stats["files"]:
            raise Failure("%s: %d files in %s, expected %d" % (name, files, target, self.stats["files"]))
        if check_head:
            head = check_head()
            if head != self.stats["b"]:
                raise Failure("%s: HEAD is %s, expected %s" % (name, head, self.stats["b"]))
        return {"wall": wall, "rss_kib": rss, "bytes": sent}

    def kiln_head(self, target):
        with open(os.path.join(target, "kiln", "checkout.json")) as f:
            doc = json.load(f)
        self.last_kiln = doc
        return doc["commit"]

    def run_case(self, name, round_no):
        log_path = os.path.join(self.logs, "%s-%d.log" % (name, round_no))
        b = self.stats["b"]
        target = os.path.join(self.work, "t-" + name)
        shutil.rmtree(target, ignore_errors=True)
        self.last_kiln = None
        try:
            if name in ("kiln-clone", "kiln-archive"):
                os.makedirs(target)
                strategy = name.split("-", 1)[1]
                env = self.kiln_env(target, strategy, b, PIPELINE_B)
                result = self.measure(name, [([self.binary], env, target)], target, log_path,
                                      check_head=(lambda: self.kiln_head(target)) if strategy == "clone" else None)
                if strategy == "archive":
                    self.kiln_head(target)
            elif name == "runner-depth20":
                env = self.git_env()
                steps = [
                    (["git", "init", "-q", target], env, self.work),
                    (["git", "remote", "add", "origin", self.repo_url], env, target),
                    (["git", "fetch", "--depth", str(DEPTH), "--prune", "--quiet", "origin"] + self.refspecs, env, target),
                    (["git", "checkout", "-f", "-q", b], env, target),
                    (["git", "clean", "-ffdx", "-q"], env, target),
                ]
                result = self.measure(name, steps, target, log_path,
                                      check_head=lambda: git("rev-parse", "HEAD", cwd=target))
            elif name == "git-clone":
                env = self.git_env()
                result = self.measure(name, [(["git", "clone", "-q", self.repo_url, target], env, self.work)],
                                      target, log_path, check_head=lambda: git("rev-parse", "HEAD", cwd=target))
            elif name in ("kiln-fetch-warm", "git-fetch-warm"):
                self.restore_warm()
                cache, proj = os.path.join(self.warm, "cache"), os.path.join(self.warm, "proj")
                target = proj
                if name == "kiln-fetch-warm":
                    env = self.kiln_env(proj, "fetch", b, PIPELINE_B)
                    result = self.measure(name, [([self.binary, "--cache-dir", cache], env, proj)], proj, log_path,
                                          check_head=lambda: self.kiln_head(proj))
                else:
                    env = self.git_env()
                    g = ["git", "--git-dir", cache, "--work-tree", proj]
                    steps = [
                        (g + ["fetch", "--prune", "--quiet", "origin"] + self.refspecs, env, proj),
                        (g + ["checkout", "-f", "-q", b], env, proj),
                        (g + ["clean", "-ffdx", "-q"], env, proj),
                    ]
                    result = self.measure(name, steps, proj, log_path,
                                          check_head=lambda: git("--git-dir", cache, "rev-parse", "HEAD"))
            else:
                raise ValueError(name)
        finally:
            shutil.rmtree(target, ignore_errors=True)
            shutil.rmtree(self.warm, ignore_errors=True)
        if self.last_kiln is not None:
            result["kiln_bytes_received"] = self.last_kiln.get("bytesReceived")
            result["kiln_phases"] = self.last_kiln.get("phases")
        return result

    # the warm runner --------------------------------------------------------
    def make_warm_state(self, served_repo):
        """A Kiln cache (--cache-dir) and its work tree at commit A, made by
        Kiln's fetch strategy while the server's main is at A. Kept pristine;
        each warm case runs on a fresh copy at the same paths."""
        a = self.stats["a"]
        git("update-ref", "refs/heads/main", a, cwd=served_repo)
        shutil.rmtree(self.warm, ignore_errors=True)
        cache, proj = os.path.join(self.warm, "cache"), os.path.join(self.warm, "proj")
        os.makedirs(proj)
        log_path = os.path.join(self.logs, "warm-state.log")
        env = self.kiln_env(proj, "fetch", a, PIPELINE_A)
        wall, _ = timed([self.binary, "--cache-dir", cache], env, log_path, cwd=proj)
        shutil.rmtree(os.path.join(proj, "kiln"))
        if git("--git-dir", cache, "rev-parse", "HEAD") != a:
            raise Failure("the warm state is not at commit A")
        shutil.rmtree(self.warm_pristine, ignore_errors=True)
        os.rename(self.warm, self.warm_pristine)
        git("update-ref", "refs/heads/main", self.stats["b"], cwd=served_repo)
        return wall

    def restore_warm(self):
        shutil.rmtree(self.warm, ignore_errors=True)
        subprocess.run(["cp", "-a", self.warm_pristine, self.warm], check=True)
        # A warm runner's index matches its files; a copy changes inodes and
        # ctimes, so refresh it (untimed) for both tools alike.
        git("--git-dir", os.path.join(self.warm, "cache"), "--work-tree", os.path.join(self.warm, "proj"),
            "update-index", "-q", "--refresh", cwd=os.path.join(self.warm, "proj"), check=False)


# ---------------------------------------------------------------- reporting

def sh(cmd):
    return benchlib.run_text(cmd, env=clean_env({"HOME": DATA}))


def fs_type(path):
    """The file system of the mount that holds path (the last of stacked mounts)."""
    lines = sh(["findmnt", "-n", "-o", "FSTYPE", "--target", path]).splitlines()
    return lines[-1].strip() if lines else sh(["stat", "-f", "-c", "%T", path])


def machine_facts(binary):
    machine = benchlib.machine_facts()
    head, dirty = benchlib.git_head(untracked=False, env=clean_env({"HOME": DATA}))
    return {
        "nproc": machine["nproc"], "cpu": machine["cpu"], "memory_gib": machine["memory_gib"],
        "kernel": machine["kernel"], "git": sh(["git", "--version"]).replace("git version ", ""),
        "libgit2": sh(["dpkg-query", "-W", "-f", "${Version}", "libgit2-1.5"]) or sh(["pkg-config", "--modversion", "libgit2"]),
        "kiln": sh([binary, "--version"]), "swift": benchlib.swift_version()[1],
        "commit": head + (" with local changes" if dirty else ""),
        "python": platform.python_version(),
    }


def summarize(results):
    out = {}
    for case, rows in results.items():
        out[case] = {
            "runs": len(rows),
            "wall_median": median([r["wall"] for r in rows]), "wall_min": min(r["wall"] for r in rows),
            "wall_max": max(r["wall"] for r in rows),
            "bytes_median": median([r["bytes"] for r in rows]),
            "rss_median_kib": median([r["rss_kib"] for r in rows]),
        }
    return out


COMPARISONS = [
    ("kiln-clone", "runner-depth20"),
    ("kiln-archive", "runner-depth20"),
    ("kiln-clone", "git-clone"),
    ("kiln-archive", "git-clone"),
    ("runner-depth20", "git-clone"),
    ("kiln-fetch-warm", "git-fetch-warm"),
    ("kiln-fetch-warm", "runner-depth20"),
]


def paired(results, x, y, key):
    n = min(len(results[x]), len(results[y]))
    ratios = [results[x][i][key] / results[y][i][key] for i in range(n) if results[y][i][key]]
    return median(ratios) if ratios else float("nan")


def ratio_table(results):
    return {"%s/%s" % (x, y): {k: paired(results, x, y, k) for k in ("wall", "bytes", "rss_kib")}
            for x, y in COMPARISONS}


def aims(ratios):
    fetch_vs_git = ratios["kiln-fetch-warm/git-fetch-warm"]["wall"]
    fetch_vs_cold = ratios["kiln-fetch-warm/runner-depth20"]["wall"]
    cold = min(("kiln-clone", ratios["kiln-clone/runner-depth20"]["wall"]),
               ("kiln-archive", ratios["kiln-archive/runner-depth20"]["wall"]), key=lambda t: t[1])
    return [
        ("warm: Kiln fetch into its cache no slower than git fetch into the same clone",
         "%.2f× (aim ≤ 1.0×)" % fetch_vs_git, fetch_vs_git <= 1.0),
        ("warm: Kiln fetch into its cache under a third of the runner's cold sequence",
         "%.2f× (aim < 0.33×)" % fetch_vs_cold, fetch_vs_cold < 1 / 3),
        ("cold: Kiln's fastest strategy (%s) within 1.2× of the runner's depth-20 fetch" % cold[0].split("-")[1],
         "%.2f× (aim ≤ 1.2×)" % cold[1], cold[1] <= 1.2),
    ]


def fmt_s(x):
    return benchlib.fmt_number(x, ((100, 0), (0, 2)))


def fmt_ratio(x):
    return benchlib.fmt_number(x, ((10, 1), (0, 2)), "×")


def describe_place(place):
    kind = "in memory" if place["work_fs"] == "tmpfs" else "on disk"
    return "Build folders %s (`%s`, %s)" % (kind, place["work_dir"], place["work_fs"] or "?")


def render_place(place, runs):
    results = place["results"]
    s = summarize(results)
    r = ratio_table(results)
    L = ["### %s" % describe_place(place), ""]
    L.append("| case | runs | wall (s), median | wall range (s) | MB sent, median | peak RSS (MiB), median |")
    L.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    for case in CASES:
        x = s[case]
        L.append("| %s | %d | %s | %s–%s | %.1f | %.0f |" % (
            LABEL[case], x["runs"], fmt_s(x["wall_median"]), fmt_s(x["wall_min"]), fmt_s(x["wall_max"]),
            x["bytes_median"] / 1e6, x["rss_median_kib"] / 1024))
    L.append("")
    L.append("Kiln's own phases (median seconds, from `checkout.json`): %s." % "; ".join(
        "%s: %s" % (LABEL[case].split(" (")[0] + (" warm" if "warm" in case else ""), ", ".join(
            "%s %s" % (ph, fmt_s(median([row["kiln_phases"].get(ph, 0) for row in results[case]])))
            for ph in ("prepare", "fetch", "download", "checkout", "unpack", "clean")
            if any(ph in (row.get("kiln_phases") or {}) for row in results[case])))
        for case in CASES if case.startswith("kiln") and all(row.get("kiln_phases") for row in results[case])))
    L.append("")
    L.append("Ratios (median of the %d per-round ratios):" % runs)
    L.append("")
    L.append("| comparison | wall | bytes sent | peak RSS |")
    L.append("| --- | ---: | ---: | ---: |")
    for x, y in COMPARISONS:
        q = r["%s/%s" % (x, y)]
        L.append("| %s / %s | %s | %s | %s |" % (LABEL[x], LABEL[y], fmt_ratio(q["wall"]), fmt_ratio(q["bytes"]),
                                               fmt_ratio(q["rss_kib"])))
    L.append("")
    L.append("Aims:")
    L.append("")
    for text, value, met in aims(r):
        L.append("- %s: %s, **%s**" % (text, value, "met" if met else "not met"))
    return L


def render(facts, stats, places, runs, started_at):
    L = []
    L.append("## Checkout (scripts/bench/checkout.py)")
    L.append("")
    L.append("Run %s UTC on %d CPU(s) (%s), %d GiB memory, Linux %s; Kiln %s (release build of %s, %s), "
             "libgit2 %s, git %s, Python %s." % (
                 started_at, facts["nproc"], facts["cpu"], facts["memory_gib"], facts["kernel"],
                 facts["kiln"].split()[-1] if facts["kiln"] else "?", facts["commit"], facts["swift"],
                 facts["libgit2"], facts["git"], facts["python"]))
    L.append("")
    L.append("The repository is generated by the script (`git fast-import`, generator v%d, cached in `.bench-data/`): "
             "%s commits (the warm runner has the first %s), %s files, %.1f MB packed in one pack with a bitmap "
             "(%s objects), %.1f MB of files at the tip. Every commit edits four text files and rewrites one of "
             "%d binary assets with random bytes, so most of the pack is history the tip does not need. "
             "It is served by `scripts/standin git` (`git http-backend` behind Basic auth, GitLab's archive "
             "API with `git archive --format=tar.gz`) on 127.0.0.1, `uploadpack.allowAnySHA1InWant` on." % (
                 stats["generator"], format(stats["commits_b"], ","), format(stats["commits_a"], ","),
                 format(stats["files"], ","), stats["packed_bytes"] / 1e6, format(stats["objects"], ","),
                 stats["tip_bytes"] / 1e6, ASSETS))
    L.append("")
    L.append("Each of %d rounds runs every case once (order rotated between rounds), on the same commit with the "
             "same job variables (`CI_REPOSITORY_URL`, `CI_COMMIT_SHA`, `CI_COMMIT_REF_NAME=main`, `CI_PIPELINE_ID`, "
             "`CI_JOB_TOKEN`, `CI_SERVER_URL`, `CI_PROJECT_PATH`). The runner's cold sequence is what gitlab-runner "
             "does for a new build folder with `GIT_DEPTH: 20`: `git init`, `git remote add origin`, "
             "`git fetch --depth 20 --prune origin +refs/pipelines/<id>:refs/pipelines/<id> "
             "+refs/heads/main:refs/remotes/origin/main`, `git checkout -f`, `git clean -ffdx`. The warm cases start "
             "from a fresh copy of one repository at commit %s (made once per place by `kiln-checkout --cache-dir`; "
             "index refreshed after the copy; untimed) and receive the %d newer commits: Kiln with "
             "`KILN_GIT_STRATEGY=fetch --cache-dir`, git with `git fetch --prune` (same refspecs), `git checkout -f` "
             "and `git clean -ffdx` in that same repository. Wall time is the whole sequence; bytes are what the "
             "server sent (its `/__kiln_git/stats`, the same measure for every tool); peak memory is the largest "
             "RSS of any process of the sequence (`/usr/bin/time -f %%M`). Medians, and the range: this machine's "
             "disk is noisy." % (runs, format(stats["commits_a"], ","), NEW_COMMITS))
    L.append("")
    L.append("The whole set runs twice: with the build folders on disk, as on a runner, and in memory (tmpfs), "
             "which takes the file system out and leaves the tools' own costs (network, packing, indexing, "
             "checkout). On this machine's disk, creating the tip's %s files costs far more than anything else, "
             "and hides most differences between the tools." % format(stats["files"], ","))
    for place in places:
        L.append("")
        L.extend(render_place(place, runs))
    L.append("")
    first = ratio_table(places[0]["results"])
    L.append("libgit2 1.5 cannot fetch shallow: Kiln's clone receives the whole history (%s the bytes of the "
             "runner's depth-20 fetch here), where the archive strategy receives only the tip's files, "
             "compressed (%s)." % (fmt_ratio(first["kiln-clone/runner-depth20"]["bytes"]),
                                   fmt_ratio(first["kiln-archive/runner-depth20"]["bytes"])))
    L.append("")
    L.append("Re-run with `scripts/bench/checkout.py` (`--runs N`, `--work-dir DIR` for one place only, `--help`); "
             "the raw numbers of the last run are in `.bench-data/checkout-last-run.json`.")
    return "\n".join(L)


# ---------------------------------------------------------------- main

def build():
    return os.path.join(benchlib.build("kiln-checkout", scratch=".build-bench-checkout"), "kiln-checkout")


def main():
    p = argparse.ArgumentParser(prog="scripts/bench/checkout.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="paired rounds (default 5; at least 5 for the docs)")
    p.add_argument("--output", default=benchlib.DOCS)
    p.add_argument("--no-write", action="store_true", help="print the section instead of writing the docs")
    p.add_argument("--bin-dir", help="use this folder's kiln-checkout; do not build")
    p.add_argument("--json", default=os.path.join(DATA, "checkout-last-run.json"), help="raw results")
    p.add_argument("--work-dir", default=None,
                   help="measure with the build folders here only (default: both the system's temporary folder, "
                        "on disk, and /dev/shm, in memory)")
    p.add_argument("--keep-work", action="store_true", help="keep the temporary folder (logs) for debugging")
    p.add_argument("--cases", default=",".join(CASES), help=argparse.SUPPRESS)
    a = p.parse_args()
    benchlib.prefer_venv(__file__, sys.argv[1:])
    if not os.path.exists("/usr/bin/time"):
        raise SystemExit("scripts/bench/checkout.py needs GNU time: apt-get install time")
    cases = a.cases.split(",")
    os.makedirs(DATA, exist_ok=True)
    started_at = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    t0 = time.monotonic()
    if a.work_dir:
        parents = [a.work_dir]
    else:
        parents = [tempfile.gettempdir()]
        if os.path.isdir("/dev/shm") and fs_type("/dev/shm") == "tmpfs":
            parents.append("/dev/shm")
    binary = os.path.join(a.bin_dir, "kiln-checkout") if a.bin_dir else build()
    serve_root, served_repo, stats = prepare_repository()
    works = []
    server = None

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        top = tempfile.mkdtemp(prefix="kiln-bench-checkout-")
        works.append(top)
        password = secrets.token_hex(20)
        server = GitServer(serve_root, password, os.path.join(top, "git-server.log"))
        say("git server on %s" % server.url)
        places = []
        for parent in parents:
            work = tempfile.mkdtemp(prefix="kiln-bench-checkout-", dir=parent)
            works.append(work)
            place = {"work_dir": parent,
                     "work_fs": fs_type(work)}
            say("== %s" % describe_place(place))
            bench = Bench(binary, server, password, stats, work)
            say("making the warm runner's state (Kiln cache at commit A, %d commits)" % stats["commits_a"])
            place["warm_state_seconds"] = bench.make_warm_state(served_repo)
            results = {c: [] for c in cases}
            for rnd in range(a.runs):
                order = cases[rnd % len(cases):] + cases[:rnd % len(cases)]
                for case in order:
                    res = bench.run_case(case, rnd)
                    results[case].append(res)
                    say("round %d/%d %-16s %7.2fs %8.1f MB sent %6.0f MiB peak" % (
                        rnd + 1, a.runs, case, res["wall"], res["bytes"] / 1e6, res["rss_kib"] / 1024))
            place["results"] = results
            place["summary"] = summarize(results)
            if set(cases) == set(CASES):
                place["ratios"] = ratio_table(results)
                place["aims"] = aims(place["ratios"])
            places.append(place)
            if not a.keep_work:
                shutil.rmtree(work, ignore_errors=True)
        facts = machine_facts(binary)
        raw = {"started": started_at, "facts": facts, "repository": stats, "runs": a.runs, "places": places}
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        with open(a.json, "w") as f:
            json.dump(raw, f, indent=2)
        if set(cases) != set(CASES):
            print(json.dumps([p["summary"] for p in places], indent=2))
            return 0
        body = render(facts, stats, places, a.runs, started_at)
        if a.no_write or a.runs < 5:
            if a.runs < 5 and not a.no_write:
                say("fewer than 5 rounds: not writing %s" % a.output)
            print(body)
        else:
            benchlib.write_section(a.output, "checkout", "%s\n%s\n%s\n" % (MARK_START, body, MARK_END))
            say("wrote the checkout section of %s" % os.path.relpath(a.output, ROOT))
            print(body)
        say("done in %.0fs" % (time.monotonic() - t0))
        return 0
    except (Failure, RuntimeError, subprocess.SubprocessError) as e:
        say("FAILED: %s" % e)
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        if server:
            server.stop()
        for work in works:
            if a.keep_work:
                say("kept %s" % work)
            else:
                shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
