#!/usr/bin/env python3
"""scripts/bench/rotate.py: kiln-rotate at the limit, in three cases, each written to its own section.

    scripts/bench/rotate.py [--case small,large,groups] [--bin-dir DIR] [--runs 2] [--other-runs 1]
                            [--tools kiln,kiln-default,ansible,awscli] [--desired 20] [--batch 5]
                            [--large-desired 200] [--large-batch 20%] [--large-tools kiln] [--large-runs 1]
                            [--groups 20] [--group-size 5] [--group-batch 2] [--throttles 0.1,0.5] [--seed 16]
                            [--boot-delay 2] [--kiln-poll 2] [--kiln-probe-interval 0.1] [--kiln-consecutive 2]
                            [--cli-poll 0.5] [--output docs/benchmarks.md | --no-write] [--json FILE]

With no arguments (or only --bin-dir) it runs every case and writes every table:
  small   a group of 20, batches of 5, 2 s boot: Kiln with the benchmark's settings, Kiln with the README's default
          poll, Ansible's amazon.aws.autoscaling_group and an AWS CLI script, side by side (below);
  large   a group of 200, batches of 20%: Kiln (ratio to the lower bound, calls per batch and per instance);
  groups  20 groups of 5 rotated by 20 kiln-rotate processes at once against one moto behind the fault proxy at
          AWS's rates (`faults --aws-rates`: EC2's published token buckets, Auto Scaling's of the same shape) with
          10% random throttling, then 50% with the deploy template's `retry:` emulated; every group checked
          afterwards for suspended processes, journal tags, protection and sizes.

Every run of every tool gets a fresh world on loopback: one `scripts/standin
moto`, the fleet simulator (`scripts/standin fleet`, real HTTP health
listeners on the instances' 127.0.1.x addresses), `scripts/standin world
--desired 20` (the group, its launch template and target group) and the
fault proxy (`scripts/standin faults`, every probability 0) in front of
moto, through which the tool makes every AWS call, so that the calls are
counted the same way for every tool. The new release is an AMI copied from
the world's, tagged so the fleet answers its health with 503 for the first
2 seconds after an instance appears, then 200.

The small case's tools, each replacing all 20 instances, 5 at a time:

  - Kiln: the release build of `kiln-rotate --environment test` in a
    project folder holding kiln.yml (batch 5, health url on the instance's
    private address, AWS polled every 2 s, the health URL probed every 0.1 s in between, 2 passes in a row),
    image.json and userdata-test.json (written here, as kiln-bake and kiln-userdata would).
    Kiln makes its own launch template version. `kiln-default`: the same with no `poll` (Kiln's default, 5 s).
  - Ansible: `ansible-playbook` (Debian's ansible, collection amazon.aws)
    running `amazon.aws.autoscaling_group` with `replace_all_instances`,
    `replace_batch_size: 5`, `lt_check: false`, `wait_for_instances`, and the
    launch template version this script made first (through the proxy, so
    that call is counted). The module runs under the project's .venv Python
    (boto3 from scripts/requirements.txt): nothing is installed for it.
  - AWS CLI: a bash script, one `aws` process per call, as a hand-written
    deploy script is: point the group at the new version, then per batch of
    5 old instances `terminate-instance-in-auto-scaling-group
    --no-should-decrement-desired-capacity` each, poll
    `describe-auto-scaling-groups` until the group holds its desired count
    InService again, and curl each new instance's health URL until 200.

Reported per tool (medians over the runs): wall time from spawn to exit,
against the lower bound (batches x boot delay = 4 x 2 s), AWS calls in all
and per replaced instance (the proxy's count; Kiln's own count from
rotation-test.json beside it), the fewest instances answering health 200
during the run (sampled from the fleet every 0.2 s), and whether the group
ended with 20 InService instances of the new AMI all answering 200. Each case
writes its section of docs/benchmarks.md (between `<!-- bench:rotate:start -->`
and `<!-- bench:rotate:end -->`, `bench:rotate-large`, `bench:rotate-groups`)
as soon as it is measured, keeping the rest of the file.

Nothing leaves 127.0.0.0/8: proxies are unset, instance metadata is disabled,
credentials are fake, every endpoint is a loopback stand-in, and only private
addresses in 127.0.0.0/8 are ever probed (moto invents public ones: never used).
"""
import json
import os
import sys
import time

import benchlib
from benchlib import REGION, ROOT, VENV, VENV_PYTHON, boto3_client, fail, http_json, median, ratio, say

benchlib.configure("rotate")
TOOLS = ("kiln", "kiln-default", "kiln-tight", "ansible", "awscli")
# The README's default `health.poll` (RotateConfiguration.swift's HealthSettings.poll), for kiln-default.
README_DEFAULT_POLL = 5
TOOL_NAMES = {"kiln": "Kiln", "kiln-default": "Kiln, the README's default poll (5 s)",
              "kiln-tight": "Kiln, poll 0.1 s, 1 pass (diagnostic)", "ansible": "Ansible",
              "awscli": "AWS CLI script"}
CASES = ("small", "large", "groups")
DEFAULT_TOOLS = {"small": "kiln,kiln-default,ansible,awscli", "large": "kiln"}
# kiln-tight: the same binary with the health gate as tight as it goes, to show what the poll settings cost.
TIGHT_POLL, TIGHT_CONSECUTIVE = 0.1, 1

# The hand-written deploy script the AWS CLI runs as (written to the run's folder).
AWSCLI_SCRIPT = r"""#!/usr/bin/env bash
# A deploy script as people write it: new launch template version on the group,
# then terminate the old instances a batch at a time and let the group replace them.
set -euo pipefail
: "${AWS:?}" "${GROUP:?}" "${LT_ID:?}" "${LT_VERSION:?}" "${BATCH:?}" "${HEALTH_PORT:?}" "${POLL:?}" "${ENDPOINT:?}"
aws() { "$AWS" --endpoint-url "$ENDPOINT" --region us-east-1 --output text "$@"; }

aws autoscaling update-auto-scaling-group --auto-scaling-group-name "$GROUP" \
    --launch-template "LaunchTemplateId=$LT_ID,Version=$LT_VERSION"
read -r desired old_text < <(aws autoscaling describe-auto-scaling-groups --auto-scaling-group-names "$GROUP" \
    --query 'AutoScalingGroups[0].[DesiredCapacity, join(`,`, Instances[].InstanceId)]')
IFS=, read -r -a old <<< "$old_text"
echo "replacing ${#old[@]} instances of $GROUP, $BATCH at a time (desired $desired)" >&2

declare -A was_old=() checked=()
for id in "${old[@]}"; do was_old[$id]=1; done
for ((i = 0; i < ${#old[@]}; i += BATCH)); do
    batch=("${old[@]:i:BATCH}")
    for id in "${batch[@]}"; do
        aws autoscaling terminate-instance-in-auto-scaling-group --instance-id "$id" \
            --no-should-decrement-desired-capacity >/dev/null
    done
    # Wait until the group holds its desired count InService, none of this batch among them.
    while :; do
        ids=$(aws autoscaling describe-auto-scaling-groups --auto-scaling-group-names "$GROUP" \
            --query "AutoScalingGroups[0].Instances[?LifecycleState=='InService'].InstanceId")
        read -r -a live <<< "$(echo $ids)"
        gone=1
        for id in "${batch[@]}"; do [[ " ${live[*]} " == *" $id "* ]] && gone=0; done
        if (( ${#live[@]} >= desired && gone )); then break; fi
        sleep "$POLL"
    done
    # Then wait until every new instance answers its health URL.
    fresh=()
    for id in "${live[@]}"; do [[ -z "${was_old[$id]:-}" && -z "${checked[$id]:-}" ]] && fresh+=("$id"); done
    if (( ${#fresh[@]} )); then
        for ip in $(aws ec2 describe-instances --instance-ids "${fresh[@]}" \
                --query 'Reservations[].Instances[].PrivateIpAddress'); do
            [[ "$ip" == 127.* ]] || { echo "refusing non-loopback address $ip" >&2; exit 1; }
            until [[ "$(curl --noproxy '*' -s -o /dev/null -w '%{http_code}' --max-time 2 \
                    "http://$ip:$HEALTH_PORT/health")" == 200 ]]; do
                sleep "$POLL"
            done
        done
        for id in "${fresh[@]}"; do checked[$id]=1; done
    fi
    echo "batch $((i / BATCH + 1)) done" >&2
done
"""

ANSIBLE_PLAYBOOK = """\
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: replace every instance of the group, {batch} at a time
      amazon.aws.autoscaling_group:
        name: "{group}"
        launch_template:
          launch_template_id: "{lt_id}"
          version: "{lt_version}"
        replace_all_instances: true
        replace_batch_size: {batch}
        lt_check: false
        wait_for_instances: true
        wait_timeout: 300
        health_check_type: ELB
        health_check_period: 0
        # moto has no DisableMetricsCollection, which the module calls when this is false.
        metrics_collection: true
        endpoint_url: "{endpoint}"
        aws_access_key: testing
        aws_secret_key: testing
        region: {region}
"""


# --------------------------------------------------------------------------
# Plumbing (the rest is in benchlib, shared with the other scripts/bench drivers).

def loopback_env(endpoint=None):
    """The environment for every child: no proxies, no metadata, fake keys, no profile, no Ansible, Kiln or CI
    variables of this environment."""
    return benchlib.loopback_env(endpoint, drop_prefixes=("ANSIBLE_", "KILN_", "CI_"))


# --------------------------------------------------------------------------
# One world: moto, the fleet, the group, the fault proxy, the new AMI.

class World:
    """`environments`: one group each (the groups case: g01..g20); `proxy_args`: the fault proxy's options
    (the groups case: AWS's rates and random throttling)."""

    def __init__(self, opts, env, work, environments=("test",), proxy_args=()):
        self.stands = []
        self.work = work
        self.environments = list(environments)
        try:
            self.moto = self._start("moto", [], env)
            self.fleet = self._start("fleet", ["--endpoint", self.moto.url, "--poll", str(opts.fleet_poll)], env)
            self.health_port = int(self.fleet.ready["health_port"])
            self.outputs = json.loads(benchlib.standin_oneshot(
                "world", ["--endpoint", self.moto.url, "--desired", str(opts.desired),
                          "--environments", ",".join(self.environments),
                          "--health-port", str(self.health_port), "--boot-delay", "0"], env))
            self.proxy = self._start("faults", ["--upstream", self.moto.url] + list(proxy_args), env)
        except BaseException:
            self.stop()
            raise
        self.groups = {e: self.output("%s_asg_name" % e) for e in self.environments}
        self.group = self.groups[self.environments[0]]
        self.lt_id = self.output("%s_launch_template_id" % self.environments[0])
        self.old_ami = self.output("app_ami_id")
        self.desired = opts.desired * len(self.environments)
        # The release: a copy of the world's AMI, healthy `boot_delay` seconds after it appears.
        ec2 = boto3_client("ec2", self.moto.url)
        self.new_ami = ec2.copy_image(SourceImageId=self.old_ami, SourceRegion=REGION,
                                      Name="demo-bench-%d" % int(time.time() * 1000))["ImageId"]
        ec2.create_tags(Resources=[self.new_ami], Tags=[
            {"Key": "kiln:fleet-health", "Value": "healthy"},
            {"Key": "kiln:fleet-boot-delay", "Value": str(opts.boot_delay)},
            {"Key": "kiln:fleet-flap-period", "Value": "1"},
            {"Key": "kiln:app", "Value": "demo"}, {"Key": "kiln:role", "Value": "app"}])

    def _start(self, name, args, env):
        stand = benchlib.start_standin(name, args, env, os.path.join(self.work, "%s.log" % name))
        self.stands.append(stand)
        return stand

    def output(self, name):
        return self.outputs[name]["value"]

    def fleet_instances(self):
        return http_json(self.fleet.url.rstrip("/") + "/instances")

    def wait_steady(self, timeout=None):
        """Until the fleet serves health 200 on every instance of the group."""
        deadline = time.monotonic() + (timeout or 30 + self.desired * 0.5)
        while True:
            try:
                healthy = [i for i in self.fleet_instances() if i.get("healthy_now")]
            except OSError:  # the fleet busy starting hundreds of listeners: ask again
                healthy = []
            if len(healthy) >= self.desired:
                return
            if time.monotonic() > deadline:
                fail("the fleet serves %d healthy instances, want %d" % (len(healthy), self.desired))
            time.sleep(0.1)

    def proxy_stats(self):
        return http_json(self.proxy.url.rstrip("/") + "/__kiln_faults/stats")

    def proxy_reset(self):
        http_json(self.proxy.url.rstrip("/") + "/__kiln_faults/reset", method="POST")

    def end_state(self):
        """Straight from moto (not counted): the group's instances, their AMIs, and their health answers."""
        import urllib.request
        asg = boto3_client("autoscaling", self.moto.url)
        ec2 = boto3_client("ec2", self.moto.url)
        group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[self.group])["AutoScalingGroups"][0]
        in_service = [i["InstanceId"] for i in group["Instances"] if i["LifecycleState"] == "InService"]
        images, healthy = {}, 0
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        if in_service:
            for reservation in ec2.describe_instances(InstanceIds=in_service)["Reservations"]:
                for instance in reservation["Instances"]:
                    images[instance["ImageId"]] = images.get(instance["ImageId"], 0) + 1
                    ip = instance.get("PrivateIpAddress") or ""
                    if not ip.startswith("127."):
                        continue  # never contact an address moto invented outside loopback
                    try:
                        with opener.open("http://%s:%d/health" % (ip, self.health_port), timeout=2) as response:
                            healthy += response.status == 200
                    except OSError:
                        pass
        return {
            "desired": group["DesiredCapacity"], "min": group["MinSize"], "max": group["MaxSize"],
            "in_service": len(in_service), "members": len(group["Instances"]),
            "on_new_ami": images.get(self.new_ami, 0), "healthy": healthy,
            "ok": (group["DesiredCapacity"] == self.desired and len(in_service) == self.desired
                   and images.get(self.new_ami, 0) == self.desired and healthy == self.desired),
        }

    def stop(self):
        for stand in reversed(self.stands):
            stand.stop()
        self.stands = []


class Sampler:
    """Counts, every `period` seconds, the instances the fleet answers health 200 for."""

    def __init__(self, world, new_ami, period=0.2):
        import threading
        self.world = world
        self.new_ami = new_ami
        self.period = period
        self.samples = []  # (seconds since start, healthy, healthy on the new AMI)
        self.running = True
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while self.running:
            try:
                instances = self.world.fleet_instances()
                healthy = [i for i in instances if i.get("healthy_now")]
                new = [i for i in healthy if i.get("image_id") == self.new_ami]
                self.samples.append((time.monotonic() - self.started, len(healthy), len(new)))
            except (OSError, ValueError):
                pass
            time.sleep(self.period)

    def stop(self):
        self.running = False
        self.thread.join(timeout=5)
        return self.samples


def total_calls(counts):
    return sum(n for actions in counts.values() for n in actions.values())


def flat_calls(counts):
    return {"%s:%s" % (service, action): n for service, actions in counts.items() for action, n in actions.items()}


# --------------------------------------------------------------------------
# The tools.

# Who wrote image.json and userdata-test.json (kiln-bake and kiln-userdata would name themselves).
PRODUCER = ("bench-rotate", "0")


def prepare_kiln_project(world, opts, project, poll, consecutive, environment="test", group=None):
    """kiln.yml, kiln/image.json, kiln/userdata-ENV.json and the rendered user data, as the stages before write them.
    `poll` None: kiln.yml gives none, so Kiln uses its default (the README's)."""
    import hashlib
    os.makedirs(os.path.join(project, "kiln"))
    with open(os.path.join(project, "kiln.yml"), "w") as f:
        f.write("environments:\n  %s:\n    rotate:\n"
                "      auto_scaling_group: %s\n      batch: %s\n      health:\n"
                "        url: http://{private_ip}:%d/health\n%s        consecutive: %d\n"
                "        probe_interval: %ss\n        timeout: %s\n"
                % (environment, group or world.group, opts.batch, world.health_port,
                   "" if poll is None else "        poll: %ss\n" % poll, consecutive, opts.kiln_probe_interval,
                   opts.kiln_timeout))
    user_data = b"#!/bin/sh\necho hello from the bench\n"
    with open(os.path.join(project, "kiln", "userdata-%s.sh" % environment), "wb") as f:
        f.write(user_data)
    version = "v2.0.0"
    benchlib.write_artifact(os.path.join(project, "kiln", "image.json"), "image", {
        "application": "demo", "applicationVersion": version, "commit": "a" * 40, "role": "app",
        "name": "demo-app-%s" % version, "region": REGION, "amiID": world.new_ami,
        "amis": {REGION: world.new_ami}, "sourceAMI": world.old_ami, "bakeKey": "bench",
        "outcome": "baked", "packerSeconds": 1, "pipelineID": "7"}, producer=PRODUCER)
    benchlib.write_artifact(os.path.join(project, "kiln", "userdata-%s.json" % environment), "userdata", {
        "environment": environment, "format": "shell", "gzip": False, "path": "kiln/userdata-%s.sh" % environment,
        "size": len(user_data), "sha256": hashlib.sha256(user_data).hexdigest(), "templates": ["bench"],
        "variables": [], "amiID": world.new_ami}, producer=PRODUCER)


def new_launch_template_version(world):
    """For Ansible and the AWS CLI script: the release's launch template version, made through the proxy (counted)."""
    ec2 = boto3_client("ec2", world.proxy.url)
    current = str(boto3_client("autoscaling", world.moto.url).describe_auto_scaling_groups(
        AutoScalingGroupNames=[world.group])["AutoScalingGroups"][0]["LaunchTemplate"]["Version"])
    created = ec2.create_launch_template_version(
        LaunchTemplateId=world.lt_id, SourceVersion=current,
        LaunchTemplateData={"ImageId": world.new_ami},
        VersionDescription="bench release")["LaunchTemplateVersion"]
    return str(created["VersionNumber"])


def batch_size(opts):
    """Instances per batch: `--batch` as a count, or a share (`20%`) of the group, rounded up as Kiln does."""
    import math
    text = str(opts.batch)
    if text.endswith("%"):
        return max(1, math.ceil(opts.desired * float(text[:-1]) / 100))
    return int(text)


def batch_count(opts):
    import math
    return math.ceil(opts.desired / batch_size(opts))


def run_tool(tool, world, opts, env, work, bin_dir):
    """Runs one tool on the world; returns (argv, cwd, env, extra facts) ready to time."""
    if tool.startswith("kiln"):
        project = os.path.join(work, "project")
        if tool == "kiln":
            prepare_kiln_project(world, opts, project, opts.kiln_poll, opts.kiln_consecutive)
        elif tool == "kiln-default":
            prepare_kiln_project(world, opts, project, None, opts.kiln_consecutive)
        else:
            prepare_kiln_project(world, opts, project, TIGHT_POLL, TIGHT_CONSECUTIVE)
        tool_env = loopback_env(world.proxy.url)
        tool_env.update({"CI_PROJECT_DIR": project, "CI_PIPELINE_ID": "7", "CI_JOB_ID": "70",
                         "HOME": work})
        return [os.path.join(bin_dir, "kiln-rotate"), "--environment", "test"], project, tool_env, {"project": project}
    version = new_launch_template_version(world)
    if tool == "ansible":
        playbook = os.path.join(work, "rotate.yml")
        with open(playbook, "w") as f:
            f.write(ANSIBLE_PLAYBOOK.format(group=world.group, lt_id=world.lt_id, lt_version=version,
                                            batch=batch_size(opts), endpoint=world.proxy.url, region=REGION))
        config = os.path.join(work, "ansible.cfg")
        with open(config, "w") as f:
            f.write("[defaults]\n")
        tmp = os.path.join(work, "ansible-tmp")
        os.makedirs(tmp, exist_ok=True)
        tool_env = loopback_env()
        tool_env.update({
            "ANSIBLE_CONFIG": config, "ANSIBLE_HOME": tmp, "ANSIBLE_LOCAL_TEMP": tmp,
            "ANSIBLE_REMOTE_TEMP": tmp, "ANSIBLE_PYTHON_INTERPRETER": VENV_PYTHON,
            "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "false", "ANSIBLE_GATHERING": "explicit",
            "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
            "HOME": work,
        })
        return [opts.ansible_playbook, "-i", "localhost,", playbook], work, tool_env, {"lt_version": version}
    if tool == "awscli":
        script = os.path.join(work, "deploy.sh")
        with open(script, "w") as f:
            f.write(AWSCLI_SCRIPT)
        os.chmod(script, 0o755)
        tool_env = loopback_env()
        tool_env.update({
            "AWS": os.path.join(VENV, "bin", "aws"), "GROUP": world.group, "LT_ID": world.lt_id,
            "LT_VERSION": version, "BATCH": str(batch_size(opts)), "HEALTH_PORT": str(world.health_port),
            "POLL": str(opts.cli_poll), "ENDPOINT": world.proxy.url, "HOME": work,
        })
        return ["/bin/bash", script], work, tool_env, {"lt_version": version}
    fail("unknown tool %r" % tool, 64)


def one_run(tool, index, opts, base_env, root_work, bin_dir):
    import subprocess
    work = os.path.join(root_work, "%s-%s-%d" % (getattr(opts, "case_name", "small"), tool, index))
    os.makedirs(work)
    began = time.monotonic()
    world = World(opts, base_env, work)
    try:
        world.wait_steady()
        setup_seconds = time.monotonic() - began
        world.proxy_reset()
        argv, cwd, tool_env, extra = run_tool(tool, world, opts, base_env, work, bin_dir)
        load = os.getloadavg()[0]
        sampler = Sampler(world, world.new_ami)
        started = time.monotonic()
        with open(os.path.join(work, "%s.out" % tool), "w") as out:
            try:
                result = subprocess.run(argv, cwd=cwd, env=tool_env, stdin=subprocess.DEVNULL,
                                        stdout=out, stderr=subprocess.STDOUT, timeout=opts.tool_timeout)
            except subprocess.TimeoutExpired:
                say("%s run %d: killed after --tool-timeout %g s" % (tool, index, opts.tool_timeout))
                result = subprocess.CompletedProcess(argv, 124)
        wall = time.monotonic() - started
        samples = sampler.stop()
        stats = world.proxy_stats()
        end = world.end_state()
        record = {
            "tool": tool, "run": index, "exit": result.returncode, "wall_seconds": wall,
            "setup_seconds": setup_seconds, "load_before": load,
            "calls": flat_calls(stats["calls"]), "forwarded": total_calls(stats["forwarded"]),
            "total_calls": total_calls(stats["calls"]), "end": end,
            "lowest_healthy": min((s[1] for s in samples), default=None),
            "all_new_healthy_at": next((s[0] for s in samples if s[2] >= opts.desired), None),
            "samples": len(samples),
        }
        record.update(extra)
        if tool.startswith("kiln"):
            path = os.path.join(extra["project"], "kiln", "rotation-test.json")
            if os.path.exists(path):
                rotation = json.load(open(path))
                record["kiln_calls"] = rotation.get("calls", {})
                record["kiln_duration"] = rotation.get("durationSeconds")
                record["kiln_outcome"] = rotation.get("outcome")
                record["kiln_batches"] = rotation.get("batches")
                record["kiln_lowest_healthy"] = rotation.get("lowestHealthy")
                healthy_times = sorted(i["healthySeconds"] - i["firstSeenSeconds"]
                                       for i in rotation.get("launched", []) if i.get("healthySeconds") is not None)
                if healthy_times:
                    record["kiln_seen_to_healthy_median"] = median(healthy_times)
                # Per batch (instances first seen together): when seen, when the last of them passed the gate.
                batches = {}
                for item in rotation.get("launched", []):
                    key = round(item["firstSeenSeconds"], 1)
                    seen, passed = batches.get(key, (item["firstSeenSeconds"], 0.0))
                    batches[key] = (min(seen, item["firstSeenSeconds"]), max(passed, item.get("healthySeconds") or 0.0))
                record["kiln_timeline"] = sorted(batches.values())
        ok = result.returncode == 0 and end["ok"]
        say("%s run %d: exit %d, %.1f s, %d AWS calls, end %s (in service %d, new AMI %d, healthy %d), lowest healthy %s"
            % (tool, index, result.returncode, wall, record["total_calls"], "ok" if end["ok"] else "NOT OK",
               end["in_service"], end["on_new_ami"], end["healthy"], record["lowest_healthy"]))
        if not ok:
            with open(os.path.join(work, "%s.out" % tool)) as f:
                sys.stderr.write("".join(f.readlines()[-40:]))
            record["failed"] = True
        return record
    finally:
        world.stop()


# --------------------------------------------------------------------------
# Machine and tool facts, and the section.

def versions(bin_dir, env, opts):
    import platform
    info = benchlib.machine_facts()

    def run(argv):
        return benchlib.run_text(argv, env=env)
    info["kiln"] = run([os.path.join(bin_dir, "kiln-rotate"), "--version"]) or "?"
    commit, dirty = benchlib.git_head(env=env)
    info["commit"] = "%s%s" % (commit or "?", " with local changes" if dirty else "")
    info["swift"] = benchlib.swift_version()[0] or "?"
    info["ansible_core"] = (run([opts.ansible_playbook, "--version"]).splitlines() or ["?"])[0]
    try:
        manifest = json.load(open("/usr/lib/python3/dist-packages/ansible_collections/amazon/aws/MANIFEST.json"))
        info["amazon_aws"] = manifest["collection_info"]["version"]
    except (OSError, ValueError, KeyError):
        info["amazon_aws"] = "?"
    info["ansible_deb"] = run(["dpkg-query", "-W", "-f=${Version}", "ansible"]) or "?"
    info["awscli"] = run([os.path.join(VENV, "bin", "aws"), "--version"]).split(" ")[0]
    info.update(benchlib.package_versions(("moto", "boto3", "botocore")))
    info["python"] = platform.python_version()
    return info


def fmt_s(value):
    return benchlib.fmt_number(value, ((0, 1),))


def timeline_summary(runs):
    """Medians over runs of: first batch seen after start, seen to passed, passed to next batch seen, last passed to exit."""
    first, gate, between, tail = [], [], [], []
    for r in runs:
        line = r.get("kiln_timeline") or []
        if not line:
            continue
        first.append(line[0][0])
        gate += [passed - seen for seen, passed in line]
        between += [line[i + 1][0] - line[i][1] for i in range(len(line) - 1)]
        tail.append(r["wall_seconds"] - line[-1][1])
    if not first:
        return None
    return {"first_seen": median(first), "gate": median(gate), "between": median(between) if between else None,
            "tail": median(tail)}


def summarize(records, opts):
    by_tool = {}
    for tool in opts.tools:
        runs = [r for r in records if r["tool"] == tool]
        good = [r for r in runs if not r.get("failed")]
        if not good:
            by_tool[tool] = {"runs": len(runs), "good": 0}
            continue
        calls = median([r["total_calls"] for r in good])
        actions = {}
        for r in good:
            for key in r["calls"]:
                actions[key] = median([x["calls"].get(key, 0) for x in good])
        by_tool[tool] = {
            "runs": len(runs), "good": len(good),
            "wall": median([r["wall_seconds"] for r in good]),
            "wall_min": min(r["wall_seconds"] for r in good), "wall_max": max(r["wall_seconds"] for r in good),
            "calls": calls, "per_instance": calls / opts.desired, "batches": batch_count(opts),
            "desired": opts.desired,
            "actions": actions,
            "lowest_healthy": min(r["lowest_healthy"] for r in good if r["lowest_healthy"] is not None),
            "healthy_at_exit": min(r["end"]["healthy"] for r in good),
            "kiln_calls": median([total_calls({"x": r["kiln_calls"]}) for r in good]) if tool.startswith("kiln") and all(
                "kiln_calls" in r for r in good) else None,
            "kiln_duration": median([r["kiln_duration"] for r in good if r.get("kiln_duration") is not None])
            if tool.startswith("kiln") and any(r.get("kiln_duration") is not None for r in good) else None,
            "timeline": timeline_summary(good) if tool.startswith("kiln") else None,
            "seen_to_healthy": median([r["kiln_seen_to_healthy_median"] for r in good
                                       if "kiln_seen_to_healthy_median" in r])
            if tool.startswith("kiln") and any("kiln_seen_to_healthy_median" in r for r in good) else None,
        }
    return by_tool


def machine_line(info):
    return (
        "Run %s on %d CPU(s) (%s), %s memory, %s, load average (1 min) %s (%s); Kiln %s "
        "(release build of %s, Swift %s), %s with amazon.aws %s (Debian ansible %s; the module under the project's "
        ".venv Python, boto3 %s), AWS CLI %s (awscli from PyPI), moto %s, Python %s." % (
            info["date"], info["nproc"], info["cpu"], info["memory"], info["os"], info["load"], info["load_note"],
            info["kiln"], info["commit"], info["swift"], info["ansible_core"], info["amazon_aws"],
            info["ansible_deb"], info["boto3"], info["awscli"], info["moto"], info["python"]))


def render(records, info, opts, case="small", reference=None):
    """The section of one single-group case (`small`, `large`). `reference`: the small case's summary, for the
    large case's calls-per-batch comparison."""
    batches = batch_count(opts)
    bound = batches * opts.boot_delay
    summary = summarize(records, opts)
    kiln = summary.get("kiln", {})
    start, end = benchlib.markers("rotate" if case == "small" else "rotate-" + case)
    title = ("## Rolling a group (scripts/bench/rotate.py)" if case == "small"
             else "## Rolling a group of %d (scripts/bench/rotate.py --case large)" % opts.desired)
    lines = [start, title, "", machine_line(info), ""]
    lines.append(
        "A group of %d instances is moved onto a new AMI, %s at a time (%d batches of up to %d), by each tool in "
        "turn; each run gets a fresh "
        "world on loopback (moto, the fleet simulator answering health on each instance's own 127.0.x.y address, "
        "the group, its launch template and target group), with the new release's instances answering health 503 "
        "for %g s after they appear, then 200. Every AWS call goes through the fault proxy (no faults), which counts "
        "them; the new launch template version is made by Kiln itself, and for Ansible and the script by this "
        "benchmark through the same proxy (1 call, counted for them). Wall time is the tool's process from spawn to "
        "exit; the lower bound is batches × boot delay = %d × %g s = %g s. Kiln runs with `poll: %gs`, "
        "`consecutive: %d`, `probe_interval: %gs` (the benchmark's settings), and once more with no `poll` in "
        "kiln.yml, so its default (the README's, %d s). %s, medians." % (
            opts.desired, opts.batch, batches, batch_size(opts), opts.boot_delay, batches, opts.boot_delay, bound,
            opts.kiln_poll, opts.kiln_consecutive, opts.kiln_probe_interval, README_DEFAULT_POLL,
            ", ".join("%s %d run(s)" % (TOOL_NAMES[t], summary.get(t, {}).get("runs", 0)) for t in opts.tools)))
    lines.append("")
    lines.append("| tool | waits for | wall time (s) | / lower bound | / Kiln's | AWS calls | per batch "
                 "| per replaced instance | / Kiln's | fewest healthy during | healthy at exit |")
    lines.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    gate = ("InService and target group every %s, its health URL 200 on %d probes in a row every %g s between "
            "those polls")
    waits = {
        "kiln": "new batch first (surge); " + gate % ("%g s" % opts.kiln_poll, opts.kiln_consecutive,
                                                     opts.kiln_probe_interval) + "; then retires the old batch",
        "kiln-default": "the same, polls every %d s (no `poll` in kiln.yml)" % README_DEFAULT_POLL,
        "kiln-tight": "the same, health URL 200 on %d poll(s), every %g s" % (TIGHT_CONSECUTIVE, TIGHT_POLL),
        "ansible": "surge of one batch, then per batch: terminate, InService and target group healthy "
                   "(moto: at once), 10 s sleeps in its wait loops; never the health URL",
        "awscli": "terminate a batch first, then InService count back, then curl of each new instance's "
                  "health URL until 200, every %g s" % opts.cli_poll,
    }
    for tool in opts.tools:
        s = summary.get(tool, {})
        if not s.get("good"):
            lines.append("| %s | %s | failed (%d run(s)) | | | | | | | | |"
                         % (TOOL_NAMES[tool], waits[tool], s.get("runs", 0)))
            continue
        lines.append("| %s | %s | %s (%s–%s) | %s | %s | %d | %.1f | %.2f | %s | %d of %d | %d of %d |" % (
            TOOL_NAMES[tool], waits[tool], fmt_s(s["wall"]), fmt_s(s["wall_min"]), fmt_s(s["wall_max"]),
            ratio(s["wall"], bound), "1.00×" if tool == "kiln" else ratio(s["wall"], kiln.get("wall")),
            s["calls"], s["calls"] / batches, s["per_instance"],
            "1.00×" if tool == "kiln" else ratio(s["calls"], kiln.get("calls")),
            s["lowest_healthy"], opts.desired, s["healthy_at_exit"], opts.desired))
    lines.append("")
    lines.append("AWS calls by action (median per run):")
    lines.append("")
    keys = sorted({k for s in summary.values() for k in s.get("actions", {})})
    lines.append("| action | " + " | ".join(TOOL_NAMES[t] for t in opts.tools) + " |")
    lines.append("| --- | " + " | ".join("---:" for _ in opts.tools) + " |")
    for key in keys:
        cells = []
        for tool in opts.tools:
            value = summary.get(tool, {}).get("actions", {}).get(key)
            cells.append("–" if not value else ("%g" % value))
        lines.append("| `%s` | %s |" % (key, " | ".join(cells)))
    lines.append("")
    if kiln.get("good"):
        lines += aims(summary, opts, case, bound, batches, reference) + [""]
        detail = ("Kiln's own count (`calls` in rotation-test.json, median %s) agrees with the proxy's; its "
                  "`durationSeconds` median is %s s; a new instance's time from first seen to passing the gate, "
                  "median %s s." % (
                      "%d" % kiln["kiln_calls"] if kiln.get("kiln_calls") is not None else "–",
                      fmt_s(kiln.get("kiln_duration")), fmt_s(kiln.get("seen_to_healthy"))))
        if kiln.get("kiln_calls") is not None and kiln["kiln_calls"] != kiln["calls"]:
            detail = detail.replace("agrees with the proxy's", "differs from the proxy's (%d)" % kiln["calls"])
        lines.append(detail)
        lines.append("")
    for tool in [t for t in opts.tools if t.startswith("kiln")]:
        t = summary.get(tool, {}).get("timeline")
        if not t:
            continue
        lines.append(
            "%s, where the wall time goes (from rotation-test.json's `launched`, medians): the first batch is "
            "seen %.2f s after the process starts; a batch takes %.2f s from first seen to passing the gate "
            "(boot delay %g s); %s s pass between a batch passing and the next batch being seen (the old "
            "batch retired, the next launched, and the poll that finds its instances); and the process exits "
            "%.2f s after the last batch passed (the last retirement, sizes and processes restored, the journal "
            "removed)." % (
                TOOL_NAMES[tool], t["first_seen"], t["gate"], opts.boot_delay,
                "%.2f" % t["between"] if t["between"] is not None else "–", t["tail"]))
        lines.append("")
    tight = summary.get("kiln-tight", {})
    if kiln.get("good") and tight.get("good"):
        lines.append(
            "Diagnostic: the same Kiln with `poll: %gs` and `consecutive: %d` takes %.1f s (%s the bound, %.2f calls "
            "per replaced instance): the gate's settings account for %.1f s of Kiln's %.1f s above the bound; the "
            "other %.1f s is work that does not overlap a boot (process start, the calls between batches and at the "
            "end) and the stand-ins' own lag (the fleet starts an instance's boot clock when its 0.1 s poll of "
            "moto first sees it)." % (
                TIGHT_POLL, TIGHT_CONSECUTIVE, tight["wall"], ratio(tight["wall"], bound), tight["per_instance"],
                kiln["wall"] - tight["wall"], kiln["wall"] - bound, tight["wall"] - bound))
        lines.append("")
    lines.append(
        "The other tools: Ansible's module sleeps 10 s in each of its wait loops (at least one per batch, for the "
        "terminations), whatever the boot time, and never asks the application. The script pays one `aws` "
        "process start (about half a second) per call, and lets capacity fall by a batch while the replacements "
        "boot. On moto instances are InService at once and target health is always healthy, so only Kiln and the "
        "script wait for the application itself.")
    lines.append("")
    lines.append("Re-run with `scripts/bench/rotate.py` (every case; `--case %s` for this one alone, `--help` for the "
                 "options); this case took %.1f minutes." % (case, info.get("elapsed", 0) / 60))
    lines.append(end)
    return "\n".join(lines) + "\n"


def aims(summary, opts, case, bound, batches, reference):
    """The issue's aims for the case, each `met` or `not met` with the figure."""
    kiln = summary["kiln"]
    verdict = lambda ok: "**met**" if ok else "**not met**"  # noqa: E731
    lowest = "healthy never below %d: %s (fewest %d)" % (opts.desired, verdict(kiln["lowest_healthy"] >= opts.desired),
                                                        kiln["lowest_healthy"])
    if case == "small":
        limit = 1.10
        out = []
        for tool in ("kiln", "kiln-default"):
            t = summary.get(tool, {})
            if t.get("good"):
                out.append("%s within %.2f× of the lower bound (%.1f s): %s (%.1f s, %s)" % (
                    TOOL_NAMES[tool], limit, limit * bound, verdict(t["wall"] <= limit * bound), t["wall"],
                    ratio(t["wall"], bound)))
        cli = summary.get("awscli", {})
        if cli.get("good"):
            out.append("fewer AWS calls per replaced instance than the CLI script in the same run: %s (%.2f against "
                       "%.2f)" % (verdict(kiln["per_instance"] < cli["per_instance"]), kiln["per_instance"],
                                  cli["per_instance"]))
        out.append(lowest)
        return ["Aims (issue 16): " + "; ".join(out) + "."]
    limit = 1.5
    out = ["within %.1f× of the lower bound (%.1f s): %s (%.1f s, %s)" % (
        limit, limit * bound, verdict(kiln["wall"] <= limit * bound), kiln["wall"], ratio(kiln["wall"], bound))]
    per_batch = kiln["calls"] / batches
    small = (reference or {}).get("kiln", {})
    if small.get("good"):
        small_batches = small["batches"]
        out.append("calls per batch the same as at %d instances: %s (%.1f against %.1f)" % (
            small["desired"], verdict(per_batch <= small["calls"] / small_batches + 0.5), per_batch,
            small["calls"] / small_batches))
    out.append("under 0.3 calls per instance: %s (%.2f)" % (verdict(kiln["per_instance"] < 0.3), kiln["per_instance"]))
    out.append(lowest)
    return ["Aims (issue 16): " + "; ".join(out) + "."]


# --------------------------------------------------------------------------
# The groups case: many groups at once, one kiln-rotate process each, against one moto at AWS's rates.

def template_retry(path=os.path.join(ROOT, "ci-templates", "jobs", "deploy.yml")):
    """The deploy job's `retry:` in the deploy component (the job whose script runs `kiln-rotate --environment`):
    (max, exit codes). GitLab re-runs a job up to `max` more times when it fails with one of `exit_codes`
    (https://docs.gitlab.com/ci/yaml/#retry, `retry:max` and `retry:exit_codes`)."""
    import yaml
    for document in yaml.safe_load_all(open(path)):
        for job in (document or {}).values():
            if isinstance(job, dict) and any("kiln-rotate --environment" in str(line)
                                             for line in job.get("script") or []):
                retry = job.get("retry") or {}
                if isinstance(retry, int):
                    return retry, None
                return int(retry.get("max", 0)), retry.get("exit_codes")
    fail("%s: no deploy job running kiln-rotate" % path)


def group_state(world, environment):
    """Straight from moto (not counted): is the group finished (every instance InService on the new AMI, sizes as
    at the start), and what a rotation left behind (suspended processes, journal tags, scale-in protection)."""
    asg = boto3_client("autoscaling", world.moto.url)
    ec2 = boto3_client("ec2", world.moto.url)
    name = world.groups[environment]
    group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
    ids = [i["InstanceId"] for i in group["Instances"] if i["LifecycleState"] == "InService"]
    images = {}
    if ids:
        for reservation in ec2.describe_instances(InstanceIds=ids)["Reservations"]:
            for instance in reservation["Instances"]:
                images[instance["ImageId"]] = images.get(instance["ImageId"], 0) + 1
    left = []
    suspended = sorted(p["ProcessName"] for p in group.get("SuspendedProcesses", []))
    if suspended:
        left.append("suspended " + ",".join(suspended))
    journal = sorted(t["Key"] for t in group.get("Tags", []) if t["Key"].startswith("kiln:rotation:"))
    if journal:
        left.append("tags " + ",".join(journal))
    protected = [i["InstanceId"] for i in group["Instances"] if i.get("ProtectedFromScaleIn")]
    if protected:
        left.append("%d protected from scale-in" % len(protected))
    sizes = (group["MinSize"], group["DesiredCapacity"], group["MaxSize"])
    if sizes != world.start_sizes[environment]:
        left.append("sizes %s, were %s" % ("/".join(map(str, sizes)), "/".join(map(str, world.start_sizes[environment]))))
    finished = images.get(world.new_ami, 0) == sizes[1] and len(ids) == sizes[1] and not left
    return {"group": name, "finished": finished, "left": left, "in_service": len(ids),
            "on_new_ami": images.get(world.new_ami, 0), "sizes": list(sizes)}


def groups_case(label, throttle, retry, opts, env, root_work, bin_dir):
    """20 groups of 5 (`--groups`, `--group-size`), one kiln-rotate job each, all started at once against one moto
    behind the fault proxy metering AWS's rates (`--aws-rates`) plus `throttle` random throttling; `retry`:
    (max, exit codes) as GitLab's retry, or None for a single attempt."""
    import subprocess
    import threading
    work = os.path.join(root_work, "groups-%s" % label)
    os.makedirs(work)
    environments = ["g%02d" % (i + 1) for i in range(opts.groups)]
    case_opts = argparse_copy(opts, desired=opts.group_size, batch=opts.group_batch)
    proxy_args = ["--aws-rates", "--throttle", str(throttle), "--seed", str(opts.seed)]
    load_before = benchlib.load_average()
    world = World(case_opts, env, work, environments, proxy_args)
    try:
        world.wait_steady()
        asg = boto3_client("autoscaling", world.moto.url)
        world.start_sizes = {}
        for e, name in world.groups.items():
            g = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
            world.start_sizes[e] = (g["MinSize"], g["DesiredCapacity"], g["MaxSize"])
        world.proxy_reset()
        jobs = {}
        for e in environments:
            project = os.path.join(work, "project-" + e)
            prepare_kiln_project(world, case_opts, project, opts.kiln_poll, opts.kiln_consecutive, e, world.groups[e])
            tool_env = loopback_env(world.proxy.url)
            tool_env.update({"CI_PROJECT_DIR": project, "CI_PIPELINE_ID": "7", "CI_JOB_ID": "70", "HOME": work})
            jobs[e] = {"project": project, "env": tool_env, "exits": [], "seconds": []}
        argv_for = lambda e: [os.path.join(bin_dir, "kiln-rotate"), "--environment", e]  # noqa: E731

        def job(e):
            # One GitLab job and its retries: each attempt a fresh kiln-rotate in the same project folder (a
            # retried job gets a fresh checkout: kiln.yml and the artifacts are the same, the log is new).
            spec = jobs[e]
            attempts = 1 + (retry[0] if retry else 0)
            for attempt in range(attempts):
                started = time.monotonic()
                with open(os.path.join(work, "%s-%d.out" % (e, attempt + 1)), "w") as out:
                    try:
                        code = subprocess.run(argv_for(e), cwd=spec["project"], env=spec["env"],
                                              stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                              timeout=opts.tool_timeout).returncode
                    except subprocess.TimeoutExpired:
                        code = 124
                spec["exits"].append(code)
                spec["seconds"].append(time.monotonic() - started)
                if code != 0:  # why: the attempt's last lines, for the section and the lead
                    with open(os.path.join(work, "%s-%d.out" % (e, attempt + 1))) as f:
                        spec.setdefault("failures", []).append(
                            {"attempt": attempt + 1, "exit": code, "tail": [x.rstrip("\n") for x in f][-3:]})
                if code == 0 or not retry or (retry[1] is not None and code not in retry[1]):
                    return

        say("groups %s: %d kiln-rotate jobs at once, throttle %g%s" % (
            label, len(environments), throttle, ", retry %s" % (retry,) if retry else ", no retry"))
        started = time.monotonic()
        threads = [threading.Thread(target=job, args=(e,)) for e in environments]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - started
        stats = world.proxy_stats()
        states = {e: group_state(world, e) for e in environments}
    finally:
        world.stop()
    faults = stats.get("faults", {})
    record = {
        "case": label, "throttle": throttle, "retry": list(retry) if retry else None, "wall_seconds": wall,
        "load_before": load_before, "load_after": benchlib.load_average(),
        "groups": len(environments), "finished": sum(1 for s in states.values() if s["finished"]),
        "dirty": sum(1 for s in states.values() if s["left"]),
        "retries_used": sum(len(j["exits"]) - 1 for j in jobs.values()),
        "exits": {e: j["exits"] for e, j in jobs.items()},
        "failed_attempts": {e: j["failures"] for e, j in jobs.items() if j.get("failures")},
        "job_seconds": {e: j["seconds"] for e, j in jobs.items()},
        "states": states, "calls": total_calls(stats["calls"]),
        "rate_refused": total_calls(faults.get("rate", {})), "random_throttled": total_calls(faults.get("throttle", {})),
        "refused_by_action": flat_calls(faults.get("rate", {})),
    }
    say("groups %s: %.1f s, %d of %d finished, %d dirty, %d retries, %d calls (%d refused by the buckets, %d "
        "throttled at random)" % (label, wall, record["finished"], record["groups"], record["dirty"],
                                   record["retries_used"], record["calls"], record["rate_refused"],
                                   record["random_throttled"]))
    for e, st in states.items():
        if not st["finished"] or st["left"]:
            say("  %s: exits %s, %s" % (e, jobs[e]["exits"], "; ".join(st["left"]) or "not finished"))
            last = os.path.join(work, "%s-%d.out" % (e, len(jobs[e]["exits"])))
            with open(last) as f:
                record.setdefault("failure_logs", {})[e] = f.readlines()[-15:]
            sys.stderr.write("".join(record["failure_logs"][e]))
    if not record["finished"] == record["groups"] or record["dirty"]:
        record["failed"] = True
    return record


def argparse_copy(opts, **changes):
    import copy
    new = copy.copy(opts)
    for key, value in changes.items():
        setattr(new, key, value)
    return new


def render_groups(records, info, opts):
    start, end = benchlib.markers("rotate-groups")
    lines = [start, "## Rotating %d groups at once at AWS's rates (scripts/bench/rotate.py --case groups)" % opts.groups,
             "", machine_line(info), ""]
    lines.append(
        "%d groups of %d instances in one moto (the world's `--environments g01,...`), each rotated onto a new AMI by "
        "its own `kiln-rotate` process (batch %s, `poll: %gs`, `consecutive: %d`, `probe_interval: %gs`, "
        "2 s boot), all %d started at once, as %d deploy jobs of one pipeline would be. Every call goes through one "
        "fault proxy with `--aws-rates`: EC2's published token buckets (per action, by category: non-mutating "
        "100 tokens refilled at 20/s, unfiltered DescribeInstances 50 at 10/s, mutating 50 at 5/s, CreateTags "
        "100 at 10/s, CreateLaunchTemplateVersion 100 at 5/s; the EC2 API reference's \"Request throttling\" page) "
        "and buckets of the same shape for Auto Scaling (Describe* 100 at 20/s, the rest 50 at 5/s: AWS publishes "
        "no sizes for Auto Scaling, so these are a guess), answered with RequestLimitExceeded (EC2, 503) and "
        "Throttling (Auto Scaling, 400), plus random throttling in the same shapes. The second case emulates the "
        "deploy component's `retry:` (read from ci-templates/jobs/deploy.yml: max %d, exit codes %s): a job that "
        "fails with one of those codes is run again, up to that many times. After the run, every group is read "
        "straight from moto: finished means every instance InService on the new AMI with min/desired/max as at "
        "the start; dirty means suspended processes, `kiln:rotation:` journal tags, scale-in protection or sizes "
        "left changed. One run per case." % (
            opts.groups, opts.group_size, opts.group_batch, opts.kiln_poll, opts.kiln_consecutive,
            opts.kiln_probe_interval, opts.groups, opts.groups, info["retry"][0], info["retry"][1]))
    lines.append("")
    lines.append("| case | wall time (s) | load before, after | groups finished | groups left dirty | job retries used "
                 "| exit codes (last attempt) | AWS calls | refused by the buckets | throttled at random |")
    lines.append("| --- | ---: | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
    for r in records:
        tally = {}
        for exits in r["exits"].values():
            tally[exits[-1]] = tally.get(exits[-1], 0) + 1
        lines.append("| %d%% throttling, %s | %.1f | %.1f, %.1f | %d of %d | %d | %d | %s | %d | %d | %d |" % (
            round(r["throttle"] * 100), "retry max %d on %s" % tuple(r["retry"]) if r["retry"] else "no retry",
            r["wall_seconds"], r["load_before"], r["load_after"], r["finished"], r["groups"], r["dirty"],
            r["retries_used"], ", ".join("%d × %d" % (n, code) for code, n in sorted(tally.items())), r["calls"],
            r["rate_refused"], r["random_throttled"]))
    lines.append("")
    for r in records:
        bad = {e: s for e, s in r["states"].items() if not s["finished"] or s["left"]}
        if bad:
            lines.append("%d%% throttling: %s." % (round(r["throttle"] * 100), "; ".join(
                "%s (exits %s): %s" % (s["group"], r["exits"][e], ", ".join(s["left"]) or "not finished: %d of %d on "
                                       "the new AMI" % (s["on_new_ami"], s["sizes"][1])) for e, s in bad.items())))
            lines.append("")
        if r.get("refused_by_action"):
            lines.append("%d%% throttling, refused by the buckets: %s." % (round(r["throttle"] * 100), ", ".join(
                "`%s` %d" % (k, n) for k, n in sorted(r["refused_by_action"].items()))))
            lines.append("")
    for r in records:
        if r.get("failed_attempts"):
            lines.append("%d%% throttling, attempts that failed: %s." % (round(r["throttle"] * 100), "; ".join(
                "%s attempt %d exit %d (`%s`)" % (e, f["attempt"], f["exit"], (f["tail"] or [""])[-2 if len(
                    f["tail"]) > 1 else -1].strip()[:160].replace("|", "\\|"))
                for e, fs in sorted(r["failed_attempts"].items()) for f in fs)))
            lines.append("")
    verdicts = []
    for r in records:
        ok = r["finished"] == r["groups"] and not r["dirty"]
        verdicts.append("%d%% throttling%s: all finish, nothing left suspended or tagged: %s" % (
            round(r["throttle"] * 100), " with the template's retries" if r["retry"] else "",
            "**met**" if ok else "**not met**"))
    lines.append("Aims (issue 16): " + "; ".join(verdicts) + ".")
    lines.append("")
    lines.append("Re-run with `scripts/bench/rotate.py` (every case; `--case groups` for this one alone); this case "
                 "took %.1f minutes." % (info.get("elapsed", 0) / 60))
    lines.append(end)
    return "\n".join(lines) + "\n"


def main(argv):
    import argparse
    import shutil
    import subprocess
    import tempfile
    p = argparse.ArgumentParser(prog="scripts/bench/rotate.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", default=",".join(CASES),
                   help="which of %s, comma-separated (default all: one command reproduces every table)"
                   % ",".join(CASES))
    p.add_argument("--runs", type=int, default=2, help="runs of each Kiln tool in the small case, interleaved (default 2)")
    p.add_argument("--other-runs", type=int, default=1,
                   help="runs of Ansible and the AWS CLI script in the small case (default 1: Ansible's 10 s sleeps "
                        "make it a minute or more a run)")
    p.add_argument("--large-runs", type=int, default=1, help="runs per tool in the large case (default 1)")
    p.add_argument("--tools", default=DEFAULT_TOOLS["small"],
                   help="the small case's tools, some of %s (default %s)" % (",".join(TOOLS), DEFAULT_TOOLS["small"]))
    p.add_argument("--large-tools", default=DEFAULT_TOOLS["large"],
                   help="the large case's tools (default %s)" % DEFAULT_TOOLS["large"])
    p.add_argument("--desired", type=int, default=20, help="small case: instances in the group (default 20)")
    p.add_argument("--batch", default="5", help="small case: instances per batch, or a share: 25%% (default 5)")
    p.add_argument("--large-desired", type=int, default=200, help="large case: instances (default 200)")
    p.add_argument("--large-batch", default="20%", help="large case: batch (default 20%%)")
    p.add_argument("--fleet-poll", type=float, default=0.1,
                   help="the fleet simulator's DescribeInstances poll, seconds (default 0.1): a new instance's boot "
                        "clock starts when the fleet first sees it")
    p.add_argument("--large-fleet-poll", type=float, default=0.1,
                   help="the same for the large case (default 0.1; moto serves one request at a time, so the "
                        "fleet's polls of 400 instances and the tool's calls queue behind each other: 0.5 took "
                        "345 s against 0.1's 401 s, at other loads, so not shown to matter)")
    p.add_argument("--groups", type=int, default=20, help="groups case: groups, one kiln-rotate each (default 20)")
    p.add_argument("--group-size", type=int, default=5, help="groups case: instances per group (default 5)")
    p.add_argument("--group-batch", default="2", help="groups case: Kiln's batch (default 2)")
    p.add_argument("--throttles", default="0.1,0.5",
                   help="groups case: random throttling of each run; the first without retries, the others with the "
                        "template's (default 0.1,0.5)")
    p.add_argument("--seed", type=int, default=16, help="groups case: the fault proxy's random seed (default 16)")
    p.add_argument("--boot-delay", type=float, default=2.0,
                   help="seconds of 503 before a new instance is healthy (default 2)")
    p.add_argument("--kiln-poll", type=float, default=2, help="Kiln's health.poll (AWS calls), seconds (default 2)")
    p.add_argument("--kiln-probe-interval", type=float, default=0.1,
                   help="Kiln's health.probe_interval (HTTP probes between polls, no AWS call), seconds (default 0.1)")
    p.add_argument("--kiln-consecutive", type=int, default=2, help="Kiln's health.consecutive (default 2)")
    p.add_argument("--kiln-timeout", default="300s", help="Kiln's health.timeout (default 300s)")
    p.add_argument("--cli-poll", type=float, default=0.5,
                   help="the AWS CLI script's sleep between polls (default 0.5)")
    p.add_argument("--tool-timeout", type=float, default=600, help="seconds one tool run may take (default 600)")
    p.add_argument("--ansible-playbook", default="/usr/bin/ansible-playbook", help="ansible-playbook to run")
    p.add_argument("--output", default=benchlib.DOCS)
    p.add_argument("--no-write", action="store_true", help="print the sections instead of writing them")
    p.add_argument("--bin-dir", help="use kiln-rotate from here instead of building")
    p.add_argument("--no-setup", action="store_true", help="do not run scripts/setup first")
    p.add_argument("--json", metavar="FILE", help="also write every measurement as JSON")
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs, tool output)")
    opts = p.parse_args(argv)
    opts.cases = [c.strip() for c in opts.case.split(",") if c.strip()]
    if not opts.cases or any(c not in CASES for c in opts.cases):
        fail("--case: expected some of %s" % ",".join(CASES), 64)
    opts.tools = [t.strip() for t in opts.tools.split(",") if t.strip()]
    opts.large_tools = [t.strip() for t in opts.large_tools.split(",") if t.strip()]
    if any(t not in TOOLS for t in opts.tools + opts.large_tools) or not opts.tools or not opts.large_tools:
        fail("--tools, --large-tools: expected some of %s" % ",".join(TOOLS), 64)
    try:
        opts.throttle_list = [float(x) for x in opts.throttles.split(",") if x.strip()]
    except ValueError:
        fail("--throttles: expected probabilities, such as 0.1,0.5", 64)
    if (min(opts.runs, opts.other_runs, opts.large_runs, opts.desired, opts.large_desired, opts.groups,
            opts.group_size, opts.kiln_consecutive) < 1 or opts.boot_delay < 0
            or any(not 0 <= t <= 1 for t in opts.throttle_list)):
        fail("counts must be at least 1, the boot delay at least 0, throttling between 0 and 1", 64)
    for value, name in ((opts.batch, "--batch"), (opts.large_batch, "--large-batch"), (opts.group_batch, "--group-batch")):
        try:
            ok = (float(value[:-1]) > 0) if value.endswith("%") else int(value) >= 1
        except ValueError:
            ok = False
        if not ok:
            fail("%s: expected a count of at least 1 or a share such as 20%%, not %r" % (name, value), 64)

    began = time.monotonic()
    if not opts.no_setup:
        subprocess.run([benchlib.SETUP], cwd=ROOT, check=True)
    env = loopback_env()
    all_tools = (opts.tools if "small" in opts.cases else []) + (opts.large_tools if "large" in opts.cases else [])
    if "awscli" in all_tools and not os.access(os.path.join(VENV, "bin", "aws"), os.X_OK):
        fail("no AWS CLI in .venv: it comes from `awscli` in scripts/requirements.txt")
    if "ansible" in all_tools:
        if not os.access(opts.ansible_playbook, os.X_OK):
            fail("no %s: install Debian's ansible (apt-get install ansible), which carries amazon.aws"
                 % opts.ansible_playbook)
        check = subprocess.run(["ansible-doc", "-t", "module", "--list", "amazon.aws"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if "amazon.aws.autoscaling_group" not in check.stdout:
            fail("Ansible has no amazon.aws.autoscaling_group (Debian's ansible package carries it)")
    bin_dir = os.path.abspath(opts.bin_dir) if opts.bin_dir else benchlib.build("kiln-rotate", env)
    if not os.access(os.path.join(bin_dir, "kiln-rotate"), os.X_OK):
        fail("%s/kiln-rotate is not built" % bin_dir)

    work = tempfile.mkdtemp(prefix="kiln-bench-rotate-")
    info = versions(bin_dir, env, opts)
    info["retry"] = template_retry()
    measurements = {"info": info, "options": vars(opts), "cases": {}}
    sections = []
    failed = False
    finished = False
    small_summary = None
    try:
        for case in opts.cases:
            case_began = time.monotonic()
            case_date = time.strftime("%Y-%m-%d %H:%M %Z")  # as machine_facts writes it, at this case's start
            load_before = benchlib.load_average()
            benchlib.warn_if_busy(load_before)
            records = []
            if case in ("small", "large"):
                case_opts = argparse_copy(opts, case_name=case) if case == "small" else argparse_copy(
                    opts, desired=opts.large_desired, batch=opts.large_batch, tools=opts.large_tools,
                    runs=opts.large_runs, case_name=case, fleet_poll=opts.large_fleet_poll)
                runs_of = lambda tool: case_opts.runs if tool.startswith("kiln") else opts.other_runs  # noqa: E731
                for index in range(1, max(runs_of(t) for t in case_opts.tools) + 1):
                    order = case_opts.tools if index % 2 else list(reversed(case_opts.tools))  # drift hits all alike
                    for tool in order:
                        if index > runs_of(tool):
                            continue
                        say("%s, run %d: %s" % (case, index, tool))
                        records.append(one_run(tool, index, case_opts, env, work, bin_dir))
            else:
                case_opts = opts
                for i, throttle in enumerate(opts.throttle_list):
                    retry = info["retry"] if i > 0 else None
                    records.append(groups_case("%d-%d" % (i + 1, round(throttle * 100)), throttle, retry, opts,
                                               env, work, bin_dir))
            load_after = benchlib.load_average()
            case_info = dict(info, load="%.2f before, %.2f after" % (load_before, load_after),
                             load_note=benchlib.load_note(load_before).rstrip("."),
                             elapsed=time.monotonic() - case_began, date=case_date)
            if case == "groups":
                section = render_groups(records, case_info, opts)
            else:
                section = render(records, case_info, case_opts, case, small_summary)
                if case == "small":
                    small_summary = summarize(records, case_opts)
            measurements["cases"][case] = {"load": case_info["load"], "records": records}
            failed = failed or any(r.get("failed") for r in records)
            sections.append((case, section))
            if not opts.no_write:  # each case's table as soon as it is measured
                benchlib.write_section(opts.output, "rotate" if case == "small" else "rotate-" + case, section)
                say("wrote the %s case's section of %s" % (case, os.path.relpath(opts.output, ROOT)))
        finished = True
    finally:
        if finished and not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            say("kept %s (stand-in logs, tool output)" % work)
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(measurements, f, indent=1, sort_keys=True, default=str)
    if opts.no_write:
        sys.stdout.write("\n".join(section for _, section in sections))
    say("done in %.0f s" % (time.monotonic() - began))
    return 1 if failed else 0


if __name__ == "__main__":
    benchlib.run_main(main, __file__)
