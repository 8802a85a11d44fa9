"""`standin release-image`: the earlier release the world's groups start on, baked for real once and cached.

    scripts/standin release-image [--images-dir DIR] [--bin DIR] [--print-path]

One-shot (scripts/test and scripts/demo run it after install-runtime; it needs root, as the bodies do):
examples/demo-app at v0.1.0 goes through kiln-checkout, kiln-build and kiln-bake --role app (Packer's SSH
communicator and Ansible, on instance bodies of `standin moto --bodies`, apt from `standin apt-repo`), and the
image CreateImage made (one layer on the base root file system) is copied with its tags into
`<images dir>/releases/demo-v0.1.0-<key>/` (`tree/`, `release.json`). The key is a hash of what the release is
made from: the base tree's own key (base.key), examples/demo-app, packer/ and this file, so a change to any of
them bakes again (and the older release folder is removed); the Kiln binaries are not in it (remove the folder
to bake again after a change to Kiln's build or bake). Prints the folder with --print-path.

`standin moto --bodies --release-image DIR` registers that tree as an AMI at start, tagged as the bake tagged it
(kiln:app, kiln:role, kiln:version, kiln:commit, ...): `build_world(..., ami=...)` or `standin world --ami ID`
then starts the groups on it, as Terraform would start them on a real earlier release.

Also shared by the demo and the end-to-end test: the example as a git repository (`example_repository`, its
commits the same in every run, so that the cached release's kiln:commit is v0.1.0's commit there), the stage
runner (`run_stages`), and what each instance answers on :8080/health (`answers`, `wait_for_answers`).
"""
import argparse
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

from . import common

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "demo-app"
PACKER = ROOT / "packer"
BIN = ROOT / ".kiln-runtime" / "bin"
RELEASE = "v0.1.0"
# The builder instance's subnet for the cached bake: a /24 of its own (the demo bakes in 127.0.241.0/24, the
# end-to-end test in 127.0.243.0/24, test_bodies.py uses 127.0.200-202), so that no body shares an address
# with another stand-in's.
BUILD_SUBNET = "127.0.242.0/24"
# v0.3.0's bug (for `scripts/demo --break` and the end-to-end test's broken commit): /health really fails.
BROKEN_HEALTH = (
    "        if self.path in (\"/health\", \"/\"):\n"
    "            body, status = (json.dumps(health()) + \"\\n\").encode(), 200\n",
    "        if self.path in (\"/health\", \"/\"):\n"
    "            # v0.3.0's bug: a key health() does not have, so every request fails.\n"
    "            body, status = (json.dumps(health()[\"missing\"]) + \"\\n\").encode(), 200\n",
)
# Fixed authors and dates: a commit's id then depends on its tree alone, the same in every run.
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "Demo", "GIT_AUTHOR_EMAIL": "demo@kiln.invalid",
                "GIT_COMMITTER_NAME": "Demo", "GIT_COMMITTER_EMAIL": "demo@kiln.invalid",
                "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z"}


class ReleaseError(SystemExit):
    """Why the release cannot be made or used (exit 1, one line naming what to run)."""

    def __init__(self, message):
        super().__init__("standin release-image: " + message)


def git(*args, cwd):
    env = dict(os.environ, **GIT_IDENTITY)
    return subprocess.run(["git", "-c", "init.defaultBranch=main", "-c", "tag.gpgSign=false",
                           "-c", "commit.gpgSign=false", *args], cwd=cwd, env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


def example_repository(work, example=EXAMPLE):
    """examples/demo-app as the repository the demo and the end-to-end test serve, in `work`:
    v0.1.0 (the example as it is: the cached release), v0.2.0 (a CHANGES file: the release they deploy) and
    v0.3.0 (a real bug in app/server.py: /health fails). The bare repository is `work/repos/demo/app.git` (the
    git stand-in's `--root work/repos`, project path demo/app). Returns {tag: commit, "source": work tree}."""
    work = pathlib.Path(work)
    source = work / "src"
    shutil.copytree(example, source)
    git("init", "-q", cwd=source)
    git("add", "-A", cwd=source)
    git("commit", "-q", "-m", "Demo application", cwd=source)
    git("tag", "v0.1.0", cwd=source)
    commits = {"v0.1.0": git("rev-parse", "HEAD", cwd=source)}
    (source / "CHANGES").write_text("v0.2.0: the release the demo deploys\n")
    git("add", "-A", cwd=source)
    git("commit", "-q", "-m", "v0.2.0", cwd=source)
    git("tag", "v0.2.0", cwd=source)
    commits["v0.2.0"] = git("rev-parse", "HEAD", cwd=source)
    server = source / "app" / "server.py"
    text = server.read_text()
    if BROKEN_HEALTH[0] not in text:
        raise ReleaseError("examples/demo-app/app/server.py no longer has the /health lines v0.3.0 breaks "
                           "(scripts/standins/release.py, BROKEN_HEALTH)")
    server.write_text(text.replace(*BROKEN_HEALTH))
    git("commit", "-q", "-am", "v0.3.0: health reads the settings wrongly", cwd=source)
    git("tag", "v0.3.0", cwd=source)
    commits["v0.3.0"] = git("rev-parse", "HEAD", cwd=source)
    served = work / "repos" / "demo"
    served.mkdir(parents=True)
    git("clone", "-q", "--bare", str(source), str(served / "app.git"), cwd=work)
    commits["source"] = source
    return commits


def loopback_env():
    """This process's environment for Kiln's stages, with nothing that could leave 127.0.0.0/8: no proxy but a
    closed loopback port as a backstop, no instance metadata, fake AWS credentials."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy") and not k.startswith("AWS_")}
    env.update(AWS_EC2_METADATA_DISABLED="true", AWS_ACCESS_KEY_ID="demo", AWS_SECRET_ACCESS_KEY="demo-secret",
               AWS_REGION="us-east-1", NO_PROXY="127.0.0.1,localhost,127.0.0.0/8",
               # curl reads CIDR in NO_PROXY; Python and Go read 127.0.0.1.
               HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9")
    return env


def job_env(base, project, commit, gitserver, token, moto_url, source_ami, subnet=None, outputs=None):
    """The CI variables a job of the example's pipeline has, for `commit`, in the job folder `project`."""
    env = dict(base, CI="true", CI_PROJECT_DIR=str(project), CI_PROJECT_NAME="demo", CI_PROJECT_PATH="demo/app",
               CI_REPOSITORY_URL=f"{gitserver['url']}/demo/app.git", CI_SERVER_URL=gitserver["url"],
               CI_COMMIT_SHA=commit, CI_COMMIT_REF_NAME="main", CI_PIPELINE_ID=commit[:6], CI_JOB_TOKEN=token,
               AWS_ENDPOINT_URL=moto_url, KILN_SOURCE_AMI=source_ami)
    if subnet:
        env["KILN_SUBNET_ID"] = subnet
    if outputs:
        env["KILN_TERRAFORM_OUTPUTS"] = str(outputs)
    return env


def run_stages(steps, env, bin_dir=BIN, out=None):
    """Run each (stage, args) as its job would, printing `$ stage args` and its time; stops at the first that
    fails. Returns that exit code (0 when all passed). `out`: where the stages' output goes (default: ours)."""
    for name, args in steps:
        print(f"\n$ {name} {' '.join(args)}", flush=True, file=out or sys.stdout)
        started = time.time()
        code = subprocess.run([str(pathlib.Path(bin_dir) / name), *args], env=env, stdout=out,
                              stderr=subprocess.STDOUT if out else None).returncode
        if code != 0:
            return code
        print(f"  ({name} {' '.join(args)}: {time.time() - started:.1f}s)", flush=True, file=out or sys.stdout)
    return 0


BAKE_STEPS = [("kiln-checkout", []), ("kiln-build", []), ("kiln-bake", ["--role", "app"])]


# -- the cache ------------------------------------------------------------------------------------------------

def _tree_digest(digest, folder, label):
    """Paths (relative), exec bits and contents of every file under `folder`, in a stable order."""
    folder = pathlib.Path(folder)
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(b"%s/%s\0%d\0" % (label.encode(), str(path.relative_to(folder)).encode(),
                                        os.access(path, os.X_OK)))
        digest.update(path.read_bytes())
        digest.update(b"\0")


def release_key(images_dir, example=EXAMPLE, packer=PACKER):
    """The hash of what the cached release is made from (the module's docstring)."""
    base_key = pathlib.Path(images_dir) / "base.key"
    if not base_key.is_file():
        raise ReleaseError("no base root file system in %s (run scripts/setup, which runs scripts/setup-rootfs)"
                           % images_dir)
    digest = hashlib.sha256()
    digest.update(b"release\0%s\0base\0" % RELEASE.encode())
    digest.update(base_key.read_bytes())
    digest.update(pathlib.Path(__file__).read_bytes())
    _tree_digest(digest, example, "example")
    _tree_digest(digest, packer, "packer")
    return digest.hexdigest()


def release_dir(images_dir, key):
    return pathlib.Path(images_dir) / "releases" / ("demo-%s-%s" % (RELEASE, key[:16]))


def read_release(folder, images_dir=None):
    """The cached release in `folder` (release.json), checked against the base tree it was baked on."""
    folder = pathlib.Path(folder)
    try:
        release = json.loads((folder / "release.json").read_text())
    except (OSError, ValueError) as error:
        raise ReleaseError("%s is not a cached release (%s; scripts/standin release-image makes one)"
                           % (folder, error))
    if not (folder / "tree").is_dir():
        raise ReleaseError("%s has no tree/ (scripts/standin release-image makes it again)" % folder)
    if images_dir is not None:
        base_key = pathlib.Path(images_dir) / "base.key"
        current = base_key.read_text().strip() if base_key.is_file() else None
        if release.get("base_key") != current:
            raise ReleaseError("%s was baked on another base root file system than %s/base "
                               "(run scripts/standin release-image to bake it again)" % (folder, images_dir))
    return release


def ensure(images_dir=None, bin_dir=BIN, out=None):
    """The cached release's folder, baked first when there is none for the current key (the module's
    docstring). `out`: where the bake's output goes (default: stderr)."""
    from .bodies import default_images_dir
    images_dir = pathlib.Path(images_dir or default_images_dir()).resolve()
    key = release_key(images_dir)
    folder = release_dir(images_dir, key)
    if (folder / "release.json").is_file():
        return folder
    if os.geteuid() != 0:
        raise ReleaseError("needs root to bake on instance bodies (scripts/standins/README.md, Bodies)")
    for stage in ("kiln-checkout", "kiln-build", "kiln-bake"):
        if not (pathlib.Path(bin_dir) / stage).exists():
            raise ReleaseError("no %s in %s (run scripts/install-runtime --prefix .kiln-runtime)" % (stage, bin_dir))
    out = out or sys.stderr
    print(f"[release-image] baking {RELEASE} of examples/demo-app once, into {folder}", file=out, flush=True)
    started = time.time()
    staging = folder.with_name(folder.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="kiln-release.") as work:
        _bake(pathlib.Path(work), images_dir, key, staging, bin_dir, out)
    os.replace(staging, folder)
    # Older releases this command made (a release.json beside a tree/): one per key is kept, the current one.
    for other in folder.parent.iterdir():
        if other != folder and other.name.startswith("demo-") and (other / "release.json").is_file():
            shutil.rmtree(other)
    print(f"[release-image] cached {folder} in {time.time() - started:.0f}s", file=out, flush=True)
    return folder


def _bake(work, images_dir, key, staging, bin_dir, out):
    import boto3
    from .harness import running
    commits = example_repository(work)
    token = "release-job-token-" + os.urandom(6).hex()
    log = open(work / "standins.log", "w")
    with running("apt-repo", stderr=log) as repository, \
            running("moto", "--bodies", "--images-dir", images_dir, "--apt-repo", repository["url"], stderr=log,
                    timeout=300) as moto, \
            running("git", "--root", work / "repos", "--user", "gitlab-ci-token", "--password", token,
                    stderr=log) as gitserver:
        ec2 = boto3.client("ec2", endpoint_url=moto["url"], region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        vpc = ec2.create_vpc(CidrBlock="127.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=BUILD_SUBNET)["Subnet"]["SubnetId"]
        from .packer_moto import stock_ubuntu_ami
        project = work / "project"
        project.mkdir()
        env = job_env(loopback_env(), project, commits[RELEASE], gitserver, token, moto["url"],
                      stock_ubuntu_ami(moto["url"]), subnet)
        code = run_stages(BAKE_STEPS, env, bin_dir, out)
        if code:
            log.close()
            raise ReleaseError("the bake of %s stopped (exit %d); the stand-ins' log: %s" % (
                RELEASE, code, (work / "standins.log").read_text()[-3000:]))
        image_id = json.loads((project / "kiln" / "image.json").read_text())["amiID"]
        image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(moto["bodies_url"]) as answer:
            store = json.load(answer)
        stack = store["images"].get(image_id) or []
        if len(stack) != 2 or stack[1] != store["base"]:
            raise ReleaseError("image %s is not one layer on the base tree: %r" % (image_id, stack))
        staging.mkdir(parents=True)
        # -a keeps owners, modes, overlayfs's whiteouts and its xattrs (as the store's CreateImage copy does).
        subprocess.run(["cp", "-a", "--reflink=auto", stack[0], str(staging / "tree")], check=True)
        release = {
            "key": key, "base_key": (images_dir / "base.key").read_text().strip(), "version": RELEASE,
            "commit": commits[RELEASE], "name": image["Name"], "description": image.get("Description", ""),
            "architecture": image.get("Architecture", "x86_64"),
            "root_device_name": image.get("RootDeviceName", "/dev/sda1"),
            "tags": {tag["Key"]: tag["Value"] for tag in image.get("Tags", [])},
            "baked_as": image_id, "baked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (staging / "release.json").write_text(json.dumps(release, indent=1, sort_keys=True) + "\n")


def register(url, region, store, folder):
    """RegisterImage the cached release in moto (at `url`) in `region`, with the bake's name and tags, and give
    the store its tree. Returns what the ready line says of it."""
    import boto3
    release = read_release(folder, store.images_dir)
    ec2 = boto3.client("ec2", endpoint_url=url, region_name=region,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    tags = [{"Key": k, "Value": v} for k, v in sorted(release["tags"].items())]
    image_id = ec2.register_image(
        Name=release["name"], Description=release["description"], Architecture=release["architecture"],
        RootDeviceName=release["root_device_name"], VirtualizationType="hvm",
        BlockDeviceMappings=[{"DeviceName": release["root_device_name"], "Ebs": {"VolumeSize": 8}}])["ImageId"]
    if tags:
        ec2.create_tags(Resources=[image_id], Tags=tags)
    store.adopt(image_id, str(pathlib.Path(folder) / "tree"))
    return {"image_id": image_id, "region": region, "version": release["version"], "commit": release["commit"],
            "dir": str(folder)}


# -- what instances answer -------------------------------------------------------------------------------------

def answers(ec2, asg, group):
    """(instance, address, image, answer) for each InService instance of `group`: what its :8080/health says
    (`200 {json}`, or the error), by its private address."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    members = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0]["Instances"]
    ids = [i["InstanceId"] for i in members if i["LifecycleState"] == "InService"]
    lines = []
    for reservation in ec2.describe_instances(InstanceIds=ids)["Reservations"] if ids else []:
        for instance in reservation["Instances"]:
            address = instance.get("PrivateIpAddress")
            try:
                with opener.open("http://%s:8080/health" % address, timeout=5) as response:
                    said = "%d %s" % (response.status, response.read().decode().strip())
            except Exception as error:  # noqa: BLE001 (the answer, whatever it is, is what is shown)
                said = str(getattr(error, "code", "")) + " " + str(getattr(error, "reason", error))
            lines.append((instance["InstanceId"], address, instance["ImageId"], said))
    return sorted(lines, key=lambda line: line[1])


def wait_for_answers(ec2, asg, groups, configured=False, timeout=120):
    """Until every instance of `groups` answers 200 (bodies boot, then their units start), and with `configured`
    names its environment: the unit starts at boot and answers before the user data's user_init (cloud-init's
    final stage) has written /etc/demo/env and restarted it, as on EC2. Returns {group: answers} as they are
    when all do, or at the end of `timeout` seconds (the caller checks them)."""
    deadline = time.monotonic() + timeout
    while True:
        seen = {group: answers(ec2, asg, group) for group in groups}
        lines = [line for group in groups for line in seen[group]]
        if lines and all(said.startswith("200") and (not configured or '"environment": "?"' not in said)
                         for *_, said in lines):
            return seen
        if time.monotonic() > deadline:
            return seen
        time.sleep(1)


def main(argv):
    p = argparse.ArgumentParser(prog="standin release-image", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images-dir", default=None, metavar="DIR",
                   help="the image store's folder (default $KILN_IMAGES_DIR or <repo>/.kiln-images)")
    p.add_argument("--bin", default=str(BIN), metavar="DIR", help="Kiln's binaries (default .kiln-runtime/bin)")
    p.add_argument("--print-path", action="store_true", help="print the cached release's folder")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)
    common.setup_logging("release-image", a.verbose)
    folder = ensure(a.images_dir, a.bin)
    if a.print_path:
        print(folder)
    return 0
