"""Running ``docker compose`` for one project, every call recorded.

Each operation is a real ``docker compose`` command (the Compose v2 binary as a Docker CLI
plugin); its command line, exit status, duration and output tail are returned as a
:class:`CommandResult` so that rollback phases can report each step as the plan wrote it.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from rollback_drill.errors import StackError

TAIL_LINES = 20


@dataclass(frozen=True)
class CommandResult:
    cmd: list[str]
    returncode: int
    duration_s: float
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def tail(self, lines: int = TAIL_LINES) -> str:
        out = [ln for ln in (self.stdout + "\n" + self.stderr).splitlines() if ln.strip()]
        return "\n".join(out[-lines:])

    def describe(self) -> str:
        return shlex.join(self.cmd)


def run_command(
    cmd: list[str],
    *,
    cwd: Path | None = None,
    timeout: float = 300.0,
    env: dict[str, str] | None = None,
    input_text: str | None = None,
    own_session: bool = False,
) -> CommandResult:
    """Run a command to completion (or its timeout); never raises for a non-zero exit.
    ``own_session``: in a session of its own, out of reach of a Ctrl-C to the terminal."""
    start = time.monotonic()
    full_env = {**os.environ, **(env or {})}
    try:
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            input=input_text,
            stdin=None if input_text is not None else subprocess.DEVNULL,
            check=False,
            start_new_session=own_session,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return CommandResult(
            cmd, 124, time.monotonic() - start, out, f"timed out after {timeout:.0f} s"
        )
    except FileNotFoundError as exc:
        return CommandResult(cmd, 127, time.monotonic() - start, "", str(exc))
    return CommandResult(cmd, proc.returncode, time.monotonic() - start, proc.stdout, proc.stderr)


class Compose:
    """``docker compose`` bound to one project directory, project name and env file."""

    def __init__(self, project: str, project_dir: Path, files: list[str], env_file: Path) -> None:
        self.project = project
        self.project_dir = project_dir
        self.base = ["docker", "compose", "-p", project, "--project-directory", str(project_dir)]
        for name in files:
            self.base += ["-f", str(project_dir / name)]
        self.base += ["--env-file", str(env_file)]

    def run(
        self,
        *args: str,
        timeout: float = 300.0,
        input_text: str | None = None,
        own_session: bool = False,
    ) -> CommandResult:
        # The classic builder: Debian's docker.io ships no buildx, and Compose then needs it off.
        return run_command(
            [*self.base, *args],
            cwd=self.project_dir,
            timeout=timeout,
            env={"DOCKER_BUILDKIT": "0", "COMPOSE_BAKE": "false"},
            input_text=input_text,
            own_session=own_session,
        )

    def check(self, *args: str, timeout: float = 300.0) -> CommandResult:
        """Run and raise :class:`StackError` (one line with the output's last line) on failure."""
        res = self.run(*args, timeout=timeout)
        if not res.ok:
            last = res.tail(1) or f"exit status {res.returncode}"
            raise StackError(f"docker compose {' '.join(args)}: {last}")
        return res
