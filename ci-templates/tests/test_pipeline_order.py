"""Which jobs GitLab creates for the example project, and in which order they
run: `rules` decide the jobs, `needs` and `stages` their order
(gitlab_rules.Pipeline, from GitLab's documentation), for a push to the
default branch, a merge request, a tag, the base image schedule, another
schedule, and a deploy freeze."""
import shutil

import pytest
import yaml

import gitlab_rules as gitlab
import kiln_catalog as kiln
from kiln_catalog import BAKE, BASE, BUILD, DEPLOY, PLAN, ROLLBACK

EVERY_MAIN_JOB = {BUILD, BAKE, *PLAN.values(), *DEPLOY.values(), *ROLLBACK.values()}


@pytest.fixture(scope="module")
def config(published):
    return kiln.resolve_example(published)[0]


def pipeline(config, kind, **extra):
    return gitlab.Pipeline(config, kiln.pipeline_variables(kind, **extra))


def test_a_push_to_the_default_branch_builds_bakes_plans_and_deploys_test_then_live(config):
    main = pipeline(config, "push-main")
    assert set(main.jobs) == EVERY_MAIN_JOB
    assert main.runs_after(BAKE, BUILD)
    for environment in ("test", "live"):
        # The plan before each deploy, which needs it.
        assert main.runs_after(DEPLOY[environment], PLAN[environment])
        assert PLAN[environment] in main.jobs[DEPLOY[environment]].needs
        assert main.runs_after(PLAN[environment], BAKE)
        assert main.runs_after(DEPLOY[environment], BAKE)
    # Test deploys by itself once the bake is done.
    assert main.jobs[DEPLOY["test"]].when == "on_success"
    # Live needs the test deploy: not merely a later stage (needs overrides the
    # stages' order), but a need, so it starts (or its button appears) only
    # once test's deploy has succeeded.
    assert DEPLOY["test"] in main.jobs[DEPLOY["live"]].needs
    assert main.runs_after(DEPLOY["live"], DEPLOY["test"])
    # Behind a button that blocks the pipeline until someone decides.
    assert (main.jobs[DEPLOY["live"]].when, main.jobs[DEPLOY["live"]].allow_failure) == ("manual", False)
    # Test's plan does not wait for anything but the bake, and live's plan runs
    # while test deploys, so that it is in its log when the button appears.
    assert not main.runs_after(PLAN["live"], DEPLOY["test"])


def test_live_on_success_still_waits_for_test(published, tmp_path):
    example = tmp_path / "app"
    shutil.copytree(kiln.EXAMPLE, example)
    text = yaml.safe_load((example / ".gitlab-ci.yml").read_text())
    text["include"][0]["inputs"]["live_when"] = "on_success"
    (example / ".gitlab-ci.yml").write_text(yaml.safe_dump(text))
    main = pipeline(kiln.resolve_example(published, example)[0], "push-main")
    assert main.jobs[DEPLOY["live"]].when == "on_success"
    assert main.runs_after(DEPLOY["live"], DEPLOY["test"])


def test_the_rollback_is_manual_optional_and_waits_for_nothing(config):
    main = pipeline(config, "push-main")
    for environment in ("test", "live"):
        rollback = main.jobs[ROLLBACK[environment]]
        # A button that does not block the pipeline (allow_failure), playable
        # at once: never a `created` job waiting in the resource group (with
        # the oldest_first process mode GitLab lets created jobs of older
        # pipelines go first: its ResourceGroup#upcoming_processables).
        assert (rollback.when, rollback.allow_failure) == ("manual", True)
        assert main.predecessors(ROLLBACK[environment]) == []
        job = rollback.config
        deploy = main.jobs[DEPLOY[environment]].config
        # The same environment, and the same resource group as the deploy:
        # a rollback and a deploy of one environment never overlap.
        assert job["environment"]["name"] == deploy["environment"]["name"] == environment
        assert job["resource_group"] == deploy["resource_group"] == f"kiln-{environment}-$AWS_REGION"
        assert job["script"][-1] == f"kiln-rotate rollback --environment {environment}"


def test_the_plan_prepares_the_environment_without_deploying(config):
    main = pipeline(config, "push-main")
    for environment in ("test", "live"):
        job = main.jobs[PLAN[environment]].config
        # docs ci/environments/, "Access an environment for preparation or
        # verification purposes": action prepare "bypasses deployment creation".
        assert job["environment"] == {"name": environment, "action": "prepare"}
        assert job["script"][-1] == f"kiln-rotate plan --environment {environment}"
        assert "resource_group" not in job


def test_a_merge_request_only_builds_and_tests(config):
    assert set(pipeline(config, "merge-request").jobs) == {BUILD}


def test_a_tag_only_builds(config):
    assert set(pipeline(config, "tag").jobs) == {BUILD}


def test_a_push_to_another_branch_creates_no_job(config):
    # Without jobs GitLab creates no pipeline: a branch with an open merge
    # request gets only the merge request pipeline.
    assert pipeline(config, "push-branch").jobs == {}


def test_the_base_image_schedule_runs_the_base_job_only(config):
    scheduled = pipeline(config, "schedule", **kiln.BASE_SCHEDULE)
    assert set(scheduled.jobs) == {BASE}
    assert scheduled.predecessors(BASE) == []


def test_other_schedules_do_not_bake(config):
    assert pipeline(config, "schedule").jobs == {}
    assert pipeline(config, "schedule", KILN_SCHEDULE="nightly-tests").jobs == {}
    # The base job is in no other pipeline.
    for kind in ("push-main", "merge-request", "tag", "push-branch"):
        assert BASE not in pipeline(config, kind, **kiln.BASE_SCHEDULE).jobs, kind


def test_no_plan_and_no_deploy_during_a_deploy_freeze(config):
    frozen = pipeline(config, "push-main", **kiln.FREEZE)
    assert set(frozen.jobs) == {BUILD, BAKE, *ROLLBACK.values()}
    # The rollback stays, playable at once: a freeze stops new releases, not
    # the undoing of a bad one.
    for environment in ("test", "live"):
        assert frozen.jobs[ROLLBACK[environment]].needs == []
        assert frozen.jobs[ROLLBACK[environment]].when == "manual"


def test_every_job_is_in_a_stage_the_project_declares(config):
    stages = yaml.safe_load((kiln.EXAMPLE / ".gitlab-ci.yml").read_text())["stages"]
    for name, job in gitlab.jobs_of(config).items():
        assert job["stage"] in stages, name
