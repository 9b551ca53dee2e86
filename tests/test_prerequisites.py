"""The one reading of the CI variable that decides whether a missing prerequisite fails or skips a test."""

from __future__ import annotations

import pytest

from tests.conftest import in_ci


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes", "github-actions"])
def test_ci_set_to_anything_else_means_ci(value: str) -> None:
    assert in_ci(value)


@pytest.mark.parametrize("value", [None, "", "0", "false", "False", " false "])
def test_ci_unset_empty_zero_or_false_means_not_ci(value: str | None) -> None:
    assert not in_ci(value)
