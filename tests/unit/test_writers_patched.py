"""Patched commits of the credentials file (issue 9): a commit whose base is the text credd
produced last patches credd's sections into it instead of parsing the whole file again. The
result must be byte for byte what a full parse gives, foreign sections and comments untouched,
and any foreign write (the real AWS CLI here) sends the next commit back to a full parse."""

from __future__ import annotations

import os
import re
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from credd.clock import SystemClock
from credd.errors import ForeignSection
from credd.files.credentials import CredentialsFileWriter, SectionWrite
from credd.files.safewrite import sections
from credd.testing.clock import FakeClock
from tests.fixtures.files import make_credentials, run_aws_v2

COMMENTED = (
    "# my own keys: keep this comment\n"
    "[default]\n"
    "aws_access_key_id = AKIAFOREIGN000000001\n"
    "aws_secret_access_key = foreignSecret1\n"
    "   ; an indented comment inside [default]\n"
    "\n"
    "[work]   ; a comment after a header\n"
    "aws_access_key_id=AKIAFOREIGN000000002\n"
    "aws_secret_access_key=foreignSecret2\n"
    "\n"
    "# a comment between sections\n"
)
SEEDS = {
    "commented": COMMENTED,
    "crlf": COMMENTED.replace("\n", "\r\n"),
    "no final newline": COMMENTED.rstrip("\n"),
    "empty": "",
}


def cred_path() -> Path:
    return Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"])


def seed(text: str) -> Path:
    path = cred_path()
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_bytes(text.encode())
    return path


def writes(names: list[str], n: int) -> list[SectionWrite]:
    return [SectionWrite(f"{p}-credd", p, make_credentials(n + i)) for i, p in enumerate(names)]


def full_parse_of(before: bytes, batch: list[SectionWrite], scratch: Path) -> bytes:
    """What a writer that has never seen the file (so parses it in full) makes of ``before``."""
    scratch.mkdir(mode=0o700, exist_ok=True)
    other = scratch / "credentials"
    other.write_bytes(before)
    fresh = CredentialsFileWriter(other, clock=SystemClock())
    fresh.write(batch)
    assert fresh._parsed.full_parses == 1
    return other.read_bytes()


@pytest.mark.parametrize("text", SEEDS.values(), ids=list(SEEDS))
def test_patched_commits_give_exactly_what_a_full_parse_gives(text: str, tmp_path: Path) -> None:
    path = seed(text)
    writer = CredentialsFileWriter(clock=SystemClock())
    steps = [
        writes(["a", "b", "c"], 0),  # three new sections: the one full parse
        writes(["b"], 10),  # one in the middle rewritten
        writes(["d", "a"], 20),  # one new, one rewritten
        writes(["c"], 30),  # the last one
    ]
    for i, batch in enumerate(steps):
        before = path.read_bytes()
        writer.write(batch)
        assert path.read_bytes() == full_parse_of(before, batch, tmp_path / str(i))
    assert writer._parsed.full_parses == 1  # every commit after the first was patched
    final = path.read_bytes().decode()
    for line in text.splitlines():  # every foreign byte kept, in order
        assert line in final
    assert final.startswith(text.rstrip("\r\n"))


def test_patched_commits_keep_refusing_foreign_and_live_sections() -> None:
    clock = FakeClock()
    path = seed("[mine]\naws_access_key_id = AKIAFOREIGN000000001\n")
    writer = CredentialsFileWriter(clock=clock)
    writer.write([SectionWrite("shared", "p", make_credentials(1))])
    with pytest.raises(ForeignSection):  # not credd's: never written, cached or not
        writer.write([SectionWrite("mine", "p", make_credentials(2))])
    at = make_credentials(3)
    assert at.expiration is not None
    clock.set(at.expiration - timedelta(hours=1))
    writer.write([SectionWrite("shared", "p", at)])
    with pytest.raises(ForeignSection):  # credd's, but another profile's and still live
        writer.write([SectionWrite("shared", "q", make_credentials(4))])
    clock.set(at.expiration + timedelta(seconds=1))
    writer.write([SectionWrite("shared", "q", make_credentials(5))])  # expired: taken over
    assert writer._parsed.full_parses == 1
    text = path.read_text()
    assert "credd_managed_by = q" in text and make_credentials(5).access_key_id in text
    assert text.startswith("[mine]\naws_access_key_id = AKIAFOREIGN000000001\n")


@pytest.mark.integration
def test_a_write_by_the_aws_cli_between_commits_is_parsed_again_and_kept(tmp_path: Path) -> None:
    path = seed(COMMENTED)
    writer = CredentialsFileWriter(clock=SystemClock())
    writer.write(writes(["a", "b"], 0))
    proc = run_aws_v2("configure", "set", "aws_session_token", "cliToken1", "--profile", "work")
    assert proc.returncode == 0, proc.stderr
    before = path.read_bytes()
    assert b"cliToken1" in before
    batch = writes(["a"], 10)
    writer.write(batch)
    assert writer._parsed.full_parses == 2  # the CLI's text is not the one credd produced
    assert path.read_bytes() == full_parse_of(before, batch, tmp_path / "ref")


@pytest.mark.integration
def test_patched_commits_beside_the_real_aws_cli_lose_nothing(tmp_path: Path) -> None:
    """credd commits in a loop (patched while nobody else writes) while ``aws configure set``
    writes the same file; afterwards the comments are byte-identical and both sides' last
    values are there."""
    path = seed(COMMENTED)
    writer = CredentialsFileWriter(clock=SystemClock())
    done = threading.Event()
    written: list[int] = []
    errors: list[BaseException] = []

    def credd_loop() -> None:
        n = 0
        try:
            while not done.is_set():
                n += 1
                writer.write(writes(["a", "b"], 2 * n))
                written.append(2 * n)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=credd_loop)
    thread.start()
    try:
        for i in range(1, 4):
            proc = run_aws_v2(
                "configure", "set", "aws_session_token", f"cliToken{i}", "--profile", "work"
            )
            assert proc.returncode == 0, proc.stderr
    finally:
        done.set()
        thread.join()
    assert not errors, errors
    assert writer._parsed.full_parses < len(written)  # most commits were patched
    text = path.read_text()
    assert "aws_session_token = cliToken3" in text
    last = written[-1]
    assert make_credentials(last).access_key_id in text
    assert make_credentials(last + 1).access_key_id in text
    for line in COMMENTED.splitlines():
        if line.lstrip().startswith(("#", ";")) or "; a comment after" in line:
            assert text.count(line + "\n") == 1
    # what is on disk is a file credd would write again unchanged
    assert full_parse_of(path.read_bytes(), writes(["a", "b"], last), tmp_path / "r") == (
        path.read_bytes()
    )


def test_section_names_are_found_as_the_multiline_pattern_finds_them() -> None:
    data = (
        b"[a]\nx = 1\n  [b]\n\t[c] ; note\n[d\n]\nv = [not]\n[e]\r\n[ f g ]\n"
        b"key = x\n [h]]\n#[i]\n[]\n[last]"
    )
    pattern = re.compile(rb"(?m)^[ \t]*\[([^\]\r\n]*)\]")
    assert sections(data) == set(pattern.findall(data))
    assert sections(data) == {b"a", b"b", b"c", b"e", b" f g ", b"h", b"", b"last"}
