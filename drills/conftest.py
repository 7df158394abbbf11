"""Every drill run writes the HTML drill report (fixtures/report.py) into its report directory."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _drill_report(report_location: None) -> None:
    """Fix where this run's report goes, before the first drill."""
