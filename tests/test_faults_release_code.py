"""The faulty releases' own code (compose/releases/hybrid-wsgi-defects): the share picker is
exact, and each failure kind surfaces the way the app reports it. Django is not installed on
the host: the module runs against small stand-ins of the two Django names it uses."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest
import redis
from paths import REPO_ROOT

MODULE = REPO_ROOT / "compose/releases/hybrid-wsgi-defects/app/arena/release_defects.py"


class OperationalError(Exception):
    pass


@pytest.fixture
def defects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    django = types.ModuleType("django")
    django.db = types.SimpleNamespace(OperationalError=OperationalError)  # type: ignore[attr-defined]
    conf = types.ModuleType("django.conf")
    conf.settings = types.SimpleNamespace(SESSION_COOKIE_NAME="sessionid")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "django", django)
    monkeypatch.setitem(sys.modules, "django.conf", conf)
    monkeypatch.setenv("RELEASE_DEFECT_STATE", str(tmp_path))
    spec = importlib.util.spec_from_file_location("release_defects_under_test", MODULE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.CONFIG = tmp_path / "release_defect.json"
    return module


@pytest.mark.parametrize("share", [0.03, 0.075, 0.12, 0.2, 0.5, 1 / 3])
def test_the_share_is_exact_over_any_run_of_requests(defects: Any, share: float) -> None:
    picker = defects.Share("fail", share)
    picks = [picker.pick() for _ in range(1000)]
    assert sum(picks) == int(1000 * round(share * 100_000) / 100_000)
    for start in (0, 137, 500):
        for n in (50, 144, 333):
            got = sum(picks[start : start + n])
            assert int(n * share) - 1 <= got <= int(n * share) + 1, (start, n, got)


def test_share_zero_never_picks(defects: Any) -> None:
    picker = defects.Share("none", 0.0)
    assert not any(picker.pick() for _ in range(100))


def test_the_counter_is_shared_between_processes(defects: Any) -> None:
    a, b = defects.SharedCounter("x"), defects.SharedCounter("x")
    assert [a.next(), b.next(), a.next()] == [1, 2, 3]


class Request:
    def __init__(self, path: str) -> None:
        self.path = path
        self.COOKIES = {"sessionid": "abc"}


def middleware(defects: Any, config: dict[str, Any], seen: list[Any]) -> Any:
    defects.CONFIG.write_text(json.dumps(config))
    return defects.ReleaseDefects(lambda request: seen.append(dict(request.COOKIES)) or "ok")


@pytest.mark.parametrize(
    ("kind", "error"),
    [("error", RuntimeError), ("db", OperationalError), ("redis", redis.ConnectionError)],
)
def test_failure_kinds_raise_what_the_app_turns_into_their_answers(
    defects: Any, kind: str, error: type[Exception]
) -> None:
    seen: list[Any] = []
    mw = middleware(
        defects, {"fail": {"kind": kind, "share": 1.0, "paths": ["/api/models/"]}}, seen
    )
    with pytest.raises(error):
        mw(Request("/api/models/"))
    assert mw(Request("/api/health/")) == "ok"  # other paths untouched


def test_auth_kind_loses_the_session_cookie(defects: Any) -> None:
    seen: list[Any] = []
    mw = middleware(defects, {"fail": {"kind": "auth", "share": 0.5, "paths": ["/api/"]}}, seen)
    for _ in range(4):
        mw(Request("/api/auth/me/"))
    assert [("sessionid" in cookies) for cookies in seen] == [True, False, True, False]


def test_cache_salt_only_on_picked_catalogue_requests(defects: Any) -> None:
    keys: list[str] = []

    def view(request: Any) -> str:
        keys.append(defects.cache_key("ai_model:list", "arena-cache", 1))
        return "ok"

    defects.CONFIG.write_text(json.dumps({"cache": {"miss_share": 0.5}}))
    mw = defects.ReleaseDefects(view)
    for path in ("/api/models/", "/api/models/", "/api/sessions/", "/api/models/"):
        mw(Request(path))
    plain = "arena-cache:1:ai_model:list"
    assert [k == plain for k in keys] == [True, False, True, True]
    assert defects.cache_key("k", "p", 1) == "p:1:k"  # outside a request: Django's scheme


def test_slowed_answers_and_only_they_carry_the_delay_header(defects: Any) -> None:
    defects.CONFIG.write_text(
        json.dumps({"slow": {"delay_ms": 1, "share": 0.5, "paths": ["/api/sessions/"]}})
    )
    mw = defects.ReleaseDefects(lambda request: {})
    answers = [mw(Request(p)) for p in ("/api/sessions/",) * 4 + ("/api/models/",)]
    marks = [a.get("X-Release-Delay-Ms") for a in answers]
    assert [m is not None for m in marks] == [False, True, False, True, False]
    assert all(float(m) >= 1.0 for m in marks if m is not None)  # what the sleep really took


def test_the_slow_call_comes_after_the_view(defects: Any) -> None:
    """The view runs unslowed; the delay sits between its answer and the response."""
    defects.CONFIG.write_text(
        json.dumps({"slow": {"delay_ms": 20, "share": 1.0, "paths": ["/api/sessions/"]}})
    )
    viewed: list[float] = []

    def view(request: Any) -> dict[str, str]:
        viewed.append(time.perf_counter())
        return {}

    mw = defects.ReleaseDefects(view)
    started = time.perf_counter()
    answer = mw(Request("/api/sessions/"))
    returned = time.perf_counter()
    assert viewed[0] - started < 0.015  # not behind the 20 ms sleep
    assert returned - viewed[0] >= 0.020
    assert float(answer["X-Release-Delay-Ms"]) >= 20.0
