"""The run-wide secret scan (tests/fixtures/daemon.py) finds what it must and names no secret."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.daemon import leaks


def test_a_registered_secret_in_a_log_is_found(tmp_path: Path) -> None:
    clean, dirty = tmp_path / "a.log", tmp_path / "b.log"
    clean.write_text("INFO refreshed session:alice\n")
    dirty.write_text("DEBUG key wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY\n")
    found = leaks({clean, dirty}, {"wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"})
    assert found == ["b.log"]


def test_no_secret_no_finding(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("INFO nothing to see\n")
    assert leaks({log}, {"s3cr3t-value"}) == []
