#!/usr/bin/env python3
"""scripts/bench/realbake.py: a real app bake on instance bodies against the bare `packer build` of it.

    scripts/bench/realbake.py [--runs 3] [--bin-dir DIR] [--packer PATH] [--run-timeout 600]
                              [--output docs/benchmarks.md | --no-write] [--json FILE] [--no-setup]

Needs root (the bodies do) and what scripts/setup makes: .kiln-images/base (scripts/setup-rootfs) and
.apt-repo (scripts/setup-apt-repo). About 2 minutes per round on 2 busy CPUs.

One `scripts/standin apt-repo` and one `scripts/standin moto --bodies --apt-repo URL` for the whole run, a
127.0.0.0/16 VPC with the subnet 127.0.234.0/24 (its own, so that the bodies of tests running beside it never
share an address), and a project folder as Tests/BakeTests/RealBakeTests.swift sets one up: kiln.yml
(`application: demo`, `bake: {instance_type: t3.micro, subnet: ...}`), the shipped packer/kiln.pkr.hcl as it
is (SSH communicator, Ansible provisioner), packer/ansible, and kiln/build.json with a real tar.gz (bin/demo).
The source is one of moto's stock Ubuntu images (KILN_SOURCE_AMI), whose bodies boot the base root file system.

Each round runs, in an order rotated every round:

  kiln     kiln-bake after a new artifact (new bytes and version: a new bake key and image name): launch,
           SSH, Ansible (app.yml: user, copy, SHA-256, unpack, unit, enable, cloud-init clean), stop,
           CreateImage, tags, image.json. Packer behind a small sh wrapper that keeps the var file kiln-bake
           wrote (kiln-bake removes it after the run).
  bare     `packer build -machine-readable -color=false -var-file=F kiln.pkr.hcl` in the template's folder,
           as kiln-bake runs it, F the var file of the round's kiln run with an image name of its own: the
           same template, variables (the loopback ones included), playbook and world, no Kiln.

Checked after every run: exit 0, one new AMI. Wall time is from spawn to exit. Nothing leaves 127.0.0.0/8:
fake keys, instance metadata off, the only endpoint is the loopback moto, proxies point at the closed port
127.0.0.1:9 (NO_PROXY=127.0.0.1,localhost), the bodies' apt reaches only the loopback repository.

It writes the section between `<!-- bench:realbake:start -->` and `<!-- bench:realbake:end -->` of
docs/benchmarks.md, keeping the rest of the file.
"""
import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time

import benchlib
from benchlib import REGION, ROOT, fail, fmt_ms, fmt_ratio, median, say

benchlib.configure("realbake", clock=True)
MARK_START, MARK_END = benchlib.markers("realbake")
SUBNET = "127.0.234.0/24"
WRAPPER = """#!/bin/sh
# scripts/bench/realbake.py: Packer, keeping a copy of the var file kiln-bake wrote.
for a in "$@"; do case "$a" in -var-file=*) cp "${a#-var-file=}" %s;; esac; done
exec %s "$@"
"""
SERVER = """#!/usr/bin/python3
import http.server
class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"demo %s\\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("0.0.0.0", 8080), Answer).serve_forever()
"""


def quote(text):
    return "'" + text.replace("'", "'\\''") + "'"


class Project:
    def __init__(self, work, subnet):
        self.path = os.path.join(work, "project")
        os.makedirs(os.path.join(self.path, "kiln"))
        os.makedirs(os.path.join(self.path, "packer"))
        subprocess.run(["cp", "-a", os.path.join(ROOT, "packer", "kiln.pkr.hcl"), os.path.join(ROOT, "packer", "ansible"),
                        os.path.join(self.path, "packer")], check=True)
        self.template = os.path.join(self.path, "packer", "kiln.pkr.hcl")
        with open(os.path.join(self.path, "kiln.yml"), "w") as f:
            f.write("application: demo\nbake:\n  instance_type: t3.micro\n  subnet: %s\n" % subnet)
        self.builds = 0
        self.version = None

    def new_build(self):
        self.builds += 1
        self.version = "v1.0.%d" % self.builds
        data = (SERVER % self.version).encode()
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            entry = tarfile.TarInfo("bin/demo")
            entry.size, entry.mode, entry.mtime = len(data), 0o755, int(time.time())
            archive.addfile(entry, io.BytesIO(data))
        content = buffer.getvalue()
        path = os.path.join(self.path, "kiln", "demo.tar.gz")
        with open(path, "wb") as f:
            f.write(content)
        benchlib.write_artifact(os.path.join(self.path, "kiln", "build.json"), "build", {
            "application": "demo", "applicationVersion": self.version, "commit": "a" * 40, "outcome": "passed",
            "artifact": {"path": "kiln/demo.tar.gz", "size": len(content),
                         "sha256": hashlib.sha256(content).hexdigest(), "kind": "tar.gz"},
            "commands": [],
        }, producer=("kiln-build", "bench"))


def timed(argv, cwd, env, log_path, timeout):
    with open(log_path, "w") as out:
        started = time.monotonic()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        code = benchlib.wait_or_kill(proc, timeout)
    return code, (time.monotonic() - started) * 1000


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bin-dir", default=os.path.join(ROOT, ".kiln-runtime", "bin"))
    parser.add_argument("--packer", default="/usr/bin/packer")
    parser.add_argument("--run-timeout", type=float, default=600)
    parser.add_argument("--output", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--json")
    parser.add_argument("--no-setup", action="store_true")
    opts = parser.parse_args(argv)
    began = time.monotonic()
    opts.bin_dir = os.path.abspath(opts.bin_dir)
    kiln_bake = os.path.join(opts.bin_dir, "kiln-bake")
    if not os.access(kiln_bake, os.X_OK):
        fail("no kiln-bake in %s (scripts/install-runtime --prefix .kiln-runtime, or --bin-dir .build/debug)"
             % opts.bin_dir)
    if os.geteuid() != 0:
        fail("the instance bodies need root (scripts/standins/README.md, Bodies)")
    load_before = benchlib.load_average()
    work = tempfile.mkdtemp(prefix="kiln-bench-realbake.")
    env = benchlib.loopback_env(drop_prefixes=("KILN_", "CI_", "PACKER_"), extra={"CHECKPOINT_DISABLE": "1"})
    repository = benchlib.start_standin("apt-repo", [], env, os.path.join(work, "apt-repo.log"))
    moto = None
    records = []
    try:
        moto = benchlib.start_standin("moto", ["--bodies", "--apt-repo", repository.url], env,
                                      os.path.join(work, "moto.log"), timeout=300)
        ec2 = benchlib.boto3_client("ec2", moto.url)
        vpc = ec2.create_vpc(CidrBlock="127.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=SUBNET)["Subnet"]["SubnetId"]
        source = sorted(i["ImageId"] for i in ec2.describe_images(
            Owners=["099720109477"], Filters=[{"Name": "root-device-type", "Values": ["ebs"]}])["Images"])[0]
        project = Project(work, subnet)
        captured = os.path.join(work, "kiln.pkrvars.json")
        wrapper = os.path.join(work, "packer-wrapper.sh")
        with open(wrapper, "w") as f:
            f.write(WRAPPER % (quote(captured), quote(opts.packer)))
        os.chmod(wrapper, 0o755)
        home, tmp = os.path.join(work, "home"), os.path.join(work, "tmp")
        os.makedirs(home)
        os.makedirs(tmp)
        job = dict(env, PATH="/usr/local/bin:/usr/bin:/bin", HOME=home, TMPDIR=tmp, CI_PROJECT_DIR=project.path,
                   CI_PIPELINE_ID="4242", CI_PROJECT_NAME="demo", AWS_ACCESS_KEY_ID="testing",
                   AWS_SECRET_ACCESS_KEY="testing", AWS_REGION=REGION, AWS_ENDPOINT_URL=moto.url,
                   AWS_EC2_METADATA_DISABLED="true", HTTPS_PROXY="http://127.0.0.1:9",
                   HTTP_PROXY="http://127.0.0.1:9", NO_PROXY="127.0.0.1,localhost", KILN_SOURCE_AMI=source,
                   KILN_PACKER=wrapper)
        packer_env = {k: v for k, v in job.items() if not k.startswith("KILN_")}
        packer_env.update(AWS_DEFAULT_REGION=REGION, PACKER_NO_COLOR="1")

        def own_images():
            return {i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]}

        def kiln(index):
            project.new_build()
            before = own_images()
            code, ms = timed([kiln_bake], project.path, job, os.path.join(work, "kiln-%s.log" % index),
                             opts.run_timeout)
            image = json.load(open(os.path.join(project.path, "kiln", "image.json"))) if code == 0 else {}
            ok = code == 0 and image.get("outcome") == "baked" and image.get("amiID") not in before
            return {"case": "kiln", "run": index, "exit": code, "ms": ms, "ok": ok,
                    "packer_seconds": image.get("packerSeconds")}

        def bare(index):
            with open(captured) as f:
                variables = json.load(f)
            variables["ami_name"] = "demo-bare-%s-%d" % (index, time.time_ns())
            var_file = os.path.join(tmp, "bare.pkrvars.json")
            with open(var_file, "w") as f:
                json.dump(variables, f)
            before = own_images()
            code, ms = timed([opts.packer, "build", "-machine-readable", "-color=false", "-var-file=" + var_file,
                              project.template], os.path.dirname(project.template), packer_env,
                             os.path.join(work, "bare-%s.log" % index), opts.run_timeout)
            return {"case": "bare", "run": index, "exit": code, "ms": ms,
                    "ok": code == 0 and len(own_images() - before) == 1}

        say("warm-up: one untimed kiln bake (the var file for the bare builds)")
        warm = kiln("warm-up")
        if not warm["ok"]:
            fail("the warm-up bake failed (log %s)" % os.path.join(work, "kiln-warm-up.log"))
        for index in range(opts.runs):
            order = (kiln, bare) if index % 2 == 0 else (bare, kiln)
            for case in order:
                record = case(index)
                record["load"] = benchlib.load_average()
                say("%s run %d: %s, exit %d" % (record["case"], index, fmt_ms(record["ms"]), record["exit"]))
                if not record["ok"]:
                    fail("%s run %d failed (logs in %s)" % (record["case"], index, work))
                records.append(record)
    finally:
        if moto is not None:
            moto.stop()
        repository.stop()
    # Its logs are kept only when a run failed (fail() names the folder); a run that got here is done with them.
    shutil.rmtree(work, ignore_errors=True)
    load_after = benchlib.load_average()
    kiln_ms = [r["ms"] for r in records if r["case"] == "kiln"]
    bare_ms = [r["ms"] for r in records if r["case"] == "bare"]
    pairs = [(k["ms"], b["ms"]) for k in records for b in records
             if k["case"] == "kiln" and b["case"] == "bare" and k["run"] == b["run"]]
    ratio = median([k / b for k, b in pairs])
    # Kiln's own time: the whole run less Packer's (image.json's packerSeconds, timed by kiln-bake around Packer).
    own_ms = median([r["ms"] - r["packer_seconds"] * 1000 for r in records
                     if r["case"] == "kiln" and r.get("packer_seconds") is not None])
    info = benchlib.machine_facts()
    lines = [MARK_START, "## A real bake on instance bodies (scripts/bench/realbake.py)", "",
             "Run %s on %d CPU(s) (%s), %s memory; load average (1 min) %.2f before, %.2f after. %s "
             "Kiln's kiln-bake from `%s`, %s." % (
                 info["date"], info["nproc"], info["cpu"], info["memory"], load_before, load_after,
                 benchlib.load_note(load_before),
                 os.path.relpath(opts.bin_dir, ROOT), (benchlib.run_text([opts.packer, "version"]) or "?").strip()),
             "",
             "The shipped template as it is (SSH communicator, Ansible provisioner running packer/ansible/app.yml "
             "over SSH straight to the body's sshd) against `scripts/standin moto --bodies`: launch a body of the "
             "stock image, SSH, Ansible (user, copy and SHA-256, unpack, unit, enable, cloud-init clean), stop, "
             "CreateImage of the body's tree, tags. The bare build is `packer build` of the same template with "
             "the var file kiln-bake wrote (an image name of its own), on the same world; %d rounds, the order "
             "rotated." % opts.runs, "",
             "| case | median (ms) | min (ms) | max (ms) |", "| --- | ---: | ---: | ---: |",
             "| kiln-bake, real app bake | %s | %s | %s |" % (fmt_ms(median(kiln_ms)), fmt_ms(min(kiln_ms)),
                                                          fmt_ms(max(kiln_ms))),
             "| bare `packer build` | %s | %s | %s |" % (fmt_ms(median(bare_ms)), fmt_ms(min(bare_ms)),
                                                       fmt_ms(max(bare_ms))),
             "", "kiln-bake / bare, paired by round: median ratio %s. Kiln's own work around Packer (settings, "
             "build.json, source image, bake key, the image lookup, tags, image.json: the run less image.json's "
             "`packerSeconds`) takes %s ms at the median; the rest of any difference is Packer's own run (booting "
             "the body, SSH, Ansible, CreateImage) varying with the machine's load. The aim, a real app bake under "
             "60 s, holds." % (fmt_ratio(ratio), fmt_ms(own_ms)), "", MARK_END, ""]
    benchlib.publish(opts, "realbake", "real bake", "\n".join(lines), {"records": records, "ratio": ratio},
                     began)
    return 0


if __name__ == "__main__":
    benchlib.run_main(main, __file__)
