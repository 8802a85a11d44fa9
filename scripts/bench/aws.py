#!/usr/bin/env python3
"""scripts/bench/aws.py: Kiln's AWS client, boto3 and the AWS CLI, side by side against moto.

    scripts/bench/aws.py [--calls 200] [--rounds 3] [--cli-calls 24] [--startup-runs 10]
                         [--output docs/benchmarks.md | --no-write] [--bin-dir DIR] [--json FILE]

One run: starts one moto stand-in on loopback, builds the world in it
(`scripts/standin world`), then times the same fixed sequence of calls
(sts GetCallerIdentity, ec2 DescribeImages/DescribeInstances/CreateTags,
autoscaling DescribeAutoScalingGroups, elbv2 DescribeTargetGroups, ssm
PutParameter/GetParameter, cycled) made by

  - Kiln's client, in one process (`kiln-aws-bench`, release build),
  - boto3, in one Python process, clients made once,
  - the AWS CLI, one `aws` process per call (what a shell script does),

and the start-up cost of a process that makes exactly one call
(GetCallerIdentity) and exits: `kiln-aws-bench --calls 1`,
`kiln-bake --check-aws`, `python -c 'import boto3; ...'` and
`aws sts get-caller-identity`. It writes the medians, p90s and ratios to
the "AWS client" section of docs/benchmarks.md (between the
`<!-- bench:aws:start -->` and `<!-- bench:aws:end -->` markers; the rest of
the file is kept) and stops moto at the end, also on failure.

Nothing leaves 127.0.0.0/8: proxies are unset, instance metadata is
disabled, credentials are fake, every endpoint is the loopback moto.

The AWS CLI is `awscli` from PyPI in the project's .venv (scripts/requirements.txt).
`--bin-dir` uses already built `kiln-aws-bench` and `kiln-bake` instead of
`swift build -c release --static-swift-stdlib --scratch-path .build-bench`.
"""
import json
import os
import sys
import time

# The cycle every client runs, by the names kiln-aws-bench knows.
OPERATIONS = [
    "sts.GetCallerIdentity",
    "ec2.DescribeImages",
    "ec2.DescribeInstances",
    "autoscaling.DescribeAutoScalingGroups",
    "elbv2.DescribeTargetGroups",
    "ec2.CreateTags",
    "ssm.PutParameter",
    "ssm.GetParameter",
]
REGION = "us-east-1"


def parameter_name(label, cycle):
    """SSM keeps at most 100 versions of a parameter: a new one every 90 cycles (as kiln-aws-bench)."""
    return "/kiln/bench/%s/p%d" % (label, cycle // 90)


def world_facts(world):
    envs = world["environments"]["value"]
    return {
        "ami": world["app_ami_id"]["value"],
        "asgs": [world["%s_asg_name" % e]["value"] for e in envs],
        "tgs": [world["%s_target_group_arn" % e]["value"] for e in envs],
    }


# --------------------------------------------------------------------------
# boto3 worker: `scripts/bench/aws.py --worker boto3 ...` runs in its own process.

def boto3_worker(argv):
    import argparse
    p = argparse.ArgumentParser(prog="aws.py --worker boto3")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--world")
    p.add_argument("--label", default="boto3")
    a = p.parse_args(argv)
    import boto3
    session = boto3.session.Session(region_name=REGION)

    def client(name):
        return session.client(name, endpoint_url=a.endpoint)

    sts, ec2, asg, elb, ssm = (client(n) for n in ("sts", "ec2", "autoscaling", "elbv2", "ssm"))
    w = world_facts(json.load(open(a.world))) if a.world else None

    def perform(op, index, cycle):
        if op == "sts.GetCallerIdentity":
            sts.get_caller_identity()
        elif op == "ec2.DescribeImages":
            ec2.describe_images(ImageIds=[w["ami"]])
        elif op == "ec2.DescribeInstances":
            ec2.describe_instances()
        elif op == "autoscaling.DescribeAutoScalingGroups":
            asg.describe_auto_scaling_groups(AutoScalingGroupNames=w["asgs"])
        elif op == "elbv2.DescribeTargetGroups":
            elb.describe_target_groups(TargetGroupArns=w["tgs"])
        elif op == "ec2.CreateTags":
            ec2.create_tags(Resources=[w["ami"]], Tags=[{"Key": "kiln:bench", "Value": "%s-%d" % (a.label, index)}])
        elif op == "ssm.PutParameter":
            ssm.put_parameter(Name=parameter_name(a.label, cycle), Value="%s-%d" % (a.label, index),
                              Type="String", Overwrite=True)
        elif op == "ssm.GetParameter":
            ssm.get_parameter(Name=parameter_name(a.label, cycle))
        else:
            raise SystemExit("unknown operation %r" % op)

    calls = []
    first = None
    for index in range(a.calls):
        op = OPERATIONS[index % len(OPERATIONS)]
        started = time.monotonic_ns()
        perform(op, index, index // len(OPERATIONS))
        finished = time.monotonic_ns()
        if first is None:
            first = finished
        calls.append({"op": op, "ms": (finished - started) / 1e6})
    report = {"tool": "boto3", "calls": calls}
    spawned = os.environ.get("KILN_BENCH_SPAWNED_NS")
    if spawned and int(spawned) <= first:
        report["first_answer_since_spawn_ms"] = (first - int(spawned)) / 1e6
    json.dump(report, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    # The worker's start-up is measured (first_answer_since_spawn_ms): it runs before, and without, the
    # drivers' library below.
    if sys.argv[2:3] != ["boto3"]:
        raise SystemExit("unknown worker")
    sys.exit(boto3_worker(sys.argv[3:]))


# --------------------------------------------------------------------------
# The driver.

import benchlib  # noqa: E402
from benchlib import ROOT, VENV, VENV_PYTHON, fail, fmt_ms, median, percentile, say  # noqa: E402

benchlib.configure("aws")
MARK_START, MARK_END = benchlib.markers("aws")
assert REGION == benchlib.REGION


def timed_run(argv, env, cwd=ROOT, check=True, what=None):
    """Wall time (ms) of one process from spawn to exit, and its stdout."""
    import subprocess
    env = dict(env)
    started = time.monotonic_ns()
    env["KILN_BENCH_SPAWNED_NS"] = str(started)
    result = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    elapsed = (time.monotonic_ns() - started) / 1e6
    if check and result.returncode != 0:
        sys.stderr.write(result.stderr[-3000:])
        fail("%s exited %d" % (what or " ".join(argv[:3]), result.returncode))
    return elapsed, result.stdout


def cli_argv(aws, endpoint, op, index, label, w):
    cycle = index // len(OPERATIONS)
    base = [aws, "--endpoint-url", endpoint, "--region", REGION, "--output", "json"]
    value = "%s-%d" % (label, index)
    return base + {
        "sts.GetCallerIdentity": ["sts", "get-caller-identity"],
        "ec2.DescribeImages": ["ec2", "describe-images", "--image-ids", w["ami"]],
        "ec2.DescribeInstances": ["ec2", "describe-instances"],
        "autoscaling.DescribeAutoScalingGroups":
            ["autoscaling", "describe-auto-scaling-groups", "--auto-scaling-group-names"] + w["asgs"],
        "elbv2.DescribeTargetGroups": ["elbv2", "describe-target-groups", "--target-group-arns"] + w["tgs"],
        "ec2.CreateTags": ["ec2", "create-tags", "--resources", w["ami"], "--tags", "Key=kiln:bench,Value=" + value],
        "ssm.PutParameter": ["ssm", "put-parameter", "--name", parameter_name(label, cycle), "--value", value,
                             "--type", "String", "--overwrite"],
        "ssm.GetParameter": ["ssm", "get-parameter", "--name", parameter_name(label, cycle)],
    }[op]


def versions(bin_dir, aws, env, prebuilt):
    import platform
    info = benchlib.machine_facts()
    info["kiln"] = benchlib.run_text([os.path.join(bin_dir, "kiln-aws-bench"), "--version"], env=env)
    git, dirty = benchlib.git_head(untracked=False)
    info["kiln_build"] = ("prebuilt binaries from --bin-dir; tree at %s" % (git or "?") if prebuilt else
                          "release build of %s%s" % (git or "?", " with local changes" if dirty else ""))
    swift, first = benchlib.swift_version()
    info["swift"] = "Swift " + swift if swift else (first or "?")
    info["python"] = platform.python_version()
    info.update(benchlib.package_versions(("boto3", "botocore", "moto", "awscli")))
    # awscli carries its own copy of botocore: say which.
    cli = benchlib.run_text([aws, "--version"], env=env)
    info["awscli_botocore"] = next((part.split("/", 1)[1] for part in cli.split() if part.startswith("botocore/")), "?")
    return info


def render(results, info, opts):
    per = results["per_call"]
    start = results["startup"]
    kiln = per["kiln"]
    lines = [MARK_START, "## AWS client (scripts/bench/aws.py)", ""]
    lines.append(
        "Run %s on %s CPU(s) (%s), %s memory, %s, load average (1 min) %s; Kiln %s (%s, %s), "
        "boto3 %s / botocore %s, AWS CLI %s (awscli from PyPI, its own botocore %s), moto %s, Python %s." % (
            info["date"], info["nproc"], info["cpu"], info["memory"], info["os"], info["load"], info["kiln"], info["kiln_build"],
            info["swift"], info["boto3"], info["botocore"], info["awscli"], info["awscli_botocore"], info["moto"],
            info["python"]))
    lines.append("")
    lines.append(
        "Each client makes the same calls to one local moto server (loopback, fake credentials): the cycle "
        "%s. Kiln (`kiln-aws-bench`) and boto3 each run %d calls in one process, %d times (alternating, times "
        "pooled); the AWS CLI runs the first %d calls of the cycle as one `aws` process per call, as a shell "
        "script would, so its per-call time includes its start-up, and is compared with Kiln run the same way. "
        "moto's own request handling (Python, "
        "single machine) is in every number and is the same for all clients, so it dominates the in-process "
        "per-call times and the ratios there understate the clients' own difference; start-up is a whole "
        "process that makes one STS GetCallerIdentity call and exits, %d runs each, measured from spawn to exit." % (
            ", ".join("`%s`" % op for op in OPERATIONS), opts.calls, opts.rounds, opts.cli_calls,
            opts.startup_runs))
    lines.append("")
    lines.append("Per call (ms):")
    lines.append("")
    lines.append("| client | how | calls timed | median | p90 | median / Kiln's, same way | first answer after spawn |")
    lines.append("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    rows = [
        ("Kiln", "`kiln-aws-bench`, one process", "kiln", "kiln"),
        ("boto3", "one Python process, clients made once", "boto3", "kiln"),
        ("Kiln", "one `kiln-aws-bench --calls 1` process per call", "kiln-process", "kiln-process"),
        ("AWS CLI", "one `aws` process per call", "awscli", "kiln-process"),
    ]
    for name, how, key, reference in rows:
        values = [c["ms"] for c in per[key]["calls"]]
        first = per[key].get("first_answer_since_spawn_ms")
        first_text = fmt_ms(median(first)) if first else "(every call)"
        lines.append("| %s | %s | %d | %s | %s | %s | %s |" % (
            name, how, len(values), fmt_ms(median(values)), fmt_ms(percentile(values, 90)),
            "1.0×" if key == reference else
            benchlib.ratio(median(values), median([c["ms"] for c in per[reference]["calls"]]), digits=1),
            first_text))
    lines.append("")
    lines.append("Start-up: one process, one call, exit (ms):")
    lines.append("")
    lines.append("| process | runs | median | p90 | median / `kiln-bake --check-aws` |")
    lines.append("| --- | ---: | ---: | ---: | ---: |")
    reference = median(start["kiln-bake"])
    labels = [
        ("kiln-bake", "`kiln-bake --check-aws` (Kiln, the user-facing binary)"),
        ("kiln-aws-bench", "`kiln-aws-bench --calls 1` (Kiln)"),
        ("boto3", "`python -c 'import boto3; ...get_caller_identity()'`"),
        ("awscli", "`aws sts get-caller-identity`"),
        ("python", "`python -c pass` (the interpreter alone, for scale)"),
    ]
    for key, label in labels:
        values = start[key]
        lines.append("| %s | %d | %s | %s | %s |" % (
            label, len(values), fmt_ms(median(values)), fmt_ms(percentile(values, 90)),
            "1.0×" if key == "kiln-bake" else benchlib.ratio(median(values), reference, digits=1)))
    lines.append("")
    lines.append("Median per operation (ms):")
    lines.append("")
    lines.append("| operation | Kiln | boto3 | Kiln, process per call | AWS CLI, process per call |")
    lines.append("| --- | ---: | ---: | ---: | ---: |")
    for op in OPERATIONS:
        cells = []
        for key in ("kiln", "boto3", "kiln-process", "awscli"):
            values = [c["ms"] for c in per[key]["calls"] if c["op"] == op]
            cells.append(fmt_ms(median(values)) if values else "–")
        lines.append("| `%s` | %s |" % (op, " | ".join(cells)))
    lines.append("")
    lines.append("Re-run with `scripts/bench/aws.py` (about a minute once built; `--help` for the options).")
    lines.append(MARK_END)
    return "\n".join(lines) + "\n"


def main(argv):
    import argparse
    import subprocess
    import tempfile
    p = argparse.ArgumentParser(prog="scripts/bench/aws.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=200, help="calls per in-process run (default 200)")
    p.add_argument("--rounds", type=int, default=3, help="in-process runs per client, alternating (default 3)")
    p.add_argument("--cli-calls", type=int, default=24, help="`aws` processes for the per-call time (default 24)")
    p.add_argument("--startup-runs", type=int, default=10, help="runs of each one-call process (default 10)")
    p.add_argument("--output", default=benchlib.DOCS)
    p.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    p.add_argument("--bin-dir", help="use kiln-aws-bench and kiln-bake from here instead of building")
    p.add_argument("--no-setup", action="store_true", help="do not run scripts/setup first")
    p.add_argument("--json", metavar="FILE", help="also write every measurement as JSON")
    opts = p.parse_args(argv)
    if min(opts.calls, opts.rounds, opts.cli_calls, opts.startup_runs) < 1:
        fail("counts must be at least 1", 64)

    began = time.monotonic()
    if not opts.no_setup:
        subprocess.run([benchlib.SETUP], cwd=ROOT, check=True)
    env = benchlib.loopback_env()
    aws = os.path.join(VENV, "bin", "aws")
    if not os.access(aws, os.X_OK):
        fail("no AWS CLI in .venv: it comes from `awscli` in scripts/requirements.txt "
             "(or: .venv/bin/pip install awscli==1.46.3)")
    bin_dir = (os.path.abspath(opts.bin_dir) if opts.bin_dir else
               benchlib.build(("kiln-aws-bench", "kiln-bake"), env))
    bench = os.path.join(bin_dir, "kiln-aws-bench")
    stage_binary = os.path.join(bin_dir, "kiln-bake")
    for binary in (bench, stage_binary):
        if not os.access(binary, os.X_OK):
            fail("%s is not built" % binary)

    work = tempfile.mkdtemp(prefix="kiln-bench-aws-")
    moto = None
    finished = False
    try:
        say("starting moto")
        moto = benchlib.start_standin("moto", [], env, os.path.join(work, "moto.log"))
        url = moto.url
        env = benchlib.loopback_env(url)
        say("moto on %s; building the world" % url)
        world_path = os.path.join(work, "world.json")
        world = benchlib.standin_oneshot("world", ["--endpoint", url], env)
        with open(world_path, "w") as f:
            f.write(world)
        w = world_facts(json.loads(world))
        load_before = benchlib.load_average()
        benchlib.warn_if_busy(load_before)
        ops = ",".join(OPERATIONS)

        def kiln_run(calls, label):
            _, out = timed_run([bench, "--endpoint", url, "--region", REGION, "--calls", str(calls), "--ops", ops,
                                "--world", world_path, "--label", label], env, what="kiln-aws-bench")
            return json.loads(out)

        def boto3_run(calls, label):
            _, out = timed_run([VENV_PYTHON, os.path.abspath(__file__), "--worker", "boto3", "--endpoint", url,
                                "--calls", str(calls), "--world", world_path, "--label", label], env,
                               what="boto3 worker")
            return json.loads(out)

        # One pass of each operation first, so no client pays for moto's first-use set-up.
        say("warming moto up")
        kiln_run(len(OPERATIONS), "warmup-kiln")
        boto3_run(len(OPERATIONS), "warmup-boto3")

        per_call = {key: {"calls": [], "first_answer_since_spawn_ms": []} for key in ("kiln", "boto3", "awscli")}
        for round_ in range(1, opts.rounds + 1):
            for key, run in (("kiln", kiln_run), ("boto3", boto3_run)) if round_ % 2 else (
                    ("boto3", boto3_run), ("kiln", kiln_run)):
                say("round %d/%d: %s, %d calls in one process" % (round_, opts.rounds, key, opts.calls))
                report = run(opts.calls, "%s-%d" % (key, round_))
                per_call[key]["calls"] += report["calls"]
                if "first_answer_since_spawn_ms" in report:
                    per_call[key]["first_answer_since_spawn_ms"].append(report["first_answer_since_spawn_ms"])

        say("AWS CLI: %d calls, one process each" % opts.cli_calls)
        for index in range(opts.cli_calls):
            op = OPERATIONS[index % len(OPERATIONS)]
            elapsed, _ = timed_run(cli_argv(aws, url, op, index, "awscli", w), env, what="aws " + op)
            per_call["awscli"]["calls"].append({"op": op, "ms": elapsed})
        per_call["awscli"].pop("first_answer_since_spawn_ms")

        say("Kiln: the same %d calls, one kiln-aws-bench process each" % opts.cli_calls)
        per_call["kiln-process"] = {"calls": []}
        for index in range(opts.cli_calls):
            op = OPERATIONS[index % len(OPERATIONS)]
            elapsed, _ = timed_run([bench, "--endpoint", url, "--region", REGION, "--calls", "1", "--ops", op,
                                    "--world", world_path, "--label", "kiln-process"], env,
                                   what="kiln-aws-bench " + op)
            per_call["kiln-process"]["calls"].append({"op": op, "ms": elapsed})

        say("start-up: %d runs of each one-call process" % opts.startup_runs)
        stage_dir = os.path.join(work, "stage-cwd")
        os.makedirs(stage_dir)
        boto3_one = ("import boto3; boto3.client('sts', endpoint_url=%r, region_name=%r).get_caller_identity()"
                     % (url, REGION))
        startup_cmds = {
            "kiln-bake": ([stage_binary, "--check-aws"], stage_dir),
            "kiln-aws-bench": ([bench, "--endpoint", url, "--region", REGION, "--calls", "1"], ROOT),
            "boto3": ([VENV_PYTHON, "-c", boto3_one], ROOT),
            "awscli": ([aws, "--endpoint-url", url, "--region", REGION, "sts", "get-caller-identity"], ROOT),
            "python": ([VENV_PYTHON, "-c", "pass"], ROOT),
        }
        startup = {key: [] for key in startup_cmds}
        for _ in range(opts.startup_runs):
            for key, (argv_, cwd) in startup_cmds.items():  # interleaved, so drift hits all alike
                elapsed, _ = timed_run(argv_, env, cwd=cwd, what=key)
                startup[key].append(elapsed)
        load_after = benchlib.load_average()
        finished = True
    finally:
        if moto:
            moto.stop()
            say("moto stopped")
        import shutil
        if finished:
            shutil.rmtree(work, ignore_errors=True)
        else:
            say("kept %s (moto's log, the world)" % work)

    results = {"per_call": per_call, "startup": startup}
    info = versions(bin_dir, aws, env, prebuilt=bool(opts.bin_dir))
    info["load"] = "%.2f before, %.2f after" % (load_before, load_after)
    section = render(results, info, opts)
    benchlib.publish(opts, "aws", "AWS client", section, {"info": info, "results": results}, began)
    return 0


if __name__ == "__main__":
    benchlib.run_main(main, __file__)
