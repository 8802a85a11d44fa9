import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import kiln_catalog  # noqa: E402


@pytest.fixture(scope="session")
def published(tmp_path_factory):
    """The catalog project's tree as GitLab would see it (scripts/publish-components)."""
    return kiln_catalog.publish(tmp_path_factory.mktemp("catalog") / "kiln")
