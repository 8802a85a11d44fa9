"""The demo's driver (scripts/demo runs it after installing what it needs).

It serves examples/demo-app as a git repository, starts moto, builds the world
Terraform would make, starts the fleet simulator (health on port 8080 of each
instance's 127.0.1.x address), then runs the stages as the pipeline's jobs
would, with the binaries scripts/install-runtime put in .kiln-runtime/bin.
Nothing leaves 127.0.0.0/8: instance metadata is off, proxies point nowhere
but loopback, and every endpoint is the local moto.
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

BIN = ROOT / ".kiln-runtime" / "bin"
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
