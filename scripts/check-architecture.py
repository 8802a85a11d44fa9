#!/usr/bin/env python3
"""Checks that the package is built the way docs/architecture.md says.

    scripts/check-architecture.py [--package-dump FILE] [--sources DIR]

Reads the targets and their dependencies from SwiftPM itself
(`swift package dump-package`) and every `import` in Sources/, and fails
(exit 1, one line per problem) when:

  1. a stage library (Checkout, Build, Bake, UserData, Rotate) depends on,
     or imports, another stage library: stages meet only through the
     artifacts (KilnArtifacts);
  2. KilnArtifacts depends on anything but KilnCore;
  3. a stage that does not talk to AWS (kiln-checkout, kiln-build,
     kiln-userdata) links KilnAWS, even through another target;
  4. a target imports a module of the package that it does not declare,
     or declares a dependency that none of its files imports.

scripts/test runs it before the build.
"""
import argparse
import json
import os
import re
import subprocess
import sys

STAGES = ["Checkout", "Build", "Bake", "UserData", "Rotate"]
CONTRACTS = "KilnArtifacts"
OFFLINE_EXECUTABLES = ["kiln-checkout", "kiln-build", "kiln-userdata"]
# Products of other packages, by the module a file imports.
PRODUCT_MODULES = {"ArgumentParser": "ArgumentParser", "Yams": "Yams"}
IMPORT = re.compile(r"^\s*(?:@\w+(?:\([^)]*\))?\s+)*import\s+(?:(?:struct|class|enum|func|protocol)\s+)?([A-Za-z_][A-Za-z0-9_]*)", re.M)


def module_name(target):
    """The module a target's files are imported as (kiln-rotate -> kiln_rotate)."""
    return target.replace("-", "_")


def targets_of(dump):
    """{name: (type, [direct dependency module names])} from a package dump."""
    out = {}
    for target in dump["targets"]:
        deps = []
        for dep in target.get("dependencies", []):
            if "byName" in dep:
                deps.append(dep["byName"][0])
            elif "target" in dep:
                deps.append(dep["target"][0])
            elif "product" in dep:
                deps.append(PRODUCT_MODULES.get(dep["product"][0], dep["product"][0]))
        out[target["name"]] = (target["type"], deps)
    return out


def closure(targets, name):
    """Every target `name` depends on, directly or through others."""
    seen, stack = set(), [name]
    while stack:
        for dep in targets.get(stack.pop(), (None, []))[1]:
            if dep not in seen:
                seen.add(dep)
                stack.append(dep)
    return seen


def imports_of(folder):
    """{module: [file, ...]} for every import in a target's Swift files."""
    found = {}
    for root, _, files in os.walk(folder):
        for name in sorted(files):
            if not name.endswith(".swift"):
                continue
            path = os.path.join(root, name)
            with open(path, encoding="utf-8") as handle:
                for module in IMPORT.findall(handle.read()):
                    found.setdefault(module, []).append(path)
    return found


def check(dump, sources):
    targets = targets_of(dump)
    problems = []
    for stage in STAGES:
        if stage not in targets:
            problems.append("%s: no such target (the stage libraries are %s)" % (stage, ", ".join(STAGES)))
            continue
        for other in sorted(closure(targets, stage) & set(STAGES)):
            problems.append("%s depends on the stage %s: stages meet only through %s" % (stage, other, CONTRACTS))
    if CONTRACTS in targets:
        extra = sorted(set(targets[CONTRACTS][1]) - {"KilnCore"})
        if extra:
            problems.append("%s depends on %s: the contracts depend only on KilnCore" % (CONTRACTS, ", ".join(extra)))
    else:
        problems.append("%s: no such target" % CONTRACTS)
    for executable in OFFLINE_EXECUTABLES:
        if executable in targets and "KilnAWS" in closure(targets, executable):
            problems.append("%s links KilnAWS: only the stages that talk to AWS may" % executable)

    modules = {module_name(name): name for name, (kind, _) in targets.items()}
    for name, (kind, deps) in sorted(targets.items()):
        if kind in ("test", "system"):
            continue
        folder = os.path.join(sources, name)
        if not os.path.isdir(folder):
            continue
        imported = imports_of(folder)
        declared = {module_name(dep) for dep in deps}
        for module, files in sorted(imported.items()):
            if module == module_name(name):
                continue
            if (module in modules or module in PRODUCT_MODULES.values()) and module not in declared:
                problems.append("%s imports %s (%s) without declaring it in Package.swift" % (name, module, os.path.relpath(files[0], sources)))
        for dep in sorted(declared):
            # A C module may be used only through another module's headers.
            if dep in imported or targets.get(modules.get(dep, ""), ("",))[0] == "system":
                continue
            problems.append("%s declares %s but none of its files imports it" % (name, dep))
    return problems


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--package-dump", help="the JSON of `swift package dump-package` (default: run it)")
    parser.add_argument("--sources", default=os.path.join(root, "Sources"))
    options = parser.parse_args(argv)
    if options.package_dump:
        with open(options.package_dump, encoding="utf-8") as handle:
            dump = json.load(handle)
    else:
        dump = json.loads(subprocess.run(["swift", "package", "dump-package"], cwd=root, check=True,
                                         stdout=subprocess.PIPE).stdout)
    problems = check(dump, options.sources)
    for problem in problems:
        print("check-architecture: " + problem, file=sys.stderr)
    if problems:
        return 1
    print("check-architecture: %d targets as docs/architecture.md says" % len(dump["targets"]), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
