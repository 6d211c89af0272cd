"""What every test shares: no test reaches beyond this machine."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

GIT_URL_REWRITE = ("GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0", "GIT_CONFIG_VALUE_0")


@pytest.fixture(autouse=True, scope="session")
def github_is_an_empty_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`stress-kit init` asks GitHub (`git ls-remote`) which commit the kit's version tag
    names. For git, in this process and every command a test starts, GitHub is an empty local
    folder: the lookups stay on this machine and find nothing (tests/test_init.py puts
    repositories there where it needs them)."""
    folder = tmp_path_factory.mktemp("github.com")
    before = {name: os.environ.get(name) for name in GIT_URL_REWRITE}
    os.environ.update({"GIT_CONFIG_COUNT": "1",
                       "GIT_CONFIG_KEY_0": f"url.{folder.as_uri()}/.insteadOf",
                       "GIT_CONFIG_VALUE_0": "https://github.com/"})
    yield
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
