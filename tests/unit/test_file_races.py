"""Races between credd's credentials-file writes and writers that do not lock (issue 8).

A non-locking writer (the AWS CLI's ``ConfigFileWriter``, ``open(path, "w")`` then write)
truncates the file, then writes it. These tests pin the gap deterministically (a writer paused
between its truncate and its write, released through the clock credd waits on), then run tight
race loops with the CLI's writer code shape and with the real ``/usr/bin/aws configure set``, and
a SIGKILL-mid-write loop. The loops run a bounded count; ``CREDD_SOAK=1`` runs the full 1,000.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import botocore.session
import pytest

from credd import doctor
from credd.clock import SystemClock
from credd.files.credentials import CredentialsFileWriter, SectionWrite
from credd.files.sidefiles import GOOD_SUFFIX, SAVED_SUFFIX
from credd.testing.clock import FakeClock
from tests.fixtures.files import SAMPLE_CREDENTIALS, lease_breaking, make_credentials, run_aws_v2
from tests.integration.test_secrets_headless import credd

USER = SAMPLE_CREDENTIALS["typical"]
# read at import: the autouse clean_env fixture removes CREDD_* variables before each test
SOAK = os.environ.get("CREDD_SOAK") == "1"
SOAK_ROUNDS = int(os.environ.get("CREDD_SOAK_ROUNDS", "1000"))


def rounds(bounded: int) -> int:
    """``bounded`` in make test; 1,000 under CREDD_SOAK=1 (CREDD_SOAK_ROUNDS overrides)."""
    return SOAK_ROUNDS if SOAK else bounded


def cred_path() -> Path:
    return Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"])


def seed(text: str) -> Path:
    path = cred_path()
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_text(text)
    return path


def by_name(checks: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {c.name: c for c in checks}


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".credd-tmp"))


def profiles(path: Path) -> dict[str, dict[str, str]]:
    """The file as botocore reads it (raises if it does not parse)."""
    import botocore.configloader

    return dict(botocore.configloader.raw_config_parse(str(path)))


def set_marker(text: str, value: str) -> str:
    """What ``aws configure set race_marker VALUE`` does to [default] (CLI writer shape)."""
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith("race_marker = "):
            lines[i] = f"race_marker = {value}\n"
            return "".join(lines)
    if "[default]\n" not in lines:  # the file was wiped (by the code under test)
        return "".join(lines) + f"\n[default]\nrace_marker = {value}\n"
    lines.insert(lines.index("[default]\n") + 1, f"race_marker = {value}\n")
    return "".join(lines)


class ReleasingClock(FakeClock):
    """A fake clock whose first ``sleep`` runs ``on_sleep`` (a paused writer's second half)."""

    def __init__(self, on_sleep: Callable[[], None]) -> None:
        super().__init__()
        self._on_sleep: Callable[[], None] | None = on_sleep

    def sleep(self, seconds: float) -> None:
        action, self._on_sleep = self._on_sleep, None
        if action is not None:
            action()
        super().sleep(seconds)


class OtherWriter:
    """Another program's non-locking writer, started from credd's ``before_replace`` hook: its
    ``open`` resolves the path to the inode credd is about to replace. It runs in its own thread
    (with credd's lease held, the open blocks until credd lets it go) and writes ``text`` after
    ``delay`` seconds of real time once its open returns, or when :meth:`finish` is called."""

    def __init__(self, mode: str, text: str, delay: float | None = None) -> None:
        self.mode, self.text, self.delay = mode, text, delay
        self.opened = threading.Event()
        self.go = threading.Event()
        self.thread: threading.Thread | None = None

    def _run(self, target: Path) -> None:
        with open(target, self.mode) as fh:
            self.opened.set()
            self.go.wait(self.delay)  # None: until finish()
            fh.write(self.text)

    def open_now(self, target: Path) -> None:
        """The hook: start the writer, return once its open has resolved the current inode
        (it has opened the file, or it is blocked in its open by credd's lease)."""
        if self.thread is not None:
            return
        ino = os.stat(target).st_ino
        self.thread = threading.Thread(target=self._run, args=(target,), daemon=True)
        self.thread.start()
        for _ in range(30_000):  # bounded: 30 s of 1 ms waits
            if self.opened.wait(0.001) or lease_breaking(ino):
                return
        raise AssertionError("the writer neither opened the file nor blocked on a lease")

    def finish(self) -> None:
        self.go.set()
        if self.thread is not None:
            self.thread.join()

    @property
    def done(self) -> bool:
        return self.thread is not None and not self.thread.is_alive()


# --- deterministic: the truncate-then-write gap -------------------------------------------


def test_read_in_the_gap_of_a_truncating_writer_waits_instead_of_wiping() -> None:
    """credd reads while another writer has truncated the file and not yet written it."""
    path = seed(USER)
    CredentialsFileWriter().write([SectionWrite("s", "p", make_credentials(1))])
    before = path.read_text()
    theirs = set_marker(before, "cli")
    handle: IO[str] = open(path, "w")  # noqa: SIM115 - the writer pauses after truncating

    def writer_finishes() -> None:
        handle.write(theirs)
        handle.close()

    clock = ReleasingClock(writer_finishes)
    try:
        CredentialsFileWriter(clock=clock).write([SectionWrite("s", "p", make_credentials(2))])
    finally:
        if not handle.closed:  # old code never waits: the writer finishes into a dead inode
            writer_finishes()
    final = profiles(path)
    assert final["default"]["aws_access_key_id"] == "AKIAUSERDEFAULT00001", "file wiped"
    assert final["default"]["race_marker"] == "cli", "the other writer's change was lost"
    assert final["work"]["region"] == "eu-west-1"
    assert final["s"]["aws_access_key_id"] == make_credentials(2).access_key_id
    assert 0 < sum(clock.slept) < 1.0  # waited for the write, not for the whole bound
    assert leftovers(path.parent) == []


def test_writer_that_truncates_between_check_and_rename_is_merged() -> None:
    """The last window: a writer opens the file ``"w"`` after credd's check, before its rename,
    and writes after the rename (into the inode credd just replaced)."""
    path = seed(USER)
    writer = CredentialsFileWriter()
    writer.write([SectionWrite("s", "p", make_credentials(1))])
    other = OtherWriter("w", set_marker(path.read_text(), "late"))
    writer.clock = ReleasingClock(other.finish)
    writer.before_replace = other.open_now
    try:
        writer.write([SectionWrite("s", "p", make_credentials(2))])
    finally:
        other.finish()
    assert other.opened.is_set(), "credd has no seam between its last check and its rename"
    final = profiles(path)
    assert final["default"]["race_marker"] == "late"
    assert final["default"]["aws_access_key_id"] == "AKIAUSERDEFAULT00001"
    assert final["s"]["aws_access_key_id"] == make_credentials(2).access_key_id
    assert leftovers(path.parent) == []


def test_writer_that_opens_for_append_just_before_the_rename_is_merged() -> None:
    """``aws configure set`` for a new profile appends (``open(path, "a")``): opening leaves no
    trace on the inode, only the write does, and it comes after credd's rename."""
    path = seed(USER)
    writer = CredentialsFileWriter()
    writer.write([SectionWrite("s", "p", make_credentials(1))])
    other = OtherWriter("a", "[added-late]\naws_access_key_id = AKIALATE000000000001\n")
    writer.clock = ReleasingClock(other.finish)
    writer.before_replace = other.open_now
    try:
        writer.write([SectionWrite("s", "p", make_credentials(2))])
    finally:
        other.finish()
    final = profiles(path)
    assert final["added-late"]["aws_access_key_id"] == "AKIALATE000000000001"
    assert final["s"]["aws_access_key_id"] == make_credentials(2).access_key_id
    assert final["default"]["aws_access_key_id"] == "AKIAUSERDEFAULT00001"


def test_writer_that_truncates_in_the_window_and_stalls_never_wipes_the_file() -> None:
    """It truncates just before the rename and does not write within the bound: credd keeps
    its own whole file (the stalled writer loses only its own late write)."""
    path = seed(USER)
    writer = CredentialsFileWriter(clock=FakeClock())
    writer.write([SectionWrite("s", "p", make_credentials(1))])
    other = OtherWriter("w", "")  # truncates, then writes nothing for too long
    writer.before_replace = other.open_now
    try:
        writer.write([SectionWrite("s", "p", make_credentials(2))])
    finally:
        other.finish()
    final = profiles(path)
    assert final["default"]["aws_access_key_id"] == "AKIAUSERDEFAULT00001"
    assert final["work"]["region"] == "eu-west-1"
    assert final["s"]["aws_access_key_id"] == make_credentials(2).access_key_id


@pytest.mark.parametrize(
    ("mode", "delay"),
    [("a", 0.05), ("a", 0.5), ("r+", 0.2), ("w", 1.5)],
    ids=["append-50ms", "append-500ms", "overwrite-200ms", "truncate-1500ms"],
)
def test_writer_that_opened_the_old_inode_and_writes_much_later_is_merged(
    mode: str, delay: float
) -> None:
    """The residual of the 10 ms second look: a writer resolves the path to the inode credd
    replaces just before the rename, and writes 50 ms to 1.5 s later (a loaded machine, a slow
    program). credd's read lease makes that writer's open wait for credd, which then waits for
    it to close the old inode and merges what it wrote. Real time: the writer sleeps ``delay``
    after its open returns; credd waits on the system clock (bound: 5 s)."""
    path = seed(USER)
    writer = CredentialsFileWriter(clock=SystemClock())
    writer.write([SectionWrite("s", "p", make_credentials(1))])
    if mode == "a":
        text = "[added-late]\naws_session_token = m-late\n"
    elif mode == "r+":  # rewrites in place, same length: no size change to see
        text = path.read_text().replace("region = eu-west-1", "region = eu-west-2")
    else:
        text = set_marker(path.read_text(), "late")
    other = OtherWriter(mode, text, delay)
    writer.before_replace = other.open_now
    try:
        writer.write([SectionWrite("s", "p", make_credentials(2))])
        waited = other.done  # credd returned only after the writer had closed the old inode
    finally:
        other.finish()
    final = profiles(path)
    assert final["default"]["aws_access_key_id"] == "AKIAUSERDEFAULT00001"
    assert final["s"]["aws_access_key_id"] == make_credentials(2).access_key_id
    if mode == "a":
        assert final["added-late"]["aws_session_token"] == "m-late", "their write was lost"
    elif mode == "r+":
        assert final["work"]["region"] == "eu-west-2", "their write was lost"
    else:
        assert final["default"]["race_marker"] == "late", "their write was lost"
    assert waited
    assert leftovers(path.parent) == []


def test_late_write_that_already_made_credds_change_is_put_back() -> None:
    """Same window, during a removal, and the other writer removed the section itself."""
    path = seed(USER)
    writer = CredentialsFileWriter()
    writer.write([SectionWrite("s", "p", make_credentials(1))])
    theirs = set_marker(USER, "late")  # their file: without [s], with their change
    other = OtherWriter("w", theirs)
    writer.clock = ReleasingClock(other.finish)
    writer.before_replace = other.open_now
    try:
        writer.remove(["s"])  # names what credd removed last: none, they had done it
    finally:
        other.finish()
    assert path.read_text() == theirs


def test_file_emptied_on_purpose_is_written_after_a_bounded_wait_and_saved() -> None:
    path = seed(USER)
    CredentialsFileWriter().write([SectionWrite("s", "p", make_credentials(1))])
    good = path.with_name(path.name + GOOD_SUFFIX).read_text()
    path.write_text("")
    clock = FakeClock()
    CredentialsFileWriter(clock=clock).write([SectionWrite("s", "p", make_credentials(2))])
    assert sum(clock.slept) >= 1.0  # the whole bound, on the injected clock
    assert set(profiles(path)) == {"s"}
    saved = path.with_name(path.name + SAVED_SUFFIX)
    assert saved.read_text() == good
    assert (saved.stat().st_mode & 0o777) == 0o600


def test_removing_the_last_section_of_a_file_without_final_newline_restores_it() -> None:
    original = "[default]\nregion = eu-west-1"
    path = seed(original)
    writer = CredentialsFileWriter()
    writer.write([SectionWrite("s", "p", make_credentials())])
    assert profiles(path)["default"]["region"] == "eu-west-1"
    assert writer.remove(["s"]) == ["s"]
    assert path.read_bytes() == original.encode()


# --- race loops -------------------------------------------------------------------------


@dataclass
class Tally:
    races: int = 0
    wiped: int = 0
    lost_foreign: int = 0
    lost_credd: int = 0
    notes: list[str] = field(default_factory=list)

    def check(
        self,
        path: Path,
        marker: str,
        key_id: str,
        foreign_saw_ours: bool,
        key: str = "race_marker",
        section: str = "default",
    ) -> bool:
        """Count this race's losses; whether it lost nothing."""
        self.races += 1
        try:
            final = profiles(path)
        except Exception as exc:  # unparseable counts as wiped
            self.wiped += 1
            self.notes.append(f"race {self.races}: unparseable ({type(exc).__name__})")
            return False
        default = final.get("default", {})
        bad = [
            default.get("aws_access_key_id") != "AKIAUSERDEFAULT00001" or "work" not in final,
            final.get(section, {}).get(key) != marker,
            # the other writer read credd's update, so it must still be there
            final.get("s", {}).get("aws_access_key_id") != key_id and foreign_saw_ours,
        ]
        self.wiped += bad[0]
        self.lost_foreign += bad[1]
        self.lost_credd += bad[2]
        return not any(bad)

    def __str__(self) -> str:
        return (
            f"out of {self.races} races: {self.wiped} wiped, {self.lost_foreign} lost foreign, "
            f"{self.lost_credd} lost credd"
        )


def cli_shaped_write(path: Path, marker: str, key_id: str, section: str) -> bool:
    """awscli's ConfigFileWriter: read, then for a section that exists ``open(path, "w")`` and
    write the whole edited file, else ``open(path, "a")`` and write the new section. Whether it
    saw credd's new key."""
    with open(path) as fh:
        text = fh.read()
    if section == "default":
        with open(path, "w") as fh:
            fh.write(set_marker(text, marker))
    else:
        with open(path, "a") as fh:
            fh.write(f"[{section}]\n")
            fh.write(f"race_marker = {marker}\n")
    return key_id in text


@pytest.mark.soak
def test_tight_races_with_cli_shaped_writer_lose_nothing() -> None:
    path = seed(USER)
    writer = CredentialsFileWriter(clock=SystemClock())
    writer.write([SectionWrite("s", "p", make_credentials(0))])
    tally = Tally()
    for i in range(1, rounds(60) + 1):
        key_id = make_credentials(i).access_key_id
        section = "default" if i % 2 else f"new-{i}"  # rewrite / append, in turn
        gate = threading.Barrier(2)
        saw: list[bool] = []

        def foreign(
            i: int = i,
            key_id: str = key_id,
            gate: threading.Barrier = gate,
            saw: list[bool] = saw,
            section: str = section,
        ) -> None:
            gate.wait()
            saw.append(cli_shaped_write(path, f"m{i}", key_id, section))

        thread = threading.Thread(target=foreign)
        thread.start()
        gate.wait()
        writer.write([SectionWrite("s", "p", make_credentials(i))])
        thread.join()
        if not tally.check(path, f"m{i}", key_id, saw[0], section=section):  # start whole again
            path.write_text(USER)
            writer.write([SectionWrite("s", "p", make_credentials(i))])
    print(f"cli-shaped writer: {tally}")
    assert (tally.wiped, tally.lost_foreign, tally.lost_credd) == (0, 0, 0), str(tally)
    assert leftovers(path.parent) == []


@pytest.mark.integration
@pytest.mark.soak
def test_races_with_real_aws_configure_set_lose_nothing() -> None:
    """credd rewrites continuously while ``aws configure set`` runs again and again."""
    path = seed(USER)
    writer = CredentialsFileWriter(clock=SystemClock())
    writer.write([SectionWrite("s", "p", make_credentials(0))])
    done = threading.Event()
    busy = threading.Lock()  # held for each credd write: the checks see only finished ones
    hold = threading.Event()  # set while the test checks the file
    written: list[int] = []
    errors: list[BaseException] = []

    def credd_loop() -> None:
        n = 0
        try:
            while not done.is_set():
                n += 1
                with busy:
                    writer.write([SectionWrite("s", "p", make_credentials(n))])
                written.append(n)
                while hold.is_set() and not done.is_set():
                    done.wait(0.001)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=credd_loop)
    thread.start()
    tally = Tally()
    try:
        for i in range(1, rounds(4) + 1):
            # the CLI writes aws_session_token to the credentials file (other keys go to config)
            proc = run_aws_v2(
                "configure", "set", "aws_session_token", f"m{i}", "--profile", "default"
            )
            assert proc.returncode == 0, proc.stderr
            hold.set()  # credd keeps writing; whatever it wrote last must hold the CLI's value
            with busy:
                if not tally.check(path, f"m{i}", "", False, key="aws_session_token"):
                    path.write_text(USER)  # the next race starts from a whole file
            hold.clear()
    finally:
        done.set()
        thread.join()
    assert not errors, errors
    print(f"aws configure set ({len(written)} credd writes): {tally}")
    assert (tally.wiped, tally.lost_foreign) == (0, 0), str(tally)
    final = profiles(path)
    assert final["s"]["aws_access_key_id"] == make_credentials(written[-1]).access_key_id
    assert leftovers(path.parent) == []


def _child_writes_forever(path: Path) -> None:
    writer = CredentialsFileWriter(path)
    n = 0
    while True:
        n += 1
        writer.write([SectionWrite(f"s{n % 7}", "p", make_credentials(n))])


@pytest.mark.soak
def test_sigkill_mid_write_leaves_no_temp_file_after_the_next_write() -> None:
    path = seed(USER)
    writer = CredentialsFileWriter()
    rng = random.Random(8)
    left_by_kill = 0
    for _ in range(rounds(30)):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                _child_writes_forever(path)
            finally:
                os._exit(0)
        threading.Event().wait(rng.uniform(0.005, 0.05))  # a random point in its writes
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        left_by_kill += bool(leftovers(path.parent))
        writer.write([SectionWrite("after", "q", make_credentials(1))])
        assert leftovers(path.parent) == []
        assert path.read_text().startswith(USER)
        assert profiles(path)["after"]["aws_access_key_id"] == make_credentials(1).access_key_id
    print(f"{left_by_kill} of {rounds(30)} kills left a temp file; none survived the next write")


def test_stale_temp_files_of_killed_writers_are_removed_and_others_kept() -> None:
    path = seed(USER)
    stale = [".credentials.4242.ab12cd34.credd-tmp", ".credentials.k3j2abcd.credd-tmp"]
    stale.append(".credentials.credd-good.zz99yy88.credd-tmp")
    other = [
        ".credentials.json.abcdefgh.credd-tmp",
        "notes.credd-tmp",
        ".config.1.abcdefgh.credd-tmp",
    ]
    for name in stale + other:
        (path.parent / name).write_text("[s]\naws_secret_access_key = leftover\n")
    CredentialsFileWriter().write([SectionWrite("s", "p", make_credentials(1))])
    assert leftovers(path.parent) == sorted(other)


def test_botocore_reads_the_file_after_races() -> None:
    path = seed(USER)
    CredentialsFileWriter().write([SectionWrite("s", "p", make_credentials(3))])
    creds = botocore.session.Session(profile="s").get_credentials()
    assert creds.access_key == make_credentials(3).access_key_id
    assert path.read_text().startswith(USER)


# --- the last-known-good copy and credd doctor ----------------------------------------------


def doctor_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return credd(dict(os.environ), "doctor", *args)


def test_doctor_finds_a_wiped_file_and_restores_it_from_the_copy() -> None:
    path = seed(USER)
    writer = CredentialsFileWriter()
    writer.write([SectionWrite("s", "p", make_credentials(1))])
    assert by_name(doctor.check_backups(None))["credentials-file"].status == "ok"
    path.write_text("")  # wiped by a writer that truncated and died, then credd wrote anyway
    CredentialsFileWriter(clock=FakeClock()).write([SectionWrite("s", "p", make_credentials(2))])
    check = by_name(doctor.check_backups(None))["credentials-file"]
    assert check.status == "fail"
    assert "lost [default], [work]" in check.message
    assert "credd doctor --restore-files" in (check.fix or "")
    assert "AKIAUSER" not in check.message + (check.fix or "")

    done = doctor_cli("--restore-files", "--include-keys")  # both sections hold keys
    assert done.returncode == 0, done.stderr
    assert "restored [default], [work]" in done.stdout
    final = profiles(path)
    assert final["default"]["aws_access_key_id"] == "AKIAUSERDEFAULT00001"
    assert final["work"]["region"] == "eu-west-1"
    assert final["s"]["aws_access_key_id"] == make_credentials(2).access_key_id
    assert not path.with_name(path.name + SAVED_SUFFIX).exists()
    assert by_name(doctor.check_backups(None))["credentials-file"].status == "ok"
    assert leftovers(path.parent) == []


def test_restore_never_puts_back_long_term_keys_without_include_keys() -> None:
    """After ``credd keys import`` the user deletes [work] (its keys now live in the secret
    store). A later ``--restore-files`` for another lost section must not bring those keys back
    into the file: sections holding secret keys are restored only with ``--include-keys``."""
    path = seed(USER + "\n[tools]\nregion = us-west-2\n")
    CredentialsFileWriter().write([SectionWrite("s", "p", make_credentials(1))])
    text = path.read_text()
    work = text[text.index("# work account") : text.index("[tools]")]
    path.write_text(text.replace(work, "").replace("[tools]\nregion = us-west-2\n", ""))
    check = by_name(doctor.check_backups(None))["credentials-file"]
    assert "lost [work], [tools]" in check.message and "--include-keys" in (check.fix or "")

    done = doctor_cli("--restore-files")
    assert done.returncode == 0, done.stderr
    assert "restored [tools]" in done.stdout
    assert (
        "[work]" in done.stdout
        and "--include-keys" in done.stdout
        and "--accept-files" in done.stdout
    )
    assert "AKIAWORK" not in path.read_text() and "workSecret" not in path.read_text()
    assert profiles(path)["tools"]["region"] == "us-west-2"
    assert "AKIAWORK" not in done.stdout + done.stderr
    check = by_name(doctor.check_backups(None))["credentials-file"]
    assert check.status == "fail" and "lost [work]" in check.message  # still for you to decide

    done = doctor_cli("--restore-files", "--include-keys")  # you do want them back
    assert done.returncode == 0, done.stderr
    assert "restored [work]" in done.stdout
    assert profiles(path)["work"]["aws_access_key_id"] == "AKIAWORK000000000001"
    assert by_name(doctor.check_backups(None))["credentials-file"].status == "ok"


def test_doctor_accepts_sections_removed_on_purpose() -> None:
    path = seed(USER)
    CredentialsFileWriter().write([SectionWrite("s", "p", make_credentials(1))])
    path.write_text(path.read_text().replace("[work]", "[renamed-work]"))  # an editor's save
    assert by_name(doctor.check_backups(None))["credentials-file"].status == "fail"
    done = doctor_cli("--accept-files")
    assert done.returncode == 0, done.stderr
    assert by_name(doctor.check_backups(None))["credentials-file"].status == "ok"
    assert "[renamed-work]" in path.read_text() and "[work]" not in path.read_text()
    good = path.with_name(path.name + GOOD_SUFFIX)
    assert (good.stat().st_mode & 0o777) == 0o600
