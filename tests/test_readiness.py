"""The readiness review (``check-target --deep``) on a deliberately broken copy of the example
target and on the reference target: each finding with its file and line.

The static checks need the Compose binary (``docker compose config``), not the daemon; the
``nginx -t`` check and the command line need Docker (``docker`` marker: skipped without it).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from paths import REFERENCE_TARGET, REPO_ROOT

from rollback_drill import readiness
from rollback_drill.errors import ComposeMissing, NotReady
from rollback_drill.fixtures.options import SETTINGS
from rollback_drill.fixtures.report import readiness_properties, review_target
from rollback_drill.preflight import check_compose
from rollback_drill.readiness import Finding, Review, entry, findings, nginx, review
from rollback_drill.report import RunReport, render_html
from rollback_drill.target import Target, load_target

EXAMPLE = REPO_ROOT / "examples" / "notes"
SECRET_VAR = "NOTES_DEPLOY_TOKEN"  # a secret a target takes from the drill's environment


@pytest.fixture(scope="module")
def compose_available() -> None:
    try:
        check_compose()
    except ComposeMissing as exc:
        pytest.skip(f"needs docker compose: {exc}")


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def _line(path: Path, text: str, *, exact: bool = False) -> int:
    """The (first) line of ``path`` that contains (or is) ``text``."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line == text if exact else text in line:
            return number
    raise AssertionError(f"{text!r} not in {path}")


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of examples/notes with what the review must name: an nginx config failing
    ``nginx -t``, a rate limit below the drill's load, a port on all interfaces, an unset
    variable (a fixed container_name is there already)."""
    root = tmp_path_factory.mktemp("broken") / "notes"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("__pycache__"))
    conf = root / "deploy" / "nginx" / "default.conf"
    _replace(conf, "rate=400r/s", "rate=5r/s")
    _replace(
        conf,
        "upstream notes_web {",
        "limit_conn_zone $binary_remote_addr zone=conns:1m;\n\nupstream notes_web {",
    )
    _replace(conf, "    location / {\n", "    location / {\n        limit_conn conns 10;\n")
    _replace(
        conf, "    client_max_body_size 2m;", "    client_max_body_size 2m;\n    gzip_typo on;"
    )
    compose, target = root / "compose.yaml", root / "target.yaml"
    _replace(compose, '"8080:80"', '"0.0.0.0:8080:80"')
    _replace(
        compose,
        "    env_file: .env\n",
        "    env_file: .env\n    environment:\n      NOTES_FLAG: ${NOTES_FEATURE_FLAG}\n",
    )
    # and what a rollback's build and up would trip on: a registry image not here, a build
    # context and a bind-mounted file that are not in the repository
    _replace(compose, "image: redis:7-bookworm", "image: redis:99-not-here")
    _replace(compose, '      test: ["CMD", "redis-cli", "ping"]\n', "      disable: true\n")
    _replace(compose, "      NOTES_FLAG:", "      NOTES_MODE: ${NOTES_MODE}\n      NOTES_FLAG:")
    _replace(target, "  values:\n", '  values:\n    NOTES_MODE: ""\n')
    _replace(
        compose,
        "volumes:\n  pgdata:",
        "  worker:\n    build: ./worker\n    volumes:\n"
        "      - ./deploy/worker.conf:/etc/w.conf:ro\n\nvolumes:\n  pgdata:",
    )
    return root


@pytest.fixture(scope="module")
def broken_target(broken: Path) -> Target:
    return load_target(broken / "target.yaml")


@pytest.fixture(scope="module")
def static(compose_available: None, broken_target: Target) -> Review:
    return review(broken_target, nginx_test=False, releases=["v1"])


def _find(result: Review, check: str, file: Path, line: int) -> Finding:
    shown = findings.shown(file)
    found = [f for f in result.findings if f.check == check and f.file == shown]
    assert found, f"no {check} finding in {shown}: {[f.where for f in result.findings]}"
    assert line in [f.line for f in found], (check, shown, line, [f.line for f in found])
    return next(f for f in found if f.line == line)


def test_rate_limit_below_the_drills_load(static: Review, broken: Path) -> None:
    conf = broken / "deploy" / "nginx" / "default.conf"
    found = _find(static, "rate-limit", conf, _line(conf, "limit_req zone=per_client"))
    assert found.severity == "error"
    assert "5 r/s" in found.message and "40 r/s" in found.message
    assert "--drill-load-rate" in found.fix


def test_connection_limit_below_the_loads_concurrency(static: Review, broken: Path) -> None:
    conf = broken / "deploy" / "nginx" / "default.conf"
    found = _find(static, "connection-limit", conf, _line(conf, "limit_conn conns 10;"))
    assert found.severity == "warning" and "64" in found.message


def test_port_on_all_interfaces(static: Review, broken: Path) -> None:
    compose = broken / "compose.yaml"
    found = _find(static, "port-all-interfaces", compose, _line(compose, '"0.0.0.0:8080:80"'))
    assert found.severity == "warning" and "127.0.0.1" in found.fix
    # the WSGI role's fixed host port also breaks Phase 2's scale-up: an error
    wsgi = _find(static, "port-all-interfaces", compose, _line(compose, '"8000:8000"'))
    assert wsgi.severity == "error" and "Phase 2 step 3" in wsgi.breaks


def test_unset_variable(static: Review, broken: Path) -> None:
    compose = broken / "compose.yaml"
    found = _find(static, "unset-variable", compose, _line(compose, "${NOTES_FEATURE_FLAG}"))
    assert found.severity == "error" and "NOTES_FEATURE_FLAG" in found.message
    assert found.releases == ("v1",)


def test_empty_variable(static: Review, broken: Path) -> None:
    compose = broken / "compose.yaml"
    found = _find(static, "empty-variable", compose, _line(compose, "${NOTES_MODE}"))
    assert found.severity == "error" and "is empty" in found.message


def test_role_without_healthcheck(static: Review, broken: Path) -> None:
    compose = broken / "compose.yaml"
    found = _find(static, "healthcheck", compose, _line(compose, "  cache:", exact=True))
    assert found.severity == "error" and "redis role" in found.message


def test_fixed_container_name(static: Review, broken: Path) -> None:
    compose = broken / "compose.yaml"
    web = _find(static, "container-name", compose, _line(compose, "container_name: notes-web"))
    assert web.severity == "error" and "--scale" in web.breaks  # the WSGI role
    db = _find(static, "container-name", compose, _line(compose, "container_name: notes-db"))
    assert db.severity == "warning"


def test_missing_build_context_and_bind_mount(static: Review, broken: Path) -> None:
    compose = broken / "compose.yaml"
    context = _find(static, "build-context", compose, _line(compose, "build: ./worker"))
    assert context.severity == "error" and "worker" in context.message
    mount = _find(static, "bind-mount", compose, _line(compose, "./deploy/worker.conf"))
    assert mount.severity == "error" and "Phase 3" in mount.breaks


def test_a_release_whose_compose_file_does_not_parse(
    compose_available: None, tmp_path: Path
) -> None:
    root = tmp_path / "notes"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("__pycache__"))
    v2 = root / "releases" / "v2" / "compose.yaml"
    v2.write_text(v2.read_text() + "  oops: [unclosed\n")
    result = review(load_target(root / "target.yaml"), nginx_test=False, releases=["v2"])
    found = [f for f in result.findings if f.check == "compose-config"]
    assert [(f.file, f.releases) for f in found] == [(findings.shown(v2), ("v2",))]
    assert "failed to parse" in found[0].message and found[0].severity == "error"


def test_the_unbroken_example_has_no_rate_limit_or_variable_finding(
    compose_available: None,
) -> None:
    result = review(load_target(EXAMPLE / "target.yaml"), nginx_test=False, releases=["v1"])
    checks = {f.check for f in result.findings}
    assert not checks & {"rate-limit", "unset-variable", "empty-variable", "nginx-t"}
    # the plan's scripts name the reference stack's services, not this stack's
    assert "script-service" in checks


def test_reference_lists_the_plans_backup_name_mismatch(compose_available: None) -> None:
    result = review(load_target(REFERENCE_TARGET), nginx_test=False, releases=["pre-hybrid"])
    scripts = REPO_ROOT / "scripts"
    for script in ("rollback-config.sh", "rollback-full.sh"):
        path = scripts / script
        found = _find(result, "backup-name", path, _line(path, "nginx.conf.backup $NGINX_DIR"))
        assert found.severity == "error"
        assert "/etc/nginx/nginx.conf.backup" in found.message
        assert "/etc/nginx/nginx.conf.pre-hybrid.bak" in found.message
    # nothing else of the reference stack's own files is wrong
    stack = findings.shown(REPO_ROOT / "compose")
    own = [f for f in result.findings if f.file.startswith(stack) and f.severity != "info"]
    assert own == []


def test_nginx_directives_with_their_lines() -> None:
    text = (
        "http {\n  # limit_req zone=x;\n  limit_req_zone $binary_remote_addr\n"
        "    zone=z:1m rate=30r/m;\n  server { limit_req zone=z burst=5; }\n}\n"
    )
    found = [(d.name, d.line) for d in nginx._directives(text)]
    assert ("limit_req_zone", 3) in found and ("limit_req", 5) in found
    assert nginx._rate("rate=30r/m") == 0.5


def test_json_and_lines(tmp_path: Path) -> None:
    result = Review("t", ("a", "b"))
    finding = Finding("error", "x", "f.yaml", 3, "m", "Phase 2", "fix it", ("a",))
    result.add(finding)
    result.add(Finding("error", "x", "f.yaml", 3, "m", "Phase 2", "fix it", ("b",)))
    assert [f.releases for f in result.findings] == [("a", "b")]
    data = json.loads(result.to_json())
    assert data["findings"][0]["line"] == 3 and data["findings"][0]["releases"] == ["a", "b"]
    assert any("f.yaml:3 [a, b]: m" in line for line in result.lines())


@pytest.mark.docker
def test_nginx_t_in_a_throwaway_container(
    docker_available: None, compose_available: None, broken_target: Target, broken: Path
) -> None:
    from rollback_drill.stack import docker_client

    result = review(broken_target, releases=["v1"])
    conf = broken / "deploy" / "nginx" / "default.conf"
    found = _find(result, "nginx-t", conf, _line(conf, "gzip_typo"))
    assert found.severity == "error" and "gzip_typo" in found.message
    compose = broken / "compose.yaml"
    image = _find(result, "image", compose, _line(compose, "redis:99-not-here"))
    assert image.severity == "error" and "images" in image.fix
    client = docker_client()
    try:
        left = client.containers.list(
            all=True, filters={"label": f"io.rollback-drill.pid={os.getpid()}"}
        )
        assert [c.name for c in left if "nginx" in str(c.attrs["Config"].get("Entrypoint"))] == []
    finally:
        client.close()


def test_host_file_of_a_mounted_directory(tmp_path: Path) -> None:
    mounts = {"/etc/nginx/conf.d": tmp_path, "/etc/nginx/nginx.conf": tmp_path / "n.conf"}
    assert nginx._host_file(mounts, "/etc/nginx/conf.d/site.conf") == tmp_path / "site.conf"
    assert nginx._host_file(mounts, "/etc/nginx/nginx.conf") == tmp_path / "n.conf"
    assert nginx._host_file(mounts, "/etc/other.conf") is None


@pytest.mark.docker
@pytest.mark.nightly
def test_started_previous_release(docker_available: None, compose_available: None) -> None:
    """The example's v1 up (about a minute): its health path answers, the plan's /api/health/
    does not, every category but WebSocket answers, and the real backup run confirms the
    plan's missing nginx.conf.backup; nothing of the run is left."""
    from rollback_drill.stack import docker_client

    result = review(
        load_target(EXAMPLE / "target.yaml"), nginx_test=False, start=True, releases=["v1"]
    )
    checks = REPO_ROOT / "scripts" / "lib" / "checks.sh"
    health = _find(result, "health-path", checks, _line(checks, "/api/health/"))
    assert health.severity == "error" and "404" in health.message
    assert any("GET /healthz -> HTTP 200" in c for c in result.checked)
    assert any("crud ok, auth ok, admin ok, streaming ok" in c for c in result.checked)
    script = REPO_ROOT / "scripts" / "rollback-config.sh"
    backup = _find(result, "backup-name", script, _line(script, "nginx.conf.backup $NGINX_DIR"))
    assert "confirmed" in backup.message
    client = docker_client()
    try:
        label = {"label": f"io.rollback-drill.run={result.run_id}"}
        left = [c.name for c in client.containers.list(all=True, filters=label)]
        left += [v.name for v in client.volumes.list(filters=label)]
        assert left == []
    finally:
        client.close()


@pytest.mark.docker
def test_command_exits_not_ready_with_json(
    docker_available: None,
    static: Review,
    broken: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The command's plumbing (the review itself is the tests above): flags, findings printed,
    JSON written, exit status 22."""
    from rollback_drill.cli import main

    asked: dict[str, object] = {}

    def fake_review(target: Target, **kwargs: object) -> Review:
        asked.update(kwargs, target=target.name)
        return static

    monkeypatch.setattr(entry, "review", fake_review)
    out = tmp_path / "readiness.json"
    argv = ["check-target", str(broken / "target.yaml"), "--deep", "--no-start", "--json", str(out)]
    code = main([*argv, "--load-rate", "12"])
    assert code == NotReady.exit_code
    assert asked == {
        "target": "notes-example",
        "start": False,
        "load_rate": 12.0,
        "target_file": broken / "target.yaml",
    }
    data = json.loads(out.read_text())
    assert {"rate-limit", "unset-variable", "container-name"} <= {
        f["check"] for f in data["findings"]
    }
    said = capsys.readouterr()
    assert "not checked (--no-start)" in said.out and "compose.yaml:" in said.out
    assert "not ready for a rollback drill" in said.err


def test_a_bad_load_rate_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from rollback_drill.errors import DrillError

    monkeypatch.setenv("RBD_LOAD_RATE", "fast")
    with pytest.raises(DrillError, match="RBD_LOAD_RATE 'fast'"):
        readiness.check_deep(EXAMPLE / "target.yaml", start=False)
    with pytest.raises(DrillError, match=r"--load-rate '-3\.0'"):
        readiness.check_deep(EXAMPLE / "target.yaml", start=False, load_rate=-3.0)


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--no-start"], "--no-start needs --deep"),
        (["--json", "x.json"], "--json needs --deep"),
        (["--no-start", "--load-rate", "12"], "--no-start and --load-rate need --deep"),
    ],
)
def test_review_options_without_deep_are_refused(
    options: list[str],
    said: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Refused in one line before anything is checked (no Docker asked, no JSON written)."""
    from rollback_drill import cli

    def no_check(path: Path) -> list[str]:
        raise AssertionError("check-target ran")

    monkeypatch.setattr(cli, "check_target", no_check)
    monkeypatch.chdir(tmp_path)
    code = cli.main(["check-target", str(EXAMPLE / "target.yaml"), *options])
    out = capsys.readouterr()
    assert code == 2 and out.out == ""
    assert out.err == f"rollback-drill: check-target: {said}\n"
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize(
    ("compose", "variable"),
    [
        # the next release's config fails: its finding comes from the run's workspace
        ("releases/v2/compose.yaml", SECRET_VAR),
        ("releases/v2/compose.yaml", "NOTES_DEMO_PASSWORD"),  # generated for the run
        # the previous release's config fails: no workspace, the finding is its error
        ("compose.yaml", SECRET_VAR),
        ("compose.yaml", "NOTES_DEMO_PASSWORD"),
    ],
)
def test_a_secret_in_a_findings_text_is_not_shown(
    compose_available: None,
    compose: str,
    variable: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A finding's text can quote what a command said (``docker compose config`` quotes the
    value it rejects), and that value can be the run's generated password or a secret taken
    from the environment: ``check-target --deep`` (printed lines, JSON, its one-line error) and
    the drill report (HTML, JUnit properties) show ``***``. The static review only: no daemon
    (``DOCKER_HOST`` points nowhere), so no ``nginx -t`` container."""
    token = f"tok-{secrets.token_hex(8)}"
    monkeypatch.setenv(SECRET_VAR, token)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    root = tmp_path / "notes"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("__pycache__"))
    target = root / "target.yaml"
    _replace(target, "  generated: [", f"  from_environment: [{SECRET_VAR}]\n  generated: [")
    _replace(root / compose, '- "8000:8000"', '- "${' + variable + '}"')

    printed: list[str] = []
    with pytest.raises(NotReady) as error:  # check-target --deep --no-start --json
        readiness.check_deep(
            target, start=False, json_path=tmp_path / "r.json", emit=printed.append
        )
    settings = {"drill_target": target, "drill_load_rate": 40.0}
    data = review_target(SimpleNamespace(stash={SETTINGS: settings}))  # type: ignore[arg-type]
    shown = {
        "printed": "\n".join(printed),
        "json": (tmp_path / "r.json").read_text(),
        "report": render_html(RunReport("r1", "now", readiness=data)),
        "junit": "\n".join(str(value) for _, value in readiness_properties(data)),
    }
    # the finding is there, its detail scrubbed where the value stood (a generated value the
    # test cannot know: compose quotes it, or *** when scrubbed)
    for name, text in shown.items():
        assert "invalid containerPort: ***" in text, name
    for name, text in {**shown, "error": str(error.value)}.items():
        assert token not in text, name
