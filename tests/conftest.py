"""Test-session settings shared by several test files."""
from __future__ import annotations

import pytest

# Files whose tests start sandboxes (through the API or the CLI) from the test process's working
# directory. A sandbox hides /tmp, /run, ... (docs/jail.md), and CI may clone the checkout there:
# every sandbox would start with a note that the working directory is not visible. Running them
# from / keeps them independent of where the checkout is; tests about the working directory choose
# their own.
_SANDBOX_TESTS = ("test_jail_", "test_record")


@pytest.fixture(autouse=True)
def _cwd_visible_in_sandboxes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.module.__name__.startswith(_SANDBOX_TESTS):
        monkeypatch.chdir("/")
