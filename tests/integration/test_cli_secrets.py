"""credd keys / totp / secrets commands, on a real gnome-keyring Secret Service."""

from __future__ import annotations

import argparse
import io
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from credd.cli.io import Io
from credd.cli.secrets import register
from tests.fixtures.keyring import KeyringEnv

REPO = Path(__file__).resolve().parents[2]
KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
SECRETS = (SECRET, SEED, SEED.lower())

MAIN = """
import argparse, sys
from credd.cli.secrets import register
parser = argparse.ArgumentParser(prog="credd")
register(parser.add_subparsers(dest="command", required=True))
args = parser.parse_args()
sys.exit(args.func(args))
"""


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="credd")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


class Tty(io.StringIO):
    """A stdin that says it is a terminal (the prompts themselves are seams)."""

    def isatty(self) -> bool:
        return True


class Run:
    """Run a command through the parser and handler with captured Io."""

    def __init__(self, keyring_env: KeyringEnv) -> None:
        self.keyring_env = keyring_env
        self.stdout = io.StringIO()
        self.stderr = io.StringIO()
        self.asked: list[str] = []

    def __call__(
        self,
        argv: list[str],
        stdin: io.StringIO | None = None,
        answers: dict[str, str] | None = None,
    ) -> int:
        self.stdout, self.stderr = io.StringIO(), io.StringIO()
        answers = answers or {}

        def ask(text: str) -> str:
            self.asked.append(text)
            return next(v for k, v in answers.items() if k in text)

        args = make_parser().parse_args(argv)
        code: int = args.func(
            args,
            Io(
                stdin=stdin if stdin is not None else io.StringIO(""),
                stdout=self.stdout,
                stderr=self.stderr,
                prompt=ask,
                getpass=ask,
                store_factory=self.keyring_env.store,
            ),
        )
        for secret in SECRETS:
            assert secret not in self.stdout.getvalue() + self.stderr.getvalue()
        return code


@pytest.fixture
def run(keyring_env: KeyringEnv) -> Run:
    return Run(keyring_env)


def child_env(extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **extra, "PYTHONPATH": str(REPO)}


# -- the parser ------------------------------------------------------------------------------


def _walk(parser: argparse.ArgumentParser, path: str) -> list[tuple[str, argparse.Action]]:
    found: list[tuple[str, argparse.Action]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                found.append((f"{path} {choice.dest}", choice))
            for name, sub in action.choices.items():
                found.extend(_walk(sub, f"{path} {name}"))
        elif not isinstance(action, argparse._HelpAction):
            found.append((f"{path} {action.dest}", action))
    return found


def test_every_command_and_option_has_help() -> None:
    parser = make_parser()
    items = _walk(parser, "credd")
    names = {name for name, _ in items}
    for expected in (
        "credd keys", "credd keys set", "credd keys import", "credd keys delete",
        "credd totp", "credd totp set", "credd totp delete", "credd secrets check",
        "credd keys set stdin", "credd keys import from_section", "credd totp set stdin",
    ):  # fmt: skip
        assert expected in names
    for name, action in items:
        if name.endswith(("keys_command", "totp_command", "secrets_command")):
            continue
        assert action.help, f"{name} has no help text"


@pytest.mark.parametrize(
    "argv",
    [
        ["keys", "set", "p", KEY_ID, SECRET],
        ["keys", "set", "p", "--secret", SECRET],
        ["keys", "set", "p", "--secret-access-key", SECRET],
        ["totp", "set", "p", SEED],
        ["totp", "set", "p", "--seed", SEED],
        ["totp", "code", "p"],
    ],
)
def test_secrets_cannot_be_given_on_argv(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        make_parser().parse_args(argv)
    assert exit_.value.code == 2
    assert SECRET not in capsys.readouterr().out


# -- keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given",
    [
        f"{KEY_ID}\n{SECRET}\n",
        f"\n  {KEY_ID}  \r\n{SECRET}\r\n\n",
        json.dumps({"AccessKeyId": KEY_ID, "SecretAccessKey": SECRET}),
        json.dumps({"Version": 1, "AccessKeyId": KEY_ID, "SecretAccessKey": SECRET}),
    ],
)
def test_keys_set_from_stdin(run: Run, keyring_env: KeyringEnv, given: str) -> None:
    assert run(["keys", "set", "work", "--stdin"], stdin=io.StringIO(given)) == 0
    assert "...MPLE" in run.stdout.getvalue()
    assert "SecretService" in run.stdout.getvalue()
    creds = keyring_env.store().get_long_term_keys("work")
    assert creds is not None and (creds.access_key_id, creds.secret_access_key) == (KEY_ID, SECRET)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (f"{KEY_ID}\n", "expected two lines"),
        (f"{KEY_ID}\n{SECRET}\nextra\n", "expected two lines"),
        ("", "standard input is empty"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected two lines"),
        (json.dumps({"AccessKeyId": KEY_ID, "SecretAccessKey": SECRET, "SessionToken": "t"}),
         "temporary"),
        (json.dumps({"AccessKeyId": KEY_ID}), "AccessKeyId and SecretAccessKey"),
        (f"ASIAIOSFODNN7EXAMPLE\n{SECRET}\n", "temporary"),
        (f"{KEY_ID}\n{SECRET} and more\n", "not valid"),
    ],
)  # fmt: skip
def test_keys_set_bad_stdin(run: Run, keyring_env: KeyringEnv, given: str, message: str) -> None:
    assert run(["keys", "set", "work", "--stdin"], stdin=io.StringIO(given)) == 2
    err = run.stderr.getvalue()
    assert message in err and err.startswith("credd: ") and err.count("\n") == 1
    assert keyring_env.secret_service.items() == []


def test_keys_set_prompts_on_a_terminal(run: Run, keyring_env: KeyringEnv) -> None:
    answers = {"access key id": KEY_ID, "secret access key": SECRET}
    assert run(["keys", "set", "work"], stdin=Tty(), answers=answers) == 0
    assert run.asked == ["AWS access key id: ", "AWS secret access key (not shown): "]
    creds = keyring_env.store().get_long_term_keys("work")
    assert creds is not None and creds.secret_access_key == SECRET


def test_keys_set_bad_key_id_is_refused_before_asking_for_the_secret(run: Run) -> None:
    answers = {"access key id": "nope", "secret access key": SECRET}
    assert run(["keys", "set", "work"], stdin=Tty(), answers=answers) == 2
    assert run.asked == ["AWS access key id: "]


def test_keys_set_without_terminal_or_stdin_flag(run: Run) -> None:
    assert run(["keys", "set", "work"], stdin=io.StringIO(f"{KEY_ID}\n{SECRET}\n")) == 2
    assert "pass --stdin" in run.stderr.getvalue()
    assert run.asked == []


def test_keys_set_on_a_locked_keyring_fails_before_prompting(
    run: Run, keyring_env: KeyringEnv
) -> None:
    keyring_env.secret_service.lock()
    answers = {"access key id": KEY_ID, "secret access key": SECRET}
    assert run(["keys", "set", "work"], stdin=Tty(), answers=answers) == 6
    assert run.asked == []
    assert "locked" in run.stderr.getvalue() and "unlock your keyring" in run.stderr.getvalue()
    assert run(["totp", "set", "work"], stdin=Tty(), answers={"seed": SEED}) == 6
    assert run.asked == []


def test_keys_delete(run: Run, keyring_env: KeyringEnv) -> None:
    keyring_env.store().set_long_term_keys("work", KEY_ID, SECRET)
    assert run(["keys", "delete", "work"]) == 0
    assert "Deleted" in run.stdout.getvalue()
    assert keyring_env.store().get_long_term_keys("work") is None
    assert run(["keys", "delete", "work"]) == 0
    assert "nothing to delete" in run.stdout.getvalue()


# -- keys import -----------------------------------------------------------------------------

CREDENTIALS = f"""# my keys, do not lose this comment
[work]
aws_access_key_id = {KEY_ID}
aws_secret_access_key = {SECRET}

[old-name] ; another comment
aws_access_key_id = AKIAZZZZZZZZZZZZZZZZ
aws_secret_access_key = {SECRET[::-1]}

[temp]
aws_access_key_id = ASIAIOSFODNN7EXAMPLE
aws_secret_access_key = {SECRET}
aws_session_token = token

[empty]
region = eu-west-1
"""


@pytest.fixture
def credentials_file(clean_env: Path) -> Path:
    path = Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(CREDENTIALS)
    path.chmod(0o600)
    return path


def test_keys_import_copies_and_leaves_the_file_alone(
    run: Run, keyring_env: KeyringEnv, credentials_file: Path
) -> None:
    before = credentials_file.read_bytes(), credentials_file.stat().st_mtime_ns
    assert run(["keys", "import", "work"]) == 0
    assert (credentials_file.read_bytes(), credentials_file.stat().st_mtime_ns) == before
    creds = keyring_env.store().get_long_term_keys("work")
    assert creds is not None and (creds.access_key_id, creds.secret_access_key) == (KEY_ID, SECRET)
    out = run.stdout.getvalue()
    assert str(credentials_file) in out and "still in" in out
    assert "aws_secret_access_key lines of [work]" in out
    assert "take precedence over credential_process" in out


def test_keys_import_from_another_section(
    run: Run, keyring_env: KeyringEnv, credentials_file: Path
) -> None:
    assert run(["keys", "import", "work", "--from-section", "old-name"]) == 0
    creds = keyring_env.store().get_long_term_keys("work")
    assert creds is not None and creds.secret_access_key == SECRET[::-1]
    assert "precedence" not in run.stdout.getvalue()


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["keys", "import", "nope"], 3, "no section [nope]"),
        (["keys", "import", "work", "--from-section", "temp"], 3, "temporary credentials"),
        (["keys", "import", "work", "--from-section", "empty"], 3, "has no aws_access_key_id"),
    ],
)
def test_keys_import_errors(
    run: Run, keyring_env: KeyringEnv, credentials_file: Path,
    argv: list[str], code: int, message: str,
) -> None:  # fmt: skip
    assert run(argv) == code
    assert message in run.stderr.getvalue()
    assert keyring_env.secret_service.items() == []


def test_keys_import_missing_or_broken_file(
    run: Run, keyring_env: KeyringEnv, credentials_file: Path
) -> None:
    credentials_file.unlink()
    assert run(["keys", "import", "work"]) == 3
    assert "does not exist" in run.stderr.getvalue()
    # a broken line holding a secret: the parser's message would quote it; credd must not
    credentials_file.write_text(f"[work]\naws_access_key_id = {KEY_ID}\n{SECRET}\n")
    assert run(["keys", "import", "work"]) == 3
    assert "cannot be parsed" in run.stderr.getvalue()


# -- totp ------------------------------------------------------------------------------------


def test_totp_set_from_stdin_uri_and_delete(run: Run, keyring_env: KeyringEnv) -> None:
    uri = f"otpauth://totp/AWS:alice?secret={SEED.lower()}&issuer=AWS\n"
    assert run(["totp", "set", "work", "--stdin"], stdin=io.StringIO(uri)) == 0
    assert keyring_env.store().get_totp_seed("work") == SEED
    assert run(["totp", "delete", "work"]) == 0
    assert keyring_env.store().get_totp_seed("work") is None
    assert run(["totp", "delete", "work"]) == 0
    assert "nothing to delete" in run.stdout.getvalue()


def test_totp_set_prompts_without_echo(run: Run, keyring_env: KeyringEnv) -> None:
    assert run(["totp", "set", "work"], stdin=Tty(), answers={"seed": SEED}) == 0
    assert run.asked == ["TOTP seed or otpauth:// URI (not shown): "]
    assert keyring_env.store().get_totp_seed("work") == SEED


def test_totp_set_rejects_bad_seed(run: Run, keyring_env: KeyringEnv) -> None:
    assert run(["totp", "set", "work", "--stdin"], stdin=io.StringIO("123456\n")) == 2
    assert "one-time code" in run.stderr.getvalue()
    assert run(["totp", "set", "work"], stdin=io.StringIO(SEED)) == 2
    assert "pass --stdin" in run.stderr.getvalue()
    assert keyring_env.secret_service.items() == []


# -- secrets check ---------------------------------------------------------------------------


def test_secrets_check(run: Run, keyring_env: KeyringEnv) -> None:
    assert run(["secrets", "check"]) == 0
    assert run.stdout.getvalue().splitlines() == [
        "backend: keyring.backends.SecretService.Keyring",
        "keyring: usable",
    ]
    keyring_env.secret_service.lock()
    assert run(["secrets", "check"]) == 6
    assert "the keyring is locked" in run.stderr.getvalue()


# -- as separate processes -------------------------------------------------------------------


def test_subprocess_keys_and_totp_from_stdin(keyring_env: KeyringEnv) -> None:
    env = child_env(keyring_env.secret_service.env)
    for argv, given in (
        (["keys", "set", "work", "--stdin"], f"{KEY_ID}\n{SECRET}\n"),
        (["totp", "set", "work", "--stdin"], SEED),
        (["secrets", "check"], ""),
    ):
        proc = subprocess.run(
            [sys.executable, "-c", MAIN, *argv], input=given, env=env,
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        for secret in SECRETS:
            assert secret not in proc.stdout + proc.stderr
    from credd.secrets.store import SecretStore

    creds = SecretStore().get_long_term_keys("work")  # the default service, "credd"
    assert creds is not None and creds.secret_access_key == SECRET
    assert SecretStore().get_totp_seed("work") == SEED


def test_subprocess_without_any_keyring(tmp_path: Path) -> None:
    env = child_env({"DBUS_SESSION_BUS_ADDRESS": f"unix:path={tmp_path}/no-bus"})
    env.pop("PYTHON_KEYRING_BACKEND", None)
    proc = subprocess.run(
        [sys.executable, "-c", MAIN, "keys", "set", "work", "--stdin"],
        input=f"{KEY_ID}\n{SECRET}\n", env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 6
    assert proc.stderr.count("\n") == 1 and "no usable keyring backend" in proc.stderr
    assert "gnome-keyring" in proc.stderr and SECRET not in proc.stderr + proc.stdout


def _read_until(fd: int, wanted: bytes, seen: bytearray) -> None:
    deadline = time.monotonic() + 30  # a safety net for a broken child, not a timing check
    while wanted not in seen:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError(f"no {wanted!r} in {bytes(seen)!r}")
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            chunk = b""
        if not chunk:
            raise AssertionError(f"child ended before {wanted!r}: {bytes(seen)!r}")
        seen.extend(chunk)


TTY_MAIN = (
    """
import fcntl, termios
fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # make the pty our controlling terminal, for getpass
"""
    + MAIN
)


def _in_pty(
    argv: list[str], env: dict[str, str], dialogue: list[tuple[bytes, bytes]]
) -> tuple[int, bytes]:
    """Run the CLI with a real controlling terminal (a pty) and answer its prompts."""
    primary, secondary = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", TTY_MAIN, *argv], env=env, start_new_session=True,
        stdin=secondary, stdout=secondary, stderr=secondary,
    )  # fmt: skip
    os.close(secondary)
    seen = bytearray()
    try:
        for prompt, answer in dialogue:
            _read_until(primary, prompt, seen)
            os.write(primary, answer + b"\n")
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO once the child has gone
                break
            if not chunk:
                break
            seen.extend(chunk)
    finally:
        code = proc.wait(timeout=60)
        os.close(primary)
    return code, bytes(seen)


def test_real_terminal_prompts_echo_the_key_id_but_not_the_secrets(
    keyring_env: KeyringEnv,
) -> None:
    env = child_env(keyring_env.secret_service.env)
    code, screen = _in_pty(
        ["keys", "set", "work"], env,
        [(b"access key id: ", KEY_ID.encode()), (b"(not shown): ", SECRET.encode())],
    )  # fmt: skip
    assert code == 0, screen
    assert KEY_ID.encode() in screen  # typed visibly
    assert SECRET.encode() not in screen  # getpass turned echo off
    code, screen = _in_pty(["totp", "set", "work"], env, [(b"(not shown): ", SEED.encode())])
    assert code == 0, screen
    assert SEED.encode() not in screen
    from credd.secrets.store import SecretStore

    creds = SecretStore().get_long_term_keys("work")
    assert creds is not None and creds.secret_access_key == SECRET
    assert SecretStore().get_totp_seed("work") == SEED


def test_handlers_are_plain_functions_returning_exit_codes(keyring_env: KeyringEnv) -> None:
    from credd.cli import secrets as cli_secrets

    handlers: list[Callable[..., int]] = [
        cli_secrets.cmd_keys_set, cli_secrets.cmd_keys_import, cli_secrets.cmd_keys_delete,
        cli_secrets.cmd_totp_set, cli_secrets.cmd_totp_delete, cli_secrets.cmd_secrets_check,
    ]  # fmt: skip
    args = make_parser().parse_args(["keys", "delete", "work"])
    assert args.func.__wrapped__ is cli_secrets.cmd_keys_delete  # the one error wrapper
    out = io.StringIO()
    assert args.func(args, Io(stdout=out, store_factory=keyring_env.store)) == 0
    assert all(h.__doc__ and h.__doc__.startswith("credd ") for h in handlers)
