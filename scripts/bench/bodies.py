#!/usr/bin/env python3
"""scripts/bench/bodies.py: the moto stand-in's instance bodies (scripts/standins/bodies.py).

    scripts/bench/bodies.py [--runs 5] [--bodies 20] [--skip-rootfs]
                            [--output docs/benchmarks.md | --no-write] [--json FILE] [--no-setup]

Needs root (as the bodies do). Three figures:

  rootfs      scripts/setup-rootfs into a fresh KILN_IMAGES_DIR (a temporary folder): the base root file
              system made from nothing, once (about 3 minutes; --skip-rootfs leaves it out).
  boot        `--runs` times: RunInstances of an image with an enabled unit (a python http server on
              0.0.0.0:8080, the image made by CreateImage of a body of the stock image, as a bake makes one),
              timed from the RunInstances call to the first HTTP answer on the instance's address:8080, and to
              the first SSH login with the launch key; the instance terminated after each run.
  twenty      `--bodies` instances of that image by one RunInstances: the time until all answer on :8080, and
              the extra disk of the stand-in's run folder (du -sk after minus before) while they run.

One `scripts/standin moto --bodies` (the repository's .kiln-images) for boot and twenty; the bodies live on
127.0.210.0/24. Nothing leaves 127.0.0.0/8 (fake keys, no proxies), but the rootfs figure fetches Debian
packages from this machine's apt mirror, as scripts/setup does.

It writes the section between `<!-- bench:bodies:start -->` and `<!-- bench:bodies:end -->` of
docs/benchmarks.md, keeping the rest of the file.
"""
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request

import benchlib
from benchlib import ROOT, fail, fmt_ms, say

benchlib.configure("bodies", clock=True)

HELLO_SERVER = """\
import json, os
from http.server import BaseHTTPRequestHandler, HTTPServer

class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"user": os.environ.get("USER")}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

HTTPServer(("0.0.0.0", 8080), Hello).serve_forever()
"""
HELLO_UNIT = """\
[Service]
User=ubuntu
ExecStart=/usr/bin/python3 /opt/hello/server.py
Restart=on-failure

[Install]
WantedBy=multi-user.target
"""
WAIT = 300.0  # a bound on each wait, so that a broken body ends the run instead of hanging it


def answers(url):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def ssh_answers(address, key_file):
    return subprocess.run(
        ["ssh", "-F", "/dev/null", "-i", key_file, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5",
         "ubuntu@" + address, "true"], stdin=subprocess.DEVNULL, capture_output=True).returncode == 0


def wait_for(check, what):
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            fail("%s: not within %.0f s" % (what, WAIT))
        time.sleep(0.02)
    return time.monotonic()


# The body's console stamps its init's lines with the seconds since the launch (body/init.py): where a boot's
# time goes, up to the unit.
CONSOLE_MARKS = {
    "init_started": re.compile(r"^\[\s*([0-9.]+)\] \[kiln-body\] booting "),
    "local_done": re.compile(r"^\[\s*([0-9.]+)\] \[kiln-body\] cloud-init init --local exited"),
    "init_done": re.compile(r"^\[\s*([0-9.]+)\] \[kiln-body\] cloud-init init exited"),
    "unit_started": re.compile(r"^\[\s*([0-9.]+)\] \[kiln-body\] hello.service: starting"),
}


def console_marks(path):
    found = {}
    with open(path, errors="replace") as f:
        for line in f:
            for name, pattern in CONSOLE_MARKS.items():
                match = pattern.match(line)
                if match and name not in found:
                    found[name] = float(match.group(1)) * 1000
    return found


def du_kib(path):
    out = subprocess.run(["du", "-sk", "-x", path], capture_output=True, text=True).stdout
    return int(out.split()[0]) if out else 0


def measure_rootfs(env):
    images = tempfile.mkdtemp(prefix="kiln-bench-rootfs-")
    try:
        started = time.monotonic()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        run = subprocess.run([os.path.join(ROOT, "scripts", "setup-rootfs")], env=dict(env, KILN_IMAGES_DIR=images),
                             stderr=subprocess.PIPE, text=True)
        sys.stderr.write(run.stderr)
        if run.returncode != 0:
            fail("scripts/setup-rootfs exited %d" % run.returncode)
        seconds = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        size = du_kib(os.path.join(images, "base"))
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", images], check=False)
    # The phases setup-rootfs names ("[setup-rootfs] packages downloaded and unpacked after 40s").
    phases = {m.group(1): int(m.group(2)) for m in re.finditer(r"\[setup-rootfs\] (.+?) after (\d+)s", run.stderr)}
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": seconds, "base_kib": size, "cpu_seconds": cpu, "phases": phases}


def make_image(ec2, stock, subnet, key, bodies_url):
    builder = ec2.run_instances(ImageId=stock, MinCount=1, MaxCount=1, SubnetId=subnet, KeyName=key)
    builder_id = builder["Instances"][0]["InstanceId"]
    state = {}

    def booted():
        state.update(benchlib.http_json(bodies_url + "/" + builder_id))
        return "[kiln-body] booted" in open(state["console"], errors="replace").read()

    wait_for(booted, "the builder body booted")
    tree = state["tree"]
    os.makedirs(os.path.join(tree, "opt/hello"))
    with open(os.path.join(tree, "opt/hello/server.py"), "w") as f:
        f.write(HELLO_SERVER)
    with open(os.path.join(tree, "etc/systemd/system/hello.service"), "w") as f:
        f.write(HELLO_UNIT)
    os.symlink("/etc/systemd/system/hello.service",
               os.path.join(tree, "etc/systemd/system/multi-user.target.wants/hello.service"))
    ec2.stop_instances(InstanceIds=[builder_id])
    image = ec2.create_image(InstanceId=builder_id, Name="bench-hello")["ImageId"]
    ec2.terminate_instances(InstanceIds=[builder_id])
    return image


def main(argv):
    import argparse
    p = argparse.ArgumentParser(prog="scripts/bench/bodies.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="single-body boots (default 5)")
    p.add_argument("--bodies", type=int, default=20, help="bodies of one image at once (default 20)")
    p.add_argument("--skip-rootfs", action="store_true", help="do not time scripts/setup-rootfs from nothing")
    p.add_argument("--output", default=benchlib.DOCS)
    p.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    p.add_argument("--no-setup", action="store_true", help="do not run scripts/setup first")
    p.add_argument("--json", metavar="FILE", help="also write every measurement as JSON")
    opts = p.parse_args(argv)
    if os.geteuid() != 0:
        fail("needs root, as the bodies do (scripts/standins/README.md, Bodies)")
    began = time.monotonic()
    if not opts.no_setup:
        subprocess.run([benchlib.SETUP], cwd=ROOT, check=True)
    env = benchlib.loopback_env()
    load_before = benchlib.load_average()
    benchlib.warn_if_busy(load_before)
    rootfs = None
    if not opts.skip_rootfs:
        say("scripts/setup-rootfs from nothing")
        rootfs = measure_rootfs(env)
        say("rootfs: %.0f s, %d MiB" % (rootfs["seconds"], rootfs["base_kib"] / 1024))

    work = tempfile.mkdtemp(prefix="kiln-bench-bodies-")
    boots, twenty = [], {}
    moto = benchlib.start_standin("moto", ["--bodies"], env, os.path.join(work, "moto.log"))
    try:
        ec2 = benchlib.boto3_client("ec2", moto.url)
        bodies_url = moto.ready["bodies_url"]
        vpc = ec2.create_vpc(CidrBlock="127.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="127.0.210.0/24")["Subnet"]["SubnetId"]
        key = ec2.create_key_pair(KeyName="bench")
        key_file = os.path.join(work, "bench.pem")
        with open(key_file, "w") as f:
            f.write(key["KeyMaterial"])
        os.chmod(key_file, 0o600)
        from standins import packer_moto  # benchlib put scripts/ on sys.path
        stock = packer_moto.stock_ubuntu_ami(moto.url)
        image = make_image(ec2, stock, subnet, "bench", bodies_url)
        say("image %s (a unit on :8080)" % image)
        for run in range(1, opts.runs + 1):
            started = time.monotonic()
            instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, SubnetId=subnet,
                                         KeyName="bench")["Instances"][0]
            address = instance["PrivateIpAddress"]
            http = wait_for(lambda: answers("http://%s:8080/" % address), "run %d: :8080 answering" % run)
            ssh = wait_for(lambda: ssh_answers(address, key_file), "run %d: ssh answering" % run)
            marks = console_marks(benchlib.http_json(bodies_url + "/" + instance["InstanceId"])["console"])
            boots.append(dict({"run": run, "http_ms": (http - started) * 1000, "ssh_ms": (ssh - started) * 1000},
                              **{name + "_ms": value for name, value in marks.items()}))
            say("run %d: :8080 after %s ms, ssh after %s ms" % (run, fmt_ms(boots[-1]["http_ms"]),
                                                                fmt_ms(boots[-1]["ssh_ms"])))
            ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])
            benchlib.http_json(bodies_url)  # waits until the stand-in has done the termination
        run_dir = moto.ready["run_dir"]
        before = du_kib(run_dir)
        started = time.monotonic()
        instances = ec2.run_instances(ImageId=image, MinCount=opts.bodies, MaxCount=opts.bodies, SubnetId=subnet,
                                      KeyName="bench")["Instances"]
        for instance in instances:
            wait_for(lambda: answers("http://%s:8080/" % instance["PrivateIpAddress"]),
                     "%s :8080 answering" % instance["InstanceId"])
        twenty = {"bodies": len(instances), "all_answering_ms": (time.monotonic() - started) * 1000,
                  "extra_kib": du_kib(run_dir) - before}
        say("%d bodies: all answering after %s ms, %d KiB extra disk" % (
            len(instances), fmt_ms(twenty["all_answering_ms"]), twenty["extra_kib"]))
        ec2.terminate_instances(InstanceIds=[i["InstanceId"] for i in instances])
    finally:
        moto.stop()
    load_after = benchlib.load_average()
    info = benchlib.machine_facts()
    info["load"] = "%.2f before, %.2f after" % (load_before, load_after)
    info["load_note"] = benchlib.load_note(load_before)
    commit, dirty = benchlib.git_head()
    info["commit"] = commit + (" (with local changes)" if dirty else "")
    section = render(rootfs, boots, twenty, info)
    benchlib.publish(opts, "bodies", "bodies", section,
                     {"rootfs": rootfs, "boots": boots, "twenty": twenty, "info": info}, began)
    subprocess.run(["rm", "-rf", work], check=False)
    return 0


def render(rootfs, boots, twenty, info):
    start, end = benchlib.markers("bodies")
    http = [b["http_ms"] for b in boots]
    ssh = [b["ssh_ms"] for b in boots]
    lines = [start, "## Instance bodies (scripts/bench/bodies.py)", "",
             "%s, %d CPUs (%s), %s; commit %s; load average %s (`uptime`). %s" % (
                 info["date"], info["nproc"], info["cpu"], info["memory"], info["commit"], info["load"],
                 info["load_note"]), "",
             "| figure | value | aim |", "|---|---|---|"]
    if rootfs:
        lines.append("| base root file system from nothing (scripts/setup-rootfs) | %.0f s, %d MiB | < 3 min |"
                     % (rootfs["seconds"], rootfs["base_kib"] / 1024))
        for phase, seconds in rootfs.get("phases", {}).items():
            lines.append("| base root file system: %s | after %d s | - |" % (phase, seconds))
        lines.append("| base root file system: CPU time of scripts/setup-rootfs and its children | %.0f s | - |"
                     % rootfs["cpu_seconds"])
    if boots:
        lines.append("| RunInstances to the unit answering on :8080 (median of %d; min-max) | %s ms (%s-%s) "
                     "| < 2 s |" % (len(http), fmt_ms(benchlib.median(http)), fmt_ms(min(http)), fmt_ms(max(http))))
        lines.append("| RunInstances to an SSH login with the launch key (median of %d) | %s ms | - |"
                     % (len(ssh), fmt_ms(benchlib.median(ssh))))
        for key, what in (("init_started", "the body's init running (the stand-in's launch path)"),
                          ("local_done", "`cloud-init init --local` done"), ("init_done", "`cloud-init init` done"),
                          ("unit_started", "the unit started")):
            values = [b[key + "_ms"] for b in boots if key + "_ms" in b]
            if values:
                lines.append("| RunInstances to %s (the console's stamps, median) | %s ms | - |"
                             % (what, fmt_ms(benchlib.median(values))))
    if twenty:
        lines.append("| %d bodies of one image: all answering | %s ms | - |"
                     % (twenty["bodies"], fmt_ms(twenty["all_answering_ms"])))
        lines.append("| %d bodies of one image: extra disk (du -sk of the run folder) | %.1f MiB | < 200 MB |"
                     % (twenty["bodies"], twenty["extra_kib"] / 1024))
    met = boots and benchlib.median(http) < 2000
    lines += ["", "A body boots as body/init.py orders it: `cloud-init init --local`, `cloud-init init`, then the "
              "enabled units (the image's cloud-init.service is Before=sysinit.target, so every unit waits for "
              "it, as on EC2), then cloud-init's config and final stages, each stage forked from one python3 that "
              "imported cloud-init once. The stamped rows come from the body's console (seconds since the launch) "
              "and show where the time to a unit goes: the stand-in's launch path, then cloud-init's interpreter "
              "and its two stages (about 1 s of CPU together; at a load average above the 2 CPUs, a share of "
              "them), then the unit's own start. The 2 s aim is %s at this load." % ("met" if met else "not met"),
              end, ""]
    return "\n".join(lines)


if __name__ == "__main__":
    benchlib.run_main(main, __file__)
