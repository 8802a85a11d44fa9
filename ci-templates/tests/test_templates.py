"""The CI/CD components' files, checked one by one.

Each file is a `spec:` header and, after `---`, its configuration:
templates/<name>.yml are the components (each includes its job file with
every input), jobs/<name>.yml the jobs. Headers are validated with GitLab's
schema (check-jsonschema, vendored GitLab CI schema); the resolved
configuration is validated in test_resolver.py.
"""
import os
import pathlib
import subprocess
import sys

import pytest
import yaml

import gitlab_rules as gitlab
import kiln_catalog as kiln

ROOT = kiln.ROOT
FILES = sorted((ROOT / "ci-templates" / "templates").glob("*.yml")) + sorted((ROOT / "ci-templates" / "jobs").glob("*.yml"))
JOBS = sorted((ROOT / "ci-templates" / "jobs").glob("*.yml"))
CHECK = pathlib.Path(sys.executable).parent / "check-jsonschema"


def ids(path):
    return f"{path.parent.name}/{path.name}"


def test_headers_are_valid_specs(tmp_path):
    paths = []
    for path in FILES:
        header = path.read_text().partition("\n---\n")[0]
        target = tmp_path / f"{path.parent.name}-{path.name}"
        target.write_text(header)
        paths.append(str(target))
    result = subprocess.run([str(CHECK), "--builtin-schema", "vendor.gitlab-ci", "--data-transform", "gitlab-ci", *paths],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", FILES, ids=ids)
def test_inputs_are_described_typed_and_all_used(path):
    spec, body = kiln.header_and_body(path)
    gitlab.check_spec(spec, path.name, component=path.parent.name == "templates")
    for name, input_spec in spec["inputs"].items():
        assert input_spec.get("description"), f"{path.name}: input {name} has no description"
        assert input_spec.get("type") in gitlab.INPUT_TYPES, f"{path.name}: input {name} has no type"
        if "default" in input_spec:
            gitlab.check_value(path.name, name, input_spec, input_spec["type"], input_spec["default"], "default value")
    used = {name for kind, name in kiln.PLACEHOLDER.findall(body) if kind == "inputs"}
    declared = set(spec["inputs"])
    assert used <= declared, f"{path.name}: undeclared inputs {used - declared}"
    assert declared <= used, f"{path.name}: inputs never used {declared - used}"
    fields = {name for kind, name in kiln.PLACEHOLDER.findall(body) if kind == "component"}
    assert fields <= set(spec.get("component", [])), f"{path.name}: component fields not declared in spec:component"


@pytest.mark.parametrize("path", JOBS, ids=ids)
def test_job_names_and_stages_are_inputs_and_the_image_is_given(path):
    _, body = kiln.header_and_body(path)
    jobs = yaml.safe_load(body)
    for name, job in jobs.items():
        assert name.startswith("$[[ inputs.") and name.endswith("_name ]]"), name
        assert job["stage"] == "$[[ inputs.stage ]]"
        assert job["image"] == "$[[ inputs.image ]]"
        assert job["tags"] == "$[[ inputs.tags ]]"
        # The job files use no component context (gitlab_rules: only the
        # component itself has it); the components pass the tag as `image`.
        assert "component." not in yaml.safe_dump(job)


@pytest.fixture(scope="module")
def resolved(published):
    return gitlab.jobs_of(kiln.resolve_example(published)[0])


def test_aws_jobs_never_interrupt_and_retry_75(resolved):
    for name in (kiln.BAKE, *kiln.PLAN.values(), *kiln.DEPLOY.values(), *kiln.ROLLBACK.values()):
        job = resolved[name]
        assert job["retry"]["exit_codes"] == [75], name
        assert job["variables"]["GIT_STRATEGY"] == "none", name
        assert "KILN_OIDC_TOKEN" in job["id_tokens"], name
        if name not in kiln.PLAN.values():
            assert job["interruptible"] is False, name


def test_deploy_jobs_never_overlap_and_report_to_the_merge_request(resolved):
    for environment, name in kiln.DEPLOY.items():
        job = resolved[name]
        assert job["resource_group"] == f"kiln-{environment}-$AWS_REGION"
        assert job["parallel"]["matrix"] == [{"AWS_REGION": ["eu-west-1"]}]
        # The environment's URL is the deploy's own dotenv variable (docs
        # ci/environments/, "Set a dynamic environment URL"), from its report.
        assert job["environment"]["url"] == "$KILN_ENVIRONMENT_URL"
        assert job["artifacts"]["reports"]["dotenv"] == f"kiln/rotation-{environment}.env"
        # The report and its picture in the merge request: each path a file,
        # so each link opens its file (docs ci/yaml/#artifactsexpose_as: "If
        # a directory is specified and there is more than one file in the
        # directory, the link is to the job artifacts browser").
        assert job["artifacts"]["paths"] == [f"kiln/rotation-{environment}.json", f"kiln/rotation-{environment}.svg"]
        assert job["artifacts"]["when"] == "always", "a failed deploy's picture is the one people open"
        assert gitlab.expose_as_problems(job["artifacts"]) == []
        assert job["artifacts"]["expose_as"] == f"kiln rotation {environment}"
    assert resolved[kiln.DEPLOY["test"]]["environment"]["deployment_tier"] == "testing"
    assert resolved[kiln.DEPLOY["live"]]["environment"]["deployment_tier"] == "production"
    # Live does not take test's artifacts, so not its dotenv variables either
    # (KILN_ENVIRONMENT_URL among them): docs ci/yaml/#needsartifacts.
    live_needs = {n["job"]: n for n in resolved[kiln.DEPLOY["live"]]["needs"]}
    assert live_needs[kiln.DEPLOY["test"]]["artifacts"] is False
    assert live_needs[kiln.BAKE]["artifacts"] is True


def test_expose_as_rules_catch_what_gitlab_would_not_show():
    assert gitlab.expose_as_problems({"expose_as": "kiln rotation test", "paths": ["kiln/rotation-test.json"]}) == []
    assert gitlab.expose_as_problems({"expose_as": "rotation (test)", "paths": ["kiln/x.json"]})
    assert gitlab.expose_as_problems({"expose_as": "report", "paths": ["kiln/*.json"]})
    assert gitlab.expose_as_problems({"expose_as": "report", "paths": ["kiln/rotation-$ENV.json"]})
    assert gitlab.expose_as_problems({"expose_as": "report", "paths": ["./kiln/x.json"]})
    assert gitlab.expose_as_problems({"expose_as": "report"})


def test_component_pages_are_current():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "docs-components"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_example_playbooks_pass_ansible_syntax_check():
    for playbook in sorted((ROOT / "examples" / "demo-app" / "deploy" / "ansible").glob("*.yml")):
        result = subprocess.run(["ansible-playbook", "--syntax-check", "-i", "localhost,", str(playbook)],
                                capture_output=True, text=True)
        assert result.returncode == 0, f"{playbook.name}:\n{result.stdout}{result.stderr}"


def test_the_default_packer_template_validates_and_its_playbooks_parse(tmp_path):
    # packer validate with the variables kiln-bake passes, for each role (the
    # app role's file provisioner needs the artifact; the base role has none,
    # and the provisioner's `except` skips it); the environment keeps Packer
    # on loopback (no checkpoint call, a closed proxy port).
    environment = dict(os.environ, CHECKPOINT_DISABLE="1", AWS_EC2_METADATA_DISABLED="true",
                       HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9", NO_PROXY="127.0.0.1",
                       AWS_ACCESS_KEY_ID="validate", AWS_SECRET_ACCESS_KEY="validate")
    artifact = tmp_path / "demo-1.tar.gz"
    artifact.write_bytes(b"artifact")
    common = {"source_ami": "ami-12345678", "region": "us-east-1", "application": "demo",
              "playbooks_dir": "ansible", "ec2_endpoint": "http://127.0.0.1:9"}
    roles = (("app", {"ami_name": "demo-app-1", "artifact": str(artifact)}), ("base", {"ami_name": "base-1"}))
    for role, extra in roles:
        variables = dict(common, role=role, **extra)
        arguments = ["packer", "validate"] + [f"-var={key}={value}" for key, value in variables.items()]
        result = subprocess.run(arguments + ["kiln.pkr.hcl"], cwd=ROOT / "packer", capture_output=True, text=True,
                                env=environment)
        assert result.returncode == 0, role + ": " + result.stdout + result.stderr
    for playbook in sorted((ROOT / "packer" / "ansible").glob("*.yml")):
        result = subprocess.run(["ansible-playbook", "--syntax-check", "-i", "localhost,", str(playbook)],
                                capture_output=True, text=True)
        assert result.returncode == 0, f"{playbook.name}:\n{result.stdout}{result.stderr}"
