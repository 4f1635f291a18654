"""pytest plugin: write the session's exit status to a file the CI wrapper reads.

temporalio can abort the interpreter after pytest has finished; the wrapper then
exits with the status recorded here, the suite's own.
"""

from __future__ import annotations

import os

import pytest


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = os.environ.get("MEDICALCOR_PYTEST_STATUS_FILE")
    if path:
        with open(path, "w", encoding="ascii") as fh:
            fh.write(str(int(exitstatus)))
