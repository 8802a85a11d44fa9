"""The demo's driver (scripts/demo runs it after installing what it needs).

With instance bodies (the default): it serves examples/demo-app as a git
repository, starts the local package repository and moto with instance bodies
(scripts/standin apt-repo, moto --bodies: every instance a running Debian
tree with sshd, cloud-init and its enabled units on its own 127.x address)
with the earlier release registered (v0.1.0, baked for real once by the
set-up and cached in .kiln-images/releases: scripts/standins/release.py),
builds the world Terraform would make with its groups on that release, then
runs the main pipeline for v0.2.0 as its
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
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from standins import packer_moto, release  # noqa: E402
from standins.artifacts import read_payload, write_artifact  # noqa: E402
from standins.harness import running  # noqa: E402
from standins.world import build_world  # noqa: E402

# KILN_DEMO_BIN: another folder of Kiln's binaries (a development build's .build/debug).
BIN = pathlib.Path(os.environ.get("KILN_DEMO_BIN") or ROOT / ".kiln-runtime" / "bin")


def main(argv):
    if "--fleet" not in argv:
        return with_bodies("--break" in argv)
    breaking = "--break" in argv
    work = pathlib.Path(tempfile.mkdtemp(prefix="kiln-demo."))
    token = "demo-job-token-" + os.urandom(6).hex()
    # The example as a repository on the git stand-in (the same as in bodies mode); the fleet deploys v0.2.0.
    commit = release.example_repository(work)["v0.2.0"]
    base_env = release.loopback_env()
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
        print(f"  git          {gitserver['url']}/demo/app.git at {commit[:12]} (v0.2.0)")
        for environment in ("test", "live"):
            print(f"  {environment:<5}        group {values[environment + '_asg_name']}, launch template {values[environment + '_launch_template_id']}")

        # Packer against moto: communicator "none", no Ansible provisioner, a
        # stock Ubuntu source image (standins/packer_moto.py says why).
        template = packer_moto.template_without_provisioners(work / "packer")
        stock = packer_moto.stock_ubuntu_ami(moto["url"])

        project = work / "project"
        project.mkdir()
        env = release.job_env(base_env, project, commit, gitserver, token, moto["url"], stock, outputs=outputs)
        env.update(KILN_PACKER_TEMPLATE=str(template), KILN_PACKER_COMMUNICATOR="none")
        started = time.time()
        steps = [("kiln-checkout", []), ("kiln-build", []), ("kiln-bake", ["--role", "app"]),
                 ("kiln-userdata", ["--environment", "test"]), ("kiln-rotate", ["--environment", "test"]),
                 ("kiln-userdata", ["--environment", "live"]), ("kiln-rotate", ["--environment", "live"])]
        code = release.run_stages(steps, env, BIN)
        if code != 0:
            print(f"\ndemo: stopped (exit {code}); artifacts so far in {project / 'kiln'}", file=sys.stderr)
            return code
        image = json.loads((project / "kiln" / "image.json").read_text())
        print("\nThe pipeline ran end to end in %.0fs:" % (time.time() - started))
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
            broken_ami["applicationVersion"] = "v0.2.1-broken"
            write_artifact(project / "kiln" / "image.json", "image", broken_ami, producer=envelope["producer"],
                           version=envelope["version"])
            # The example waits up to 10 minutes for health; the demo gives
            # the broken release 20 seconds (a kiln.yml of its own, --config).
            demo_config = short_health(project / "kiln.yml", work / "kiln-break.yml", "20s")
            code = release.run_stages([("kiln-userdata", ["--environment", "test", "--config", str(demo_config)]),
                                       ("kiln-rotate", ["--environment", "test", "--config", str(demo_config)])],
                                      env, BIN)
            rotation = json.loads((project / "kiln" / "rotation-test.json").read_text())
            print(f"\n--break: kiln-rotate exit {code} ({rotation['outcome']}): {rotation.get('failure')}")
            print(f"  test is back on launch template version {rotation['fromVersion']}, the release before")
            return 0 if code == 3 else 1
    return 0


def short_health(settings_file, destination, timeout):
    """A copy of kiln.yml whose test rotation waits `timeout` for health (the example waits 10 minutes)."""
    import yaml
    settings = yaml.safe_load(pathlib.Path(settings_file).read_text())
    settings["environments"]["test"]["rotate"]["health"]["timeout"] = timeout
    destination.write_text(yaml.safe_dump(settings, sort_keys=False))
    return destination


# --------------------------------------------------------------------------
# With instance bodies.

# The bodies' subnets: the world's (two, as Terraform's would be: build_world's default 127.0.1-2) and the build
# subnet the bake's builder instance runs in, each its own /24 so that no body shares an address with another
# stand-in's (release.py's BUILD_SUBNET says which are whose).
BUILD_SUBNET = "127.0.241.0/24"


def print_answers(ec2, asg, values, title):
    print("\n" + title)
    for environment in ("test", "live"):
        for instance, address, image, said in release.answers(ec2, asg, values[environment + "_asg_name"]):
            print(f"  {environment:<5} {instance} {address:<12} {image}  curl http://{address}:8080/health -> {said}")


def with_bodies(breaking):
    import boto3
    if os.geteuid() != 0:
        print("demo: the instance bodies need root (scripts/standins/README.md, Bodies); "
              "scripts/demo --fleet runs the tag-driven world without them", file=sys.stderr)
        return 1
    # The earlier release, baked once by the set-up (scripts/demo runs `standin release-image`); baked here when
    # it is not cached yet.
    cached = release.ensure(bin_dir=BIN)
    work = pathlib.Path(tempfile.mkdtemp(prefix="kiln-demo."))
    token = "demo-job-token-" + os.urandom(6).hex()
    commits = release.example_repository(work)
    base_env = release.loopback_env()
    standin_log = open(work / "standins.log", "w")
    with running("apt-repo", stderr=standin_log) as repository, \
            running("moto", "--bodies", "--apt-repo", repository["url"], "--release-image", cached,
                    stderr=standin_log, timeout=300) as moto, \
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
        earlier = moto["release_images"][0]
        print("Stand-ins (all on 127.0.0.0/8):")
        print(f"  moto (AWS)   {moto['url']}, every instance a body (sshd, cloud-init, its units) on its own 127.x")
        print(f"  apt          {repository['url']} (the bodies' only package source)")
        print(f"  git          {gitserver['url']}/demo/app.git (v0.1.0 {commits['v0.1.0'][:12]}, "
              f"v0.2.0 {commits['v0.2.0'][:12]}, v0.3.0 {commits['v0.3.0'][:12]})")
        print(f"  release      v0.1.0 as {earlier['image_id']}, baked once by the set-up ({cached})")

        def pipeline(version, steps, outputs=None):
            project = work / ("project-" + version)
            project.mkdir(exist_ok=True)
            env = release.job_env(base_env, project, commits[version], gitserver, token, moto["url"], stock,
                                  build_subnet, outputs)
            return release.run_stages(steps, env, BIN), project

        world = build_world(moto["url"], desired=2, ami=earlier["image_id"], verify_timeout=60)
        outputs = work / "terraform-outputs.json"
        outputs.write_text(json.dumps(world))
        values = {k: v["value"] for k, v in world.items()}
        groups = [values[env + "_asg_name"] for env in ("test", "live")]
        release.wait_for_answers(ec2, asg, groups)
        print_answers(ec2, asg, values, "The world on v0.1.0 (each instance a body of that image):")

        started = time.time()
        print("\nThe main pipeline for v0.2.0:")
        steps = release.BAKE_STEPS + [
            ("kiln-userdata", ["--environment", "test"]), ("kiln-rotate", ["--environment", "test"]),
            ("kiln-userdata", ["--environment", "live"]), ("kiln-rotate", ["--environment", "live"])]
        code, project = pipeline("v0.2.0", steps, outputs)
        if code:
            print(f"\ndemo: stopped (exit {code}); artifacts so far in {project / 'kiln'}", file=sys.stderr)
            return code
        image = json.loads((project / "kiln" / "image.json").read_text())
        print("\nThe pipeline ran end to end in %.0fs; AMI %s (%s, %s)" % (
            time.time() - started, image["amiID"], image["name"], image["outcome"]))
        release.wait_for_answers(ec2, asg, groups, configured=True)
        print_answers(ec2, asg, values, "What each environment's instances answer:")

        if breaking:
            print("\n--break: v0.3.0, whose /health fails (a bug in app/server.py), onto test")
            demo_config = short_health(commits["source"] / "kiln.yml", work / "kiln-break.yml", "30s")
            steps = release.BAKE_STEPS + [("kiln-userdata", ["--environment", "test", "--config", str(demo_config)]),
                                          ("kiln-rotate", ["--environment", "test", "--config", str(demo_config)])]
            code, project = pipeline("v0.3.0", steps, outputs)
            rotation_file = project / "kiln" / "rotation-test.json"
            if not rotation_file.exists():
                print(f"demo: v0.3.0 stopped before its rotation (exit {code})", file=sys.stderr)
                return 1
            rotation = json.loads(rotation_file.read_text())
            print(f"\n--break: kiln-rotate exit {code} ({rotation['outcome']}): {rotation.get('failure')}")
            release.wait_for_answers(ec2, asg, groups, configured=True)
            print_answers(ec2, asg, values, "After the rollback, test serves the release before:")
            return 0 if code == 3 else 1
        print(f"\n  artifacts    {work}\n  stand-ins    their logs in {work / 'standins.log'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
