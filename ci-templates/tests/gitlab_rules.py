"""GitLab's rules for CI/CD configuration, as GitLab documents them, for the tests.

This module knows nothing of Kiln: it resolves a pipeline the way GitLab says
it does (component addresses and versions, `include`, `spec:inputs`,
`$[[ inputs.* ]]` and `$[[ component.* ]]` interpolation, the merge of
included files), then decides which jobs a pipeline gets (`rules`), in what
order they run (`stages` and `needs`), and checks a few keyword rules
(`artifacts:expose_as`, dotenv reports). Each rule cites the documentation
(or the GitLab issue or merge request) it is written from, beside the code;
"docs" below means https://docs.gitlab.com. Where GitLab's documentation is
silent, the comment says so and which reading this module takes.

What it does not do, because Kiln's components use none of it: `include`
with `project`, `remote`, `template`, wildcards or `rules`; interpolation
functions (`| expand_vars` ...); `spec:include`, `spec:inputs:rules`;
`extends`, `!reference`; `only`/`except`; `rules:changes`/`exists`. Any of
them is an error here rather than a guess.
"""
import dataclasses
import pathlib
import re

import yaml

FQDN = "gitlab.example.com"


class ConfigError(Exception):
    """What GitLab would refuse when it creates the pipeline."""


# ---------------------------------------------------------------------------
# Components: the address, the file, the version
# ---------------------------------------------------------------------------

# docs ci/components/, "Use a component": the reference is
# `<fully-qualified-domain-name>/<project-path>/<component-name>@<specific-version>`;
# the project path may have several groups, the name is its last segment.
COMPONENT_ADDRESS = re.compile(r"^(?P<fqdn>[^/]+)/(?P<project>[^@]+)/(?P<name>[^/@]+)@(?P<ref>[^@]+)$")

# docs ci/components/, "Semantic versioning": releases use semantic versions
# (https://semver.org), `1.0.0`, `2.3.4`, `1.0.0-alpha`.
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")
SHA = re.compile(r"^[0-9a-f]{40}$")


@dataclasses.dataclass
class Project:
    """A GitLab project as a pipeline sees it at one commit: its files (a
    folder), the commit, its branches and tags, and the versions released
    to the CI/CD catalog (docs ci/components/, "Publish a new release").
    A test's project is one tree: each of its refs names that tree."""
    path: str
    root: pathlib.Path
    sha: str = "0" * 40
    branches: tuple = ("main",)
    tags: tuple = ()
    releases: tuple = ()
    catalog: bool = True


@dataclasses.dataclass
class Component:
    project: Project
    name: str
    reference: str
    sha: str
    version: object  # str, or None
    path: str        # the file, relative to the project's root


def semver_key(version):
    major, minor, patch, pre = SEMVER.match(version).groups()[:4]
    # semver.org, item 11: a pre-release sorts before its release.
    return (int(major), int(minor), int(patch), pre is None, pre or "")


def resolve_version(project, reference):
    """(sha, version) for `@reference`, by docs ci/components/ "Component
    versions": in order of priority a commit SHA, a tag, a branch name, then
    `~latest` or a partial semantic version ("Partial semantic versions":
    `1.2` is the latest `1.2.*`, `1` the latest `1.*.*`, `~latest` the latest
    release; pre-releases are never selected that way, and these forms work
    only with versions published in the catalog).

    `version` is `$[[ component.version ]]`: docs ci/yaml/#speccomponent,
    "The resolved semantic version from the catalog resource. Returns null
    if the component is not a catalog resource [or] the reference is a
    branch name or commit SHA" (and MR 208965: "When using a direct SHA,
    branch name, or non-catalog-resource project, the version returns nil")."""
    released = [v for v in project.releases if SEMVER.match(v)]
    if SHA.match(reference):
        if reference != project.sha:
            raise ConfigError(f"component {project.path}@{reference}: no such commit in this test's project")
        return reference, None
    if reference in project.tags:
        version = reference if project.catalog and reference in released else None
        return project.sha, version
    if reference in project.branches:
        return project.sha, None
    if not project.catalog:
        raise ConfigError(f"component {project.path}@{reference}: content not found")
    stable = [v for v in released if SEMVER.match(v).group(4) is None]
    if reference == "~latest":
        candidates = stable
    elif re.fullmatch(r"\d+(\.\d+)?", reference):
        prefix = reference.split(".")
        candidates = [v for v in stable if v.split(".")[:len(prefix)] == prefix]
    else:
        candidates = []
    if not candidates:
        # docs ci/components/, Troubleshooting, "`content not found` message".
        raise ConfigError(f"Component '{project.path}/...@{reference}' - content not found")
    return project.sha, max(candidates, key=semver_key)


def component_path(project, name):
    """docs ci/components/, "Directory structure": a top-level `templates/`
    directory with `templates/<name>.yml`, or `templates/<name>/template.yml`;
    only that `template.yml` is used from such a directory (GitLab MR 127448,
    "Update CI component fetching for updated directory structure"). Nothing
    else in the project is a component: not a file under another folder, not
    `ci-templates/templates/<name>.yml`."""
    single = pathlib.PurePosixPath("templates") / f"{name}.yml"
    directory = pathlib.PurePosixPath("templates") / name / "template.yml"
    found = [str(p) for p in (single, directory) if (project.root / p).is_file()]
    if not found:
        raise ConfigError(f"component '{name}' of {project.path}: neither {single} nor {directory} "
                          "at the project's root - content not found")
    return found[0]


# ---------------------------------------------------------------------------
# A configuration file: header and content
# ---------------------------------------------------------------------------

# docs ci/yaml/#spec and ci/inputs/: `spec` goes in a header; "If the file
# that defines spec:inputs also contains job definitions, add a YAML document
# separator (---) after the header."
SPEC_KEYS = {"inputs", "component", "description", "include"}       # docs ci/yaml/#spec
INPUT_KEYS = {"default", "description", "options", "regex", "type", "rules"}  # docs ci/yaml/#specinputs
INPUT_TYPES = {"string", "number", "boolean", "array"}               # docs ci/yaml/#specinputstype
COMPONENT_FIELDS = {"name", "sha", "version", "reference"}           # docs ci/yaml/#speccomponent


def split_file(text, where):
    documents = [d for d in yaml.safe_load_all(text)]
    if len(documents) == 2:
        header, content = documents
        if not isinstance(header, dict) or set(header) != {"spec"}:
            raise ConfigError(f"{where}: the header (the first YAML document) may hold only `spec`")
        return header["spec"] or {}, content or {}
    if len(documents) == 1:
        document = documents[0] or {}
        if isinstance(document, dict) and "spec" in document:
            if set(document) != {"spec"}:
                raise ConfigError(f"{where}: `spec` must be in a header separated from the jobs by `---`")
            return document["spec"] or {}, {}
        return None, document
    raise ConfigError(f"{where}: expected a header and one YAML document of configuration, got {len(documents)} documents")


def check_spec(spec, where, component):
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise ConfigError(f"{where}: header:spec config contains unknown keys: {sorted(unknown)}")
    if "include" in spec and component:
        # docs ci/yaml/#specinclude: "You cannot use spec:include in CI/CD components."
        raise ConfigError(f"{where}: spec:include cannot be used in a CI/CD component")
    if "include" in spec or any(isinstance(s, dict) and "rules" in s for s in (spec.get("inputs") or {}).values()):
        raise ConfigError(f"{where}: spec:include and spec:inputs:rules are not modelled by this resolver")
    fields = spec.get("component", [])
    if not isinstance(fields, list) or set(fields) - COMPONENT_FIELDS:
        raise ConfigError(f"{where}: spec:component must be a list of {sorted(COMPONENT_FIELDS)}")
    for name, input_spec in (spec.get("inputs") or {}).items():
        input_spec = input_spec or {}
        if set(input_spec) - INPUT_KEYS:
            raise ConfigError(f"{where}: input {name}: unknown keys {sorted(set(input_spec) - INPUT_KEYS)}")
        kind = input_spec.get("type", "string")  # docs ci/yaml/#specinputstype: "string (default when not defined)"
        if kind not in INPUT_TYPES:
            raise ConfigError(f"{where}: input {name}: unknown type {kind!r}")
        # docs ci/yaml/#specinputsregex: "can only be used with a type of string".
        if "regex" in input_spec and kind != "string":
            raise ConfigError(f"{where}: input {name}: regex needs type string")
        # docs ci/yaml/#specinputsoptions: options are strings or numbers, "not boolean".
        if "options" in input_spec and kind == "boolean":
            raise ConfigError(f"{where}: input {name}: options cannot be used with a boolean input")


def type_matches(kind, value):
    # docs ci/inputs/, "Input types": array, boolean, number, string.
    if kind == "string":
        return isinstance(value, str)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    return isinstance(value, list)


def input_values(spec, given, where):
    """The value of each input, by docs ci/inputs/ and ci/yaml/#specinputs:
    - "Inputs are mandatory if default is not specified" (a required input
      not given is an error: "`name` input: required value has not been
      provided");
    - a given input the header does not declare is an error ("unknown input
      arguments", GitLab's lib/gitlab/ci/config/interpolation/inputs.rb);
      given inputs with no header at all are an error too ("Given inputs not
      defined in the `spec` section of the included configuration file");
    - the value, or the default, must have the input's type, be one of its
      `options`, and match its `regex` (ci/yaml/#specinputsdefault, "The
      pipeline fails with a validation error when the input: uses both
      default and options, but the default value is not one of the listed
      options; uses both default and regex, but the default value does not
      match; value does not match the type"). The regex is RE2 and is
      matched against the raw text, before any variable is expanded
      (ci/yaml/#specinputsregex); GitLab looks for a match anywhere, so the
      regex anchors itself with ^ and $ (Python's re.search, the same for
      the RE2 subset used here).
    Inputs are never inherited from the file that includes this one: each
    include entry passes its own (ci/inputs/, "Inputs must be specified
    separately for each include entry"; GitLab issue 462418, inputs of a
    nested local include that are not passed are silently their defaults)."""
    given = dict(given or {})
    if spec is None:
        if given:
            raise ConfigError(f"{where}: Given inputs not defined in the `spec` section of the included configuration file")
        return {}
    declared = spec.get("inputs") or {}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ConfigError(f"{where}: unknown input arguments: {', '.join(unknown)}")
    values = {}
    for name, input_spec in declared.items():
        input_spec = input_spec or {}
        kind = input_spec.get("type", "string")
        if name in given:
            value, origin = given[name], "provided value"
        elif "default" in input_spec:
            value, origin = input_spec["default"], "default value"
        else:
            raise ConfigError(f"{where}: `{name}` input: required value has not been provided")
        if "default" in input_spec:
            check_value(where, name, input_spec, kind, input_spec["default"], "default value")
        check_value(where, name, input_spec, kind, value, origin)
        values[name] = value
    return values


def check_value(where, name, input_spec, kind, value, origin):
    if not type_matches(kind, value):
        raise ConfigError(f"{where}: `{name}` input: {origin} is not a {kind}: {value!r}")
    if "options" in input_spec and value not in input_spec["options"]:
        raise ConfigError(f"{where}: `{name}` input: {origin} `{value}` cannot be used because it is not in the list of allowed options")
    if "regex" in input_spec and not re.search(input_spec["regex"], value):
        raise ConfigError(f"{where}: `{name}` input: {origin} does not match required RegEx pattern `{input_spec['regex']}`")


# ---------------------------------------------------------------------------
# Interpolation: $[[ inputs.NAME ]] and $[[ component.FIELD ]]
# ---------------------------------------------------------------------------

# GitLab's interpolation block (lib/gitlab/ci/config/interpolation/template.rb,
# BLOCK_REGEXP): `$[[`, optional spaces, the expression, optional spaces, `]]`.
BLOCK = re.compile(r"\$\[\[\s*(\S.*?\S)\s*\]\]")


def ruby_to_s(value):
    """How a value reads inside a longer string: docs ci/inputs/, "Input
    types": "When an input is inserted into a YAML value as part of a larger
    string, the input is always interpolated as a string" (Ruby's to_s:
    nil is empty, true is `true`)."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, list):
        return "[" + ", ".join(ruby_to_s(v) if not isinstance(v, str) else '"%s"' % v for v in value) + "]"
    return str(value)


def interpolate(content, context, where):
    """Each string in the parsed configuration, keys included (docs
    ci/components/, "Define job names with inputs"), with its blocks
    replaced. docs ci/inputs/, "Input types": "When an input replaces an
    entire YAML value ... it is interpolated into the configuration as its
    specified type"; inside a longer string, as text. Interpolation happens
    on the content after the header, once ("Inputs are evaluated and
    populated when the configuration is fetched"): a value that holds
    `$[[ ... ]]` itself is not interpolated again. A name the context lacks
    is an error ("unknown interpolation key"), `component` included when the
    file declares no `spec:component`, or is not a component at all."""
    def value_of(expression):
        if "|" in expression:
            raise ConfigError(f"{where}: interpolation functions are not modelled by this resolver: {expression}")
        parts = expression.split(".")
        if len(parts) < 2:
            raise ConfigError(f"{where}: invalid interpolation access pattern: {expression}")
        node = context
        for part in parts:
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"{where}: unknown interpolation key: `{part}` in $[[ {expression} ]]")
            node = node[part]
        return node

    def walk(node):
        if isinstance(node, dict):
            return {walk(key): walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        if isinstance(node, str) and "$[[" in node:
            blocks = list(BLOCK.finditer(node))
            if not blocks:
                return node
            # GitLab's template.rb, used_inside_a_string?: one block that is
            # the whole string keeps the value's type; anything else is text.
            if len(blocks) == 1 and blocks[0].span() == (0, len(node)):
                return value_of(blocks[0].group(1))
            return BLOCK.sub(lambda m: ruby_to_s(value_of(m.group(1))), node)
        return node

    return walk(content)


# ---------------------------------------------------------------------------
# include, and the merge of what is included
# ---------------------------------------------------------------------------

# docs ci/yaml/#include: "you can have up to 150 includes per pipeline by
# default, including nested"; duplicates count.
MAX_INCLUDES = 150


def deep_merge(a, b):
    """docs ci/yaml/includes.md, "Merge method for include": a deep merge;
    "When the key exists in both A and B, and their values are both hash
    maps, merge those hash maps. When the key exists in both A and B, and one
    of the values is not a hash map, use the value from B." (Arrays are not
    merged: "rules is an array so it cannot be merged".)"""
    merged = dict(a)
    for key, value in b.items():
        if key in merged and isinstance(merged[key], dict) and isinstance(value, dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def expand_include_variables(text, variables):
    """docs ci/yaml/includes.md, "Use variables with include": only
    project, group and instance variables, the project's predefined
    `CI_PROJECT_*`, trigger, schedule and manual-run variables,
    CI_PIPELINE_SOURCE, CI_PIPELINE_TRIGGERED and CI_COMMIT_REF_NAME; and,
    for components, `$CI_SERVER_FQDN` (docs ci/components/, "Use a
    component") and `$CI_COMMIT_SHA` (docs ci/components/, "Test the
    component"). A variable the caller did not give is an error here."""
    def value(match):
        name = match.group(1) or match.group(2)
        if name not in variables:
            raise ConfigError(f"include: variable ${name} is not known when GitLab reads includes (in {text!r})")
        return variables[name]
    return re.sub(r"\$\{([A-Za-z0-9_]+)\}|\$([A-Za-z0-9_]+)", value, text)


@dataclasses.dataclass
class Included:
    """One file GitLab read: where from, and how."""
    project: str
    sha: str
    path: str
    how: str          # "main", "local", "component"
    component: object = None


class Instance:
    """The projects of one GitLab instance this test knows, by path."""

    def __init__(self, *projects, fqdn=FQDN):
        self.fqdn = fqdn
        self.projects = {p.path: p for p in projects}

    def project(self, path):
        if path not in self.projects:
            raise ConfigError(f"project {path} not found (or no access)")
        return self.projects[path]


class Resolver:
    """Reads a project's main configuration file and everything it includes,
    as GitLab does when it creates a pipeline."""

    def __init__(self, instance, variables):
        self.instance = instance
        self.variables = dict(variables)
        self.files = []

    def resolve(self, project, path=".gitlab-ci.yml", inputs=None):
        self.files = []
        return self._load(project, project.sha, path, inputs or {}, how="main", component=None)

    def _read(self, project, path, where):
        # docs ci/yaml/#includelocal: "The YAML file must have the extension .yml or .yaml."
        if not path.endswith((".yml", ".yaml")):
            raise ConfigError(f"{where}: included files must end in .yml or .yaml: {path}")
        if "*" in path:
            raise ConfigError(f"{where}: wildcard includes are not modelled by this resolver: {path}")
        file = project.root / path
        if not file.is_file():
            # GitLab's message: "Local file `<path>` does not exist!"
            raise ConfigError(f"Local file `{path}` does not exist! (in project {project.path}, included from {where})")
        return file.read_text()

    def _load(self, project, sha, path, inputs, how, component):
        path = path.lstrip("/")
        where = f"{project.path}@{sha[:8]}:{path}"
        self.files.append(Included(project.path, sha, path, how, component))
        if len(self.files) > MAX_INCLUDES + 1:
            raise ConfigError(f"Maximum of {MAX_INCLUDES} nested includes are allowed")
        spec, content = split_file(self._read(project, path, where), where)
        if spec is not None:
            check_spec(spec, where, component is not None)
        values = input_values(spec, inputs, where)
        context = {"inputs": values}
        if component is not None and spec is not None and spec.get("component"):
            # docs ci/components/, "Use component context in components":
            # "Declare which component context fields the component needs in
            # the spec:component header"; `name` is the name in the path, `sha`
            # the commit, `version` as resolve_version, `reference` "the
            # original reference specified after @".
            fields = {"name": component.name, "sha": component.sha, "version": component.version,
                      "reference": component.reference}
            context["component"] = {field: fields[field] for field in spec["component"]}
        # GitLab's documentation describes component context only for the file
        # that `include: component` fetches (ci/yaml/#speccomponent, "in a
        # CI/CD component"); it says nothing of the files that component
        # includes. This resolver gives it to no other file, so a
        # `$[[ component.* ]]` there is "unknown interpolation key" here; Kiln's
        # components therefore pass the version down as an input.
        content = interpolate(content, context, where)
        if not isinstance(content, dict):
            raise ConfigError(f"{where}: the configuration must be a mapping")
        includes = content.pop("include", [])
        if isinstance(includes, (str, dict)):
            includes = [includes]   # docs ci/yaml/includes.md, "Include a single configuration file"
        merged = {}
        for entry in includes:
            merged = deep_merge(merged, self._include(project, sha, entry, where))
        # docs ci/yaml/includes.md, "Merge method for include": "If an included
        # file also uses include, that nested include configuration is merged
        # first (recursively) ... After all configuration added with include is
        # merged together, the main configuration is merged with the included
        # configuration." The same holds at each level.
        return deep_merge(merged, content)

    def _include(self, project, sha, entry, where):
        if isinstance(entry, str):
            if re.match(r"^https?://", entry):
                raise ConfigError(f"{where}: include:remote is not modelled by this resolver")
            entry = {"local": entry}
        kinds = set(entry) & {"local", "component", "project", "remote", "template", "artifact"}
        if len(kinds) != 1 or set(entry) - kinds - {"inputs"}:
            raise ConfigError(f"{where}: include entry not modelled by this resolver: {entry}")
        kind = kinds.pop()
        inputs = entry.get("inputs") or {}
        if kind == "local":
            # docs ci/yaml/#includelocal, Additional details: "include
            # configuration is always evaluated based on the location of the
            # file containing the include keyword, not the project running the
            # pipeline. If a nested include is in a configuration file in a
            # different project, include: local checks that other project for
            # the file." (gitlab-foss MR 24356: a nested local include keeps
            # the project and sha of the file that includes it.) In a
            # component, that is the component's project at the component's
            # commit (docs ci/components/, "Manage dependencies": "using
            # include:local is a good way to ensure the same Git SHA is used
            # across multiple files").
            local = expand_include_variables(entry["local"], self.variables)
            return self._load(project, sha, local, inputs, how="local", component=None)
        if kind == "component":
            address = expand_include_variables(entry["component"], self.variables)
            match = COMPONENT_ADDRESS.match(address)
            if not match:
                raise ConfigError(f"{where}: not a component address: {address}")
            # docs ci/components/, "Use a component": "You can only reference
            # components in the same GitLab instance as your project."
            if match["fqdn"] != self.instance.fqdn:
                raise ConfigError(f"{where}: component on another instance: {address}")
            target = self.instance.project(match["project"])
            component_sha, version = resolve_version(target, match["ref"])
            path = component_path(target, match["name"])
            component = Component(target, match["name"], match["ref"], component_sha, version, path)
            return self._load(target, component_sha, path, inputs, how="component", component=component)
        raise ConfigError(f"{where}: include:{kind} is not modelled by this resolver")


# ---------------------------------------------------------------------------
# The pipeline: which jobs, in which order
# ---------------------------------------------------------------------------

# docs ci/yaml/#global-keywords (and `spec`, a header keyword).
GLOBAL_KEYWORDS = {"default", "include", "stages", "variables", "workflow", "image", "services", "cache",
                   "before_script", "after_script", "spec"}
# docs ci/yaml/#stages: "If stages is not defined in the .gitlab-ci.yml file,
# the default pipeline stages are: .pre, build, test, deploy, .post"; ".pre
# and .post ... are always the first and last stages"; a job without `stage`
# is in `test` (ci/yaml/#stage).
DEFAULT_STAGES = ["build", "test", "deploy"]


def jobs_of(config):
    # docs ci/jobs/#hide-a-job: a job whose name starts with `.` is not processed.
    return {name: job for name, job in config.items()
            if name not in GLOBAL_KEYWORDS and not str(name).startswith(".") and isinstance(job, dict)}


def stages_of(config):
    stages = config.get("stages", DEFAULT_STAGES)
    return [".pre"] + [s for s in stages if s not in (".pre", ".post")] + [".post"]


class Expression:
    """A `rules:if` CI/CD variable expression, by docs ci/jobs/job_rules.md,
    "CI/CD variable expressions": `==` and `!=` compare a variable with a
    string (single or double quotes) or another variable; `null` tests for
    an undefined variable; `""` for a defined but empty one; a variable
    alone is true when it is defined and not empty; `=~` and `!~` match an
    RE2 `/pattern/flags`; `&&` binds tighter than `||` ("The precedence of
    operators follows the Ruby 2.5 standard, so && evaluates before ||");
    parentheses group."""
    TOKEN = re.compile(r"\s*(?:(\()|(\))|(&&)|(\|\|)|(==|!=|=~|!~)|\$\{?([A-Za-z0-9_]+)\}?|'([^']*)'|\"([^\"]*)\"|(null)\b|(/(?:\\.|[^/])+/[a-z]*))")

    def __init__(self, text):
        self.text = text
        self.tokens = []
        position = 0
        while position < len(text):
            if text[position:].strip() == "":
                break
            match = self.TOKEN.match(text, position)
            if not match:
                raise ConfigError(f"invalid expression syntax: {text!r} at {position}")
            position = match.end()
            lparen, rparen, and_, or_, op, var, sq, dq, null, regex = match.groups()
            if lparen:
                self.tokens.append(("(", None))
            elif rparen:
                self.tokens.append((")", None))
            elif and_:
                self.tokens.append(("&&", None))
            elif or_:
                self.tokens.append(("||", None))
            elif op:
                self.tokens.append(("op", op))
            elif var is not None:
                self.tokens.append(("var", var))
            elif sq is not None or dq is not None:
                self.tokens.append(("str", sq if sq is not None else dq))
            elif null:
                self.tokens.append(("null", None))
            else:
                self.tokens.append(("regex", regex))

    def evaluate(self, variables):
        self.variables = variables
        self.position = 0
        value = self._or()
        if self.position != len(self.tokens):
            raise ConfigError(f"invalid expression syntax: {self.text!r}")
        return bool(value)

    def _peek(self):
        return self.tokens[self.position] if self.position < len(self.tokens) else (None, None)

    def _or(self):
        value = self._and()
        while self._peek()[0] == "||":
            self.position += 1
            right = self._and()
            value = value or right
        return value

    def _and(self):
        value = self._term()
        while self._peek()[0] == "&&":
            self.position += 1
            right = self._term()
            value = value and right
        return value

    def _operand(self):
        kind, value = self._peek()
        self.position += 1
        if kind == "var":
            return self.variables.get(value)        # None: undefined
        if kind == "str":
            return value
        if kind == "null":
            return None
        if kind == "regex":
            return ("regex", value)
        raise ConfigError(f"invalid expression syntax: {self.text!r}")

    def _term(self):
        kind, _ = self._peek()
        if kind == "(":
            self.position += 1
            value = self._or()
            if self._peek()[0] != ")":
                raise ConfigError(f"invalid expression syntax: {self.text!r}")
            self.position += 1
            return value
        left = self._operand()
        kind, op = self._peek()
        if kind != "op":
            # "a variable alone": defined and not empty.
            return left is not None and left != ""
        self.position += 1
        right = self._operand()
        if op in ("==", "!="):
            equal = left == right
            return equal if op == "==" else not equal
        if isinstance(right, str) and right.startswith("/"):
            # "Variables on the right side of =~ and !~ expressions are evaluated as regular expressions."
            right = ("regex", right)
        if not (isinstance(right, tuple) and right[0] == "regex"):
            raise ConfigError(f"{self.text!r}: the right side of {op} must be a /regular expression/")
        pattern = right[1]
        body, flags = pattern[1:pattern.rindex("/")], pattern[pattern.rindex("/") + 1:]
        found = left is not None and re.search(body, left, re.I if "i" in flags else 0) is not None
        return found if op == "=~" else not found


@dataclasses.dataclass
class PipelineJob:
    name: str
    stage: str
    when: str
    allow_failure: bool
    needs: object          # None (stage order), or a list of names
    config: dict


class Pipeline:
    """The jobs GitLab creates for one pipeline, and their order."""

    def __init__(self, config, variables):
        self.config = config
        self.stages = stages_of(config)
        self.jobs = {}
        for name, job in jobs_of(config).items():
            # docs ci/yaml/#script: "All jobs except trigger jobs require a
            # script keyword" (GitLab's message: "jobs:<name> config should
            # implement the script:, run:, or trigger: keyword"). This holds
            # for every job of the configuration, before rules are evaluated.
            if not any(key in job for key in ("script", "run", "trigger")):
                raise ConfigError(f"jobs:{name} config should implement the script:, run:, or trigger: keyword")
        for name, job in jobs_of(config).items():
            decision = job_decision(job, variables)
            if decision is None:
                continue
            when, allow_failure = decision
            stage = job.get("stage", "test")
            if stage not in self.stages:
                # GitLab's message: "<job> job: chosen stage <stage> does not exist; available stages are ..."
                raise ConfigError(f"{name} job: chosen stage {stage} does not exist; available stages are {self.stages}")
            needs = None
            if "needs" in job:
                needs = [n if isinstance(n, dict) else {"job": n} for n in job["needs"]]
            self.jobs[name] = PipelineJob(name, stage, when, allow_failure, needs, job)
        for job in self.jobs.values():
            if job.needs is None:
                continue
            kept = []
            for need in job.needs:
                target = need["job"]
                if target not in self.jobs:
                    # docs ci/yaml/needs.md, "Optional dependencies": "Use
                    # optional: true in needs to depend on a job only if it
                    # exists in the pipeline"; without it, "pipeline creation
                    # fails": "'<job>' job needs '<target>' job, but '<target>'
                    # does not exist in the pipeline."
                    if need.get("optional"):
                        continue
                    raise ConfigError(f"'{job.name}' job needs '{target}' job, but '{target}' does not exist in the pipeline. "
                                      "This might be because of the only, except, or rules keywords. To need a job that "
                                      "sometimes does not exist in the pipeline, use needs:optional.")
                # docs ci/yaml/#needs: needs names jobs of earlier stages, and
                # "You can refer to jobs in the same stage as the job you are
                # configuring" (GitLab 14.1, issue 30632); a later stage is
                # refused ("is not defined in current or prior stages").
                if self.stages.index(self.jobs[target].stage) > self.stages.index(job.stage):
                    raise ConfigError(f"{job.name} job: need {target} is not defined in current or prior stages")
                kept.append(target)
            job.needs = kept
        self._check_acyclic()

    def predecessors(self, name):
        """The jobs that must finish before `name` starts. docs ci/yaml/needs.md,
        "How needs works": "By default, jobs run in stages. A job waits for all
        jobs in the previous stage to finish before it starts. With needs, you
        specify exactly which jobs a job depends on. The job starts immediately
        after those dependencies finish, even if other jobs in earlier stages
        are still running"; `needs: []` starts at once ("Immediate start").
        A job that needs a job with parallel:matrix waits for all of its
        parallel jobs (ci/yaml/#needs, Additional details). (Stage order here
        is strict by earlier stages: GitLab runs a stage once the jobs of the
        stages before it are done.)"""
        job = self.jobs[name]
        if job.needs is not None:
            return list(job.needs)
        index = self.stages.index(job.stage)
        return [other.name for other in self.jobs.values() if self.stages.index(other.stage) < index]

    def ancestors(self, name):
        seen, stack = set(), list(self.predecessors(name))
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(self.predecessors(current))
        return seen

    def runs_after(self, later, earlier):
        """`later` cannot start before `earlier` has finished, and (when =
        on_success, the default, docs ci/yaml/#when: "Run the job only when no
        jobs in earlier stages fail", and for needs, "runs as soon as
        [the needed job] completes successfully", ci/yaml/needs.md) not
        unless it succeeded. A manual job waits the same way: it becomes
        playable once what it waits for has succeeded."""
        return earlier in self.ancestors(later)

    def _check_acyclic(self):
        for name in self.jobs:
            if name in self.ancestors(name):
                raise ConfigError(f"{name}: circular dependency in needs")


def job_decision(job, variables):
    """(when, allow_failure) of a job the pipeline gets, or None.

    docs ci/jobs/job_rules.md: "Rules are evaluated in order until the first
    match. When a match is found, the job is either included or excluded from
    the pipeline"; a rule without `if` matches; `when: never` excludes; no
    match excludes ("In all other cases, no rules match, so the job is not
    added"); a matching rule without `when` gives `when: on_success`. A job
    without rules (and without only/except) defaults to `except:
    merge_requests`: it is not in merge request pipelines ("Avoid duplicate
    pipelines"). allow_failure (ci/yaml/#allow_failure and ci/jobs/job_control.md,
    "Types of manual jobs"): `rules:allow_failure` when the rule sets it,
    else the job's, else `true` for `when: manual` outside of rules and
    `false` otherwise, `when: manual` inside rules included ("blocking")."""
    if "only" in job or "except" in job:
        raise ConfigError("only/except are not modelled by this resolver")
    if "rules" not in job:
        if variables.get("CI_PIPELINE_SOURCE") == "merge_request_event":
            return None
        when = job.get("when", "on_success")
        if when == "never":
            return None
        return when, job.get("allow_failure", when == "manual")
    for rule in job["rules"]:
        if set(rule) - {"if", "when", "allow_failure", "variables", "needs"}:
            raise ConfigError(f"rules keys not modelled by this resolver: {sorted(rule)}")
        if "if" in rule and not Expression(rule["if"]).evaluate(variables):
            continue
        when = rule.get("when", job.get("when", "on_success"))
        if when == "never":
            return None
        return when, rule.get("allow_failure", job.get("allow_failure", False))
    return None


# ---------------------------------------------------------------------------
# Keyword rules the schema does not check
# ---------------------------------------------------------------------------

# GitLab's lib/gitlab/ci/config/entry/artifacts.rb: EXPOSE_AS_REGEX,
# "can contain only letters, digits, '-', '_' and spaces", at most 100
# characters, paths without '*'.
EXPOSE_AS = re.compile(r"^\w[-\w ]*$")


def expose_as_problems(artifacts):
    """docs ci/yaml/#artifactsexpose_as: "Must be combined with artifacts:paths";
    "Glob patterns are not supported"; the artifacts do not display in the
    UI if the paths "Use CI/CD variables", "Define a directory, but do not end
    with /", or "Start with ./"; one expose_as per job."""
    problems = []
    name = artifacts.get("expose_as")
    if name is None:
        return problems
    paths = artifacts.get("paths") or []
    if not isinstance(name, str) or not EXPOSE_AS.match(name) or len(name) > 100:
        problems.append(f"expose_as {name!r}: only letters, digits, '-', '_' and spaces, at most 100")
    if not paths:
        problems.append("expose_as needs artifacts:paths")
    for path in paths:
        if "*" in path:
            problems.append(f"{path}: no glob with expose_as")
        if "$" in path:
            problems.append(f"{path}: a CI/CD variable keeps it out of the merge request")
        if path.startswith("./"):
            problems.append(f"{path}: a path starting with ./ is not shown")
    return problems


# docs ci/yaml/artifacts_reports.md, "artifacts:reports:dotenv": "The variable
# key can contain only letters, digits, and underscores"; "The maximum size of
# the .env file is 5 KB"; "the maximum number of inherited variables is 20";
# "Variable substitution in the .env file is not supported"; "The .env file
# can't have empty lines or comments (starting with #)"; quotes and multiline
# values are not supported (the original dotenv rules' exceptions listed there).
DOTENV_LINE = re.compile(r"^[A-Za-z0-9_]+=[^\"'\r\n]*$")


def dotenv_problems(text):
    lines = text.splitlines()
    problems = [f"line {n}: {line!r}" for n, line in enumerate(lines, 1) if not DOTENV_LINE.match(line)]
    if len(text.encode()) >= 5 * 1024:
        problems.append("5 KB or more")
    if len(lines) > 20:
        problems.append(f"{len(lines)} variables, more than 20")
    if not lines:
        problems.append("empty")
    return problems
