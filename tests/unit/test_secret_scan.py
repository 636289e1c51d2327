"""The run-wide secret scan (tests/fixtures/daemon.py) finds what it must and names no secret.

The scan is the session-scoped autouse fixture ``no_secret_in_any_log``: it runs when the run
(under pytest-xdist, each worker) ends, whatever the order of the files, and reports a leak as an
error of the run. A ``pytest_sessionfinish`` hook would not do under xdist: a worker's exit status
is not the run's, while a fixture's teardown error travels to the controller like any report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.fixtures.daemon import leaks

ROOT = Path(__file__).resolve().parents[2]
LEAKED = "wJalrXUtnFEMI-K7MDENG-leaked-in-a-log"

LEAKY_TEST = f'''
from tests.fixtures.daemon import LOG_FILES, remember


def test_a_program_logs_a_secret(tmp_path):
    remember("{LEAKED}")
    log = tmp_path / "leaky.log"
    log.write_text("DEBUG got {LEAKED}\\n")
    LOG_FILES.add(log)
'''

CLEAN_TEST = """
def test_nothing_logged():
    pass
"""


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


def test_a_leak_fails_the_run_under_xdist_whatever_the_order(tmp_path: Path) -> None:
    """A real pytest run on two workers: the leak is in the file that sorts *first* and runs on
    one worker only; that worker's scan fails the run, naming the log and never the secret."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["tests.fixtures.daemon"]\n')
    (tmp_path / "test_a_leaky.py").write_text(LEAKY_TEST)
    (tmp_path / "test_b_clean.py").write_text(CLEAN_TEST)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2",
         "--rootdir", str(tmp_path), "-c", str(tmp_path / "pytest.ini"), str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)},
    )  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "2 passed, 1 error" in out, out
    assert "a secret appears in: leaky.log" in out, out
    assert out.count(LEAKED) == 0  # named by file, never shown
