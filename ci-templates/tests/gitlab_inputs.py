"""GitLab's `spec:inputs` interpolation, for the tests: a template's jobs with
`$[[ inputs.NAME ]]` filled in as GitLab does before it validates them, and a
component's `include: local:` entries resolved into one document (what
gitlabci-local cannot do for a component's own includes)."""
import json
import pathlib
import re

import yaml

PLACEHOLDER = re.compile(r"\$\[\[\s*inputs\.([A-Za-z0-9_-]+)\s*\]\]")
# A placeholder that is a whole value takes the input's type (a string stays a
# string, even an empty one); inside other text it is text.
WHOLE = re.compile(r"^(\s*(?:-\s+|[^\s#][^:#]*:\s+))\$\[\[\s*inputs\.([A-Za-z0-9_-]+)\s*\]\]\s*$", re.M)


def split(path):
    text = pathlib.Path(path).read_text()
    header, separator, body = text.partition("\n---\n")
    assert separator, f"{path}: no '---' between spec and jobs"
    return header, body


def inputs_of(path):
    return yaml.safe_load(split(path)[0])["spec"]["inputs"]


def interpolate(body, inputs, given=None, samples=None):
    values = {}
    for name, spec in inputs.items():
        value = (given or {}).get(name, spec.get("default", (samples or {}).get(name)))
        assert value is not None, f"no value for input {name}"
        values[name] = value
    body = WHOLE.sub(lambda m: m.group(1) + json.dumps(values[m.group(2)]), body)
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), body)


def resolve_component(path, given):
    """The component's jobs with its inputs filled in, and each template it
    includes locally (from the component project's root) resolved the same way."""
    root = pathlib.Path(path).resolve().parents[1]
    jobs = yaml.safe_load(interpolate(split(path)[1], inputs_of(path), given))
    resolved = {}
    for include in jobs.pop("include", []):
        target = root / include["local"].lstrip("/")
        resolved.update(resolve_component(target, include.get("inputs", {})))
    resolved.update(jobs)
    return resolved
