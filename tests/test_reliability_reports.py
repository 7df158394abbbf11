"""What reports may say (fixtures/outcomes.py), through pytester and without Docker: a secret
the journal redacts never reaches the terminal or JUnit, and an engine error in a fixture's
set-up is one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollback_drill.client import Answer

pytest_plugins = ["pytester"]

SECRET = "Xq7-s3cr3t-pa55w0rd-4f9c2a"

CONFTEST = f"""
import pytest
from rollback_drill.fixtures.stack import JOURNAL
from rollback_drill.errors import PolicyError
from rollback_drill.journal import Journal

pytest_plugins = [
    "rollback_drill.fixtures.options",
    "rollback_drill.fixtures.stack",
    "rollback_drill.fixtures.outcomes",
]
SECRET = {SECRET!r}

@pytest.fixture(autouse=True)
def _journal(pytestconfig):
    journal = Journal()
    journal.redact(SECRET)
    pytestconfig.stash[JOURNAL] = journal

@pytest.fixture
def broken_policy():
    raise PolicyError("policy.yaml: entry 'error_rate': field 'metric': 'x' is not one of ...")
"""

TESTS = """
import logging
from conftest import SECRET

def test_fails_on_a_secret(record_property):
    print("database password", SECRET)
    logging.getLogger("drill").warning("admin password %s", SECRET)
    record_property("dsn", f"postgresql://u:{SECRET}@127.0.0.1:5432/db")
    password = SECRET
    assert password == "something else"

def test_setup_fails(broken_policy):
    pass
"""


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.RunResult:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_leaky=TESTS)
    return pytester.runpytest_subprocess(
        "--junitxml=junit.xml", "-o", "junit_logging=all", "-o", "junit_family=xunit1", "-rA"
    )


def test_secret_is_scrubbed_from_terminal_and_junit(
    run: pytest.RunResult, pytester: pytest.Pytester
) -> None:
    out = run.stdout.str() + run.stderr.str()
    junit = (pytester.path / "junit.xml").read_text()
    assert "database password ***" in out and "admin password ***" in out
    assert "assert '***' == 'something else'" in out
    assert 'name="dsn" value="postgresql://u:***@127.0.0.1:5432/db"' in junit
    assert "database password ***" in junit and "admin password ***" in junit
    assert SECRET not in out and SECRET not in junit


def test_engine_error_in_setup_is_one_line(run: pytest.RunResult) -> None:
    out = run.stdout.str()
    section = out.split("ERROR at setup of test_setup_fails")[1].splitlines()
    assert section[1] == (
        "PolicyError: policy.yaml: entry 'error_rate': field 'metric': 'x' is not one of ..."
    )
    assert section[2].startswith(("---", "===")), section[:4]


def test_answer_repr_masks_cookies() -> None:
    answer = Answer(
        200,
        "wsgi",
        "hybrid",
        {"username": "drill_user"},
        {"set-cookie": "sessionid=abcdef0123456789; HttpOnly", "x-served-by": "wsgi"},
    )
    assert "abcdef0123456789" not in repr(answer)
    assert "'set-cookie': '***'" in repr(answer) and "'x-served-by': 'wsgi'" in repr(answer)
