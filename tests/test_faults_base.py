"""The fault protocol: idempotent apply and revert, journaled steps, proof of effect."""

from __future__ import annotations

from typing import ClassVar, Literal

import pytest

from rollback_drill.errors import FaultError
from rollback_drill.faults import BaseFault, Effect, Fault, injected
from rollback_drill.journal import Journal


class FakeFault(BaseFault):
    family: ClassVar[Literal["infrastructure"]] = "infrastructure"
    verify_interval_s: ClassVar[float] = 0.01

    def __init__(
        self, journal: Journal | None = None, *, fail_apply: bool = False, seen_after: int = 0
    ) -> None:
        super().__init__("fake", journal, {"level": 0.12})
        self.calls: list[str] = []
        self.fail_apply = fail_apply
        self.seen_after = seen_after
        self.looks = 0

    def _apply(self) -> float | None:
        self.calls.append("apply")
        if self.fail_apply:
            raise RuntimeError("half applied")
        return 1234.5

    def _revert(self) -> None:
        self.calls.append("revert")

    def observe(self) -> Effect:
        self.looks += 1
        return Effect(self.looks > self.seen_after, self.looks, "enough looks")


def phases(journal: Journal) -> list[str]:
    return [e.data["phase"] for e in journal.of_kind("fault")]


def test_fake_fault_satisfies_the_protocol() -> None:
    assert isinstance(FakeFault(), Fault)


def test_apply_and_revert_are_idempotent_and_journaled() -> None:
    journal = Journal()
    fault = FakeFault(journal)
    fault.revert()  # before apply: nothing to undo
    fault.apply()
    fault.apply()
    assert fault.applied and fault.live_at == 1234.5
    fault.revert()
    fault.revert()
    assert not fault.applied
    assert fault.calls == ["apply", "revert"]
    assert phases(journal) == ["start", "live", "end"]
    start = journal.of_kind("fault")[0]
    assert start.data["params"] == {"level": 0.12} and start.data["family"] == "infrastructure"
    assert journal.of_kind("fault")[-1].data["status"] == "reverted"


def test_a_failed_apply_is_undone_and_reported_as_a_fault_error() -> None:
    journal = Journal()
    fault = FakeFault(journal, fail_apply=True)
    with pytest.raises(FaultError, match="could not be applied: half applied"):
        fault.apply()
    assert fault.calls == ["apply", "revert"] and not fault.applied
    assert phases(journal) == ["start", "end"]
    assert journal.of_kind("fault")[-1].data["status"] == "failed"


def test_verify_polls_until_the_effect_is_seen() -> None:
    journal = Journal()
    fault = FakeFault(journal, seen_after=3)
    fault.apply()
    effect = fault.verify_effect(timeout_s=5)
    assert effect.seen and effect.measured == 4 and fault.effect is effect
    assert phases(journal)[-1] == "verified"


def test_an_effect_never_seen_is_a_failed_injection() -> None:
    journal = Journal()
    fault = FakeFault(journal, seen_after=10**9)
    fault.apply()
    with pytest.raises(FaultError, match="no effect after"):
        fault.verify_effect(timeout_s=0.05)
    assert phases(journal)[-1] == "unverified"


def test_verify_before_apply_is_refused() -> None:
    with pytest.raises(FaultError, match="before apply"):
        FakeFault().verify_effect()


def test_injected_reverts_whatever_happens() -> None:
    fault = FakeFault()
    with pytest.raises(ZeroDivisionError), injected(fault):
        assert fault.applied
        _ = 1 / 0
    assert not fault.applied and fault.calls == ["apply", "revert"]


def test_injected_reverts_when_the_effect_is_not_seen() -> None:
    fault = FakeFault(seen_after=10**9)
    with pytest.raises(FaultError), injected(fault, timeout_s=0.05):
        pass
    assert fault.calls == ["apply", "revert"]
