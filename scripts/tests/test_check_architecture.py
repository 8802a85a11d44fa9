"""scripts/check-architecture.py: passes on the package as it is, and fails
on each kind of breach, shown on small made-up packages."""
import importlib.util
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "check-architecture.py")
spec = importlib.util.spec_from_file_location("check_architecture", SCRIPT)
arch = importlib.util.module_from_spec(spec)
spec.loader.exec_module(arch)


def target(name, deps, kind="regular"):
    return {"name": name, "type": kind, "dependencies": [{"byName": [d, None]} for d in deps]}


def sources(tmp_path, files):
    for path, text in files.items():
        full = tmp_path / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_text(text)
    return str(tmp_path)


GOOD = [
    target("KilnCore", []), target("KilnAWS", ["KilnCore"]), target("KilnArtifacts", ["KilnCore"]),
    target("Checkout", ["KilnCore", "KilnArtifacts"]), target("Build", ["KilnCore", "KilnArtifacts"]),
    target("Bake", ["KilnCore", "KilnArtifacts", "KilnAWS"]), target("UserData", ["KilnCore", "KilnArtifacts"]),
    target("Rotate", ["KilnCore", "KilnArtifacts", "KilnAWS"]),
    target("kiln-checkout", ["Checkout"], "executable"),
]
GOOD_FILES = {
    "KilnAWS/A.swift": "import KilnCore\n", "KilnArtifacts/A.swift": "import Foundation\nimport KilnCore\n",
    "Checkout/A.swift": "import KilnArtifacts\nimport KilnCore\n", "Build/A.swift": "import KilnArtifacts\nimport KilnCore\n",
    "Bake/A.swift": "import KilnArtifacts\nimport KilnAWS\nimport KilnCore\n",
    "UserData/A.swift": "import KilnArtifacts\nimport KilnCore\n",
    "Rotate/A.swift": "import KilnArtifacts\nimport KilnAWS\nimport KilnCore\n",
    "kiln-checkout/Main.swift": "import Checkout\n",
}


def test_the_package_as_it_is_passes():
    result = subprocess.run([sys.executable, SCRIPT], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    assert result.returncode == 0, result.stderr


def test_a_made_up_good_package_passes(tmp_path):
    assert arch.check({"targets": GOOD}, sources(tmp_path, GOOD_FILES)) == []


def test_a_stage_depending_on_another_fails(tmp_path):
    targets = [t for t in GOOD if t["name"] != "Build"] + [target("Build", ["KilnCore", "KilnArtifacts", "Checkout"])]
    files = dict(GOOD_FILES, **{"Build/A.swift": "import Checkout\nimport KilnArtifacts\nimport KilnCore\n"})
    problems = arch.check({"targets": targets}, sources(tmp_path, files))
    assert any("Build depends on the stage Checkout" in p for p in problems), problems


def test_a_stage_importing_another_without_declaring_it_fails(tmp_path):
    files = dict(GOOD_FILES, **{"Rotate/A.swift": "import Bake\nimport KilnArtifacts\nimport KilnAWS\nimport KilnCore\n"})
    problems = arch.check({"targets": GOOD}, sources(tmp_path, files))
    assert any("Rotate imports Bake" in p for p in problems), problems


def test_contracts_depending_on_more_than_the_core_fails(tmp_path):
    targets = [t for t in GOOD if t["name"] != "KilnArtifacts"] + [target("KilnArtifacts", ["KilnCore", "KilnAWS"])]
    files = dict(GOOD_FILES, **{"KilnArtifacts/A.swift": "import KilnAWS\nimport KilnCore\n"})
    problems = arch.check({"targets": targets}, sources(tmp_path, files))
    assert any("KilnArtifacts depends on KilnAWS" in p for p in problems), problems


def test_an_offline_stage_linking_aws_fails(tmp_path):
    targets = [t for t in GOOD if t["name"] != "Checkout"] + [target("Checkout", ["KilnCore", "KilnArtifacts", "KilnAWS"])]
    files = dict(GOOD_FILES, **{"Checkout/A.swift": "import KilnArtifacts\nimport KilnAWS\nimport KilnCore\n"})
    problems = arch.check({"targets": targets}, sources(tmp_path, files))
    assert any("kiln-checkout links KilnAWS" in p for p in problems), problems


def test_a_declared_dependency_no_file_uses_fails(tmp_path):
    targets = [t for t in GOOD if t["name"] != "UserData"] + [target("UserData", ["KilnCore", "KilnArtifacts", "KilnAWS"])]
    problems = arch.check({"targets": targets}, sources(tmp_path, GOOD_FILES))
    assert any("UserData declares KilnAWS but none of its files imports it" in p for p in problems), problems
