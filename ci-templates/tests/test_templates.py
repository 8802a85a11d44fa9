"""The CI/CD components, checked as GitLab would check them.

Each template is a `spec:` header and, after `---`, the jobs. GitLab fills in
`$[[ inputs.NAME ]]` before it validates the jobs, so the jobs are validated
here the same way: with each input's default, or a sample value for inputs
that have none. check-jsonschema runs with the vendored GitLab CI schema.
"""
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile

import pytest
import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from gitlab_inputs import PLACEHOLDER, inputs_of, split  # noqa: E402
import gitlab_inputs  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEMPLATES = sorted((ROOT / "ci-templates" / "templates").glob("*.yml"))
CHECK = pathlib.Path(sys.executable).parent / "check-jsonschema"

# Sample values for the inputs that have no default (what a project gives).
SAMPLES = {
    "aws_role_arn": "arn:aws:iam::123456789012:role/gitlab-deployer",
    "aws_region": "eu-west-1",
    "environment": "test",
}


def validate(text, name):
    with tempfile.NamedTemporaryFile("w", suffix=".yml", prefix=name + "-", delete=False) as handle:
        handle.write(text)
    try:
        result = subprocess.run(
            [str(CHECK), "--builtin-schema", "vendor.gitlab-ci", "--data-transform", "gitlab-ci", handle.name],
            capture_output=True, text=True)
    finally:
        pathlib.Path(handle.name).unlink()
    assert result.returncode == 0, f"{name}:\n{result.stdout}{result.stderr}"


def interpolate(body, inputs, given=None):
    return gitlab_inputs.interpolate(body, inputs, given, SAMPLES)


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_header_is_a_valid_spec_with_described_typed_inputs(path):
    header, body = split(path)
    validate(header, path.stem + "-spec")
    for name, spec in inputs_of(path).items():
        assert spec.get("description"), f"{path.name}: input {name} has no description"
        assert spec.get("type") in ("string", "array", "boolean", "number"), f"{path.name}: input {name} has no type"
        if "options" in spec:
            assert spec.get("default") in spec["options"], f"{path.name}: {name}'s default is not one of its options"
    used = set(PLACEHOLDER.findall(body))
    declared = set(inputs_of(path))
    assert used <= declared, f"{path.name}: undeclared inputs {used - declared}"
    assert declared <= used, f"{path.name}: inputs never used {declared - used}"


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_jobs_are_valid_gitlab_ci_once_inputs_are_filled_in(path):
    _, body = split(path)
    validate(interpolate(body, inputs_of(path)), path.stem + "-jobs")
    jobs = yaml.safe_load(interpolate(body, inputs_of(path)))
    # Components set no global keywords: only jobs (and include).
    for key in jobs:
        assert key not in ("default", "variables", "stages", "workflow", "image", "before_script"), f"{path.name}: global {key}"


@pytest.mark.parametrize("path", [p for p in TEMPLATES if p.stem != "pipeline"], ids=lambda p: p.name)
def test_job_and_stage_names_are_inputs(path):
    _, body = split(path)
    jobs = yaml.safe_load(body)
    for name, job in jobs.items():
        assert name == "$[[ inputs.job_name ]]"
        assert job["stage"] == "$[[ inputs.stage ]]"


def test_pipeline_gives_each_included_template_inputs_it_declares():
    _, body = split(ROOT / "ci-templates" / "templates" / "pipeline.yml")
    pipeline = yaml.safe_load(body)
    for include in pipeline["include"]:
        target = ROOT / "ci-templates" / include["local"].lstrip("/")
        declared = inputs_of(target)
        given = include.get("inputs", {})
        assert set(given) <= set(declared), f"{target.name}: unknown inputs {set(given) - set(declared)}"
        missing = [name for name, spec in declared.items() if "default" not in spec and name not in given]
        assert not missing, f"{target.name}: required inputs not given: {missing}"


def test_deploy_jobs_never_overlap_never_interrupt_and_retry_75():
    _, body = split(ROOT / "ci-templates" / "templates" / "deploy.yml")
    job = next(iter(yaml.safe_load(interpolate(body, inputs_of(ROOT / "ci-templates" / "templates" / "deploy.yml"))).values()))
    assert job["resource_group"].startswith("kiln-test-")
    assert job["interruptible"] is False
    assert job["retry"]["exit_codes"] == [75]
    assert job["variables"]["GIT_STRATEGY"] == "none"
    assert "KILN_OIDC_TOKEN" in job["id_tokens"]
    assert set(job["environment"]) == {"name", "url", "deployment_tier"}
    assert job["parallel"]["matrix"][0]["AWS_REGION"] == ["us-east-1"]


def test_component_pages_are_current():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "docs-components"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_example_playbooks_pass_ansible_syntax_check():
    for playbook in sorted((ROOT / "examples" / "demo-app" / "deploy" / "ansible").glob("*.yml")):
        result = subprocess.run(["ansible-playbook", "--syntax-check", "-i", "localhost,", str(playbook)],
                                capture_output=True, text=True)
        assert result.returncode == 0, f"{playbook.name}:\n{result.stdout}{result.stderr}"


def test_the_default_packer_template_validates_and_its_playbooks_parse():
    # packer validate with the variables kiln-bake passes; the environment
    # keeps Packer on loopback (no checkpoint call, a closed proxy port).
    environment = dict(os.environ, CHECKPOINT_DISABLE="1", AWS_EC2_METADATA_DISABLED="true",
                       HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9", NO_PROXY="127.0.0.1",
                       AWS_ACCESS_KEY_ID="validate", AWS_SECRET_ACCESS_KEY="validate")
    variables = {"source_ami": "ami-12345678", "ami_name": "demo-app-1", "region": "us-east-1", "role": "app",
                 "application": "demo", "playbooks_dir": "ansible", "ec2_endpoint": "http://127.0.0.1:9"}
    arguments = ["packer", "validate"] + [f"-var={key}={value}" for key, value in variables.items()] + ["kiln.pkr.hcl"]
    result = subprocess.run(arguments, cwd=ROOT / "packer", capture_output=True, text=True, env=environment)
    assert result.returncode == 0, result.stdout + result.stderr
    for playbook in sorted((ROOT / "packer" / "ansible").glob("*.yml")):
        result = subprocess.run(["ansible-playbook", "--syntax-check", "-i", "localhost,", str(playbook)],
                                capture_output=True, text=True)
        assert result.returncode == 0, f"{playbook.name}:\n{result.stdout}{result.stderr}"
