"""The rollback policy: the plan's triggers and decision matrix as validated data.

``load_policy()`` reads a YAML file (by default the shipped ``policy.yaml``), validates its
shape with the strict pydantic models of ``_policy_model`` and its meaning with
``_policy_checks``, and returns a frozen ``Policy``. Anything malformed or contradictory
raises ``PolicyError`` with one line and no traceback text::

    <file>: entry '<id>': field '<field>': <what is wrong>
    <file>: field '<field>': <what is wrong>              (top-level fields)
    <file>: line L, column C: invalid YAML: <what>       (syntax, duplicate keys)
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from rollback_drill._policy_checks import first_problem
from rollback_drill._policy_model import (
    Action,
    Ambiguity,
    BaselineSpec,
    ChecklistSpec,
    Comparison,
    Condition,
    DetectBudget,
    DrillSpec,
    Interval,
    Level,
    P95Check,
    PhaseBudget,
    Policy,
    RollbackSpec,
    Rule,
    RuleTiming,
    ScopeSpec,
    Severity,
)
from rollback_drill.errors import PolicyError

__all__ = [
    "DEFAULT_POLICY_PATH",
    "Action",
    "Ambiguity",
    "BaselineSpec",
    "ChecklistSpec",
    "Comparison",
    "Condition",
    "DetectBudget",
    "DrillSpec",
    "Interval",
    "Level",
    "P95Check",
    "PhaseBudget",
    "Policy",
    "RollbackSpec",
    "Rule",
    "RuleTiming",
    "ScopeSpec",
    "Severity",
    "default_policy",
    "load_policy",
]

DEFAULT_POLICY_PATH = Path(__file__).with_name("policy.yaml")


def load_policy(path: Path | None = None) -> Policy:
    """Read, validate and return a policy; the shipped default when ``path`` is None."""
    source = DEFAULT_POLICY_PATH if path is None else Path(path)
    label = str(source)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{label}: cannot read the policy: {exc}") from None
    data = _parse(text, label)
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(f"{label}: {_describe(data, exc)}") from None
    problem = first_problem(policy)
    if problem is not None:
        raise PolicyError(f"{label}: {problem}")
    return policy.from_file(label)


@functools.cache
def default_policy() -> Policy:
    """The shipped policy, loaded once (for callers given no policy: reports, ``watch``)."""
    return load_policy()


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[str] = set()
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
            if key_node.value in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key_node.value}'", key_node.start_mark
                )
            seen.add(key_node.value)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def _parse(text: str, label: str) -> dict[str, Any]:
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = " ".join(p for p in (exc.context, exc.problem) if p)
        raise PolicyError(f"{label}: {where}invalid YAML: {what}") from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"{label}: invalid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise PolicyError(f"{label}: field '(top level)': expected a mapping, got {got}")
    return data


_LISTS = ("triggers", "matrix", "baselines", "ambiguities")
_SECTION_LISTS = {("rollback", "phases"), ("drills", "detection"), ("drills", "levels")}
_MODELS: dict[tuple[str, ...], type[BaseModel]] = {
    (): Policy,
    ("triggers",): Rule,
    ("matrix",): Rule,
    ("triggers", "scope"): ScopeSpec,
    ("matrix", "scope"): ScopeSpec,
    ("triggers", "condition"): Condition,
    ("matrix", "condition"): Condition,
    ("baselines",): BaselineSpec,
    ("ambiguities",): Ambiguity,
    ("rollback",): RollbackSpec,
    ("rollback", "phases"): PhaseBudget,
    ("checklist",): ChecklistSpec,
    ("checklist", "p95"): P95Check,
    ("drills",): DrillSpec,
    ("drills", "detection"): DetectBudget,
    ("drills", "levels"): Level,
}


def _describe(data: dict[str, Any], exc: ValidationError) -> str:
    """The first validation error as ``entry '<id>': field '<f>': <what>`` on one line."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = tuple(first["loc"])
    entry: str | None = None
    rest = loc
    if len(loc) >= 2 and loc[0] in _LISTS and isinstance(loc[1], int):
        item = data[str(loc[0])][loc[1]]
        ident = item.get("id") if isinstance(item, dict) else None
        entry = ident if isinstance(ident, str) and ident else f"{loc[0]}[{loc[1]}]"
        rest = loc[2:]
    elif len(loc) >= 3 and (loc[0], loc[1]) in _SECTION_LISTS and isinstance(loc[2], int):
        section = data.get(str(loc[0]))
        items = section.get(str(loc[1])) if isinstance(section, dict) else None
        item = items[loc[2]] if isinstance(items, list) and loc[2] < len(items) else None
        ident = item.get("id") if isinstance(item, dict) else None
        entry = ident if isinstance(ident, str) and ident else f"{loc[0]}.{loc[1]}[{loc[2]}]"
        rest = loc[3:]
    what = _message(first, loc)
    if len(errors) > 1:
        what += f" (and {len(errors) - 1} more problem(s))"
    where = f"entry '{entry}': " if entry is not None else ""
    return f"{where}field '{_dotted(rest) or '(entry)'}': {' '.join(what.split())}"


def _dotted(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _message(error: Any, loc: tuple[str | int, ...]) -> str:
    kind = error["type"]
    given = error.get("input")
    if kind == "extra_forbidden":
        model = _MODELS.get(tuple(p for p in loc[:-1] if isinstance(p, str)))
        allowed = f" (allowed: {', '.join(model.model_fields)})" if model else ""
        return f"unknown field{allowed}"
    if kind == "enum":
        return f"{_short(given)} is not one of {error.get('ctx', {}).get('expected', '')}"
    if kind == "missing":
        return "required field is missing"
    return f"{error['msg']}, got {_short(given)}"


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
