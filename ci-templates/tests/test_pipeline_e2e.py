"""The example's .gitlab-ci.yml run for real with gitlabci-local in host mode
(gcil -H), job after job, against the local stand-ins on instance bodies
(`standin moto --bodies`: every instance a running Debian tree with sshd,
cloud-init and its enabled units on its own 127.x address), with the
binaries scripts/install-runtime installed in .kiln-runtime/bin.

The world Terraform would make starts its groups on a real earlier release:
v0.1.0 of the example, baked once by the set-up (`standin release-image`,
cached in .kiln-images/releases) and registered at the stand-in's start. The
main pipeline for v0.2.0 then checks out, builds and tests, bakes for real
(Packer's SSH communicator, Ansible over SSH, apt from the loopback package
repository), renders user data and rotates test and live; every test and
live instance must answer :8080/health with v0.2.0 and its own environment.
The manual rollback of test must leave v0.1.0 serving on test. Then the
pipeline of v0.3.0, whose /health really fails (a bug in app/server.py), is
deployed to test: the deploy job fails with the rolled-back outcome (exit 3)
and test still answers v0.1.0, live v0.2.0. Needs root (the bodies do).

The tag-driven fleet world (no bodies) is not used here: the bake tests and
this test are the ones that bake for real, the rotation tests (Swift,
RotateTests) keep the fleet for its speed and failure shapes.

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
- gcil retries a failed job up to `retry: max` whatever its exit code
  (GitLab: only on `retry: exit_codes`); Kiln's jobs retry on 75 alone
  (checked), and gcil's copy has no `retry`.
- gcil ignores `id_tokens`: the test gives KILN_OIDC_TOKEN itself, and Kiln
  exchanges it with moto's STS (AssumeRoleWithWebIdentity) as in a job.
- the job image is not used (host mode): the binaries come from PATH.
"""
import copy
import json
import os
import pathlib
import re
import subprocess
import sys
import time

import boto3
import yaml

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "scripts"))
import gitlab_rules as gitlab  # noqa: E402
import kiln_catalog as kiln  # noqa: E402
from standins import packer_moto, release  # noqa: E402
from standins.harness import running  # noqa: E402
from standins.world import build_world  # noqa: E402

BIN = ROOT / ".kiln-runtime" / "bin"
GCIL = pathlib.Path(sys.executable).parent / "gcil"
# The world's subnets and the bake's build subnet: /24s of their own, so that no body shares an address with
# another stand-in's (the demo's world is on 127.0.1-2, test_bodies.py on 127.0.200-202).
WORLD_SUBNETS = ["127.0.5.0/24", "127.0.6.0/24"]
BUILD_SUBNET = "127.0.243.0/24"


def aws(moto, service, region):
    return boto3.client(service, endpoint_url=moto["url"], region_name=region,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def served(ec2, asg, groups, configured):
    """{environment: [(instance, address, image, /health JSON or the error)]}, once every instance answers
    (release.wait_for_answers; its failure shows here as the answers that were not 200)."""
    seen = release.wait_for_answers(ec2, asg, list(groups.values()), configured=configured)
    out = {}
    for environment, group in groups.items():
        out[environment] = []
        for instance, address, image, said in seen[group]:
            status, _, text = said.partition(" ")
            answer = json.loads(text) if status == "200" else said
            out[environment].append((instance, address, image, answer))
    return out


def versions(answers):
    """What each instance answers, as (version, environment): comparable whatever the instance ids are."""
    return {environment: sorted((a["version"], a["environment"]) if isinstance(a, dict) else ("failed", a)
                                for *_, a in lines) for environment, lines in answers.items()}


def test_the_example_pipeline_runs_end_to_end_on_instance_bodies(tmp_path):
    assert (BIN / "kiln-rotate").exists(), "no .kiln-runtime: run scripts/install-runtime --prefix .kiln-runtime (scripts/test does)"
    # v0.1.0, baked once by the set-up (instant when cached), is what the world starts on.
    cached = release.ensure()
    # The example, served as a repository: v0.1.0 (the cached release's commit), v0.2.0, v0.3.0 (broken).
    commits = release.example_repository(tmp_path)
    source = commits["source"]
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
    # gcil retries a failed job up to retry:max whatever its exit code; GitLab retries only on the codes
    # retry:exit_codes lists (docs ci/yaml, "retry:exit_codes"). Every Kiln job retries on 75 (a temporary
    # failure) alone, so gcil's copy has no retry: the rolled-back deploy (exit 3) runs once, as in GitLab.
    for_gcil = copy.deepcopy(resolved)
    for name, definition in for_gcil.items():
        if isinstance(definition, dict) and "retry" in definition:
            assert definition["retry"].get("exit_codes") == [75], (name, definition["retry"])
            del definition["retry"]
    (tmp_path / "pipeline-resolved.yml").write_text(kiln.dump(for_gcil))
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

    with running("apt-repo") as repository, \
            running("moto", "--bodies", "--apt-repo", repository["url"], "--region", region,
                    "--release-image", cached, timeout=300) as moto, \
            running("git", "--root", str(tmp_path / "repos"), "--user", "gitlab-ci-token", "--password", token) as server:
        earlier = moto["release_images"][0]
        assert earlier["version"] == "v0.1.0" and earlier["commit"] == commits["v0.1.0"]
        world = build_world(moto["url"], region=region, desired=2, ami=earlier["image_id"], subnets=WORLD_SUBNETS,
                            verify_timeout=60)
        (tmp_path / "outputs.json").write_text(json.dumps(world))
        outputs = {key: value["value"] for key, value in world.items()}
        ec2, asg = aws(moto, "ec2", region), aws(moto, "autoscaling", region)
        groups = {environment: outputs[f"{environment}_asg_name"] for environment in ("test", "live")}
        # The bake's builder instance runs in a build network of its own, as in a build account.
        build_vpc = ec2.create_vpc(CidrBlock="127.0.0.0/16")["Vpc"]["VpcId"]
        build_subnet = ec2.create_subnet(VpcId=build_vpc, CidrBlock=BUILD_SUBNET)["Subnet"]["SubnetId"]
        stock = packer_moto.stock_ubuntu_ami(moto["url"], region)
        # The world's instances are bodies of v0.1.0 (no user data: Terraform's launch template has none).
        assert versions(served(ec2, asg, groups, configured=False)) == {
            "test": [("v0.1.0", "?")] * 2, "live": [("v0.1.0", "?")] * 2}

        variables = {
            "CI_REPOSITORY_URL": f"{server['url']}/demo/app.git", "CI_SERVER_URL": server["url"],
            "CI_COMMIT_SHA": commits["v0.2.0"], "CI_COMMIT_REF_NAME": "main", "CI_PIPELINE_ID": "501",
            "CI_JOB_TOKEN": token, "CI_PROJECT_PATH": "demo/app", "CI_PROJECT_DIR": str(project),
            "AWS_ENDPOINT_URL": moto["url"], "AWS_EC2_METADATA_DISABLED": "true",
            "KILN_OIDC_TOKEN": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwcm9qZWN0X3BhdGg6ZGVtby9hcHAifQ.c2ln",
            "KILN_TERRAFORM_OUTPUTS": str(tmp_path / "outputs.json"),
            # A real bake: the shipped template (the runtime's share/kiln/packer), from a stock Ubuntu image
            # (a body of the base tree), in the build subnet.
            "KILN_SOURCE_AMI": stock, "KILN_SUBNET_ID": build_subnet,
            # A backstop: anything not meant for loopback would hit a closed loopback port.
            "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
            "NO_PROXY": "127.0.0.1,localhost,127.0.0.0/8",
        }
        environment = {key: value for key, value in os.environ.items()
                       if not key.startswith(("AWS_", "CI_", "GITLAB_", "KILN_")) and not key.lower().endswith("_proxy")}
        environment["PATH"] = f"{BIN}:{environment.get('PATH', '/usr/bin:/bin')}"

        def job(name, folder, **extra):
            arguments = [str(GCIL), "-H", "--no-color", "-m", "-c", str(config), "-w", str(folder)]
            for key, value in dict(variables, CI_PROJECT_DIR=str(folder), **extra).items():
                arguments += ["-e", f"{key}={value}"]
            started = time.monotonic()
            result = subprocess.run(arguments + ["--no-regex", "--", gcil_name(name)], cwd=folder, env=environment,
                                    capture_output=True, text=True)
            # What each job costs (pytest -s shows it): this test's share of CI's time.
            print(f"[e2e] {extra.get('CI_COMMIT_SHA', commits['v0.2.0'])[:8]} {name}: "
                  f"{time.monotonic() - started:.1f}s, exit {result.returncode}", flush=True)
            output = result.stdout + result.stderr
            assert token not in output, f"{name} printed the job token"
            # Each job's log beside the job folder, as GitLab keeps it, for a failure's reader.
            (tmp_path / "jobs").mkdir(exist_ok=True)
            (tmp_path / "jobs" / f"{folder.name}-{name}.log").write_text(output)
            return result.returncode, output

        outputs_by_job = {}
        for name in order:
            code, output = job(name, project)
            assert code == 0, f"{name} failed:\n{output[-6000:]}"
            outputs_by_job[name] = output
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
            group = asg.describe_auto_scaling_groups(
                AutoScalingGroupNames=[groups[environment_name]])["AutoScalingGroups"][0]
            ids = [instance["InstanceId"] for instance in group["Instances"]]
            reservations = ec2.describe_instances(InstanceIds=ids)["Reservations"]
            images = {instance["ImageId"] for reservation in reservations for instance in reservation["Instances"]}
            assert images == {image["amiID"]}, f"{environment_name} runs {images}"
            assert group["LaunchTemplate"]["Version"] == str(rotation["toVersion"])
            assert not any(tag["Key"].startswith("kiln:rotation:") for tag in group["Tags"])
        # Every test and live instance runs what the bake installed, configured by its environment's user_init.
        assert versions(served(ec2, asg, groups, configured=True)) == {
            "test": [("v0.2.0", "test")] * 2, "live": [("v0.2.0", "live")] * 2}
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
        # world's own image, v0.1.0, and serves it; live stays on the release.
        test_before = json.loads((artifacts / "rotation-test.json").read_text())
        code, output = job(kiln.ROLLBACK["test"], project)
        assert code == 0, f"rollback failed:\n{output[-6000:]}"
        for environment_name, expected in (("test", earlier["image_id"]), ("live", image["amiID"])):
            group = asg.describe_auto_scaling_groups(
                AutoScalingGroupNames=[groups[environment_name]])["AutoScalingGroups"][0]
            ids = [instance["InstanceId"] for instance in group["Instances"]]
            reservations = ec2.describe_instances(InstanceIds=ids)["Reservations"]
            images = {instance["ImageId"] for reservation in reservations for instance in reservation["Instances"]}
            assert images == {expected}, f"{environment_name} runs {images} after the rollback of test"
            if environment_name == "test":
                assert group["LaunchTemplate"]["Version"] == str(test_before["fromVersion"])
        after_rollback = {"test": [("v0.1.0", "?")] * 2, "live": [("v0.2.0", "live")] * 2}
        assert versions(served(ec2, asg, groups, configured=False)) == after_rollback

        # The broken commit: v0.3.0's /health really fails. Its pipeline runs up to the test deploy, which
        # rolls back (kiln-rotate exits 3, the rolled-back outcome: README, exit codes) and leaves test
        # serving v0.1.0. The example waits up to 10 minutes for health; this pipeline's KILN_CONFIG gives
        # it 30 seconds, as a team's CI/CD variable would (Kiln's settings file: --config, else KILN_CONFIG).
        settings = yaml.safe_load((source / "kiln.yml").read_text())
        settings["environments"]["test"]["rotate"]["health"]["timeout"] = "30s"
        short = tmp_path / "kiln-short-health.yml"
        short.write_text(yaml.safe_dump(settings, sort_keys=False))
        broken = tmp_path / "project-broken"
        broken.mkdir()
        for name in order[:order.index(kiln.DEPLOY["test"]) + 1]:
            code, output = job(name, broken, CI_COMMIT_SHA=commits["v0.3.0"], CI_PIPELINE_ID="502",
                               KILN_CONFIG=str(short))
            if name != kiln.DEPLOY["test"]:
                assert code == 0, f"{name} of v0.3.0 failed:\n{output[-6000:]}"
        assert code != 0, f"the deploy of v0.3.0 passed:\n{output[-6000:]}"
        # StageMain's last line names the exit code (Sources/KilnCLI/StageCommand.swift); gcil's own exit is 1.
        assert "kiln-rotate: exit 3: " in output, output[-6000:]
        rotation = json.loads((broken / "kiln" / "rotation-test.json").read_text())
        assert rotation["outcome"] == "rolled-back", rotation
        assert json.loads((broken / "kiln" / "build.json").read_text())["applicationVersion"] == "v0.3.0"
        assert versions(served(ec2, asg, groups, configured=False)) == after_rollback
