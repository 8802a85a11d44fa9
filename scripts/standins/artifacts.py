"""Kiln's artifact envelope, for scripts that write what a stage would have written.

    write_artifact(path, "image", {"amiID": ..., ...}, producer=("kiln-bake", "bench"))

Kiln's stages write their artifacts (`kiln/checkout.json`, `build.json`,
`image.json`, `userdata-<env>.json`, ...) through one envelope
(Sources/KilnCore/Artifacts/ArtifactStore.swift): `schema` ("kiln.<name>"),
`version`, `producer` ({"name", "version"}) and `createdAt` (ISO 8601, UTC,
whole seconds), with the payload's own keys beside them; sorted keys, pretty,
one final newline, written atomically. The benchmarks (scripts/bench) and the
demo (scripts/demo.py) write artifacts the same way, through this module.

Here, next to the stand-ins, rather than in scripts/bench: the demo imports
`standins`, not the benchmarks' library.
"""
import json
import os
import time

ENVELOPE_KEYS = ("schema", "version", "producer", "createdAt")


def iso8601(seconds=None):
    """`seconds` (default now) as Kiln writes a date: 2026-05-28T12:00:00Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def write_text_atomically(path, text):
    """Write `text` to `path` through a temporary file beside it and a rename: readers see the old or the new file,
    never a part. The temporary file is made as `open` makes files (the umask's mode), and removed on failure."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = "%s.tmp-%d" % (path, os.getpid())
    try:
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def envelope(schema, payload, producer, created_at=None, version=1):
    """The artifact's JSON object: the envelope's keys and the payload's beside them.

    schema: the name after `kiln.` ("image" gives "kiln.image"); producer: (name, version) or {"name", "version"};
    created_at: an ISO 8601 string or seconds since the epoch (default now). A payload key named like an envelope
    key is refused (ValueError), as Kiln refuses it."""
    clashing = sorted(set(payload) & set(ENVELOPE_KEYS))
    if clashing:
        raise ValueError("kiln.%s: payload field %s is reserved for the envelope" % (schema, ", ".join(clashing)))
    if isinstance(producer, dict):
        producer = (producer["name"], producer["version"])
    name, producer_version = producer
    if not isinstance(created_at, str):
        created_at = iso8601(created_at)
    document = {"schema": "kiln.%s" % schema, "version": version,
                "producer": {"name": name, "version": producer_version}, "createdAt": created_at}
    document.update(payload)
    return document


def write_artifact(path, schema, payload, producer, created_at=None, version=1):
    """Write a Kiln artifact (see `envelope`) to `path` atomically: sorted keys, indented, a final newline.
    Returns the document written."""
    document = envelope(schema, payload, producer, created_at=created_at, version=version)
    write_text_atomically(path, json.dumps(document, indent=2, sort_keys=True) + "\n")
    return document


def read_payload(path):
    """An artifact's payload (its keys but the envelope's) and its envelope, as two dicts."""
    with open(path) as f:
        document = json.load(f)
    payload = {k: v for k, v in document.items() if k not in ENVELOPE_KEYS}
    return payload, {k: document[k] for k in ENVELOPE_KEYS if k in document}
