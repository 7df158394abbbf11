"""Paths of this repository that the project's own tests use (the shipped package never does)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
REFERENCE_TARGET = REPO_ROOT / "targets" / "reference.yaml"
