"""``credd enable`` / ``credd disable`` edits of the AWS config file, on real files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import botocore.session
import pytest

from credd.errors import ConfigError, CredentialsFileError, ProfileNotFound
from credd.files.config import config_file_path, disable_profile, enable_profile
from credd.files.credentials import CredentialsFileWriter, SectionWrite
from tests.fixtures.files import make_credentials

CONFIG = (
    "# my AWS config\n"
    "[default]\n"
    "region = eu-west-1\n"
    "output=json\n"
    "\n"
    "# the account that needs MFA\n"
    "[profile dev]\n"
    "region = us-east-1\n"
    "mfa_serial   :   arn:aws:iam::123456789012:mfa/ann\n"
    "credd_session_duration=3600\n"
    "\n"
    "; next one is for terraform\n"
    "[profile ops]\n"
    "role_arn = arn:aws:iam::123456789012:role/ops\n"
    "source_profile = dev\n"
    "[services local]\n"
    "s3 =\n"
    "  endpoint_url = http://127.0.0.1:5000\n"
)


def cfg_path() -> Path:
    return Path(os.environ["AWS_CONFIG_FILE"])


def seed(text: str, mode: int = 0o600) -> Path:
    path = cfg_path()
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_bytes(text.encode())
    path.chmod(mode)
    return path


def profile_config(name: str) -> dict[str, str]:
    profiles: dict[str, dict[str, str]] = botocore.session.Session().full_config["profiles"]
    return profiles[name]


def test_path_honours_env() -> None:
    assert config_file_path({"HOME": "/h", "AWS_CONFIG_FILE": "~/c"}) == Path("/h/c")
    assert config_file_path({"HOME": "/h"}) == Path("/h/.aws/config")


def test_enable_adds_after_last_key_and_updates_in_place() -> None:
    path = seed(CONFIG)
    got = enable_profile(
        "dev",
        {"credd_mfa_source": "totp", "credd_session_duration": "43200", "mfa_serial": "arn:x"},
    )
    assert got == path
    assert path.read_text() == CONFIG.replace(
        "mfa_serial   :   arn:aws:iam::123456789012:mfa/ann\ncredd_session_duration=3600\n",
        "mfa_serial   :   arn:x\n"
        "credd_session_duration=43200\n"
        "credd = true\n"
        "credd_mfa_source = totp\n",
    )
    assert profile_config("dev")["credd"] == "true"
    assert profile_config("dev")["credd_session_duration"] == "43200"


def test_enable_is_idempotent_and_does_not_rewrite() -> None:
    path = seed(CONFIG)
    enable_profile("ops", {"credd_file_profile": "ops-session"})
    before = path.stat()
    text = path.read_text()
    enable_profile("ops", {"credd_file_profile": "ops-session"})
    after = path.stat()
    assert path.read_text() == text
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_enable_then_disable_gives_back_the_same_bytes() -> None:
    path = seed(CONFIG)
    enable_profile("ops")
    assert "source_profile = dev\ncredd = true\n[services local]" in path.read_text()
    assert disable_profile("ops") is True
    assert path.read_text() == CONFIG


def test_disable_keeps_other_credd_keys_and_reports_state() -> None:
    path = seed(CONFIG)
    enable_profile("dev", {"credd_mfa_source": "person"})
    assert disable_profile("dev") is True
    text = path.read_text()
    assert "credd = " not in text
    assert "credd_mfa_source = person" in text
    assert "credd_session_duration=3600" in text
    before = path.stat()
    assert disable_profile("dev") is False
    assert path.stat().st_mtime_ns == before.st_mtime_ns


def test_disable_removes_a_false_key_and_says_it_was_not_enabled() -> None:
    path = seed("[profile x]\ncredd = false\nregion = a\n")
    assert disable_profile("x") is False
    assert path.read_text() == "[profile x]\nregion = a\n"


def test_default_profile_uses_default_section() -> None:
    path = seed(CONFIG)
    enable_profile("default")
    assert "[default]\nregion = eu-west-1\noutput=json\ncredd = true\n\n" in path.read_text()
    seed("[profile default]\nregion = x\n")
    enable_profile("default")
    assert path.read_text() == "[profile default]\nregion = x\ncredd = true\n"


def test_missing_profile_not_found_and_nothing_written(aws_dir: Path) -> None:
    with pytest.raises(ProfileNotFound) as err:
        enable_profile("nope")
    assert "--create" in (err.value.hint or "")
    assert not aws_dir.exists()
    path = seed(CONFIG)
    with pytest.raises(ProfileNotFound):
        enable_profile("nope")
    with pytest.raises(ProfileNotFound):
        disable_profile("nope")
    assert path.read_text() == CONFIG


def test_create_makes_private_file_and_dir(aws_dir: Path) -> None:
    path = enable_profile("new", {"credd_mfa_source": "person"}, create=True)
    assert path.read_text() == "[profile new]\ncredd = true\ncredd_mfa_source = person\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(aws_dir.stat().st_mode) == 0o700


def test_section_created_when_profile_is_in_credentials_file() -> None:
    creds = Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"])
    creds.parent.mkdir(mode=0o700)
    creds.write_text("[iam-user]\naws_access_key_id = AKIA1\naws_secret_access_key = s\n")
    path = seed(CONFIG)
    enable_profile("iam-user")
    assert path.read_text() == CONFIG + "\n[profile iam-user]\ncredd = true\n"
    assert profile_config("iam-user")["credd"] == "true"


def test_credd_written_section_does_not_count_as_a_profile() -> None:
    CredentialsFileWriter().write([SectionWrite("dev-session", "dev", make_credentials())])
    seed(CONFIG)
    with pytest.raises(ProfileNotFound):
        enable_profile("dev-session")


def test_malformed_credentials_file_is_reported() -> None:
    creds = Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"])
    creds.parent.mkdir(mode=0o700)
    creds.write_text("key-without-section = 1\n")
    seed(CONFIG)
    with pytest.raises(CredentialsFileError):
        enable_profile("other")


def test_existing_mode_kept() -> None:
    path = seed(CONFIG, 0o644)
    enable_profile("dev")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_malformed_config_untouched() -> None:
    bad = CONFIG + "this line has no delimiter\n"
    path = seed(bad)
    with pytest.raises(ConfigError, match="line 19") as err:
        enable_profile("dev")
    assert "no delimiter" not in str(err.value)
    assert path.read_text() == bad
    with pytest.raises(ConfigError):
        disable_profile("dev")


def test_symlinked_config_written_through(tmp_path: Path) -> None:
    target = tmp_path / "dotfiles-config"
    target.write_text(CONFIG)
    link = cfg_path()
    link.parent.mkdir()
    link.symlink_to(target)
    enable_profile("ops")
    assert link.is_symlink()
    assert "source_profile = dev\ncredd = true\n" in target.read_text()


def test_crlf_config_gets_crlf_lines() -> None:
    path = seed("[profile a]\r\nregion = x\r\n")
    enable_profile("a", {"credd_mfa_source": "totp"})
    assert (
        path.read_bytes()
        == b"[profile a]\r\nregion = x\r\ncredd = true\r\ncredd_mfa_source = totp\r\n"
    )


def test_empty_value_key_updated_keeps_spacing() -> None:
    path = seed("[profile a]\ncredd =\nregion = x\n")
    enable_profile("a")
    assert path.read_text() == "[profile a]\ncredd = true\nregion = x\n"


@pytest.mark.parametrize(
    ("name", "settings"),
    [
        ("bad name", None),
        ("a]b", None),
        ("ok", {"bad key": "x"}),
        ("ok", {"k": "two\nlines"}),
    ],
)
def test_bad_input_refused(name: str, settings: dict[str, str] | None) -> None:
    path = seed("[profile ok]\nregion = x\n")
    with pytest.raises(ConfigError):
        enable_profile(name, settings, create=True)
    assert path.read_text() == "[profile ok]\nregion = x\n"
