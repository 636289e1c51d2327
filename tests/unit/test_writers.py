"""The credentials-file writer against real files, real processes, botocore and the AWS CLI v2."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import botocore.session
import pytest

from credd.errors import ConfigError, CredentialsFileError, ForeignSection
from credd.files.credentials import (
    MARKER_COMMENT,
    MAX_ATTEMPTS,
    CredentialsFileWriter,
    SectionWrite,
    credentials_file_path,
)
from credd.models import Credentials
from credd.testing.clock import FakeClock
from tests.fixtures.files import (
    REPO,
    SAMPLE_CREDENTIALS,
    beside_credd,
    make_credentials,
    run_aws_v2,
    spawn_writer,
)

UTC = timezone.utc


def cred_path() -> Path:
    return Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"])


def seed(text: str, mode: int = 0o600) -> Path:
    path = cred_path()
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_bytes(text.encode())
    path.chmod(mode)
    return path


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".credd-tmp"))


def botocore_session(profile: str) -> botocore.session.Session:
    return botocore.session.Session(profile=profile)


# --- where the file is -------------------------------------------------------------------


def test_path_honours_env_with_tilde_and_vars() -> None:
    env = {"HOME": "/home/ann", "AWS_SHARED_CREDENTIALS_FILE": "~/x/creds", "X": "y"}
    assert credentials_file_path(env) == Path("/home/ann/x/creds")
    env["AWS_SHARED_CREDENTIALS_FILE"] = "/tmp/$X/c"
    assert credentials_file_path(env) == Path("/tmp/y/c")
    assert credentials_file_path({"HOME": "/home/bob"}) == Path("/home/bob/.aws/credentials")


def test_default_writer_path_follows_environment(clean_env: Path) -> None:
    assert CredentialsFileWriter().path == clean_env / ".aws" / "credentials"


# --- what is written ---------------------------------------------------------------------


def test_new_file_exact_content_modes_and_z_expiry(aws_dir: Path) -> None:
    creds = Credentials(
        "ASIAEXAMPLE000000001",
        "s3cr3t/Example+Secret",
        "tok/en==",
        datetime(2026, 3, 1, 17, 30, 5, 123456, tzinfo=UTC),
    )
    CredentialsFileWriter().write(
        [SectionWrite("dev-session", "dev", creds, {"region": "us-east-1"})]
    )
    path = aws_dir / "credentials"
    assert path.read_text() == (
        "[dev-session]\n"
        f"{MARKER_COMMENT}\n"
        "aws_access_key_id = ASIAEXAMPLE000000001\n"
        "aws_secret_access_key = s3cr3t/Example+Secret\n"
        "aws_session_token = tok/en==\n"
        "region = us-east-1\n"
        "credd_managed_by = dev\n"
        "credd_expiration = 2026-03-01T17:30:05Z\n"
    )
    assert stat.S_IMODE(aws_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lock = aws_dir / "credentials.credd-lock"
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600
    assert leftovers(aws_dir) == []


def test_keys_without_token_or_expiry() -> None:
    seed("")
    creds = Credentials("AKIAPLAIN00000000001", "plainSecret")
    CredentialsFileWriter().write([SectionWrite("plain", "p", creds)])
    text = cred_path().read_text()
    assert "aws_session_token" not in text
    assert "credd_expiration" not in text
    assert CredentialsFileWriter().owned_sections() == {"plain": "p"}


@pytest.mark.parametrize("name", sorted(SAMPLE_CREDENTIALS))
def test_every_foreign_byte_kept_through_write_update_remove(name: str) -> None:
    original = SAMPLE_CREDENTIALS[name]
    path = seed(original)
    writer = CredentialsFileWriter()
    writer.write([SectionWrite("credd-a", "a", make_credentials(1))])
    first = path.read_text()
    assert first.startswith(original)
    added = first[len(original) :]
    assert added.startswith("[credd-a]\n" if not original else "\n[credd-a]\n")

    writer.write(
        [
            SectionWrite("credd-a", "a", make_credentials(2), {"region": "eu-central-1"}),
            SectionWrite("credd-b", "b", make_credentials(3)),
        ]
    )
    second = path.read_text()
    assert second.startswith(original)
    assert make_credentials(1).secret_access_key not in second
    assert second.count("[credd-a]") == 1
    assert second.index("[credd-a]") < second.index("[credd-b]")

    assert writer.remove(["credd-a", "credd-b"]) == ["credd-a", "credd-b"]
    assert path.read_text() == original


def test_update_in_the_middle_keeps_position_and_neighbours() -> None:
    before = (
        "[default]\n"
        "aws_access_key_id = AKIAUSER000000000001\n"
        "\n"
        "[mine]\n"
        f"{MARKER_COMMENT}\n"
        "aws_access_key_id = ASIAOLD0000000000001\n"
        "aws_secret_access_key = oldSecret\n"
        "aws_session_token = oldToken\n"
        "region = us-west-2\n"
        "credd_managed_by = p\n"
        "credd_expiration = 2026-01-01T00:00:00Z\n"
        "\n"
        "# user comment leading into the next section\n"
        "[later]\n"
        "aws_access_key_id = AKIALATER00000000001\n"
    )
    path = seed(before)
    creds = make_credentials(7)
    CredentialsFileWriter().write([SectionWrite("mine", "p", creds)])
    assert path.read_text() == (
        "[default]\n"
        "aws_access_key_id = AKIAUSER000000000001\n"
        "\n"
        "[mine]\n"
        f"{MARKER_COMMENT}\n"
        f"aws_access_key_id = {creds.access_key_id}\n"
        f"aws_secret_access_key = {creds.secret_access_key}\n"
        f"aws_session_token = {creds.session_token}\n"
        "credd_managed_by = p\n"
        "credd_expiration = 2026-01-02T00:00:00Z\n"
        "\n"
        "# user comment leading into the next section\n"
        "[later]\n"
        "aws_access_key_id = AKIALATER00000000001\n"
    )
    CredentialsFileWriter().remove(["mine"])
    assert path.read_text() == (
        "[default]\n"
        "aws_access_key_id = AKIAUSER000000000001\n"
        "\n"
        "# user comment leading into the next section\n"
        "[later]\n"
        "aws_access_key_id = AKIALATER00000000001\n"
    )


def test_crlf_file_gets_crlf_lines() -> None:
    original = "[default]\r\naws_access_key_id = AKIAUSER000000000001\r\n"
    path = seed(original)
    CredentialsFileWriter().write([SectionWrite("s", "p", make_credentials())])
    data = path.read_bytes().decode()
    assert data.startswith(original + "\r\n[s]\r\n")
    assert "\n" not in data.replace("\r\n", "")


def test_file_without_final_newline_is_extended_not_changed() -> None:
    path = seed("[default]\nregion = eu-west-1")
    CredentialsFileWriter().write([SectionWrite("s", "p", make_credentials())])
    assert path.read_text().startswith("[default]\nregion = eu-west-1\n[s]\n")


# --- what is refused ---------------------------------------------------------------------


def test_foreign_section_refused_and_file_identical() -> None:
    original = SAMPLE_CREDENTIALS["typical"]
    path = seed(original)
    before = path.stat()
    with pytest.raises(ForeignSection) as err:
        CredentialsFileWriter().write([SectionWrite("work", "work", make_credentials())])
    assert "[work]" in str(err.value)
    assert "credd_file_profile" in (err.value.hint or "")
    assert err.value.fields["sections"] == ["work"]
    assert path.read_bytes() == original.encode()
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_foreign_in_batch_others_still_written() -> None:
    original = SAMPLE_CREDENTIALS["typical"]
    path = seed(original)
    writer = CredentialsFileWriter()
    with pytest.raises(ForeignSection) as err:
        writer.write(
            [
                SectionWrite("default", "x", make_credentials(1)),
                SectionWrite("fresh", "y", make_credentials(2)),
            ]
        )
    assert err.value.fields["sections"] == ["default"]
    text = path.read_text()
    assert text.startswith(original)
    assert writer.owned_sections() == {"fresh": "y"}
    assert "AKIAUSERDEFAULT00001" in text


def test_section_of_another_live_profile_refused_expired_one_taken_over() -> None:
    seed("")
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    writer = CredentialsFileWriter(clock=clock)
    writer.write([SectionWrite("shared", "alpha", make_credentials(1, hours=1))])
    with pytest.raises(ForeignSection, match="alpha"):
        writer.write([SectionWrite("shared", "beta", make_credentials(2))])
    assert writer.owned_sections() == {"shared": "alpha"}
    clock.advance(14 * 3600)  # alpha's credentials expired at 2026-01-01T13:00Z
    writer.write([SectionWrite("shared", "beta", make_credentials(3))])
    assert writer.owned_sections() == {"shared": "beta"}


@pytest.mark.parametrize("bad", ["", " lead", "a]b", "new\nline", "DEFAULT", "[x"])
def test_bad_section_names_refused_before_touching(bad: str) -> None:
    path = seed("[default]\nregion = x\n")
    with pytest.raises(ConfigError):
        CredentialsFileWriter().write([SectionWrite(bad, "p", make_credentials())])
    assert path.read_text() == "[default]\nregion = x\n"


def test_bad_extra_keys_and_duplicates_refused() -> None:
    seed("")
    writer = CredentialsFileWriter()
    with pytest.raises(ConfigError, match="writes it itself"):
        writer.write([SectionWrite("s", "p", make_credentials(), {"aws_session_token": "x"})])
    with pytest.raises(ConfigError, match="line break"):
        writer.write([SectionWrite("s", "p", make_credentials(), {"region": "a\nb"})])
    with pytest.raises(ConfigError, match="same section"):
        writer.write(
            [SectionWrite("s", "p", make_credentials()), SectionWrite("s", "q", make_credentials())]
        )
    assert cred_path().read_text() == ""


def test_malformed_file_untouched_and_error_has_no_content() -> None:
    secret_line = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETLINE"
    original = f"[default]\naws_access_key_id = AKIA1\n{secret_line}\n"
    path = seed(original, 0o644)
    with pytest.raises(CredentialsFileError) as err:
        CredentialsFileWriter().write([SectionWrite("s", "p", make_credentials())])
    assert "line 3" in str(err.value)
    assert secret_line not in str(err.value)
    assert path.read_text() == original
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert leftovers(path.parent) == []
    with pytest.raises(CredentialsFileError):
        CredentialsFileWriter().owned_sections()


@pytest.mark.parametrize("text", ["[a]\nk = 1\n[a]\nk = 2\n", "k = 1\n[a]\n", "\ufeff[a]\nk = 1\n"])
def test_other_malformed_files_refused(text: str) -> None:
    path = seed(text)
    with pytest.raises(CredentialsFileError, match="cannot be parsed"):
        CredentialsFileWriter().write([SectionWrite("s", "p", make_credentials())])
    assert path.read_bytes() == text.encode()


def test_non_utf8_file_untouched() -> None:
    path = cred_path()
    path.parent.mkdir()
    path.write_bytes(b"[default]\nregion = \xff\xfe\n")
    with pytest.raises(CredentialsFileError, match="UTF-8"):
        CredentialsFileWriter().write([SectionWrite("s", "p", make_credentials())])
    assert path.read_bytes() == b"[default]\nregion = \xff\xfe\n"


# --- modes, links, failures ------------------------------------------------------------


def test_rewrite_of_0644_file_becomes_0600() -> None:
    path = seed(SAMPLE_CREDENTIALS["typical"], 0o644)
    CredentialsFileWriter().write([SectionWrite("s", "p", make_credentials())])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_symlink_written_through_to_target(tmp_path: Path) -> None:
    real_dir = tmp_path / "dotfiles"
    real_dir.mkdir()
    target = real_dir / "aws-credentials"
    target.write_text(SAMPLE_CREDENTIALS["typical"])
    link = cred_path()
    link.parent.mkdir()
    link.symlink_to(target)
    writer = CredentialsFileWriter()
    writer.write([SectionWrite("s", "p", make_credentials())])
    assert link.is_symlink()
    assert os.readlink(link) == str(target)
    assert target.read_text().startswith(SAMPLE_CREDENTIALS["typical"] + "\n[s]\n")
    assert (real_dir / "aws-credentials.credd-lock").exists()
    assert leftovers(real_dir) == [] and leftovers(link.parent) == []
    assert writer.owned_sections() == {"s": "p"}


def test_failed_write_leaves_no_temp_file_and_original_intact() -> None:
    """A real I/O failure: the write runs in a child limited to files of 200 bytes (EFBIG)."""
    original = SAMPLE_CREDENTIALS["typical"]
    path = seed(original)
    code = (
        "import resource, signal, sys\n"
        "from credd.files.credentials import CredentialsFileWriter, SectionWrite\n"
        "from credd.errors import CredentialsFileError\n"
        "from tests.fixtures.files import make_credentials\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))\n"
        "try:\n"
        "    CredentialsFileWriter().write([SectionWrite('s', 'p', make_credentials())])\n"
        "except CredentialsFileError as e:\n"
        "    print(e.code, e)\n"
        "    sys.exit(3)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.startswith("credentials_file_error cannot write")
    assert path.read_text() == original
    assert leftovers(path.parent) == []


# --- locking and concurrency -----------------------------------------------------------


def test_lock_wait_is_bounded_with_clear_error() -> None:
    path = seed(SAMPLE_CREDENTIALS["typical"])
    clock = FakeClock()
    fd = os.open(path.with_name("credentials.credd-lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(CredentialsFileError, match="held the lock") as err:
            CredentialsFileWriter(lock_timeout=2, clock=clock).write(
                [SectionWrite("s", "p", make_credentials())]
            )
        assert "fuser" in (err.value.hint or "")
        assert sum(clock.slept) >= 2
    finally:
        os.close(fd)
    assert path.read_text() == SAMPLE_CREDENTIALS["typical"]
    CredentialsFileWriter(clock=clock).write([SectionWrite("s", "p", make_credentials())])
    assert "[s]" in path.read_text()


def test_concurrent_processes_lose_nothing() -> None:
    path = seed(SAMPLE_CREDENTIALS["typical"])
    count = 25
    procs = [spawn_writer(path, f"proc-{i}", count) for i in range(4)]
    for proc in procs:
        _, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err
    text = path.read_text()
    assert text.startswith(SAMPLE_CREDENTIALS["typical"])
    owned = CredentialsFileWriter().owned_sections()
    assert owned == {f"proc-{i}": f"owner-proc-{i}" for i in range(4)}
    for i in range(4):
        creds = botocore_session(f"proc-{i}").get_credentials()
        assert creds.access_key == make_credentials(count).access_key_id
    assert leftovers(path.parent) == []


def test_change_by_unlocked_writer_midway_is_merged_not_lost() -> None:
    path = seed(SAMPLE_CREDENTIALS["typical"])
    writer = CredentialsFileWriter()
    calls: list[threading.Thread | None] = []

    def append() -> None:
        with open(path, "a") as fh:  # an editor / tool that does not lock
            fh.write("\n[added-by-editor]\naws_access_key_id = AKIAEDITOR0000000001\n")

    def editor_saves(target: Path) -> None:
        calls.append(beside_credd(target, append) if not calls else None)

    writer.before_commit = editor_saves
    writer.write([SectionWrite("s", "p", make_credentials())])
    assert calls[0] is not None and not calls[0].is_alive()
    assert len(calls) == 2
    text = path.read_text()
    assert "[added-by-editor]" in text
    assert writer.owned_sections() == {"s": "p"}


@pytest.mark.integration
def test_change_by_real_aws_cli_midway_is_merged() -> None:
    path = seed(SAMPLE_CREDENTIALS["typical"])
    writer = CredentialsFileWriter()
    calls: list[threading.Thread | None] = []
    procs: list[subprocess.CompletedProcess[str]] = []

    def cli() -> None:
        procs.append(
            run_aws_v2("configure", "set", "aws_access_key_id", "AKIACLI", "--profile", "cli")
        )

    def cli_sets(target: Path) -> None:
        calls.append(beside_credd(target, cli) if not calls else None)

    writer.before_commit = cli_sets
    writer.write([SectionWrite("s", "p", make_credentials())])
    assert calls[0] is not None
    calls[0].join()
    assert procs[0].returncode == 0, procs[0].stderr
    assert len(calls) == 2
    assert botocore_session("cli").full_config["profiles"]["cli"]["aws_access_key_id"] == "AKIACLI"
    assert path.read_text().startswith(SAMPLE_CREDENTIALS["typical"])
    assert writer.owned_sections() == {"s": "p"}


def test_file_that_keeps_changing_gives_up_without_writing() -> None:
    path = seed("[default]\nregion = a\n")
    writer = CredentialsFileWriter()
    calls: list[threading.Thread] = []

    def churn(target: Path) -> None:
        text = f"[default]\nregion = r{len(calls) + 1}\n"
        calls.append(beside_credd(target, lambda: target.write_text(text)))

    writer.before_commit = churn
    with pytest.raises(CredentialsFileError, match="kept changing"):
        writer.write([SectionWrite("s", "p", make_credentials())])
    for thread in calls:
        thread.join()
    assert len(calls) == MAX_ATTEMPTS
    assert path.read_text() == f"[default]\nregion = r{MAX_ATTEMPTS}\n"


# --- remove / owned_sections ------------------------------------------------------------


def test_remove_only_owned_and_of_that_owner() -> None:
    original = SAMPLE_CREDENTIALS["continuation"]
    path = seed(original)
    writer = CredentialsFileWriter()
    writer.write(
        [
            SectionWrite("a", "alpha", make_credentials(1)),
            SectionWrite("b", "beta", make_credentials(2)),
        ]
    )
    assert writer.remove(["a", "b", "missing", "default"], owner="alpha") == ["a"]
    assert writer.owned_sections() == {"b": "beta"}
    assert writer.remove(["foreign-written-by-another-tool"]) == []
    assert writer.remove(["b"]) == ["b"]
    assert path.read_text() == original


def test_remove_and_owned_on_missing_file(aws_dir: Path) -> None:
    writer = CredentialsFileWriter()
    assert writer.owned_sections() == {}
    assert writer.remove(["x"]) == []
    assert not aws_dir.exists()


# --- real readers -----------------------------------------------------------------------


def test_botocore_reads_written_section_and_its_region() -> None:
    seed(SAMPLE_CREDENTIALS["typical"])
    creds = make_credentials(5)
    CredentialsFileWriter().write(
        [SectionWrite("dev-session", "dev", creds, {"region": "ap-south-1"})]
    )
    session = botocore_session("dev-session")
    got = session.get_credentials()
    assert (got.access_key, got.secret_key, got.token) == (
        creds.access_key_id,
        creds.secret_access_key,
        creds.session_token,
    )
    # Session.full_config merges credentials-file sections into the profiles: region is honoured.
    assert session.get_config_variable("region") == "ap-south-1"
    assert botocore_session("work").get_credentials().access_key == "AKIAWORK000000000001"


@pytest.mark.integration
def test_aws_cli_v2_reads_written_section() -> None:
    seed(SAMPLE_CREDENTIALS["odd_spacing"])
    creds = make_credentials(6)
    CredentialsFileWriter().write(
        [SectionWrite("cli-session", "dev", creds, {"region": "eu-north-1"})]
    )
    got = run_aws_v2("configure", "get", "aws_access_key_id", "--profile", "cli-session")
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == creds.access_key_id
    region = run_aws_v2("configure", "get", "region", "--profile", "cli-session")
    assert region.stdout.strip() == "eu-north-1"
    exported = run_aws_v2("configure", "export-credentials", "--profile", "cli-session")
    assert exported.returncode == 0, exported.stderr
    data = json.loads(exported.stdout)
    assert data["AccessKeyId"] == creds.access_key_id
    assert data["SecretAccessKey"] == creds.secret_access_key
    assert data["SessionToken"] == creds.session_token


# --- secrets ----------------------------------------------------------------------------


def test_no_secret_in_any_log_record_or_error(
    caplog: pytest.LogCaptureFixture, creds_factory: Callable[..., Credentials]
) -> None:
    caplog.set_level(logging.DEBUG)
    seed(SAMPLE_CREDENTIALS["typical"])
    writer = CredentialsFileWriter()
    creds = [creds_factory(i) for i in range(1, 4)]
    writer.write([SectionWrite("s1", "p", creds[0]), SectionWrite("s2", "q", creds[1])])
    writer.before_commit = lambda t: None
    with pytest.raises(ForeignSection) as err:
        writer.write([SectionWrite("s1", "p", creds[2]), SectionWrite("work", "w", creds[2])])
    writer.remove(["s1", "s2"])
    assert caplog.records, "the writer logs what it does"
    logged = "\n".join(r.getMessage() for r in caplog.records) + str(err.value) + repr(err.value)
    for c in creds:
        assert c.secret_access_key not in logged
        assert c.session_token is not None and c.session_token not in logged
        assert c.access_key_id not in logged
    assert repr(SectionWrite("s", "p", creds[0])).count(creds[0].secret_access_key) == 0
