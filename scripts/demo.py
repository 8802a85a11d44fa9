"""The demo's driver (scripts/demo runs it after installing what it needs).

With instance bodies (the default): it serves examples/demo-app as a git
repository, starts the local package repository and moto with instance bodies
(scripts/standin apt-repo, moto --bodies: every instance a running Debian
tree with sshd, cloud-init and its enabled units on its own 127.x address),
bakes an earlier release (v0.1.0: checkout, build, a real bake with Packer's
SSH communicator and Ansible) and builds the world Terraform would make with
its groups on that release, then runs the main pipeline for v0.2.0 as its
jobs would (checkout, build and test, bake, user data and rotation for test,
then live) and prints what every instance answers on :8080/health.
`--break` then deploys v0.3.0, whose /health really fails (a bug in
app/server.py), onto test: the rotation rolls back and the old release goes
on serving. Needs root (the bodies do) and what scripts/setup makes.

`--fleet`: the tag-driven world instead (no bodies, no root): instances are
health listeners of the fleet stand-in, Packer bakes with communicator none.

The binaries are the ones scripts/install-runtime put in .kiln-runtime/bin.
Nothing leaves 127.0.0.0/8: instance metadata is off, proxies point nowhere
but loopback, every endpoint is the local moto, and the bodies' apt reaches
only the loopback package repository.
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from standins import packer_moto  # noqa: E402
from standins.artifacts import read_payload, write_artifact  # noqa: E402
from standins.harness import running  # noqa: E402
from standins.world import build_world  # noqa: E402

# KILN_DEMO_BIN: another folder of Kiln's binaries (a development build's .build/debug).
BIN = pathlib.Path(os.environ.get("KILN_DEMO_BIN") or ROOT / ".kiln-runtime" / "bin")
EXAMPLE = ROOT / "examples" / "demo-app"


def git(*args, cwd):
    env = dict(os.environ, GIT_AUTHOR_NAME="Demo", GIT_AUTHOR_EMAIL="demo@kiln.invalid",
               GIT_COMMITTER_NAME="Demo", GIT_COMMITTER_EMAIL="demo@kiln.invalid")
    return subprocess.run(["git", "-c", "init.defaultBranch=main", *args], cwd=cwd, env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


def stage(name, *args, env):
    print(f"\n$ {name} {' '.join(args)}", flush=True)
    started = time.time()
    code = subprocess.run([str(BIN / name), *args], env=env).returncode
    return code, time.time() - started


def main(argv):
    if "--fleet" not in argv:
        return with_bodies("--break" in argv)
    breaking = "--break" in argv
    work = pathlib.Path(tempfile.mkdtemp(prefix="kiln-demo."))
    token = "demo-job-token-" + os.urandom(6).hex()
    # The example as a repository on the git stand-in, tagged as a release.
    source = work / "src"
    shutil.copytree(EXAMPLE, source)
    git("init", "-q", cwd=source)
    git("add", "-A", cwd=source)
    git("commit", "-q", "-m", "Demo application", cwd=source)
    git("tag", "v0.1.0", cwd=source)
    served = work / "repos" / "demo"
    served.mkdir(parents=True)
    git("clone", "-q", "--bare", str(source), str(served / "app.git"), cwd=work)
    commit = git("rev-parse", "HEAD", cwd=source)

    base_env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy") and not k.startswith("AWS_")}
    base_env.update(AWS_EC2_METADATA_DISABLED="true", AWS_ACCESS_KEY_ID="demo", AWS_SECRET_ACCESS_KEY="demo-secret",
                    AWS_REGION="us-east-1", NO_PROXY="127.0.0.1,localhost,127.0.0.0/8",
                    # A backstop: anything not meant for loopback goes to a closed loopback port
                    # (127.0.0.0/8 for curl, which reads CIDR; 127.0.0.1 for Python and Go).
                    HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9")
    summary = []
    # The stand-ins' own logs go to a file, not between the stages' output.
    standin_log = open(work / "standins.log", "w")
    with running("moto", stderr=standin_log) as moto, \
            running("fleet", "--endpoint", moto["url"], "--health-port", "8080", stderr=standin_log) as fleet, \
            running("git", "--root", str(work / "repos"), "--user", "gitlab-ci-token", "--password", token,
                    stderr=standin_log) as gitserver:
        outputs = work / "terraform-outputs.json"
        world = subprocess.run([sys.executable, str(ROOT / "scripts" / "standin"), "world", "--endpoint", moto["url"],
                                "--health-port", "8080", "--desired", "2"], capture_output=True, text=True, check=True,
                               env=dict(base_env, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing"))
        outputs.write_text(world.stdout)
        values = {k: v["value"] for k, v in json.loads(world.stdout).items()}
        print("Stand-ins (all on 127.0.0.0/8):")
        print(f"  moto (AWS)   {moto['url']}")
        print(f"  fleet        health on port 8080 of each instance's own address")
        print(f"  git          {gitserver['url']}/demo/app.git at {commit[:12]} (v0.1.0)")
        for environment in ("test", "live"):
            print(f"  {environment:<5}        group {values[environment + '_asg_name']}, launch template {values[environment + '_launch_template_id']}")

        # Packer against moto: communicator "none", no Ansible provisioner, a
        # stock Ubuntu source image (standins/packer_moto.py says why).
        template = packer_moto.template_without_provisioners(work / "packer")
        stock = packer_moto.stock_ubuntu_ami(moto["url"])

        project = work / "project"
        project.mkdir()
        env = dict(base_env, CI="true", CI_PROJECT_DIR=str(project), CI_PROJECT_NAME="demo", CI_PROJECT_PATH="demo/app",
                   CI_REPOSITORY_URL=f"{gitserver['url']}/demo/app.git", CI_SERVER_URL=gitserver["url"],
                   CI_COMMIT_SHA=commit, CI_COMMIT_REF_NAME="main", CI_PIPELINE_ID="1", CI_JOB_TOKEN=token,
                   AWS_ENDPOINT_URL=moto["url"], KILN_TERRAFORM_OUTPUTS=str(outputs),
                   KILN_PACKER_TEMPLATE=str(template), KILN_PACKER_COMMUNICATOR="none",
                   KILN_SOURCE_AMI=stock)
        started = time.time()
        steps = [("kiln-checkout", [], {}), ("kiln-build", [], {}), ("kiln-bake", ["--role", "app"], {}),
                 ("kiln-userdata", ["--environment", "test"], {}), ("kiln-rotate", ["--environment", "test"], {}),
                 ("kiln-userdata", ["--environment", "live"], {}), ("kiln-rotate", ["--environment", "live"], {})]
        for name, args, extra in steps:
            code, took = stage(name, *args, env=dict(env, **extra))
            if code != 0:
                print(f"\ndemo: stopped at {name} (exit {code}); artifacts so far in {project / 'kiln'}", file=sys.stderr)
                return code
            summary.append(f"  {name} {' '.join(args)}: {took:.1f}s")
        image = json.loads((project / "kiln" / "image.json").read_text())
        print("\nThe pipeline ran end to end in %.0fs:" % (time.time() - started))
        print("\n".join(summary))
        print(f"  AMI          {image['amiID']} ({image['name']}, {image['outcome']})")
        for environment in ("test", "live"):
            rotation = json.loads((project / "kiln" / f"rotation-{environment}.json").read_text())
            print(f"  {environment:<5}        release {rotation['release']}, launch template version {rotation['toVersion']}, "
                  f"{len(rotation['terminated'])} instances replaced in {rotation['durationSeconds']}s")
        print(f"  artifacts    {project / 'kiln'}")
        print(f"  stand-ins    their logs in {work / 'standins.log'}")

        if breaking:
            print("\n--break: a release whose instances never turn healthy, onto test")
            # The same AMI tagged for the fleet to answer 503 forever, as a
            # release that boots but never serves would.
            subprocess.run([sys.executable, "-c", (
                "import boto3,sys; ec2=boto3.client('ec2', endpoint_url=sys.argv[1], region_name='us-east-1', "
                "aws_access_key_id='testing', aws_secret_access_key='testing'); "
                "image=ec2.copy_image(SourceImageId=sys.argv[2], SourceRegion='us-east-1', Name='demo-broken')['ImageId']; "
                "ec2.create_tags(Resources=[image], Tags=[{'Key':'kiln:fleet-health','Value':'never'}]); print(image)"),
                moto["url"], image["amiID"]], check=True, capture_output=True, text=True, env=base_env)
            broken_ami, envelope = read_payload(project / "kiln" / "image.json")
            # image.json for the broken release, as a bake of it would write.
            broken_image = subprocess.run([sys.executable, "-c", (
                "import boto3,sys; ec2=boto3.client('ec2', endpoint_url=sys.argv[1], region_name='us-east-1', "
                "aws_access_key_id='testing', aws_secret_access_key='testing'); "
                "print([i['ImageId'] for i in ec2.describe_images(Filters=[{'Name':'name','Values':['demo-broken']}])['Images']][0])"),
                moto["url"]], check=True, capture_output=True, text=True, env=base_env).stdout.strip()
            broken_ami["amiID"] = broken_image
            broken_ami["amis"] = {"us-east-1": broken_image}
            broken_ami["applicationVersion"] = "v0.1.1-broken"
            write_artifact(project / "kiln" / "image.json", "image", broken_ami, producer=envelope["producer"],
                           version=envelope["version"])
            # The example waits up to 10 minutes for health; the demo gives
            # the broken release 20 seconds (a kiln.yml of its own, --config).
            import yaml
            settings = yaml.safe_load((project / "kiln.yml").read_text())
            settings["environments"]["test"]["rotate"]["health"]["timeout"] = "20s"
            demo_config = work / "kiln-break.yml"
            demo_config.write_text(yaml.safe_dump(settings, sort_keys=False))
            stage("kiln-userdata", "--environment", "test", "--config", str(demo_config), env=env)
            code, took = stage("kiln-rotate", "--environment", "test", "--config", str(demo_config), env=env)
            rotation = json.loads((project / "kiln" / "rotation-test.json").read_text())
            print(f"\n--break: kiln-rotate exit {code} ({rotation['outcome']}): {rotation.get('failure')}")
            print(f"  test is back on launch template version {rotation['fromVersion']}, the release before")
            return 0 if code == 3 else 1
    return 0


# --------------------------------------------------------------------------
# With instance bodies.

# The bodies' subnets: the world's (two, as Terraform's would be) and the build subnet the bake's builder
# instance runs in, each its own /24 so that no body shares an address with another stand-in's.
BUILD_SUBNET = "127.0.241.0/24"
BROKEN_HEALTH = (
    "        if self.path in (\"/health\", \"/\"):\n"
    "            body, status = (json.dumps(health()) + \"\\n\").encode(), 200\n",
    "        if self.path in (\"/health\", \"/\"):\n"
    "            # v0.3.0's bug: a key health() does not have, so every request fails.\n"
    "            body, status = (json.dumps(health()[\"missing\"]) + \"\\n\").encode(), 200\n",
)


def answers(ec2, asg, group):
    """What each InService instance of `group` answers on :8080/health, by its private address."""
    import urllib.request
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    names = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0]["Instances"]
    ids = [i["InstanceId"] for i in names if i["LifecycleState"] == "InService"]
    lines = []
    for reservation in ec2.describe_instances(InstanceIds=ids)["Reservations"] if ids else []:
        for instance in reservation["Instances"]:
            address = instance.get("PrivateIpAddress")
            try:
                with opener.open("http://%s:8080/health" % address, timeout=5) as response:
                    said = "%d %s" % (response.status, response.read().decode().strip())
            except Exception as error:  # noqa: BLE001 (the answer, whatever it is, is what the demo shows)
                said = str(getattr(error, "code", "")) + " " + str(getattr(error, "reason", error))
            lines.append((instance["InstanceId"], address, instance["ImageId"], said))
    return sorted(lines, key=lambda line: line[1])


def print_answers(ec2, asg, values, title):
    print("\n" + title)
    for environment in ("test", "live"):
        for instance, address, image, said in answers(ec2, asg, values[environment + "_asg_name"]):
            print(f"  {environment:<5} {instance} {address:<12} {image}  curl http://{address}:8080/health -> {said}")


def with_bodies(breaking):
    import boto3
    if os.geteuid() != 0:
        print("demo: the instance bodies need root (scripts/standins/README.md, Bodies); "
              "scripts/demo --fleet runs the tag-driven world without them", file=sys.stderr)
        return 1
    work = pathlib.Path(tempfile.mkdtemp(prefix="kiln-demo."))
    token = "demo-job-token-" + os.urandom(6).hex()
    source = work / "src"
    shutil.copytree(EXAMPLE, source)
    git("init", "-q", cwd=source)
    git("add", "-A", cwd=source)
    git("commit", "-q", "-m", "Demo application", cwd=source)
    git("tag", "v0.1.0", cwd=source)
    earlier = git("rev-parse", "HEAD", cwd=source)
    # The release the pipeline deploys: a change of greeting, tagged v0.2.0.
    (source / "CHANGES").write_text("v0.2.0: the release the demo deploys\n")
    git("add", "-A", cwd=source)
    git("commit", "-q", "-m", "v0.2.0", cwd=source)
    git("tag", "v0.2.0", cwd=source)
    release = git("rev-parse", "HEAD", cwd=source)
    # v0.3.0: /health really fails (a bug in the code), for --break.
    server = source / "app" / "server.py"
    text = server.read_text()
    if BROKEN_HEALTH[0] not in text:
        raise SystemExit("demo: examples/demo-app/app/server.py no longer has the /health lines --break changes")
    server.write_text(text.replace(*BROKEN_HEALTH))
    git("commit", "-q", "-am", "v0.3.0: health reads the settings wrongly", cwd=source)
    git("tag", "v0.3.0", cwd=source)
    broken = git("rev-parse", "HEAD", cwd=source)
    served = work / "repos" / "demo"
    served.mkdir(parents=True)
    git("clone", "-q", "--bare", str(source), str(served / "app.git"), cwd=work)

    base_env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy") and not k.startswith("AWS_")}
    base_env.update(AWS_EC2_METADATA_DISABLED="true", AWS_ACCESS_KEY_ID="demo", AWS_SECRET_ACCESS_KEY="demo-secret",
                    AWS_REGION="us-east-1", NO_PROXY="127.0.0.1,localhost,127.0.0.0/8",
                    HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9")
    standin_log = open(work / "standins.log", "w")
    with running("apt-repo", stderr=standin_log) as repository, \
            running("moto", "--bodies", "--apt-repo", repository["url"], stderr=standin_log, timeout=300) as moto, \
            running("git", "--root", str(work / "repos"), "--user", "gitlab-ci-token", "--password", token,
                    stderr=standin_log) as gitserver:
        def client(service):
            return boto3.client(service, endpoint_url=moto["url"], region_name="us-east-1",
                                aws_access_key_id="testing", aws_secret_access_key="testing")
        ec2, asg = client("ec2"), client("autoscaling")
        # The build network the bake's builder instance runs in (a VPC of its own, as a build account's).
        build_vpc = ec2.create_vpc(CidrBlock="127.0.0.0/16")["Vpc"]["VpcId"]
        build_subnet = ec2.create_subnet(VpcId=build_vpc, CidrBlock=BUILD_SUBNET)["Subnet"]["SubnetId"]
        stock = packer_moto.stock_ubuntu_ami(moto["url"])
        print("Stand-ins (all on 127.0.0.0/8):")
        print(f"  moto (AWS)   {moto['url']}, every instance a body (sshd, cloud-init, its units) on its own 127.x")
        print(f"  apt          {repository['url']} (the bodies' only package source)")
        print(f"  git          {gitserver['url']}/demo/app.git (v0.1.0 {earlier[:12]}, v0.2.0 {release[:12]}, "
              f"v0.3.0 {broken[:12]})")

        def pipeline(commit, steps, outputs=None):
            project = work / ("project-" + commit[:12])
            project.mkdir(exist_ok=True)
            env = dict(base_env, CI="true", CI_PROJECT_DIR=str(project), CI_PROJECT_NAME="demo",
                       CI_PROJECT_PATH="demo/app", CI_REPOSITORY_URL=f"{gitserver['url']}/demo/app.git",
                       CI_SERVER_URL=gitserver["url"], CI_COMMIT_SHA=commit, CI_COMMIT_REF_NAME="main",
                       CI_PIPELINE_ID=commit[:6], CI_JOB_TOKEN=token, AWS_ENDPOINT_URL=moto["url"],
                       KILN_SOURCE_AMI=stock, KILN_SUBNET_ID=build_subnet)
            if outputs:
                env["KILN_TERRAFORM_OUTPUTS"] = str(outputs)
            for name, args in steps:
                code, took = stage(name, *args, env=env)
                if code != 0:
                    return code, project
                print(f"  ({name} {' '.join(args)}: {took:.1f}s)")
            return 0, project

        bake_steps = [("kiln-checkout", []), ("kiln-build", []), ("kiln-bake", ["--role", "app"])]
        print("\nThe earlier release, v0.1.0, baked for real (the world's groups start on it):")
        code, project = pipeline(earlier, bake_steps)
        if code:
            print(f"demo: the v0.1.0 bake stopped (exit {code}); artifacts in {project / 'kiln'}", file=sys.stderr)
            return code
        first = json.loads((project / "kiln" / "image.json").read_text())["amiID"]
        world = build_world(moto["url"], desired=2, ami=first, verify_timeout=60)
        outputs = work / "terraform-outputs.json"
        outputs.write_text(json.dumps(world))
        values = {k: v["value"] for k, v in world.items()}
        wait_for_answers(ec2, asg, values)
        print_answers(ec2, asg, values, "The world on v0.1.0 (each instance a body of that image):")

        started = time.time()
        print("\nThe main pipeline for v0.2.0:")
        steps = bake_steps + [("kiln-userdata", ["--environment", "test"]), ("kiln-rotate", ["--environment", "test"]),
                              ("kiln-userdata", ["--environment", "live"]), ("kiln-rotate", ["--environment", "live"])]
        code, project = pipeline(release, steps, outputs)
        if code:
            print(f"\ndemo: stopped (exit {code}); artifacts so far in {project / 'kiln'}", file=sys.stderr)
            return code
        image = json.loads((project / "kiln" / "image.json").read_text())
        print("\nThe pipeline ran end to end in %.0fs; AMI %s (%s, %s)" % (
            time.time() - started, image["amiID"], image["name"], image["outcome"]))
        wait_for_answers(ec2, asg, values, configured=True)
        print_answers(ec2, asg, values, "What each environment's instances answer:")

        if breaking:
            print("\n--break: v0.3.0, whose /health fails (a bug in app/server.py), onto test")
            import yaml
            settings = yaml.safe_load((source / "kiln.yml").read_text())
            settings["environments"]["test"]["rotate"]["health"]["timeout"] = "30s"
            demo_config = work / "kiln-break.yml"
            demo_config.write_text(yaml.safe_dump(settings, sort_keys=False))
            steps = bake_steps + [("kiln-userdata", ["--environment", "test", "--config", str(demo_config)]),
                                  ("kiln-rotate", ["--environment", "test", "--config", str(demo_config)])]
            code, project = pipeline(broken, steps, outputs)
            rotation_file = project / "kiln" / "rotation-test.json"
            if not rotation_file.exists():
                print(f"demo: v0.3.0 stopped before its rotation (exit {code})", file=sys.stderr)
                return 1
            rotation = json.loads(rotation_file.read_text())
            print(f"\n--break: kiln-rotate exit {code} ({rotation['outcome']}): {rotation.get('failure')}")
            wait_for_answers(ec2, asg, values, configured=True)
            print_answers(ec2, asg, values, "After the rollback, test serves the release before:")
            return 0 if code == 3 else 1
        print(f"\n  artifacts    {work}\n  stand-ins    their logs in {work / 'standins.log'}")
    return 0


def wait_for_answers(ec2, asg, values, configured=False, timeout=120):
    """Until every instance of both groups answers 200 (bodies boot, then their units start), and with
    `configured` names its environment: the unit starts at boot and answers before the user data's
    user_init (cloud-init's final stage) has written /etc/demo/env and restarted it, as on EC2."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = [line for env in ("test", "live") for line in answers(ec2, asg, values[env + "_asg_name"])]
        if lines and all(said.startswith("200") and (not configured or '"environment": "?"' not in said)
                         for *_, said in lines):
            return
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
