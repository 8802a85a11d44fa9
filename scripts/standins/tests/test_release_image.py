"""The cached earlier release (`standin release-image`, `standin moto --bodies --release-image DIR`:
standins/release.py). Needs root and the base root file system, as test_bodies.py does; the release is baked once
(scripts/test runs `standin release-image` after install-runtime) and reused here. Its bodies live on
127.0.202.0/24."""
import json
import os
import shutil
import subprocess
import urllib.request

import pytest

from standins import bodies as bodies_module
from standins import release
from standins.harness import command, running, standin_env
from .conftest import client
from .test_bodies import wait_until


@pytest.fixture(scope="module")
def cached():
    return release.ensure()


def health(address):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open("http://%s:8080/health" % address, timeout=5) as answer:
            return json.load(answer)
    except (OSError, ValueError):
        return None


def test_the_cached_release_registers_tagged_as_its_bake_and_a_body_of_it_serves_v0_1_0(cached, tmp_path):
    made = json.loads((cached / "release.json").read_text())
    # The commit is v0.1.0's in every repository example_repository makes (fixed authors and dates).
    commits = release.example_repository(tmp_path)
    assert made["commit"] == commits["v0.1.0"]
    with running("moto", "--bodies", "--release-image", cached, timeout=60) as moto:
        registered = moto["release_images"]
        assert [(r["version"], r["dir"], r["region"]) for r in registered] == [("v0.1.0", str(cached), "us-east-1")]
        ec2 = client("ec2", moto["url"])
        image = ec2.describe_images(ImageIds=[registered[0]["image_id"]])["Images"][0]
        tags = {tag["Key"]: tag["Value"] for tag in image["Tags"]}
        # The tags kiln-bake wrote on the image it made (Sources/KilnArtifacts/KilnTag.swift).
        assert {k: tags.get(k) for k in ("kiln:app", "kiln:role", "kiln:version", "kiln:commit")} == {
            "kiln:app": "demo", "kiln:role": "app", "kiln:version": "v0.1.0", "kiln:commit": commits["v0.1.0"]}
        assert tags["kiln:bake-key"] and tags["kiln:source-ami"].startswith("ami-") and tags["kiln:built-at"]
        assert image["Name"] == made["name"]

        vpc = ec2.create_vpc(CidrBlock="127.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="127.0.202.0/24")["Subnet"]["SubnetId"]
        instance = ec2.run_instances(ImageId=image["ImageId"], MinCount=1, MaxCount=1, SubnetId=subnet)[
            "Instances"][0]

        def state():
            with urllib.request.urlopen(moto["bodies_url"] + "/" + instance["InstanceId"]) as answer:
                return json.load(answer)
        # The unit the v0.1.0 bake installed answers, with the version that bake built.
        answer = wait_until(lambda: health(instance["PrivateIpAddress"]), "v0.1.0 answering", state)
        assert answer["version"] == "v0.1.0" and answer["app"] == "demo", answer
        # The cached tree is a lower layer: the instance writes into its own upper folder, never into the cache.
        assert state()["upper"].startswith(moto["run_dir"] + os.sep)
        ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])
    assert os.path.isdir(cached / "tree"), "the stand-in never removes the cached release"


def test_a_release_baked_on_another_base_is_refused_naming_what_to_run(cached, tmp_path):
    stale = tmp_path / "stale"
    shutil.copytree(cached, stale, symlinks=True, ignore=lambda folder, names: ["tree"] if folder == str(cached)
                    else [])
    (stale / "tree").mkdir()
    made = json.loads((stale / "release.json").read_text())
    made["base_key"] = "0" * 64
    (stale / "release.json").write_text(json.dumps(made))
    result = subprocess.run(command("moto", "--bodies", "--release-image", str(stale)), env=standin_env(),
                            stdin=subprocess.DEVNULL, capture_output=True, text=True)
    assert result.returncode == 1 and result.stdout == ""
    assert ("standin release-image: %s was baked on another base root file system than %s/base (run "
            "scripts/standin release-image to bake it again)" % (stale, bodies_module.default_images_dir())
            ) in result.stderr, result.stderr


def test_the_key_changes_with_the_example_and_the_playbooks(tmp_path):
    images = bodies_module.default_images_dir()
    example, packer = tmp_path / "example", tmp_path / "packer"
    shutil.copytree(release.EXAMPLE, example)
    shutil.copytree(release.PACKER, packer)
    key = release.release_key(images, example, packer)
    assert release.release_key(images, example, packer) == key
    (example / "app" / "server.py").write_text((example / "app" / "server.py").read_text() + "\n# changed\n")
    changed_app = release.release_key(images, example, packer)
    (packer / "ansible" / "base.yml").write_text((packer / "ansible" / "base.yml").read_text() + "\n# changed\n")
    changed_playbook = release.release_key(images, example, packer)
    assert len({key, changed_app, changed_playbook}) == 3
