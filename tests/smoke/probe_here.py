"""The pretend plugins' shared hook: their staged machine exists only in the check process, so the checks
probe it there instead of reading the runner's diagnosis of this real machine (--smoke-diagnosis)."""

from __future__ import annotations

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.option.smoke_diagnosis = None
