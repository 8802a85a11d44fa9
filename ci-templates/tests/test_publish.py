"""scripts/publish-components: what it writes, and what it refuses."""
import subprocess
import sys

import kiln_catalog as kiln


def publish(*arguments):
    return subprocess.run([sys.executable, str(kiln.PUBLISH), *map(str, arguments)], capture_output=True, text=True)


def tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".git" not in p.parts)


def test_it_writes_ci_templates_without_its_tests_and_the_pages(tmp_path):
    assert publish(tmp_path / "catalog").returncode == 0
    source = kiln.ROOT / "ci-templates"
    expected = sorted(str(p.relative_to(source)) for p in source.rglob("*")
                      if p.is_file() and "tests" not in p.relative_to(source).parts and "__pycache__" not in p.parts)
    expected += sorted(f"docs/{p.name}" for p in (kiln.ROOT / "docs" / "components").glob("*.md"))
    assert tree(tmp_path / "catalog") == sorted(expected)


def test_it_refuses_a_folder_that_is_not_empty_and_replaces_it_keeping_git(tmp_path):
    dest = tmp_path / "catalog"
    (dest / ".git").mkdir(parents=True)
    (dest / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (dest / "stale.yml").write_text("old: true\n")
    refused = publish(dest)
    assert refused.returncode == 64 and "not empty" in refused.stderr
    assert publish(dest, "--replace").returncode == 0
    assert not (dest / "stale.yml").exists()
    assert (dest / ".git" / "HEAD").read_text() == "ref: refs/heads/main\n"
    assert (dest / "templates" / "pipeline.yml").is_file()


def test_it_wants_one_destination():
    assert publish().returncode == 64
