"""Reading the AWS files through botocore's loader; credd keys validated per profile."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from credd.aws import config as awsconfig
from credd.errors import ConfigError, ProfileNotFound

CONFIG = """\
# my settings
[default]
region = eu-west-1

[profile work]
credd = true
mfa_serial = arn:aws:iam::123456789012:mfa/alice
credd_session_duration = 8h
region = us-west-2

[profile lazy]
credd = yes
credd_file_profile = off

[profile bad-duration]
credd = true
credd_session_duration = 40h

[profile bad-source]
credd = true
credd_mfa_source = sms

[profile process-without-command]
credd = true
credd_mfa_source = process

[profile role]
credd = true
role_arn = arn:aws:iam::123456789012:role/r
source_profile = work

[profile off]
credd = false

[profile clash]
credd = true
credd_file_profile = work-credd

[services local]
sts =
  endpoint_url = http://127.0.0.1:1
"""

CREDENTIALS = """\
[work]
aws_access_key_id = AKIAEXAMPLEEXAMPLE01
aws_secret_access_key = secretsecretsecretsecretsecretsecret0000

[only-in-credentials]
aws_access_key_id = AKIAEXAMPLEEXAMPLE02
aws_secret_access_key = secretsecretsecretsecretsecretsecret0001
"""


@pytest.fixture
def files(clean_env: Path) -> Path:
    aws = clean_env / ".aws"
    aws.mkdir()
    (aws / "config").write_text(CONFIG)
    (aws / "credentials").write_text(CREDENTIALS)
    return aws


def test_managed_profiles_and_defaults(files: Path) -> None:
    cfg = awsconfig.load()
    work = cfg.managed["work"]
    assert work.kind == "session-token"
    assert work.duration_seconds == 8 * 3600
    assert work.mfa_serial == "arn:aws:iam::123456789012:mfa/alice"
    assert work.file_profile == "work-credd"
    assert work.region == "us-west-2"
    assert work.has_file_keys  # merged from the credentials file, as botocore does
    lazy = cfg.managed["lazy"]
    assert lazy.duration_seconds == 43200 and lazy.file_profile is None
    assert lazy.mfa_source is None and lazy.mfa_serial is None
    assert "off" not in cfg.managed and "off" not in cfg.broken
    assert "only-in-credentials" in cfg.profiles


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("bad-duration", "900 s .* to 129600 s"),
        ("bad-source", "not one of totp, process, person"),
        ("process-without-command", "no mfa_process"),
        ("clash", "also used by 'work'|is also used"),
    ],
)
def test_broken_profiles_are_reported_one_by_one(files: Path, name: str, match: str) -> None:
    cfg = awsconfig.load()
    assert "work" in cfg.managed  # the others keep working
    assert name in cfg.broken
    with pytest.raises(ConfigError, match=match):
        raise cfg.broken[name].error


def test_env_vars_name_the_files(
    files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "elsewhere.ini"
    other.write_text("[profile x]\ncredd = on\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(other))
    cfg = awsconfig.load()
    assert list(cfg.managed) == ["x"]
    assert cfg.managed["x"].has_file_keys is False
    monkeypatch.setenv("AWS_PROFILE", "x")
    assert awsconfig.profile_from_env() == "x"


def test_unparsable_file_is_a_clear_error(files: Path) -> None:
    (files / "config").write_text("[profile broken\nregion = x\n")
    with pytest.raises(ConfigError, match="cannot be parsed"):
        awsconfig.load()


def test_require_profile(files: Path) -> None:
    cfg = awsconfig.load()
    assert cfg.require_profile("work")["region"] == "us-west-2"
    with pytest.raises(ProfileNotFound, match="nobody"):
        cfg.require_profile("nobody")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("12h", 43200), ("90m", 5400), ("1h30m", 5400), ("3600", 3600), ("900s", 900)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert awsconfig.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "12x", "-5", "1.5h"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        awsconfig.parse_duration(text)


def test_no_files_at_all(clean_env: Path) -> None:
    assert not (clean_env / ".aws").exists()
    cfg = awsconfig.load()
    assert cfg.managed == {} and cfg.broken == {}
    assert os.environ["AWS_CONFIG_FILE"].endswith("config")
