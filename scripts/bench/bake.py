#!/usr/bin/env python3
"""scripts/bench/bake.py: kiln-bake against the bare `packer build` of the same template, on moto.

    scripts/bench/bake.py [--runs 20] [--bin-dir DIR] [--packer PATH] [--run-timeout 120]
                          [--output docs/benchmarks.md | --no-write] [--json FILE] [--keep] [--no-setup]

About a minute on 2 busy CPUs (no build: it uses the release binaries in
.kiln-runtime/bin; when they are missing it runs `scripts/install-runtime
--prefix .kiln-runtime` first, which builds them and is slow; `--bin-dir DIR`
uses kiln-bake from DIR).

One `scripts/standin moto` for the whole run, and a project folder set up as
Tests/BakeTests/BakeFixture.swift sets one up: kiln.yml (`application: demo`,
`bake: {communicator: none, instance_type: t3.micro}`), packer/kiln.pkr.hcl
(the shipped template with its Ansible provisioner cut out between
`# kiln:provisioners-begin` and `# kiln:provisioners-end`), packer/ansible,
and kiln/build.json with its artifact; KILN_SOURCE_AMI is one of moto's stock
Ubuntu images (owner 099720109477, root device ebs), KILN_PACKER_COMMUNICATOR
is none.

Each of `--runs` rounds starts from a reset moto (`POST /moto-api/reset`, the
same stock source image checked, one untimed full bake for the round's reuse
to find: images piling up would slow moto's DescribeImages round after round),
then runs every case once, the order rotated each round:

  kiln-full   kiln-bake after a new artifact (new content, new version, so a
              new bake key and a new image name): the whole bake, Packer included.
  bare        `packer build -machine-readable -color=false -var-file=F
              kiln.pkr.hcl` in the template's folder, as kiln-bake runs it: F
              holds the same variables kiln-bake writes (checked once against
              the var file kiln-bake really wrote, caught by a wrapper in the
              untimed warm-up round), with an image name and a bake-key tag of
              its own; the same environment Packer gets from kiln-bake.
  kiln-reuse  kiln-bake again with the inputs unchanged: it must find the
              image with the same bake key, write `"outcome": "reused"` and
              launch nothing.
  kiln-split  (diagnostic) kiln-full with KILN_PACKER pointing at a small sh
              wrapper that notes when Packer starts and ends, which splits
              Kiln's wall time into its own work before Packer, Packer, and
              its own work after.
  kiln-version, packer-version   `kiln-bake --version` and `packer version`,
              for scale: each process's start-up alone.

Wall time is from spawn to exit; the output of every run goes to a log file.
Checked after every run (untimed, from moto): a full bake and a bare build
launched exactly one instance and made a new AMI; a reuse launched none and
names the AMI of the last full bake; every exit is 0. A failed check is shown
and the run left out of the medians (the script then exits 1).

Nothing leaves 127.0.0.0/8: credentials are fake, the only endpoint is the
loopback moto (for Packer as `custom_endpoint_ec2` through the template's
`ec2_endpoint` variable), instance metadata is disabled, HashiCorp's
checkpoint is off (CHECKPOINT_DISABLE=1), the communicator is none (nothing
ever connects to the addresses moto invents), and HTTP(S)_PROXY point at the
closed loopback port 127.0.0.1:9 with NO_PROXY=127.0.0.1,localhost as a
backstop, for kiln-bake and for the bare Packer alike.

It writes the section between `<!-- bench:bake:start -->` and
`<!-- bench:bake:end -->` of docs/benchmarks.md, keeping the rest of the file.
"""
import json
import os
import sys
import time

import benchlib
from benchlib import REGION, ROOT, check_loopback, fail, fmt_ms, fmt_ratio, median, say

benchlib.configure("bake")
DEFAULT_BIN = os.path.join(ROOT, ".kiln-runtime", "bin")
MARK_START, MARK_END = benchlib.markers("bake")
CASES = ("kiln-full", "bare", "kiln-reuse", "kiln-split", "kiln-version", "packer-version")
CASE_NAMES = {
    "kiln-full": "Kiln, full bake",
    "bare": "bare `packer build`",
    "kiln-reuse": "Kiln, reuse",
    "kiln-split": "Kiln, full bake, Packer behind a timing wrapper (diagnostic)",
    "kiln-version": "`kiln-bake --version` (start-up, for scale)",
    "packer-version": "`packer version` (start-up, for scale)",
}
CASE_WHAT = {
    "kiln-full": "new artifact: config, build.json and its SHA-256, source image, bake key, lookup, Packer, tags, image.json",
    "bare": "the same template, variables, arguments and environment, no Kiln",
    "kiln-reuse": "same inputs: config, build.json, source image, bake key, lookup finds the image, image.json; no Packer",
    "kiln-split": "as Kiln, full bake; Packer's start and end noted by an sh wrapper",
    "kiln-version": "the process alone",
    "packer-version": "the process alone",
}
# The variables kiln-bake gives every template (Sources/Bake/PackerRun.swift, kilnVariables).
KILN_VARIABLES = ("source_ami", "ami_name", "region", "instance_type", "subnet_id", "tags", "role", "application",
                  "application_version", "artifact", "artifact_sha256", "playbooks_dir", "ec2_endpoint", "communicator")
KILN_YML = "application: demo\nbake:\n  communicator: none\n  instance_type: t3.micro\n"
ARTIFACT = "kiln/demo.tar.gz"

# Packer behind this notes its start and end (CLOCK_REALTIME, ns) in a file; in the warm-up it also keeps
# a copy of the var file kiln-bake wrote (kiln-bake removes it when Packer is done).
WRAPPER = """#!/bin/sh
# scripts/bench/bake.py: Packer with its start and end noted.
s=$(date +%%s%%N)
%(packer)s "$@"
rc=$?
e=$(date +%%s%%N)
echo "$s $e" >> %(times)s
%(capture)s
exit $rc
"""
CAPTURE = """for a in "$@"; do case "$a" in -var-file=*) cp "${a#-var-file=}" %s;; esac; done"""


# --------------------------------------------------------------------------
# Plumbing (the rest is in benchlib, shared with the other scripts/bench drivers).

def shell_quote(text):
    return "'" + text.replace("'", "'\\''") + "'"


def plain_env():
    """For the stand-in and version probes: fake keys, no metadata, no proxies, no profile."""
    return benchlib.loopback_env(drop_prefixes=("KILN_", "CI_", "PACKER_"), extra={"CHECKPOINT_DISABLE": "1"})


def job_env(project, home, tmp, moto_url, source_ami, packer):
    """What kiln-bake gets (BakeFixture's job environment): a small job pointed at moto, and the proxy backstop."""
    check_loopback(moto_url)
    return {
        "PATH": "%s:/usr/local/bin:/usr/bin:/bin" % os.path.dirname(packer), "HOME": home, "TMPDIR": tmp,
        "CI_PROJECT_DIR": project, "CI_PIPELINE_ID": "4242", "CI_PROJECT_NAME": "demo",
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL": moto_url, "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost",
        "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9", "no_proxy": "127.0.0.1,localhost",
        "CHECKPOINT_DISABLE": "1",
        "KILN_SOURCE_AMI": source_ami, "KILN_PACKER_COMMUNICATOR": "none", "KILN_PACKER": packer,
    }


def packer_env(job):
    """The environment kiln-bake gives Packer (PackerRun.environment): the job's, its credentials, the region,
    no profile or role, HashiCorp's checkpoint off, no colour."""
    env = dict(job)
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_SESSION_TOKEN"):
        env.pop(name, None)
    env.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": REGION,
                "AWS_DEFAULT_REGION": REGION, "CHECKPOINT_DISABLE": "1", "PACKER_NO_COLOR": "1"})
    return env


def utc_stamp(seconds=None):
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(seconds))


# --------------------------------------------------------------------------
# The project and the variables.

class Project:
    """BakeFixture's project folder: kiln.yml, packer/ (no provisioners) with ansible/, kiln/build.json + artifact."""

    def __init__(self, work):
        from standins import packer_moto  # the demo's and the end-to-end test's way: one place for it
        self.path = os.path.join(work, "project")
        os.makedirs(os.path.join(self.path, "kiln"))
        self.template = str(packer_moto.template_without_provisioners(os.path.join(self.path, "packer")))
        with open(self.template) as f:
            text = f.read()
        if "provisioner" in text.split("build {", 1)[-1]:
            fail("the template still has a provisioner after cutting between the kiln:provisioners markers")
        with open(os.path.join(self.path, "kiln.yml"), "w") as f:
            f.write(KILN_YML)
        self.builds = 0
        self.version = None
        self.sha256 = None

    def new_build(self):
        """A new artifact (new bytes, so a new bake key) and a new version (so a new image name), with build.json."""
        import hashlib
        self.builds += 1
        self.version = "v1.0.%d" % self.builds
        content = ("demo %s %d\n" % (self.version, time.time_ns())).encode()
        with open(os.path.join(self.path, ARTIFACT), "wb") as f:
            f.write(content)
        self.sha256 = hashlib.sha256(content).hexdigest()
        benchlib.write_artifact(os.path.join(self.path, "kiln", "build.json"), "build", {
            "application": "demo", "applicationVersion": self.version, "commit": "a" * 40, "outcome": "passed",
            "artifact": {"path": ARTIFACT, "size": len(content), "sha256": self.sha256, "kind": "tar.gz"},
            "commands": [],
        }, producer=("kiln-build", "bench"))

    def image(self):
        path = os.path.join(self.path, "kiln", "image.json")
        return json.load(open(path)) if os.path.exists(path) else None

    def variables(self, moto_url, source_ami, name, bake_key, built_at):
        """The var file kiln-bake writes for this build (BakeStage.bake): Kiln's variables, no project ones."""
        tags = {
            "Name": name, "kiln:app": "demo", "kiln:role": "app", "kiln:version": self.version,
            "kiln:commit": "a" * 40, "kiln:pipeline": "4242", "kiln:bake-key": bake_key,
            "kiln:source-ami": source_ami, "kiln:built-at": built_at,
        }
        return {
            "source_ami": source_ami, "ami_name": name, "region": REGION, "instance_type": "t3.micro",
            "subnet_id": "", "tags": tags, "role": "app", "application": "demo",
            "application_version": self.version, "artifact": os.path.join(self.path, ARTIFACT),
            "artifact_sha256": self.sha256, "playbooks_dir": os.path.join(os.path.dirname(self.template), "ansible"),
            "ec2_endpoint": moto_url, "communicator": "none",
        }


def stock_source(moto_url):
    """One of moto's stock Ubuntu images: Canonical's owner, an EBS root (Packer refuses `standard`)."""
    images = benchlib.boto3_client("ec2", moto_url).describe_images(
        Owners=["099720109477"], Filters=[{"Name": "root-device-type", "Values": ["ebs"]},
                                          {"Name": "state", "Values": ["available"]}])["Images"]
    if not images:
        fail("moto has no stock EBS image of owner 099720109477")
    return sorted(image["ImageId"] for image in images)[0]


class MotoState:
    """The untimed look from outside: how many instances were ever launched, which images exist."""

    def __init__(self, url):
        self.ec2 = benchlib.boto3_client("ec2", url)

    def instance_count(self):
        count = 0
        for page in self.ec2.get_paginator("describe_instances").paginate():
            count += sum(len(r["Instances"]) for r in page["Reservations"])
        return count

    def own_images(self):
        return {i["ImageId"]: {t["Key"]: t["Value"] for t in i.get("Tags", [])}
                for i in self.ec2.describe_images(Owners=["self"])["Images"]}


# --------------------------------------------------------------------------
# One run of one case.

def timed(argv, cwd, env, log_path, timeout):
    """Spawn to exit, with a blocking wait4 (subprocess's wait with a time limit polls, in steps of up to 50 ms,
    which would round every time up to its next step). Returns exit code, wall ms, CPU ms (the process and what it
    waited for: Packer's for kiln-bake), and the realtime ns at spawn and at exit."""
    import subprocess
    import threading
    with open(log_path, "w") as out:
        spawned_ns = time.time_ns()
        started = time.monotonic_ns()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        expired = []

        def kill():
            expired.append(True)
            try:
                os.killpg(proc.pid, 9)
            except OSError:
                pass
        timer = threading.Timer(timeout, kill)
        timer.daemon = True
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        ended = time.monotonic_ns()
        exited_ns = time.time_ns()
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    code = 124 if expired else proc.returncode
    return code, (ended - started) / 1e6, (usage.ru_utime + usage.ru_stime) * 1000, spawned_ns, exited_ns


def tail(path, lines=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


class Bench:
    def __init__(self, opts, work, moto_url, bin_dir, packer):
        self.opts = opts
        self.work = work
        self.moto_url = moto_url
        self.kiln_bake = os.path.join(bin_dir, "kiln-bake")
        self.packer = packer
        self.project = Project(work)
        self.home = os.path.join(work, "home")
        self.tmp = os.path.join(work, "tmp")
        self.logs = os.path.join(work, "logs")
        for folder in (self.home, self.tmp, self.logs):
            os.makedirs(folder)
        self.moto = MotoState(moto_url)
        self.source = stock_source(moto_url)
        self.job = job_env(self.project.path, self.home, self.tmp, moto_url, self.source, packer)
        self.packer_env = packer_env(self.job)
        self.times_file = os.path.join(work, "packer-times")
        self.captured = os.path.join(work, "captured.pkrvars.json")
        self.wrappers = {}
        for name, capture in (("timed", ""), ("capture", CAPTURE % shell_quote(self.captured))):
            path = os.path.join(work, "packer-%s.sh" % name)
            with open(path, "w") as f:
                f.write(WRAPPER % {"packer": shell_quote(packer), "times": shell_quote(self.times_file),
                                   "capture": capture})
            os.chmod(path, 0o755)
            self.wrappers[name] = path
        self.last_full_ami = None
        self.seq = 0

    def run(self, case, index, wrapper=None):
        """One run; returns its record (`failed` set when a check did not hold)."""
        self.seq += 1
        log = os.path.join(self.logs, "%03d-%s-%s.log" % (self.seq, case, index))
        record = {"case": case, "run": index, "load_before": benchlib.load_average()}
        problems = []
        if case in ("kiln-version", "packer-version"):
            argv = [self.kiln_bake, "--version"] if case == "kiln-version" else [self.packer, "version"]
            code, ms, cpu, _, _ = timed(argv, self.project.path,
                                        self.job if case == "kiln-version" else self.packer_env, log,
                                        self.opts.run_timeout)
            record.update({"exit": code, "ms": ms, "cpu_ms": cpu})
            if code != 0:
                problems.append("exit %d" % code)
            return self.finish(record, problems, log)

        instances_before = self.moto.instance_count()
        images_before = self.moto.own_images()
        if case in ("kiln-full", "kiln-split"):
            self.project.new_build()
            env = dict(self.job)
            if case == "kiln-split":
                env["KILN_PACKER"] = self.wrappers[wrapper or "timed"]
                if os.path.exists(self.times_file):
                    os.remove(self.times_file)
            code, ms, cpu, spawned, exited = timed([self.kiln_bake], self.project.path, env, log,
                                                   self.opts.run_timeout)
            record.update({"exit": code, "ms": ms, "cpu_ms": cpu, "version": self.project.version})
            image = self.project.image() or {}
            record.update({"outcome": image.get("outcome"), "ami": image.get("amiID"),
                           "packer_seconds": image.get("packerSeconds"), "bake_key": image.get("bakeKey")})
            if image.get("outcome") != "baked":
                problems.append("image.json outcome %r, want 'baked'" % image.get("outcome"))
            if image.get("applicationVersion") != self.project.version:
                problems.append("image.json is not this build's (%r)" % image.get("applicationVersion"))
            if image.get("amiID") in images_before:
                problems.append("the AMI %s existed before" % image.get("amiID"))
            if case == "kiln-split":
                try:
                    start, end = (int(x) for x in open(self.times_file).read().split())
                    record.update({"before_packer_ms": (start - spawned) / 1e6, "packer_ms": (end - start) / 1e6,
                                   "after_packer_ms": (exited - end) / 1e6})
                except (OSError, ValueError):
                    problems.append("the wrapper noted no Packer run")
            if not problems:
                self.last_full_ami = image.get("amiID")
        elif case == "kiln-reuse":
            before = self.project.image() or {}
            code, ms, cpu, _, _ = timed([self.kiln_bake], self.project.path, self.job, log, self.opts.run_timeout)
            image = self.project.image() or {}
            record.update({"exit": code, "ms": ms, "cpu_ms": cpu, "outcome": image.get("outcome"), "ami": image.get("amiID")})
            if image.get("outcome") != "reused":
                problems.append("image.json outcome %r, want 'reused'" % image.get("outcome"))
            if image.get("amiID") != self.last_full_ami or image.get("bakeKey") != before.get("bakeKey"):
                problems.append("reused %s (key %s), want the last full bake's %s (key %s)" % (
                    image.get("amiID"), image.get("bakeKey"), self.last_full_ami, before.get("bakeKey")))
            if "packer build" in open(log, errors="replace").read():
                problems.append("a Packer section in the log")
        elif case == "bare":
            name = "demo-app-%s-bare-%d-%s" % (self.project.version, self.seq, utc_stamp())
            variables = self.project.variables(self.moto_url, self.source, name, "bench-bare-%d" % self.seq,
                                               benchlib.iso8601())
            var_file = os.path.join(self.tmp, "bare-%d.pkrvars.json" % self.seq)
            with open(var_file, "w") as f:
                json.dump(variables, f, indent=2, sort_keys=True)
            argv = [self.packer, "build", "-machine-readable", "-color=false", "-var-file=%s" % var_file,
                    self.project.template]
            code, ms, cpu, _, _ = timed(argv, os.path.dirname(self.project.template), self.packer_env, log,
                                        self.opts.run_timeout)
            os.remove(var_file)
            record.update({"exit": code, "ms": ms, "cpu_ms": cpu})
            text = open(log, errors="replace").read()
            ami = next((line.rsplit(":", 1)[-1].strip() for line in text.splitlines()
                        if ",artifact,0,id," in line), None)
            record["ami"] = ami
            if not ami:
                problems.append("no amazon-ebs artifact line in Packer's output")
            elif ami in images_before:
                problems.append("the AMI %s existed before" % ami)
        else:
            fail("unknown case %r" % case, 64)
        if code != 0:
            problems.insert(0, "exit %d" % code)
        launched = self.moto.instance_count() - instances_before
        record["launched"] = launched
        want = 0 if case == "kiln-reuse" else 1
        if launched != want:
            problems.append("%d instance(s) launched, want %d" % (launched, want))
        new_images = sorted(set(self.moto.own_images()) - set(images_before))
        if len(new_images) != want:
            problems.append("%d new image(s), want %d" % (len(new_images), want))
        return self.finish(record, problems, log)

    def finish(self, record, problems, log):
        if problems:
            record["failed"] = "; ".join(problems)
            say("%s run %s: FAILED: %s (log %s)" % (record["case"], record["run"], record["failed"], log))
            sys.stderr.write(tail(log))
        return record

    def reset(self, index):
        """A round's start: moto back to its first state (POST /moto-api/reset), the same stock source image,
        and one untimed full bake for the round's reuse to find, so every round sees the same small state
        (images left by earlier rounds would slow moto's DescribeImages down round after round)."""
        benchlib.http_json(self.moto_url + "/moto-api/reset", method="POST", timeout=30)
        source = stock_source(self.moto_url)
        if source != self.source:
            fail("after the reset moto's stock image is %s, was %s" % (source, self.source))
        seed = self.run("kiln-full", "seed-%d" % index)
        if seed.get("failed"):
            fail("round %d: the untimed full bake after the reset failed: %s" % (index, seed["failed"]))

    def check_var_file(self):
        """The warm-up's captured var file against the one this script writes for the bare build."""
        try:
            captured = json.load(open(self.captured))
        except (OSError, ValueError) as error:
            fail("the warm-up caught no var file from kiln-bake (%s)" % error)
        tags = captured.get("tags", {})
        expected = self.project.variables(self.moto_url, self.source, captured.get("ami_name"),
                                          tags.get("kiln:bake-key"), tags.get("kiln:built-at"))
        if sorted(captured) != sorted(KILN_VARIABLES):
            fail("kiln-bake's var file has the variables %s, this script knows %s"
                 % (sorted(captured), sorted(KILN_VARIABLES)))
        if captured != expected:
            diff = {k: (captured.get(k), expected.get(k)) for k in KILN_VARIABLES if captured.get(k) != expected.get(k)}
            fail("the bare build's var file would differ from kiln-bake's: %s" % json.dumps(diff))
        say("kiln-bake's var file matches the bare build's (ec2_endpoint %s)" % captured["ec2_endpoint"])


# --------------------------------------------------------------------------
# Machine and tool facts, and the section.

def versions(bin_dir, packer, env):
    import platform
    info = benchlib.machine_facts()

    def run(argv):
        return benchlib.run_text(argv, env=env)
    info["kiln"] = run([os.path.join(bin_dir, "kiln-bake"), "--version"]) or "?"
    commit, dirty = benchlib.git_head(env=env)
    info["commit"] = "%s%s" % (commit or "?", " with local changes" if dirty else "")
    try:
        built = os.stat(os.path.join(bin_dir, "kiln-bake")).st_mtime
        info["kiln_built"] = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(built))
    except OSError:
        info["kiln_built"] = "?"
    info["bin_dir"] = os.path.relpath(bin_dir, ROOT) if bin_dir.startswith(ROOT + os.sep) else bin_dir
    info["packer"] = (run([packer, "version"]).splitlines() or ["?"])[0]
    info["packer_deb"] = run(["dpkg-query", "-W", "-f=${Version}", "packer"]) or "?"
    info.update(benchlib.package_versions(("moto", "boto3")))
    info["python"] = platform.python_version()
    return info


def summarize(records, runs):
    """Medians per case; paired differences and ratios per round against the bare build of the same round."""
    good = [r for r in records if not r.get("failed") and isinstance(r["run"], int)]
    by_case = {}
    for case in CASES:
        values = [r["ms"] for r in good if r["case"] == case]
        if values:
            cpu = [r["cpu_ms"] for r in good if r["case"] == case and "cpu_ms" in r]
            by_case[case] = {"n": len(values), "median": median(values), "min": min(values), "max": max(values),
                             "cpu": median(cpu) if cpu else None}
    bare_by_round = {r["run"]: r for r in good if r["case"] == "bare"}
    paired = {}
    for case in ("kiln-full", "kiln-reuse", "kiln-split"):
        pairs = [(r, bare_by_round[r["run"]]) for r in good if r["case"] == case and r["run"] in bare_by_round]
        if pairs:
            paired[case] = {"n": len(pairs), "diff": median([a["ms"] - b["ms"] for a, b in pairs]),
                            "ratio": median([a["ms"] / b["ms"] for a, b in pairs]),
                            "cpu_diff": median([a["cpu_ms"] - b["cpu_ms"] for a, b in pairs]),
                            "cpu_ratio": median([a["cpu_ms"] / b["cpu_ms"] for a, b in pairs])}
    split = [r for r in good if r["case"] == "kiln-split" and "packer_ms" in r]
    parts = None
    if split:
        parts = {key: median([r[key] for r in split]) for key in ("before_packer_ms", "packer_ms", "after_packer_ms")}
        parts["own_ms"] = median([r["before_packer_ms"] + r["after_packer_ms"] for r in split])
        parts["n"] = len(split)
    return by_case, paired, parts


def render(records, info, opts):
    by_case, paired, parts = summarize(records, opts.runs)
    failed = [r for r in records if r.get("failed")]
    bare = by_case.get("bare", {}).get("median")
    full = by_case.get("kiln-full", {}).get("median")
    reuse = by_case.get("kiln-reuse", {}).get("median")
    lines = [MARK_START, "## Baking an image (scripts/bench/bake.py)", ""]
    lines.append(
        "Run %s on %d CPU(s) (%s), %s memory, %s, load average (1 min) %s; Kiln %s (release binaries in `%s`, "
        "built %s; tree at %s), %s (Debian packer %s), moto %s, boto3 %s, Python %s." % (
            info["date"], info["nproc"], info["cpu"], info["memory"], info["os"], info["load"], info["kiln"],
            info["bin_dir"], info["kiln_built"], info["commit"], info["packer"], info["packer_deb"], info["moto"],
            info["boto3"], info["python"]))
    lines.append("")
    if info.get("busy"):
        lines.append("**Warning:** the machine was busy (load average %s on %s CPUs): other work is in these "
                     "numbers, and the differences of a few milliseconds are within its noise." % (
                         info["load"], info["nproc"]))
        lines.append("")
    lines.append(
        "One local moto server, reset at the start of every round (`POST /moto-api/reset`, then one untimed full "
        "bake for the round's reuse to find), so that no round sees the images of the rounds before; a project folder as the bake tests set one up: `kiln.yml` (`application: demo`, "
        "`bake: {communicator: none, instance_type: t3.micro}`), `packer/kiln.pkr.hcl` (the shipped template "
        "without its Ansible provisioner, which needs a connection to the builder), `packer/ansible/`, and "
        "`kiln/build.json` with its artifact; the source is one of moto's stock Ubuntu images "
        "(`KILN_SOURCE_AMI`), the communicator none. A **full bake** follows a new artifact (new bytes and version: "
        "a new bake key and image name); a **reuse** is kiln-bake again with the same inputs (`\"outcome\": "
        "\"reused\"`, no instance launched, checked on every run); the **bare** build is `packer build "
        "-machine-readable -color=false -var-file=F kiln.pkr.hcl` in the template's folder, as kiln-bake runs it, "
        "F holding the same variables kiln-bake writes (checked against the var file kiln-bake really wrote, "
        "caught in the untimed warm-up round) and the same environment Packer gets from kiln-bake. Against moto, "
        "Packer's whole build (RunInstances, waits, StopInstances, CreateImage, tags, clean-up) takes a fraction "
        "of a second; on AWS the same build takes minutes, so the ratios to Packer here are far larger than they "
        "would be there, where Kiln's tens of milliseconds vanish. %d rounds after one warm-up round, each case once a round, order rotated; wall time "
        "from spawn to exit, every output to a log file; medians (ms)." % opts.runs)
    lines.append("")
    bare_cpu = by_case.get("bare", {}).get("cpu")
    lines.append("| case | what it does | runs | wall, median (ms) | wall range (ms) | / bare packer "
                 "| CPU, median (ms) | CPU / bare packer |")
    lines.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for case in CASES:
        s = by_case.get(case)
        if not s:
            lines.append("| %s | %s | 0 | failed | | | | |" % (CASE_NAMES[case], CASE_WHAT[case]))
            continue
        lines.append("| %s | %s | %d | %s | %s–%s | %s | %s | %s |" % (
            CASE_NAMES[case], CASE_WHAT[case], s["n"], fmt_ms(s["median"]), fmt_ms(s["min"]), fmt_ms(s["max"]),
            "1.00×" if case == "bare" else fmt_ratio(s["median"] / bare if bare else None), fmt_ms(s["cpu"]),
            "1.00×" if case == "bare" else fmt_ratio(s["cpu"] / bare_cpu if bare_cpu and s["cpu"] is not None else None)))
    lines.append("")
    lines.append("CPU is user + system time of the process and every process it waited for (for kiln-bake, Packer and "
                 "its plugin processes), from `wait4`: less disturbed by the machine's other work than wall time.")
    lines.append("")
    lines.append("| comparison | difference of medians (ms) | median of per-round differences (ms) "
                 "| ratio of medians | median of per-round ratios | CPU: median per-round difference (ms) "
                 "| CPU: median per-round ratio |")
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for case, label in (("kiln-full", "Kiln, full bake − bare packer (Kiln's own overhead)"),
                        ("kiln-reuse", "Kiln, reuse − bare packer (negative: what skipping saves)")):
        mine = by_case.get(case, {}).get("median")
        p = paired.get(case)
        lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            label, fmt_ms(mine - bare) if mine is not None and bare else "–",
            fmt_ms(p["diff"]) if p else "–", fmt_ratio(mine / bare) if mine is not None and bare else "–",
            fmt_ratio(p["ratio"]) if p else "–", fmt_ms(p["cpu_diff"]) if p else "–",
            fmt_ratio(p["cpu_ratio"]) if p else "–"))
    lines.append("")
    if parts:
        lines.append(
            "Where a full bake's time goes (the diagnostic runs, %d, medians): kiln-bake's own work before Packer "
            "starts (start-up, kiln.yml, build.json and the artifact's SHA-256, DescribeImages of the source, the "
            "bake key over the template and playbooks, the DescribeImages lookup for the key, the var file) "
            "%s ms; Packer inside Kiln %s ms (the bare build: %s ms); Kiln's work after Packer exits (parsing its "
            "output, CreateTags on the image and its snapshots, image.json and image.env) %s ms; Kiln's own in "
            "all %s ms. The wrapper itself (one `sh` and two `date`) adds a few ms, counted as Kiln's." % (
                parts["n"], fmt_ms(parts["before_packer_ms"]), fmt_ms(parts["packer_ms"]), fmt_ms(bare),
                fmt_ms(parts["after_packer_ms"]), fmt_ms(parts["own_ms"])))
        lines.append("")
    lines.append(
        "A reuse launches nothing: most of its time is kiln-bake's start-up and waiting for moto's answers to its "
        "EC2 calls (DescribeImages of the source, the lookup by bake key, the found image's tags), each a few to "
        "25 ms on this machine, moto filtering its hundreds of stock images in Python; the spread in every row "
        "is mostly moto's answer times and the machine's other work.")
    lines.append("")
    if full is not None and reuse is not None and bare:
        lines.append(
            "In short: a full bake costs %s ms over the bare build it runs (%s); a reuse takes %s ms where "
            "Packer would take %s ms against moto (%s), and on AWS it saves the whole bake: an instance launched, "
            "stopped, imaged and terminated." % (
                fmt_ms(full - bare), fmt_ratio(full / bare), fmt_ms(reuse), fmt_ms(bare), fmt_ratio(reuse / bare)))
        lines.append("")
    if failed:
        lines.append("%d run(s) failed a check and are left out: %s." % (
            len(failed), "; ".join("%s %s: %s" % (r["case"], r["run"], r["failed"]) for r in failed[:5])))
        lines.append("")
    lines.append("Re-run with `scripts/bench/bake.py` (this run took %.1f minutes; `--help` for the options)."
                 % (info.get("elapsed", 0) / 60))
    lines.append(MARK_END)
    return "\n".join(lines) + "\n"


def main(argv):
    import argparse
    import shutil
    import subprocess
    import tempfile
    p = argparse.ArgumentParser(prog="scripts/bench/bake.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=20, help="rounds, each case once a round (default 20; at least 5)")
    p.add_argument("--bin-dir", help="use kiln-bake from here (default .kiln-runtime/bin, installed when missing)")
    p.add_argument("--packer", help="the Packer to run (default: packer on PATH)")
    p.add_argument("--run-timeout", type=float, default=120, help="seconds one run may take (default 120)")
    p.add_argument("--output", default=benchlib.DOCS)
    p.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    p.add_argument("--no-setup", action="store_true", help="do not run scripts/setup first")
    p.add_argument("--json", metavar="FILE", help="also write every measurement as JSON")
    p.add_argument("--keep", action="store_true", help="keep the work folder (project, logs, moto's log)")
    opts = p.parse_args(argv)
    if opts.runs < 5:
        fail("--runs: at least 5", 64)

    began = time.monotonic()
    if not opts.no_setup:
        if subprocess.run([benchlib.SETUP], cwd=ROOT).returncode != 0:
            if not os.path.exists(benchlib.VENV_PYTHON):
                fail("scripts/setup failed and there is no .venv")
            say("warning: scripts/setup failed; going on with the .venv there is")
    env = plain_env()
    packer = os.path.abspath(opts.packer) if opts.packer else shutil.which("packer")
    if not packer or not os.access(packer, os.X_OK):
        fail("no packer: install Debian's packer (scripts/setup does), or give --packer")
    if opts.bin_dir:
        bin_dir = os.path.abspath(opts.bin_dir)
    else:
        bin_dir = DEFAULT_BIN
        if not os.access(os.path.join(bin_dir, "kiln-bake"), os.X_OK):
            say("no %s/kiln-bake: scripts/install-runtime --prefix .kiln-runtime (builds Kiln; slow)"
                % os.path.relpath(bin_dir, ROOT))
            subprocess.run([os.path.join(ROOT, "scripts", "install-runtime"), "--prefix",
                            os.path.join(ROOT, ".kiln-runtime")], cwd=ROOT, check=True)
    if not os.access(os.path.join(bin_dir, "kiln-bake"), os.X_OK):
        fail("%s/kiln-bake is not there" % bin_dir)

    work = tempfile.mkdtemp(prefix="kiln-bench-bake-")
    records = []
    load_before = benchlib.load_average()
    benchlib.warn_if_busy(load_before)
    finished = False
    moto = None
    try:
        moto = benchlib.start_standin("moto", [], env, os.path.join(work, "moto.log"))
        bench = Bench(opts, work, moto.url, bin_dir, packer)
        say("moto at %s, source %s, project %s" % (moto.url, bench.source, bench.project.path))
        # Warm-up (untimed): page cache, moto's first requests, and kiln-bake's own var file caught.
        warm = [bench.run("kiln-split", "warm-up", wrapper="capture"), bench.run("kiln-reuse", "warm-up"),
                bench.run("bare", "warm-up"), bench.run("kiln-version", "warm-up"),
                bench.run("packer-version", "warm-up")]
        if any(r.get("failed") for r in warm):
            fail("the warm-up round failed (logs in %s)" % work)
        bench.check_var_file()
        for index in range(1, opts.runs + 1):
            bench.reset(index)
            shift = (index - 1) % len(CASES)
            order = list(CASES[shift:] + CASES[:shift])
            for case in order:
                records.append(bench.run(case, index))
            done = {r["case"]: r for r in records if r["run"] == index}
            say("round %d/%d: full %s, bare %s, reuse %s, split %s ms%s" % (
                index, opts.runs, *(fmt_ms(done[c].get("ms")) for c in ("kiln-full", "bare", "kiln-reuse", "kiln-split")),
                "" if not any(r.get("failed") for r in done.values()) else " (a check failed)"))
        finished = True
    finally:
        if moto:
            moto.stop()
        if finished and not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            say("kept %s (project, logs, moto's log)" % work)
    info = versions(bin_dir, packer, env)
    load_after = benchlib.load_average()
    info["load"] = "%.2f before, %.2f after" % (load_before, load_after)
    info["busy"] = benchlib.is_busy(load_before, load_after)
    info["elapsed"] = time.monotonic() - began
    section = render(records, info, opts)
    benchlib.publish(opts, "bake", "bake", section, {"info": info, "records": records, "options": vars(opts)}, began)
    return 1 if any(r.get("failed") for r in records) else 0


if __name__ == "__main__":
    benchlib.run_main(main, __file__)
