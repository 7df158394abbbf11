"""What the readiness review found: a :class:`Finding` (severity, file and line, the plan step it
breaks, the fix) and the :class:`Review` that gathers them, printed and written as JSON.

A finding's text may carry what a command said or an env value (a failing ``docker compose
config`` quotes the value it rejects): :meth:`Review.scrub` replaces the run's secrets in every
finding and checked line, once, as :func:`~rollback_drill.readiness.review` hands the review
back -- before it is printed, written as JSON, or put in the drill report and its JUnit
properties."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from rollback_drill.journal import Scrubber

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    """One thing that will break a rollback (or a drill of it), where it is and what to do."""

    severity: Severity
    check: str  # a short id: nginx-t, unset-variable, rate-limit, backup-name, ...
    file: str  # the team's file (relative to the current directory when under it)
    line: int | None
    message: str
    breaks: str  # the plan step (or the drill's step) it breaks
    fix: str
    releases: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def lines(self) -> list[str]:
        rel = f" [{', '.join(self.releases)}]" if self.releases else ""
        return [
            f"{self.severity:<7} {self.where}{rel}: {self.message}",
            f"        breaks: {self.breaks}",
            f"        fix: {self.fix}",
        ]


@dataclass
class Review:
    target: str
    releases: tuple[str, ...]
    findings: list[Finding] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)  # what was checked (or not, and why)
    duration_s: float = 0.0
    run_id: str = ""  # the label of what the review created (all removed when it returns)
    scrubber: Scrubber = field(default_factory=Scrubber, repr=False, compare=False)

    def redact(self, *secrets: str) -> None:
        """Values that must not leave the process in the review's text (see :meth:`scrub`)."""
        self.scrubber.redact(*secrets)

    def scrub(self) -> None:
        """Every finding's text and every checked line with the secrets replaced by ``***``."""
        clean = self.scrubber.scrub
        self.findings = [
            Finding(
                **{k: clean(v) for k, v in asdict(f).items() if k != "releases"},
                releases=tuple(clean(list(f.releases))),
            )
            for f in self.findings
        ]
        self.checked = clean(self.checked)

    def add(self, finding: Finding) -> None:
        for i, old in enumerate(self.findings):
            same = (old.check, old.file, old.line, old.message)
            if same == (finding.check, finding.file, finding.line, finding.message):
                merged = tuple(dict.fromkeys([*old.releases, *finding.releases]))
                self.findings[i] = Finding(**{**asdict(old), "releases": merged})
                return
        self.findings.append(finding)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def sorted(self) -> list[Finding]:
        return sorted(
            self.findings, key=lambda f: (SEVERITIES.index(f.severity), f.file, f.line or 0)
        )

    def lines(self) -> list[str]:
        out = [f"readiness of {self.target} (releases {', '.join(self.releases)}):"]
        out += [f"  checked: {c}" for c in self.checked]
        for f in self.sorted():
            out += f.lines()
        counts = {s: sum(f.severity == s for f in self.findings) for s in SEVERITIES}
        out.append(
            f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info "
            f"in {self.duration_s:.1f} s"
        )
        return out

    def to_dict(self) -> dict[str, Any]:
        """The review as plain data, the findings sorted (errors first): what ``--json``
        writes and what the drill report shows first (``RunReport.readiness``)."""
        return {
            "target": self.target,
            "releases": list(self.releases),
            "duration_s": round(self.duration_s, 2),
            "checked": self.checked,
            "findings": [{**asdict(f), "releases": list(f.releases)} for f in self.sorted()],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
