#!/usr/bin/env python3
"""scripts/bench/checkout.py: Kiln's checkout strategies against what gitlab-runner does with git.

    scripts/bench/checkout.py [--shape realistic|assets] [--runs 5] [--output docs/benchmarks.md | --no-write]
                              [--work-dir DIR] [--bin-dir DIR] [--json FILE] [--keep-work]

--shape realistic (the default): a repository of a real project's shape (generate_realistic, REALISTIC),
with two more cases (`curl | tar`, the cache's hundredth job) and describe measured three ways; written to
the "checkout-realistic" section. The default runs every case on disk (the system's temporary folder, as
on a runner) and in memory (/dev/shm), with the same aims table for each and one table of the aims side by
side. In memory it took 21 minutes at a load of 27 to 32 on 2 CPUs (7 of them making the hundredth job's
cache, 99 Kiln jobs, made once there and copied to the disk; 7 minutes at load 13 to 16 before); the disk
half has not yet run to its end with this script (expect it to take longer: the cold cases write 15,000
files), plus 5 to 8 minutes once to generate the repository. `--work-dir DIR` measures in one place only.
--shape assets: the first case, described below, about 12 minutes, written to the "checkout" section.

One command. It

  1. builds kiln-checkout in release (`swift build -c release --static-swift-stdlib --scratch-path
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
import hashlib
import json
import os
import platform
import random
import re
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
# The realistic shape: no full git clone (the runner never does one), and two more: `curl | tar` as the archive
# strategy's floor, and the hundredth job of a cache (99 jobs before it, each with its own pipeline ref).
REALISTIC_CASES = ["kiln-clone", "kiln-archive", "curl-tar", "runner-depth20", "kiln-fetch-warm",
                   "kiln-fetch-warm-100", "git-fetch-warm"]
SHAPE_CASES = {"assets": CASES, "realistic": REALISTIC_CASES}
WARM_JOBS = 100            # the hundredth job
LABEL = {
    "kiln-clone": "Kiln clone (cold)",
    "kiln-archive": "Kiln archive (cold)",
    "runner-depth20": "runner: git fetch --depth 20 (cold)",
    "git-clone": "git clone, full (cold)",
    "kiln-fetch-warm": "Kiln fetch --cache-dir (warm, +100 commits)",
    "git-fetch-warm": "git fetch (warm, same clone, +100 commits)",
    "curl-tar": "curl piped into tar -xz, GitLab's archive (cold, the floor)",
    "kiln-fetch-warm-100": "Kiln fetch --cache-dir, the cache's 100th job (warm, +100 commits)",
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


# ---------------------------------------------------------------- the realistic shape

# The second case: the shape of a real project's repository (the issue measured libgit2's own: 19,511
# commits, 270 refs, 15,606 files). Parameters; the cache folder is keyed by them, so changing one
# regenerates.
REALISTIC = {
    "commits": 20000,          # in all, feature branches and merges included
    "files": 15000,            # text files
    "dirs": 1500,              # each under a random earlier one: deep trees, as in src/a/b/c/d
    "branches": 200,           # feature branches; those merged keep their ref, as on a GitLab server
    "tags": 66,                # on main; every third one lightweight
    "edits_max": 4,            # files changed per commit, 1..edits_max, a line inserted or replaced each
    "seed": 17,
}


def realistic_key():
    text = json.dumps(REALISTIC, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def generate_realistic(repo):
    """A history of REALISTIC["commits"] commits: files added over the first tenth of it, then small
    edits; feature branches forked from main, a few commits each, most merged back with a merge commit
    (the branch's versions of its paths win); tags on main. The last NEW_COMMITS commits are linear on
    main (A..B), so that the warm cases receive exactly NEW_COMMITS commits."""
    p = REALISTIC
    rng = random.Random(p["seed"])
    syll = ["ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zi", "po", "qu", "ex", "an", "or", "il", "ut"]
    vocab = ["".join(rng.choice(syll) for _ in range(rng.randint(1, 4))) for _ in range(3000)]
    vocab += ["func", "let", "var", "return", "if", "else", "for", "in", "struct", "(", ")", "{", "}", "=", "+"]

    def line():
        return (" ".join(rng.choices(vocab, k=rng.randint(3, 12))) + "\n").encode()

    dirs = ["src", "include", "tests", "docs", "examples", "deps", "cmake", "fuzzers", "script", "tools"]
    while len(dirs) < p["dirs"]:
        dirs.append(rng.choice(dirs) + "/" + "".join(rng.choice(syll) for _ in range(rng.randint(2, 4))))
    exts = [".c", ".h", ".txt", ".md", ".py", ".cmake", ".sh"]
    paths = sorted({"%s/%s%d%s" % (rng.choice(dirs), rng.choice(syll), n, rng.choice(exts))
                    for n in range(p["files"])})
    rng.shuffle(paths)
    assert len(paths) == p["files"]

    os.makedirs(repo)
    git("init", "-q", "--bare", repo)
    git("symbolic-ref", "HEAD", "refs/heads/main", cwd=repo)
    proc = subprocess.Popen(["git", "fast-import", "--quiet", "--done"], cwd=repo, stdin=subprocess.PIPE,
                            env=clean_env({"HOME": DATA}))
    out = proc.stdin
    state = {"mark": 0, "when": 1_500_000_000}

    def commit(ref, parent, changes, message, merge=None):
        state["mark"] += 1
        state["when"] += rng.randint(60, 7200)
        mark = state["mark"]
        msg = message.encode()
        out.write(b"commit %s\nmark :%d\n" % (ref.encode(), mark))
        out.write(b"author Bench Author <bench@example.invalid> %d +0000\n" % state["when"])
        out.write(b"committer Bench Author <bench@example.invalid> %d +0000\n" % state["when"])
        out.write(b"data %d\n%s\n" % (len(msg), msg))
        if parent:
            out.write(b"from :%d\n" % parent)
        if merge:
            out.write(b"merge :%d\n" % merge)
        for path, data in changes:
            out.write(b"M 100644 inline %s\ndata %d\n" % (path.encode(), len(data)))
            out.write(data)
            out.write(b"\n")
        out.write(b"\n")
        return mark

    def edit(texts, added):
        changes = {}
        for _ in range(rng.randint(1, p["edits_max"])):
            path = rng.choice(added)
            lines = texts[path].split(b"\n")
            pos = rng.randrange(len(lines))
            if rng.random() < 0.4 and len(lines) > 5:
                lines[pos] = line().rstrip(b"\n")
            else:
                lines.insert(pos, line().rstrip(b"\n"))
            texts[path] = b"\n".join(lines)
            changes[path] = texts[path]
        return list(changes.items())

    main_texts = {}
    added = []
    main = None
    linear_from = p["commits"] - NEW_COMMITS
    adding = p["commits"] // 10
    per_add = -(-p["files"] // adding)
    # Branch forks spread over the history after the files are added; the tags likewise.
    forks = set(rng.sample(range(adding, linear_from - 50), p["branches"]))
    tag_at = set(rng.sample(range(adding, linear_from), p["tags"]))
    open_branches = []   # (name, mark, texts, touched, merge after main commit n)
    tags = 0
    a = None
    n = 0
    while state["mark"] < p["commits"]:
        n += 1
        if state["mark"] == linear_from:
            a = main
        if len(added) < len(paths):
            new = paths[len(added):len(added) + per_add]
            changes = []
            for path in new:
                main_texts[path] = b"".join(line() for _ in range(rng.randint(15, 60)))
                changes.append((path, main_texts[path]))
            added.extend(new)
            main = commit("refs/heads/main", main, changes, "Add %d files under %s" % (len(new), new[0].rsplit("/", 1)[0]))
            continue
        due = [b for b in open_branches if b[4] <= n and state["mark"] < linear_from]
        if due:
            name, mark, texts, touched, _ = due[0]
            open_branches.remove(due[0])
            changes = [(path, texts[path]) for path in sorted(touched)]
            for path, data in changes:
                main_texts[path] = data
            main = commit("refs/heads/main", main, changes, "Merge branch '%s'" % name, merge=mark)
            continue
        main = commit("refs/heads/main", main, edit(main_texts, added),
                      "Change %d: %s" % (state["mark"] + 1, " ".join(rng.choices(vocab, k=6))))
        if state["mark"] in tag_at and state["mark"] < linear_from:
            tags += 1
            name = "v%d.%d.%d" % (tags // 20, (tags // 4) % 5, tags % 4)
            if tags % 3:
                msg = ("Release %s" % name).encode()
                out.write(b"tag %s\nfrom :%d\n" % (name.encode(), main))
                out.write(b"tagger Bench Author <bench@example.invalid> %d +0000\n" % state["when"])
                out.write(b"data %d\n%s\n" % (len(msg), msg))
            else:
                out.write(b"reset refs/tags/%s\nfrom :%d\n\n" % (name.encode(), main))
        if n in forks and state["mark"] < linear_from - 50:
            name = "feature/%s-%d" % ("".join(rng.choices(syll, k=3)), n)
            texts = dict(main_texts)
            ref = "refs/heads/" + name
            mark = main
            touched = set()
            for _ in range(rng.randint(1, 12)):
                if state["mark"] >= linear_from - 50:
                    break
                changes = edit(texts, added)
                touched.update(path for path, _ in changes)
                mark = commit(ref, mark, changes, "%s: %s" % (name, " ".join(rng.choices(vocab, k=5))))
            # Four in five are merged back, a few commits of main later; the rest stay open.
            if rng.random() < 0.8:
                open_branches.append((name, mark, texts, touched, n + rng.randint(1, 30)))
        if state["mark"] % 2000 == 0:
            say("generating: %d/%d commits" % (state["mark"], p["commits"]))
    b = main
    out.write(b"reset refs/bench/b\nfrom :%d\n\n" % b)
    out.write(b"reset refs/bench/a\nfrom :%d\n\n" % a)
    out.write(b"reset refs/heads/main\nfrom :%d\n\n" % a)
    out.write(b"reset refs/pipelines/%s\nfrom :%d\n\n" % (PIPELINE_A.encode(), a))
    out.write(b"reset refs/pipelines/%s\nfrom :%d\n\n" % (PIPELINE_B.encode(), b))
    out.write(b"done\n")
    out.close()
    if proc.wait() != 0:
        raise RuntimeError("git fast-import failed")
    git("config", "uploadpack.allowAnySHA1InWant", "true", cwd=repo)
    git("config", "repack.writeBitmaps", "true", cwd=repo)
    say("repacking (git repack -a -d -b; fast-import's deltas reused)")
    git("repack", "-q", "-a", "-d", "-b", cwd=repo)
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
        "refs": len(git("for-each-ref", "--format=%(refname)", cwd=repo).splitlines()),
        "tags": len(git("tag", "--list", cwd=repo).splitlines()),
        "merges": int(git("rev-list", "--count", "--merges", b, cwd=repo)),
        "max_depth": max(row.count("/") for row in git("ls-tree", "-r", "--name-only", b, cwd=repo).splitlines()),
    }


def prepare_repository(shape):
    if shape == "realistic":
        base = os.path.join(DATA, "checkout-realistic-%s" % realistic_key())
    else:
        base = os.path.join(DATA, "checkout-v%d" % GEN_VERSION)
    serve_root = os.path.join(base, "root")
    repo = os.path.join(serve_root, PROJECT + ".git")
    ready = os.path.join(base, "READY.json")
    if os.path.exists(ready):
        with open(ready) as f:
            stats = json.load(f)
        say("using the cached repository %s" % os.path.relpath(repo, ROOT))
        git("symbolic-ref", "HEAD", "refs/heads/main", cwd=repo)
        return serve_root, repo, stats
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(serve_root)
    say("generating the repository in %s (once; a few minutes)" % os.path.relpath(repo, ROOT))
    started = time.monotonic()
    (generate_realistic if shape == "realistic" else generate)(repo)
    stats = repo_stats(repo)
    stats["shape"] = shape
    if shape == "realistic":
        stats["parameters"] = REALISTIC
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
            # .git (a file, in a work tree of a cache) and the archive strategy's mark are not the project's.
            filenames = [f for f in filenames if f not in (".git", ".kiln-checkout")]
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
        self.warm100_pristine = os.path.join(work, "warm100-pristine")

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
            elif name == "curl-tar":
                os.makedirs(target)
                env = clean_env({"HOME": self.home, "JOB_TOKEN": self.password, "TARGET": target,
                                 "URL": "%s/api/v4/projects/%s/repository/archive.tar.gz?sha=%s" % (
                                     self.server.url, PROJECT.replace("/", "%2F"), b)})
                # The token through the environment, not on a command line; the archive's top folder stripped
                # as Kiln strips it.
                script = ('set -o pipefail 2>/dev/null; curl -sSf -H "JOB-TOKEN: $JOB_TOKEN" "$URL" '
                          '| tar -xzf - -C "$TARGET" --strip-components=1')
                result = self.measure(name, [(["bash", "-c", script], env, target)], target, log_path)
            elif name == "git-clone":
                env = self.git_env()
                result = self.measure(name, [(["git", "clone", "-q", self.repo_url, target], env, self.work)],
                                      target, log_path, check_head=lambda: git("rev-parse", "HEAD", cwd=target))
            elif name in ("kiln-fetch-warm", "kiln-fetch-warm-100", "git-fetch-warm"):
                self.restore_warm(self.warm100_pristine if name == "kiln-fetch-warm-100" else self.warm_pristine)
                cache, proj = os.path.join(self.warm, "cache"), os.path.join(self.warm, "proj")
                target = proj
                if name.startswith("kiln-fetch-warm"):
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

    def make_warm100_state(self, served_repo):
        """The hundredth job's cache: made at commit A - 98 by Kiln, then 98 more Kiln jobs, each one commit
        ahead with its own pipeline ref (`refs/pipelines/2001`... on the server, removed after), as a shared
        runner cache sees them; the last at A. The measured job is then the hundredth, to B, as the second
        job is in the warm case. Untimed (its total is recorded)."""
        chain = git("rev-list", "--first-parent", "-n", str(WARM_JOBS - 1), self.stats["a"], cwd=served_repo).split()
        chain.reverse()
        shutil.rmtree(self.warm, ignore_errors=True)
        cache, proj = os.path.join(self.warm, "cache"), os.path.join(self.warm, "proj")
        os.makedirs(proj)
        log_path = os.path.join(self.logs, "warm100-state.log")
        started = time.monotonic()
        refs = []
        try:
            for job, commit in enumerate(chain):
                pipeline = str(2001 + job)
                ref = "refs/pipelines/" + pipeline
                git("update-ref", ref, commit, cwd=served_repo)
                git("update-ref", "refs/heads/main", commit, cwd=served_repo)
                refs.append(ref)
                env = self.kiln_env(proj, "fetch", commit, pipeline)
                timed([self.binary, "--cache-dir", cache], env, log_path, cwd=proj)
                shutil.rmtree(os.path.join(proj, "kiln"), ignore_errors=True)
        finally:
            for ref in refs:
                git("update-ref", "-d", ref, cwd=served_repo)
            git("update-ref", "refs/heads/main", self.stats["b"], cwd=served_repo)
        if git("--git-dir", cache, "rev-parse", "HEAD") != self.stats["a"]:
            raise Failure("the hundredth job's state is not at commit A")
        shutil.rmtree(self.warm100_pristine, ignore_errors=True)
        os.rename(self.warm, self.warm100_pristine)
        return time.monotonic() - started

    def adopt_warm100_state(self, other):
        """The hundredth job's cache another place made (Bench.make_warm100_state), copied here: the same 99
        jobs' refs and packs, without making them again. The copy's paths differ, so the work tree is attached
        to its new place as Kiln's next job would find it (the `.git` file and core.worktree), untimed."""
        shutil.rmtree(self.warm100_pristine, ignore_errors=True)
        subprocess.run(["cp", "-a", other.warm100_pristine, self.warm100_pristine], check=True)
        cache, proj = os.path.join(self.warm100_pristine, "cache"), os.path.join(self.warm100_pristine, "proj")
        relocate_worktree(cache, proj, os.path.join(self.warm, "proj"))

    def restore_warm(self, pristine):
        shutil.rmtree(self.warm, ignore_errors=True)
        subprocess.run(["cp", "-a", pristine, self.warm], check=True)
        # A warm runner's index matches its files; a copy changes inodes and
        # ctimes, so refresh it (untimed) for both tools alike.
        git("--git-dir", os.path.join(self.warm, "cache"), "--work-tree", os.path.join(self.warm, "proj"),
            "update-index", "-q", "--refresh", cwd=os.path.join(self.warm, "proj"), check=False)


def relocate_worktree(cache, proj, final_proj):
    """Points a copied cache at the place its work tree will have when restored (`restore_warm` copies the
    pristine folder to `warm/`): core.worktree and the work tree's `gitdir:` file (gitrepository-layout(5))."""
    # --file: git would otherwise open the repository and refuse its core.worktree, which is gone.
    git("config", "--file", os.path.join(cache, "config"), "core.worktree", final_proj)
    final_cache = os.path.join(os.path.dirname(final_proj), "cache")
    with open(os.path.join(proj, ".git"), "w") as f:
        f.write("gitdir: %s\n" % final_cache)
    # Kiln's record of which work tree its index describes (WorkTreeRecord, Sources/Checkout/CheckoutFolder.swift:
    # the work tree's path, then the commit): the same work tree, moved with its cache.
    record = os.path.join(cache, "kiln-worktree")
    with open(record) as f:
        lines = f.read().split("\n")
    lines[0] = final_proj
    with open(record, "w") as f:
        f.write("\n".join(lines))


# ---------------------------------------------------------------- describe

def libgit2_describe_seconds(repo, commit):
    """One `git_describe_commit` (GIT_DESCRIBE_TAGS, as Kiln called it before issue 17) in a freshly opened
    repository, through ctypes: what Kiln's describe cost before it walked the history itself."""
    import ctypes
    import ctypes.util
    lib = ctypes.CDLL(ctypes.util.find_library("git2") or "libgit2.so")

    class Options(ctypes.Structure):
        # include/git2/describe.h, git_describe_options (libgit2 1.8).
        _fields_ = [("version", ctypes.c_uint), ("max_candidates_tags", ctypes.c_uint),
                    ("describe_strategy", ctypes.c_uint), ("pattern", ctypes.c_char_p),
                    ("only_follow_first_parent", ctypes.c_int), ("show_commit_oid_as_fallback", ctypes.c_int)]

    lib.git_libgit2_init()
    handle, obj, result = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
    oid = (ctypes.c_ubyte * 64)()
    options = Options()
    if lib.git_describe_options_init(ctypes.byref(options), 1) != 0:
        raise RuntimeError("git_describe_options_init failed")
    options.describe_strategy = 1  # GIT_DESCRIBE_TAGS
    started = time.perf_counter()
    if lib.git_repository_open(ctypes.byref(handle), repo.encode()) != 0:
        raise RuntimeError("git_repository_open failed")
    try:
        lib.git_oid_fromstr(oid, commit.encode())
        if lib.git_object_lookup(ctypes.byref(obj), handle, oid, 1) != 0:  # GIT_OBJECT_COMMIT
            raise RuntimeError("git_object_lookup failed")
        if lib.git_describe_commit(ctypes.byref(result), obj, ctypes.byref(options)) != 0:
            raise RuntimeError("git_describe_commit failed")
        elapsed = time.perf_counter() - started
        lib.git_describe_result_free(result)
        lib.git_object_free(obj)
    finally:
        lib.git_repository_free(handle)
    return elapsed


def measure_describe(bench, runs):
    """`git describe --tags` over the whole history, three ways, `runs` times each, interleaved: git, libgit2's
    git_describe_commit (Kiln before), and Kiln's own (its `describe` phase in checkout.json, from
    `kiln-checkout --cache-dir` with nothing to fetch into a full-history cache, made untimed by a
    `GIT_DEPTH=0` job)."""
    b = bench.stats["b"]
    cache, proj = os.path.join(bench.work, "describe", "cache"), os.path.join(bench.work, "describe", "proj")
    os.makedirs(proj)
    log_path = os.path.join(bench.logs, "describe.log")
    env = bench.kiln_env(proj, "fetch", b, PIPELINE_B)
    env["GIT_DEPTH"] = "0"
    out = {"git": [], "libgit2": [], "kiln": []}
    answers = set()
    try:
        timed([bench.binary, "--cache-dir", cache], env, log_path, cwd=proj)
        for _ in range(runs):
            started = time.perf_counter()
            answers.add(git("--git-dir", cache, "describe", "--tags", b))
            out["git"].append(time.perf_counter() - started)
            out["libgit2"].append(libgit2_describe_seconds(cache, b))
            timed([bench.binary, "--cache-dir", cache], env, log_path, cwd=proj)
            with open(os.path.join(proj, "kiln", "checkout.json")) as f:
                doc = json.load(f)
            answers.add(doc["versionString"])
            out["kiln"].append(doc["phases"]["describe"])
    finally:
        shutil.rmtree(os.path.join(bench.work, "describe"), ignore_errors=True)
    out["answers"] = sorted(answers)
    return out


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
        "libgit2": sh(["pkg-config", "--modversion", "libgit2"]),
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
    ("kiln-archive", "curl-tar"),
    ("kiln-fetch-warm", "git-fetch-warm"),
    ("kiln-fetch-warm-100", "kiln-fetch-warm"),
    ("kiln-fetch-warm", "runner-depth20"),
]


def comparisons(results):
    return [(x, y) for x, y in COMPARISONS if x in results and y in results]


def paired(results, x, y, key):
    n = min(len(results[x]), len(results[y]))
    ratios = [results[x][i][key] / results[y][i][key] for i in range(n) if results[y][i][key]]
    return median(ratios) if ratios else float("nan")


def ratio_table(results):
    return {"%s/%s" % (x, y): {k: paired(results, x, y, k) for k in ("wall", "bytes", "rss_kib")}
            for x, y in comparisons(results)}


def aims(ratios):
    """The issue's aims (issue 17, "Speed"), each with its measured value and whether it is met."""
    out = []
    q = ratios["kiln-fetch-warm/git-fetch-warm"]
    out.append(("warm: Kiln fetch into its cache no slower than git fetch + checkout + clean in the same clone",
                "%.2f× (aim ≤ 1.0×)" % q["wall"], q["wall"] <= 1.0))
    out.append(("warm: Kiln's peak memory within 2× git's", "%.2f× (aim ≤ 2×)" % q["rss_kib"], q["rss_kib"] <= 2.0))
    if "kiln-fetch-warm-100/kiln-fetch-warm" in ratios:
        h = ratios["kiln-fetch-warm-100/kiln-fetch-warm"]["wall"]
        out.append(("warm: the cache's hundredth job within 1.1× of its second", "%.2f× (aim ≤ 1.1×)" % h, h <= 1.1))
    cold = min(("kiln-clone", ratios["kiln-clone/runner-depth20"]),
               ("kiln-archive", ratios["kiln-archive/runner-depth20"]), key=lambda t: t[1]["wall"])
    name = cold[0].split("-")[1]
    out.append(("cold: Kiln's fastest strategy (%s) within 1.1× of the runner's depth-20 sequence" % name,
                "%.2f× (aim ≤ 1.1×)" % cold[1]["wall"], cold[1]["wall"] <= 1.1))
    out.append(("cold: its bytes within 1.2× of the runner's", "%.2f× (aim ≤ 1.2×)" % cold[1]["bytes"],
                cold[1]["bytes"] <= 1.2))
    out.append(("cold: its peak memory within 2× git's", "%.2f× (aim ≤ 2×)" % cold[1]["rss_kib"],
                cold[1]["rss_kib"] <= 2.0))
    if "kiln-archive/curl-tar" in ratios:
        f = ratios["kiln-archive/curl-tar"]["wall"]
        out.append(("the archive strategy against `curl` piped into `tar -xz` (its floor; no aim given, reported)",
                    "%.2f×" % f, None))
    return out


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
    seen = set()
    L = ["### %s" % describe_place(place), ""]
    if place.get("load"):
        L.append("Load average (1, 5, 15 min) before: %s; after: %s. %s" % (
            place["load"]["before"], place["load"]["after"],
            benchlib.load_note(float(place["load"]["before"].split()[0]))))
        L.append("")
    if place.get("warm100_state_seconds"):
        L.append("The hundredth job's cache took %.0f s to make (99 Kiln jobs, untimed)."
                 % place["warm100_state_seconds"])
        L.append("")
    elif place.get("warm100_state_copied_from"):
        L.append("The hundredth job's cache is a copy of the one made in `%s` (its work tree moved with it)."
                 % place["warm100_state_copied_from"])
        L.append("")
    L.append("| case | runs | wall (s), median | wall range (s) | MB sent, median | peak RSS (MiB), median |")
    L.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    for case in [c for c in CASES + REALISTIC_CASES if c in s and c not in seen and not seen.add(c)]:
        x = s[case]
        L.append("| %s | %d | %s | %s–%s | %.1f | %.0f |" % (
            LABEL[case], x["runs"], fmt_s(x["wall_median"]), fmt_s(x["wall_min"]), fmt_s(x["wall_max"]),
            x["bytes_median"] / 1e6, x["rss_median_kib"] / 1024))
    L.append("")
    L.append("Kiln's own phases (median seconds, from `checkout.json`): %s." % "; ".join(
        "%s: %s" % (LABEL[case].split(" (")[0] + (" warm" if "warm" in case else ""), ", ".join(
            "%s %s" % (ph, fmt_s(median([row["kiln_phases"].get(ph, 0) for row in results[case]])))
            for ph in ("prepare", "fetch", "download", "checkout", "walk", "unpack", "clean", "upkeep",
                       "describe")
            if any(ph in (row.get("kiln_phases") or {}) for row in results[case])))
        for case in CASES if case.startswith("kiln") and all(row.get("kiln_phases") for row in results[case])))
    L.append("")
    L.append("Ratios (median of the %d per-round ratios):" % runs)
    L.append("")
    L.append("| comparison | wall | bytes sent | peak RSS |")
    L.append("| --- | ---: | ---: | ---: |")
    for x, y in comparisons(results):
        q = r["%s/%s" % (x, y)]
        L.append("| %s / %s | %s | %s | %s |" % (LABEL[x], LABEL[y], fmt_ratio(q["wall"]), fmt_ratio(q["bytes"]),
                                               fmt_ratio(q["rss_kib"])))
    L.append("")
    L.append("Aims:")
    L.append("")
    for text, value, met in aims(r):
        L.append("- %s: %s%s" % (text, value, "" if met is None else ", **%s**" % ("met" if met else "not met")))
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
    L.append("Bytes received against the runner's depth-20 fetch: Kiln's clone %s, the archive strategy (only "
             "the tip's files, compressed) %s." % (fmt_ratio(first["kiln-clone/runner-depth20"]["bytes"]),
                                                  fmt_ratio(first["kiln-archive/runner-depth20"]["bytes"])))
    L.append("")
    L.append("Re-run with `scripts/bench/checkout.py` (`--runs N`, `--work-dir DIR` for one place only, `--help`); "
             "the raw numbers of the last run are in `.bench-data/checkout-last-run.json`.")
    return "\n".join(L)


def aims_side_by_side(places):
    """The aims of every place in one table: a row per aim, a column per place."""
    measured = [aims(ratio_table(place["results"])) for place in places]
    if len(places) < 2:
        return []
    L = ["", "### The aims, on disk and in memory", ""]
    L.append("| aim | %s |" % " | ".join(describe_place(place).split(" (")[0].replace("Build folders ", "")
                                          for place in places))
    # One separator cell per place (the % binds before the *: without the parentheses the whole line repeated).
    L.append("| --- |%s" % (" ---: |" * len(places)))
    for row, text in enumerate(t for t, _, _ in measured[0]):
        # The fastest cold strategy may differ between places: the row names none, each cell its own.
        text = re.sub(r"Kiln's fastest strategy \((\w+)\)", "Kiln's fastest strategy", text)
        cells = []
        for place_aims in measured:
            own, value, met = place_aims[row]
            strategy = re.search(r"Kiln's fastest strategy \((\w+)\)", own)
            cells.append(value.split(" (")[0] + (" (%s)" % strategy.group(1) if strategy else "")
                         + ("" if met is None else (", met" if met else ", **not met**")))
        L.append("| %s | %s |" % (text, " | ".join(cells)))
    return L


def render_realistic(facts, stats, places, runs, started_at):
    L = []
    L.append("## Checkout, a repository of a real project's shape (scripts/bench/checkout.py --shape realistic)")
    L.append("")
    L.append("Run %s UTC on %d CPU(s) (%s), %d GiB memory, Linux %s; Kiln %s (release build of %s, %s), "
             "libgit2 %s, git %s, Python %s." % (
                 started_at, facts["nproc"], facts["cpu"], facts["memory_gib"], facts["kernel"],
                 facts["kiln"].split()[-1] if facts["kiln"] else "?", facts["commit"], facts["swift"],
                 facts["libgit2"], facts["git"], facts["python"]))
    L.append("")
    L.append("The repository has the shape of libgit2's own (the one issue 17 measured): generated by the script "
             "with `git fast-import` (parameters `REALISTIC` in the script, cached in `.bench-data/` under a key of "
             "them), %s commits of which %s merges of feature branches, %s refs (%s tags, the branches, `main`, "
             "two pipeline refs), %s text files in directories up to %d deep, %.1f MB packed in one pack with a "
             "bitmap (%s objects), %.1f MB of files at the tip; each commit inserts or replaces a line in one to "
             "four files. The warm runner's state is at commit %s of `main`; the pipeline's commit is %d commits "
             "later. Served by `scripts/standin git` on 127.0.0.1 as in the section above; the cases and "
             "measures are those of the section above, plus:" % (
                 format(stats["commits_b"], ","), format(stats["merges"], ","), stats["refs"], stats["tags"],
                 format(stats["files"], ","), stats["max_depth"], stats["packed_bytes"] / 1e6,
                 format(stats["objects"], ","), stats["tip_bytes"] / 1e6, format(stats["commits_a"], ","),
                 NEW_COMMITS))
    L.append("")
    L.append("- `curl` piped into `tar -xz`: GitLab's archive API fetched by curl and unpacked by tar in one pipe, the floor "
             "of Kiln's archive strategy;")
    L.append("- the cache's hundredth job: the same warm fetch, into a cache that served 99 Kiln jobs before (made "
             "at commit A − 98, then one job per commit up to A, each with its own pipeline ref), against the "
             "warm case, which is that cache's second job;")
    L.append("- no full `git clone` (the runner never does one).")
    for place in places:
        L.append("")
        L.extend(render_place(place, runs))
    L.extend(aims_side_by_side(places))
    describe = places[0].get("describe")
    if describe:
        L.append("")
        L.append("### `git describe --tags` over the whole history (%s)" % describe_place(places[0]).lower())
        L.append("")
        L.append("The pipeline's commit described in a full-history copy of the repository (%d runs, interleaved; "
                 "answers: %s):" % (len(describe["git"]), ", ".join("`%s`" % x for x in describe["answers"])))
        L.append("")
        L.append("| describe | median (s) | range (s) |")
        L.append("| --- | ---: | ---: |")
        for key, label in (("git", "`git describe --tags` (a process)"),
                           ("libgit2", "libgit2 `git_describe_commit` (Kiln before issue 17, item 2)"),
                           ("kiln", "Kiln's own walk (its `describe` phase)")):
            L.append("| %s | %.3f | %.3f–%.3f |" % (label, median(describe[key]), min(describe[key]),
                                                  max(describe[key])))
    L.append("")
    L.append("Re-run with `scripts/bench/checkout.py --shape realistic` (`--runs N`, `--work-dir DIR` for one "
             "place only); the raw numbers of the last run are in `.bench-data/checkout-realistic-last-run.json`.")
    return "\n".join(L)


SECTION = {"assets": "checkout", "realistic": "checkout-realistic"}


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
    p.add_argument("--shape", choices=("assets", "realistic"), default="realistic",
                   help="the generated repository: 'realistic' (20k commits over many branches, 270 refs, 15k "
                        "files in deep directories; the default) or 'assets' (5,100 linear commits rewriting binary "
                        "assets)")
    p.add_argument("--cases", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    benchlib.prefer_venv(__file__, sys.argv[1:])
    if not os.path.exists("/usr/bin/time"):
        raise SystemExit("scripts/bench/checkout.py needs GNU time: apt-get install time")
    all_cases = SHAPE_CASES[a.shape]
    cases = a.cases.split(",") if a.cases else all_cases
    if a.shape == "realistic" and a.json == os.path.join(DATA, "checkout-last-run.json"):
        a.json = os.path.join(DATA, "checkout-realistic-last-run.json")
    os.makedirs(DATA, exist_ok=True)
    started_at = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    t0 = time.monotonic()
    if a.work_dir:
        parents = [a.work_dir]
    else:
        # In memory first: the hundredth job's cache is made there (faster) and copied to the disk.
        parents = [tempfile.gettempdir()]
        if os.path.isdir("/dev/shm") and fs_type("/dev/shm") == "tmpfs":
            parents.insert(0, "/dev/shm")
    # Absolute: every case runs its commands in a folder of its own.
    binary = os.path.join(os.path.abspath(a.bin_dir), "kiln-checkout") if a.bin_dir else build()
    serve_root, served_repo, stats = prepare_repository(a.shape)
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
        first_bench = None
        for parent in parents:
            work = tempfile.mkdtemp(prefix="kiln-bench-checkout-", dir=parent)
            works.append(work)
            place = {"work_dir": parent,
                     "work_fs": fs_type(work)}
            say("== %s" % describe_place(place))
            bench = Bench(binary, server, password, stats, work)
            say("making the warm runner's state (Kiln cache at commit A, %d commits)" % stats["commits_a"])
            place["load"] = {"before": " ".join(sh(["cat", "/proc/loadavg"]).split()[:3])}
            place["warm_state_seconds"] = bench.make_warm_state(served_repo)
            if "kiln-fetch-warm-100" in cases and first_bench is None:
                say("making the hundredth job's state (%d Kiln jobs)" % (WARM_JOBS - 1))
                place["warm100_state_seconds"] = bench.make_warm100_state(served_repo)
            elif "kiln-fetch-warm-100" in cases:
                say("copying the hundredth job's state from %s" % first_bench.work)
                bench.adopt_warm100_state(first_bench)
                place["warm100_state_copied_from"] = places[0]["work_dir"]
            first_bench = first_bench or bench
            results = {c: [] for c in cases}
            for rnd in range(a.runs):
                order = cases[rnd % len(cases):] + cases[:rnd % len(cases)]
                for case in order:
                    res = bench.run_case(case, rnd)
                    results[case].append(res)
                    say("round %d/%d %-16s %7.2fs %8.1f MB sent %6.0f MiB peak" % (
                        rnd + 1, a.runs, case, res["wall"], res["bytes"] / 1e6, res["rss_kib"] / 1024))
            if a.shape == "realistic" and not places:
                say("describe over the whole history")
                place["describe"] = measure_describe(bench, a.runs)
            place["load"]["after"] = " ".join(sh(["cat", "/proc/loadavg"]).split()[:3])
            place["results"] = results
            place["summary"] = summarize(results)
            if set(cases) == set(all_cases):
                place["ratios"] = ratio_table(results)
                place["aims"] = aims(place["ratios"])
            places.append(place)
        if not a.keep_work:
            for work in works[1:]:
                shutil.rmtree(work, ignore_errors=True)
        facts = machine_facts(binary)
        raw = {"started": started_at, "facts": facts, "repository": stats, "runs": a.runs, "places": places}
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        with open(a.json, "w") as f:
            json.dump(raw, f, indent=2)
        if set(cases) != set(all_cases):
            print(json.dumps([p["summary"] for p in places], indent=2))
            return 0
        body = (render_realistic if a.shape == "realistic" else render)(facts, stats, places, a.runs, started_at)
        if a.no_write or a.runs < 5:
            if a.runs < 5 and not a.no_write:
                say("fewer than 5 rounds: not writing %s" % a.output)
            print(body)
        else:
            start, end = benchlib.markers(SECTION[a.shape])
            benchlib.write_section(a.output, SECTION[a.shape], "%s\n%s\n%s\n" % (start, body, end))
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
