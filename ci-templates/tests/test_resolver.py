"""The example project's pipeline, resolved as GitLab resolves it against the
catalog project that scripts/publish-components writes (gitlab_rules: the
component path rule, nested `include: local` in the component's project,
inputs and their types, options, regex and defaults,
`$[[ component.version ]]`), then validated with GitLab's own schema."""
import pathlib
import shutil
import subprocess
import sys

import pytest
import yaml

import gitlab_rules as gitlab
import kiln_catalog as kiln

CHECK = pathlib.Path(sys.executable).parent / "check-jsonschema"
COMPONENTS = ["bake", "base-image", "build", "checkout", "deploy", "pipeline"]


def validate(text, tmp_path, name):
    validate_all({name: text}, tmp_path)


def validate_all(texts, tmp_path):
    """check-jsonschema with GitLab's CI schema, on each resolved configuration."""
    paths = []
    for name, text in texts.items():
        paths.append(tmp_path / f"{name}.yml")
        paths[-1].write_text(text)
    result = subprocess.run([str(CHECK), "--builtin-schema", "vendor.gitlab-ci", "--data-transform", "gitlab-ci",
                             *map(str, paths)], capture_output=True, text=True)
    assert result.returncode == 0, f"{sorted(texts)}:\n{result.stdout}{result.stderr}"


def copy_example(tmp_path, include):
    """The example project with another include entry (inputs, version)."""
    example = tmp_path / "app"
    shutil.copytree(kiln.EXAMPLE, example)
    pipeline = yaml.safe_load((example / ".gitlab-ci.yml").read_text())
    pipeline["include"] = [include]
    (example / ".gitlab-ci.yml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    return example


def example_include():
    return yaml.safe_load((kiln.EXAMPLE / ".gitlab-ci.yml").read_text())["include"][0]


# --- the published layout -------------------------------------------------

def test_the_published_project_has_what_a_catalog_project_needs(published):
    # docs ci/components/, "Directory structure" and "Publish a new release":
    # a README.md and a top-level templates/ at the root; the project's own
    # .gitlab-ci.yml tests the components and releases them.
    assert (published / "README.md").is_file()
    assert (published / ".gitlab-ci.yml").is_file()
    assert sorted(p.stem for p in (published / "templates").glob("*.yml")) == COMPONENTS
    assert not (published / "tests").exists(), "the tests stay in Kiln's repository"
    assert not list(published.rglob("__pycache__"))
    for name in COMPONENTS:
        assert (published / "docs" / f"{name}.md").is_file(), f"docs/{name}.md"
    # docs ci/components/, "Component project": at most 30 components.
    assert len(COMPONENTS) <= 30


def test_the_example_resolves_against_the_published_project(published):
    config, files = kiln.resolve_example(published)
    # The component is read at templates/pipeline.yml of the catalog project,
    # and every file it includes locally is read from that same project at the
    # same commit (the component's), none from the project running the pipeline.
    component = [f for f in files if f.how == "component"]
    assert [(f.project, f.path) for f in component] == [(kiln.CATALOG_PATH, "templates/pipeline.yml")]
    nested = [f for f in files if f.how == "local"]
    assert nested and all((f.project, f.sha) == (kiln.CATALOG_PATH, kiln.CATALOG_SHA) for f in nested)
    assert sorted({f.path for f in nested}) == ["jobs/bake.yml", "jobs/base-image.yml", "jobs/build.yml", "jobs/deploy.yml"]
    assert set(gitlab.jobs_of(config)) == {
        kiln.BUILD, kiln.BAKE, kiln.BASE, *kiln.PLAN.values(), *kiln.DEPLOY.values(), *kiln.ROLLBACK.values()}
    assert "include" not in config and "spec" not in config


def test_the_resolved_pipeline_passes_gitlabs_schema(published, tmp_path):
    config, _ = kiln.resolve_example(published)
    validate(kiln.dump(config), tmp_path, "demo-app-resolved")


def test_each_component_alone_resolves_and_passes_the_schema(published, tmp_path):
    # Every component included by itself from a project, with only the inputs
    # that have no default: what the component's catalog page promises.
    resolved = {}
    for name in COMPONENTS:
        spec = yaml.safe_load((published / "templates" / f"{name}.yml").read_text().split("\n---\n")[0])["spec"]
        samples = {"aws_role_arn": "arn:aws:iam::123456789012:role/gitlab-deployer", "aws_region": "eu-west-1",
                   "environment": "test"}
        inputs = {key: samples[key] for key, value in spec["inputs"].items() if "default" not in value}
        app = tmp_path / name
        app.mkdir()
        (app / ".gitlab-ci.yml").write_text(yaml.safe_dump(
            {"include": [{"component": f"$CI_SERVER_FQDN/{kiln.CATALOG_PATH}/{name}@{kiln.example_version()}",
                          "inputs": inputs}]}))
        instance = gitlab.Instance(kiln.catalog_project(published), kiln.app_project(app))
        config = gitlab.Resolver(instance, kiln.include_variables(kiln.APP_PATH, kiln.APP_SHA)).resolve(
            instance.project(kiln.APP_PATH))
        jobs = gitlab.jobs_of(config)
        assert jobs, name
        # docs ci/components/, "Avoid using global keywords".
        assert set(config) == set(jobs), f"{name}: global keywords {set(config) - set(jobs)}"
        resolved[f"{name}-resolved"] = kiln.dump(config)
    validate_all(resolved, tmp_path)


def test_the_catalog_projects_own_pipeline_resolves_and_passes_the_schema(published, tmp_path):
    config, files = kiln.resolve_catalog_pipeline(published)
    validate(kiln.dump(config), tmp_path, "catalog-resolved")
    # It includes its own components at its own commit ($CI_COMMIT_SHA), as in
    # docs ci/components/, "Test the component".
    components = {f.path for f in files if f.how == "component"}
    assert components == {f"templates/{name}.yml" for name in COMPONENTS}
    assert all(f.component.reference == kiln.CATALOG_SHA for f in files if f.how == "component")


# --- the version, and the image tag that follows it ---------------------------

def images(config):
    return {job.get("image") for job in gitlab.jobs_of(config).values()}


def test_every_job_image_is_tagged_with_the_components_version(published):
    config, _ = kiln.resolve_example(published)
    assert images(config) == {f"$CI_REGISTRY_IMAGE/kiln-job:{kiln.example_version()}"}


def test_a_partial_version_tags_the_image_with_the_release_gitlab_picks(published, tmp_path):
    include = dict(example_include(), component=f"$CI_SERVER_FQDN/{kiln.CATALOG_PATH}/pipeline@0.1")
    example = copy_example(tmp_path, include)
    config, _ = kiln.resolve_example(published, example, releases=("0.1.0", "0.1.3", "0.2.0", "0.1.4-rc.1"))
    assert images(config) == {"$CI_REGISTRY_IMAGE/kiln-job:0.1.3"}
    include["component"] = include["component"].replace("@0.1", "@~latest")
    example = copy_example(tmp_path / "latest", include)
    config, _ = kiln.resolve_example(published, example, releases=("0.1.0", "0.2.0", "1.0.0-rc.1"))
    assert images(config) == {"$CI_REGISTRY_IMAGE/kiln-job:0.2.0"}


def test_at_a_commit_sha_gitlab_gives_no_version_and_the_tag_is_empty(published, tmp_path):
    # The documented limitation (docs/components/README.md): pin a release.
    include = dict(example_include(), component=f"$CI_SERVER_FQDN/{kiln.CATALOG_PATH}/pipeline@{kiln.CATALOG_SHA}")
    config, _ = kiln.resolve_example(published, copy_example(tmp_path, include))
    assert images(config) == {"$CI_REGISTRY_IMAGE/kiln-job:"}


def test_the_image_repository_is_an_input(published, tmp_path):
    include = example_include()
    include["inputs"] = dict(include["inputs"], image_repository="registry.example.com/platform/kiln/kiln-job")
    config, _ = kiln.resolve_example(published, copy_example(tmp_path, include))
    assert images(config) == {f"registry.example.com/platform/kiln/kiln-job:{kiln.example_version()}"}


def test_runner_tags_reach_every_job(published, tmp_path):
    include = example_include()
    include["inputs"] = dict(include["inputs"], tags=["aws", "kiln"])
    config, _ = kiln.resolve_example(published, copy_example(tmp_path, include))
    assert {tuple(job["tags"]) for job in gitlab.jobs_of(config).values()} == {("aws", "kiln")}


# --- the resolver refuses what GitLab refuses ---------------------------------

def expect_error(published, tmp_path, include, fragment, releases=None, catalog=None):
    with pytest.raises(gitlab.ConfigError) as error:
        kiln.resolve_example(catalog or published, copy_example(tmp_path, include), releases=releases)
    assert fragment in str(error.value)


def with_inputs(**changes):
    include = example_include()
    inputs = dict(include["inputs"], **changes)
    include["inputs"] = {k: v for k, v in inputs.items() if v is not None}
    return include


def test_an_unknown_input_is_refused(published, tmp_path):
    expect_error(published, tmp_path, with_inputs(region="eu-west-1"), "unknown input arguments: region")


def test_a_missing_required_input_is_refused(published, tmp_path):
    expect_error(published, tmp_path, with_inputs(aws_role_arn=None), "`aws_role_arn` input: required value")


def test_a_value_outside_the_options_is_refused(published, tmp_path):
    expect_error(published, tmp_path, with_inputs(live_when="always"), "not in the list of allowed options")


def test_a_value_that_does_not_match_the_regex_is_refused(published, tmp_path):
    expect_error(published, tmp_path, with_inputs(aws_region="Ireland"), "does not match required RegEx")


def test_a_value_of_the_wrong_type_is_refused(published, tmp_path):
    expect_error(published, tmp_path, with_inputs(tags="aws"), "is not a array")


def test_a_version_that_is_not_released_is_refused(published, tmp_path):
    include = dict(example_include(), component=f"$CI_SERVER_FQDN/{kiln.CATALOG_PATH}/pipeline@9")
    expect_error(published, tmp_path, include, "content not found")


def test_a_component_outside_templates_is_not_found(published, tmp_path):
    include = dict(example_include(), component=f"$CI_SERVER_FQDN/{kiln.CATALOG_PATH}/deploy-jobs@0.1.0")
    expect_error(published, tmp_path, include, "content not found")


def test_kilns_repository_itself_is_not_a_component_project(tmp_path):
    # Its components are in ci-templates/templates/, not in templates/ at the
    # root: GitLab would not find them (MR 127448), which is why the catalog
    # project is published from ci-templates/.
    with pytest.raises(gitlab.ConfigError, match="content not found"):
        kiln.resolve_example(kiln.ROOT, copy_example(tmp_path, example_include()))


def test_a_nested_local_include_is_read_from_the_components_project(published, tmp_path):
    # Without jobs/ in the catalog project the pipeline does not resolve, even
    # though the project running the pipeline has a jobs/ folder of its own.
    catalog = tmp_path / "catalog"
    shutil.copytree(published, catalog)
    shutil.rmtree(catalog / "jobs")
    example = copy_example(tmp_path, example_include())
    shutil.copytree(published / "jobs", example / "jobs")
    expect_error(published, tmp_path / "again", example_include(), "Local file `jobs/build.yml` does not exist",
                 catalog=catalog)


def test_component_context_is_only_in_the_component_itself(published, tmp_path):
    # gitlab_rules gives $[[ component.* ]] only to the file include:component
    # fetches; the jobs files take the tag as an input.
    catalog = tmp_path / "catalog"
    shutil.copytree(published, catalog)
    jobs = catalog / "jobs" / "build.yml"
    jobs.write_text(jobs.read_text().replace("image: $[[ inputs.image ]]", "image: kiln-job:$[[ component.version ]]"))
    expect_error(published, tmp_path / "again", example_include(), "unknown interpolation key: `component`",
                 catalog=catalog)


# --- every input is passed through, and mirrors its job file ------------------

def include_entries(path):
    _, body = kiln.header_and_body(path)
    return yaml.safe_load(body).get("include", [])


def test_every_nested_include_passes_every_input_its_file_declares(published):
    # GitLab issue 462418: an input a nested include is not given silently
    # takes its default, whatever the component was given.
    for template in sorted((published / "templates").glob("*.yml")):
        for entry in include_entries(template):
            target = published / entry["local"].lstrip("/")
            declared, _ = kiln.header_and_body(target)
            assert set(entry.get("inputs", {})) == set(declared["inputs"]), (
                f"{template.name} -> {entry['local']}: not passed {set(declared['inputs']) - set(entry.get('inputs', {}))}")


def test_each_stage_component_mirrors_its_jobs_file(published):
    # Same inputs, same types, defaults, options, regex and descriptions, but
    # the image: a component asks for image_repository and gives
    # `<image_repository>:$[[ component.version ]]`.
    for name in ("bake", "base-image", "build", "checkout", "deploy"):
        component, _ = kiln.header_and_body(published / "templates" / f"{name}.yml")
        jobs, _ = kiln.header_and_body(published / "jobs" / f"{name}.yml")
        assert component["component"] == ["version"], name
        wanted = {k: v for k, v in jobs["inputs"].items() if k != "image"}
        given = {k: v for k, v in component["inputs"].items() if k != "image_repository"}
        assert given == wanted, name
        [entry] = include_entries(published / "templates" / f"{name}.yml")
        assert entry["local"] == f"/jobs/{name}.yml"
        assert entry["inputs"]["image"] == "$[[ inputs.image_repository ]]:$[[ component.version ]]"
        assert all(entry["inputs"][k] == f"$[[ inputs.{k} ]]" for k in wanted), name


# --- the catalog project's own pipeline: check, then release ------------------

def catalog_pipeline(published, **variables):
    config, _ = kiln.resolve_catalog_pipeline(published)
    base = {"CI_DEFAULT_BRANCH": "main", "CI_PROJECT_PATH": kiln.CATALOG_PATH}
    return config, gitlab.Pipeline(config, dict(base, **variables))


def test_the_catalog_pipeline_checks_every_job_its_components_add(published):
    config, main = catalog_pipeline(published, CI_PIPELINE_SOURCE="push", CI_COMMIT_BRANCH="main")
    added = set(gitlab.jobs_of(config)) - {"check-components", "create-release"}
    expected = set(config["check-components"]["variables"]["KILN_EXPECTED_JOBS"].split())
    assert expected == added
    # Never run there: manual, optional, independent.
    for name in added:
        job = main.jobs[name]
        assert (job.when, job.allow_failure, job.needs) == ("manual", True, []), name
    assert main.jobs["check-components"].needs == []
    assert "create-release" not in main.jobs


@pytest.mark.parametrize("tag,released", [("1.2.3", True), ("0.1.0-rc.1", True), ("v1.2.3", False), ("latest", False)])
def test_the_catalog_pipeline_releases_semantic_version_tags_after_the_check(published, tag, released):
    config, tagged = catalog_pipeline(published, CI_PIPELINE_SOURCE="push", CI_COMMIT_TAG=tag, CI_COMMIT_REF_NAME=tag)
    assert ("create-release" in tagged.jobs) is released
    if released:
        assert tagged.runs_after("create-release", "check-components")
        # docs ci/components/, "Publish a new release": "You must use the
        # release keyword in a CI/CD job to create the release".
        assert config["create-release"]["release"]["tag_name"] == "$CI_COMMIT_TAG"
