"""Kiln's side of the resolver tests: the catalog project as
scripts/publish-components writes it, the example project that includes it,
and the variables of the pipelines the tests create. GitLab's own rules are
in gitlab_rules.py, which knows nothing of Kiln."""
import pathlib
import re
import subprocess
import sys

import yaml

import gitlab_rules as gitlab

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EXAMPLE = ROOT / "examples" / "demo-app"
PUBLISH = ROOT / "scripts" / "publish-components"

CATALOG_PATH = "platform/kiln"      # where the README and the example say the catalog project is
APP_PATH = "demo/app"
CATALOG_SHA = "c" * 40
APP_SHA = "a" * 40


def publish(dest):
    """The catalog project's tree, as scripts/publish-components writes it."""
    result = subprocess.run([sys.executable, str(PUBLISH), str(dest)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return pathlib.Path(dest)


def example_version():
    """The version the example includes the pipeline at (`...@0.1.0`)."""
    include = yaml.safe_load((EXAMPLE / ".gitlab-ci.yml").read_text())["include"][0]
    return include["component"].rsplit("@", 1)[1]


def catalog_project(root, releases=None):
    """The published tree as a catalog project released at the example's version."""
    releases = tuple(releases if releases is not None else (example_version(),))
    return gitlab.Project(CATALOG_PATH, pathlib.Path(root), sha=CATALOG_SHA, tags=releases, releases=releases)


def app_project(root=EXAMPLE):
    return gitlab.Project(APP_PATH, pathlib.Path(root), sha=APP_SHA)


def include_variables(project, sha):
    """What GitLab expands in `include` (gitlab_rules.expand_include_variables)."""
    return {"CI_SERVER_FQDN": gitlab.FQDN, "CI_PROJECT_PATH": project, "CI_COMMIT_SHA": sha,
            "CI_COMMIT_REF_NAME": "main"}


def resolve_example(published, example=EXAMPLE, releases=None):
    """examples/demo-app/.gitlab-ci.yml as GitLab resolves it against the
    published catalog project: (the merged configuration, the files read)."""
    instance = gitlab.Instance(catalog_project(published, releases), app_project(example))
    resolver = gitlab.Resolver(instance, include_variables(APP_PATH, APP_SHA))
    config = resolver.resolve(instance.project(APP_PATH))
    return config, resolver.files


def resolve_catalog_pipeline(published):
    """The catalog project's own .gitlab-ci.yml, resolved in that project."""
    instance = gitlab.Instance(catalog_project(published))
    resolver = gitlab.Resolver(instance, include_variables(CATALOG_PATH, CATALOG_SHA))
    config = resolver.resolve(instance.project(CATALOG_PATH))
    return config, resolver.files


# The predefined variables GitLab sets for each kind of pipeline the tests
# create (docs ci/variables/predefined_variables.md; ci/jobs/job_rules.md,
# "Run jobs only in specific pipeline types": CI_COMMIT_BRANCH is set in
# branch and scheduled pipelines, not in merge request or tag pipelines;
# CI_PIPELINE_SOURCE is push, merge_request_event or schedule).
def pipeline_variables(kind, **extra):
    base = {"CI_DEFAULT_BRANCH": "main", "CI_PROJECT_PATH": APP_PATH, "CI_SERVER_FQDN": gitlab.FQDN}
    kinds = {
        "push-main": {"CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": "main", "CI_COMMIT_REF_NAME": "main"},
        "push-branch": {"CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": "feature", "CI_COMMIT_REF_NAME": "feature"},
        "merge-request": {"CI_PIPELINE_SOURCE": "merge_request_event", "CI_COMMIT_REF_NAME": "feature",
                          "CI_MERGE_REQUEST_IID": "7"},
        "tag": {"CI_PIPELINE_SOURCE": "push", "CI_COMMIT_TAG": "v1.0.0", "CI_COMMIT_REF_NAME": "v1.0.0"},
        "schedule": {"CI_PIPELINE_SOURCE": "schedule", "CI_COMMIT_BRANCH": "main", "CI_COMMIT_REF_NAME": "main"},
    }
    variables = dict(base, **kinds[kind])
    variables.update(extra)
    return variables


BASE_SCHEDULE = {"KILN_SCHEDULE": "base-image"}
# docs user/project/releases/#prevent-unintentional-releases-by-setting-a-deploy-freeze:
# "If the job that's executing is within a freeze period, GitLab CI/CD creates
# an environment variable named $CI_DEPLOY_FREEZE" (its value is `true`).
FREEZE = {"CI_DEPLOY_FREEZE": "true"}

# The jobs of examples/demo-app/.gitlab-ci.yml by name, as the pipeline component names them.
BUILD, BAKE, BASE = "kiln-build", "kiln-bake", "kiln-base-image"
PLAN = {"test": "kiln-plan-test", "live": "kiln-plan-live"}
DEPLOY = {"test": "kiln-deploy-test", "live": "kiln-deploy-live"}
ROLLBACK = {"test": "kiln-rollback-test", "live": "kiln-rollback-live"}


def header_and_body(path):
    """A template's spec header (parsed) and its body (text)."""
    text = pathlib.Path(path).read_text()
    header, separator, body = text.partition("\n---\n")
    assert separator, f"{path}: no '---' between spec and jobs"
    return yaml.safe_load(header)["spec"], body


class _Plain(yaml.SafeDumper):
    """Writes shared values out in full (no YAML anchors), as GitLab's merged configuration would read."""

    def ignore_aliases(self, data):
        return True


def dump(config):
    return yaml.dump(config, Dumper=_Plain, sort_keys=False)


PLACEHOLDER = re.compile(r"\$\[\[\s*(inputs|component)\.([A-Za-z0-9_-]+)\s*\]\]")
