"""The example's .gitlab-ci.yml run for real with gitlabci-local in host mode
(gcil -H), job after job, against the local stand-ins, with the binaries
scripts/install-runtime installed in .kiln-runtime/bin.

Where gitlabci-local differs from GitLab, this test says so and checks that
part another way:
- gcil resolves a component through a `.local: include:` entry, and cannot
  follow the component's own `include: local:` files; the test resolves the
  pipeline component with its inputs as GitLab does (gitlab_inputs) and maps
  the example's component address to the result in the test's copy.
- gcil ignores `rules`: the jobs a main-branch pipeline runs are named in
  stage order (the base image job, schedules only, is left out), and the
  rules are checked on the resolved YAML.
- gcil ignores `needs`, dotenv reports and artifacts passing: in host mode
  every job runs in the same folder, so kiln/ holds the earlier jobs'
  artifacts as GitLab would have unpacked them; the dotenv files are checked
  against GitLab's rules.
- gcil ignores `id_tokens`: the test gives KILN_OIDC_TOKEN itself, and Kiln
  exchanges it with moto's STS (AssumeRoleWithWebIdentity) as in a job.
"""
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import boto3
import yaml

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "scripts"))
import gitlab_inputs  # noqa: E402
from standins import packer_moto  # noqa: E402
from standins.harness import running  # noqa: E402

BIN = ROOT / ".kiln-runtime" / "bin"
GCIL = pathlib.Path(sys.executable).parent / "gcil"
EXAMPLE = ROOT / "examples" / "demo-app"
DOTENV_LINE = re.compile(r"^[A-Za-z0-9_]+=[^\"'\r\n]*$")



def git(*args, cwd):
    env = dict(os.environ, GIT_AUTHOR_NAME="Test", GIT_AUTHOR_EMAIL="t@kiln.invalid",
               GIT_COMMITTER_NAME="Test", GIT_COMMITTER_EMAIL="t@kiln.invalid")
    return subprocess.run(["git", "-c", "init.defaultBranch=main", *args], cwd=cwd, env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


def aws(moto, service, region):
    return boto3.client(service, endpoint_url=moto["url"], region_name=region,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def test_the_example_pipeline_runs_end_to_end_on_the_stand_ins(tmp_path):
    assert (BIN / "kiln-rotate").exists(), "no .kiln-runtime: run scripts/install-runtime --prefix .kiln-runtime (scripts/test does)"
    # The example, served as a repository.
    source = tmp_path / "src"
    shutil.copytree(EXAMPLE, source)
    git("init", "-q", cwd=source)
    git("add", "-A", cwd=source)
    git("commit", "-q", "-m", "Demo application", cwd=source)
    git("tag", "v0.2.0", cwd=source)
    commit = git("rev-parse", "HEAD", cwd=source)
    repos = tmp_path / "repos" / "demo"
    repos.mkdir(parents=True)
    git("clone", "-q", "--bare", str(source), str(repos / "app.git"), cwd=tmp_path)
    token = "glcbt-e2e-" + os.urandom(8).hex()

    # The job folder gcil runs in: the example as the runner would have it.
    project = tmp_path / "project"
    shutil.copytree(source, project, ignore=shutil.ignore_patterns(".git"))
    pipeline_text = (project / ".gitlab-ci.yml").read_text()
    include = yaml.safe_load(pipeline_text)["include"][0]
    resolved = gitlab_inputs.resolve_component(ROOT / "ci-templates" / "templates" / "pipeline.yml", include["inputs"])
    (tmp_path / "pipeline-resolved.yml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    # The example's file with the mapping sits beside the job folder: the
    # first job's kiln-checkout makes the job folder exactly the commit (as in
    # GitLab), which would take the mapping out of a copy inside it.
    config = tmp_path / "gcil" / ".gitlab-ci.yml"
    config.parent.mkdir()
    config.write_text(pipeline_text + f"\n.local:\n  include:\n    {include['component']}: {tmp_path / 'pipeline-resolved.yml'}\n")

    # gcil ignores rules: check them here.
    assert resolved["kiln-base-image"]["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "schedule"'}]
    assert any("merge_request_event" in rule.get("if", "") for rule in resolved["kiln-build"]["rules"])
    for name in ("kiln-bake", "kiln-deploy-test", "kiln-deploy-live"):
        assert all("$CI_DEFAULT_BRANCH" in rule["if"] for rule in resolved[name]["rules"]), name
    assert resolved["kiln-deploy-live"]["rules"][0]["when"] == "manual"
    # The example's region: the world is built there, and the deploy jobs are
    # one per region (parallel:matrix), named as GitLab names them.
    region = include["inputs"]["aws_region"]
    assert resolved["kiln-deploy-test"]["parallel"]["matrix"] == [{"AWS_REGION": [region]}]

    # Packer against moto: communicator "none", no Ansible provisioner, a
    # stock Ubuntu source image (standins/packer_moto.py says why).
    template = packer_moto.template_without_provisioners(tmp_path / "packer")

    with running("moto") as moto, \
            running("fleet", "--endpoint", moto["url"], "--region", region, "--health-port", "8080") as fleet, \
            running("git", "--root", str(tmp_path / "repos"), "--user", "gitlab-ci-token", "--password", token) as server:
        world = subprocess.run([sys.executable, str(ROOT / "scripts" / "standin"), "world", "--endpoint", moto["url"],
                                "--region", region, "--health-port", "8080", "--desired", "2"],
                               check=True, capture_output=True, text=True)
        (tmp_path / "outputs.json").write_text(world.stdout)
        outputs = {key: value["value"] for key, value in json.loads(world.stdout).items()}
        stock = packer_moto.stock_ubuntu_ami(moto["url"], region)

        variables = {
            "CI_REPOSITORY_URL": f"{server['url']}/demo/app.git", "CI_SERVER_URL": server["url"],
            "CI_COMMIT_SHA": commit, "CI_COMMIT_REF_NAME": "main", "CI_PIPELINE_ID": "501", "CI_JOB_TOKEN": token,
            "CI_PROJECT_PATH": "demo/app", "CI_PROJECT_DIR": str(project), "AWS_ENDPOINT_URL": moto["url"], "AWS_EC2_METADATA_DISABLED": "true",
            "KILN_OIDC_TOKEN": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwcm9qZWN0X3BhdGg6ZGVtby9hcHAifQ.c2ln",
            "KILN_TERRAFORM_OUTPUTS": str(tmp_path / "outputs.json"),
            "KILN_PACKER_TEMPLATE": str(template), "KILN_PACKER_COMMUNICATOR": "none",
            "KILN_SOURCE_AMI": stock,
            # A backstop: anything not meant for loopback would hit a closed loopback port.
            "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
            "NO_PROXY": "127.0.0.1,localhost,127.0.0.0/8",
        }
        environment = {key: value for key, value in os.environ.items()
                       if not key.startswith(("AWS_", "CI_", "GITLAB_", "KILN_")) and not key.lower().endswith("_proxy")}
        environment["PATH"] = f"{BIN}:{environment.get('PATH', '/usr/bin:/bin')}"
        arguments = [str(GCIL), "-H", "--no-color", "-m", "-c", str(config), "-w", str(project)]
        for key, value in variables.items():
            arguments += ["-e", f"{key}={value}"]

        for job in ("kiln-build", "kiln-bake", f"kiln-deploy-test: [{region}]", f"kiln-deploy-live: [{region}]"):
            result = subprocess.run(arguments + ["--no-regex", "--", job], cwd=project, env=environment,
                                    capture_output=True, text=True, timeout=900)
            output = result.stdout + result.stderr
            assert result.returncode == 0, f"{job} failed:\n{output[-6000:]}"
            assert token not in output, f"{job} printed the job token"

        artifacts = project / "kiln"
        image = json.loads((artifacts / "image.json").read_text())
        build = json.loads((artifacts / "build.json").read_text())
        assert build["applicationVersion"] == "v0.2.0" and build["outcome"] == "passed"
        assert build["tests"]["counts"]["tests"] >= 2
        assert image["outcome"] == "baked" and image["application"] == "demo"
        for environment_name in ("test", "live"):
            rotation = json.loads((artifacts / f"rotation-{environment_name}.json").read_text())
            assert rotation["outcome"] == "deployed", rotation
            group = aws(moto, "autoscaling", region).describe_auto_scaling_groups(
                AutoScalingGroupNames=[outputs[f"{environment_name}_asg_name"]])["AutoScalingGroups"][0]
            ids = [instance["InstanceId"] for instance in group["Instances"]]
            reservations = aws(moto, "ec2", region).describe_instances(InstanceIds=ids)["Reservations"]
            images = {instance["ImageId"] for reservation in reservations for instance in reservation["Instances"]}
            assert images == {image["amiID"]}, f"{environment_name} runs {images}"
            assert group["LaunchTemplate"]["Version"] == str(rotation["toVersion"])
            assert not any(tag["Key"].startswith("kiln:rotation:") for tag in group["Tags"])
        # Every dotenv report a stage wrote keeps GitLab's rules.
        for dotenv in artifacts.glob("*.env"):
            lines = dotenv.read_text().splitlines()
            assert lines and all(DOTENV_LINE.match(line) for line in lines), dotenv.name
            assert len(lines) <= 20 and dotenv.stat().st_size < 5 * 1024
        assert not any(token in path.read_text(errors="replace") for path in artifacts.glob("*.json"))
