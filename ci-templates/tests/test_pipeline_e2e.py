"""The example's .gitlab-ci.yml run for real with gitlabci-local in host mode
(gcil -H), job after job, against the local stand-ins, with the binaries
scripts/install-runtime installed in .kiln-runtime/bin.

The pipeline is the one GitLab would build: scripts/publish-components writes
the catalog project into a temporary folder, and the example's
`include: component:` is resolved against that layout by GitLab's rules
(gitlab_rules, as test_resolver.py does), never from ci-templates/ itself.

Where gitlabci-local differs from GitLab, this test says so and checks that
part another way:
- gcil resolves a component through a `.local: include:` entry, and cannot
  follow the component's own `include: local:` files (nor give
  `$[[ component.version ]]`); the test maps the example's component address
  to the pipeline resolved from the published layout, in the test's copy.
- gcil ignores `rules` and `needs`: the jobs of a main-branch push pipeline
  and their order come from gitlab_rules.Pipeline on the resolved YAML (the
  base image job, on its schedule only, is left out), and are run in that
  order; the manual live deploy is played (-m), as a person would, and then
  the manual rollback of test.
- gcil ignores dotenv reports, `environment` (so the environment URL),
  `resource_group` and artifacts passing: in host mode every job runs in the
  same folder, so kiln/ holds the earlier jobs' artifacts as GitLab would
  have unpacked them; the dotenv files are checked against GitLab's rules,
  and KILN_ENVIRONMENT_URL, when a deploy writes one, must be a URL GitLab
  would take.
- gcil ignores `id_tokens`: the test gives KILN_OIDC_TOKEN itself, and Kiln
  exchanges it with moto's STS (AssumeRoleWithWebIdentity) as in a job.
- the job image is not used (host mode): the binaries come from PATH.
"""
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import boto3
import yaml

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "scripts"))
import gitlab_rules as gitlab  # noqa: E402
import kiln_catalog as kiln  # noqa: E402
from standins import packer_moto  # noqa: E402
from standins.harness import running  # noqa: E402

BIN = ROOT / ".kiln-runtime" / "bin"
GCIL = pathlib.Path(sys.executable).parent / "gcil"
EXAMPLE = ROOT / "examples" / "demo-app"


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

    # The job folder gcil runs in, as a fresh runner has it with
    # GIT_STRATEGY: none: empty. The first job's kiln-checkout clones into it
    # (and marks it as its own); the later jobs fetch into that repository.
    project = tmp_path / "project"
    project.mkdir()
    pipeline_text = (source / ".gitlab-ci.yml").read_text()
    include = yaml.safe_load(pipeline_text)["include"][0]
    # The catalog project as published, and the example resolved against it.
    published = kiln.publish(tmp_path / "catalog" / "kiln")
    resolved, _ = kiln.resolve_example(published, source)
    (tmp_path / "pipeline-resolved.yml").write_text(kiln.dump(resolved))
    # The example's file with the mapping sits beside the job folder: the
    # first job's kiln-checkout makes the job folder exactly the commit (as in
    # GitLab), which would take the mapping out of a copy inside it.
    config = tmp_path / "gcil" / ".gitlab-ci.yml"
    config.parent.mkdir()
    config.write_text(pipeline_text + f"\n.local:\n  include:\n    {include['component']}: {tmp_path / 'pipeline-resolved.yml'}\n")

    # gcil ignores rules and needs: the jobs of a push to main, in an order
    # GitLab's needs and stages allow (each job after what it waits for).
    region = include["inputs"]["aws_region"]
    main = gitlab.Pipeline(resolved, kiln.pipeline_variables("push-main"))
    assert kiln.BASE not in main.jobs
    order = []
    waiting = [name for name in main.jobs if name not in kiln.ROLLBACK.values()]
    while waiting:
        ready = [name for name in waiting if set(main.ancestors(name)) & set(waiting) == set()]
        assert ready, f"no job can start among {waiting}"
        order.append(ready[0])
        waiting.remove(ready[0])
    assert order.index(kiln.DEPLOY["live"]) > order.index(kiln.DEPLOY["test"]) > order.index(kiln.PLAN["test"])
    # The deploy jobs are one per region (parallel:matrix), named as GitLab names them.
    assert resolved[kiln.DEPLOY["test"]]["parallel"]["matrix"] == [{"AWS_REGION": [region]}]

    def gcil_name(name):
        return f"{name}: [{region}]" if "parallel" in resolved[name] else name

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

        outputs_by_job = {}
        for job in order:
            result = subprocess.run(arguments + ["--no-regex", "--", gcil_name(job)], cwd=project, env=environment,
                                    capture_output=True, text=True, timeout=900)
            output = result.stdout + result.stderr
            assert result.returncode == 0, f"{job} failed:\n{output[-6000:]}"
            assert token not in output, f"{job} printed the job token"
            outputs_by_job[job] = output
        # Each plan is in its job's log, before its deploy.
        for environment_name in ("test", "live"):
            assert "plan for " in outputs_by_job[kiln.PLAN[environment_name]], outputs_by_job[kiln.PLAN[environment_name]][-3000:]

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
            assert gitlab.dotenv_problems(dotenv.read_text()) == [], dotenv.name
        assert not any(token in path.read_text(errors="replace") for path in artifacts.glob("*.json"))
        # The environment URL: GitLab expands environment:url with the deploy's
        # own dotenv report (docs ci/environments/, "Set a dynamic environment
        # URL") and ignores a URL that is not valid; without the variable the
        # environment keeps no URL.
        for environment_name in ("test", "live"):
            report = dict(line.split("=", 1) for line in
                          (artifacts / f"rotation-{environment_name}.env").read_text().splitlines())
            if "KILN_ENVIRONMENT_URL" in report:
                assert re.match(r"^https?://[^\s]+$", report["KILN_ENVIRONMENT_URL"]), report
            # What expose_as shows in the merge request is there.
            exposed = resolved[kiln.DEPLOY[environment_name]]["artifacts"]["paths"]
            assert exposed == [f"kiln/rotation-{environment_name}.json", f"kiln/rotation-{environment_name}.svg"]
            for path in exposed:
                assert (artifacts.parent / path).is_file(), path

        # The manual rollback of test, played by hand: test is back on the
        # world's own image, live stays on the release.
        test_before = json.loads((artifacts / "rotation-test.json").read_text())
        result = subprocess.run(arguments + ["--no-regex", "--", gcil_name(kiln.ROLLBACK["test"])], cwd=project,
                                env=environment, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"rollback failed:\n{(result.stdout + result.stderr)[-6000:]}"
        for environment_name, expected in (("test", outputs["app_ami_id"]), ("live", image["amiID"])):
            group = aws(moto, "autoscaling", region).describe_auto_scaling_groups(
                AutoScalingGroupNames=[outputs[f"{environment_name}_asg_name"]])["AutoScalingGroups"][0]
            ids = [instance["InstanceId"] for instance in group["Instances"]]
            reservations = aws(moto, "ec2", region).describe_instances(InstanceIds=ids)["Reservations"]
            images = {instance["ImageId"] for reservation in reservations for instance in reservation["Instances"]}
            assert images == {expected}, f"{environment_name} runs {images} after the rollback of test"
            if environment_name == "test":
                assert group["LaunchTemplate"]["Version"] == str(test_before["fromVersion"])
