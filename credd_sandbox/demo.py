"""``make demo``: the real daemon against the local sandbox, in an isolated home.

Brings up, in order: a private D-Bus session with gnome-keyring (no desktop needed), the sandbox
(strict STS + moto), an IAM user with a virtual MFA device whose TOTP seed goes into the keyring,
an AWS config for profile ``demo-mfa`` in the demo home, the credd daemon, and a long-running
boto3 program reading through ``credential_process = credd get demo-mfa``. Then it shows live
status while sessions rotate. Ctrl-C stops everything cleanly. The user's own ``~/.aws`` and
keyring are never touched: the demo home (``CREDD_DEMO_HOME``, else a fresh temp dir) is ``HOME``
for everything it starts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType
from typing import IO

from credd.errors import CreddError

KEYRING_PASSWORD = "credd-demo"  # noqa: S105 - a throwaway keyring inside the demo home


def say(text: str) -> None:
    print(f"credd demo: {text}", flush=True)


def _reexec_under_private_bus(argv: list[str]) -> int:
    dbus = shutil.which("dbus-run-session")
    if not dbus or not shutil.which("gnome-keyring-daemon"):
        say("needs dbus-run-session and gnome-keyring-daemon for a private keyring")
        say("install them: sudo apt-get install dbus dbus-user-session gnome-keyring")
        return 1
    say("starting a private D-Bus session with gnome-keyring (no desktop session needed)")
    sys.stdout.flush()
    os.environ["CREDD_DEMO_BUS"] = "1"
    # Become dbus-run-session: Ctrl-C then reaches the demo directly, as one foreground job.
    os.execv(dbus, [dbus, "--", sys.executable, "-m", "credd_sandbox.demo", *argv])  # noqa: S606


class Demo:
    def __init__(self, home: Path, session_seconds: int) -> None:
        self.home = home
        self.session_seconds = session_seconds
        runtime = os.environ.get("XDG_RUNTIME_DIR") or str(home / "run")
        self.socket = Path(runtime) / f"credd-demo-{os.getpid()}" / "credd.sock"
        self.aws = home / ".aws"
        self.procs: list[tuple[str, subprocess.Popen[bytes] | subprocess.Popen[str]]] = []
        self.app_failures = 0
        self.app_calls = 0
        self.app_keys: set[str] = set()
        self.rotations = 0
        bindir = Path(sys.executable).parent
        self.credd = str(bindir / "credd") if (bindir / "credd").exists() else None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CREDD_"))} | {
            "HOME": str(home),
            "AWS_CONFIG_FILE": str(self.aws / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.aws / "credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "CREDD_SOCKET": str(self.socket),
            "CREDD_MIN_SESSION_SECONDS": "60",
            "PYTHON_KEYRING_BACKEND": "keyring.backends.SecretService.Keyring",
            "XDG_DATA_HOME": str(home / ".local" / "share"),
        }

    def credd_cmd(self, *args: str) -> str:
        base = self.credd or f"{sys.executable} -m credd.cli"
        return " ".join([base, *args])

    def start_keyring(self) -> None:
        keyring = subprocess.Popen(
            ["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=open(self.home / "keyring.log", "wb"),  # noqa: SIM115 - closed with the process
            env=self.env,
        )
        assert keyring.stdin is not None
        keyring.stdin.write(KEYRING_PASSWORD.encode())
        keyring.stdin.close()
        self.procs.append(("gnome-keyring", keyring))
        os.environ.update(self.env)
        from credd.secrets.store import SecretStore

        for _ in range(100):
            try:
                SecretStore().check()
                break
            except CreddError:
                time.sleep(0.1)
        else:
            raise SystemExit("credd demo: gnome-keyring did not come up; see keyring.log")
        say(f"private keyring up (gnome-keyring, files in {self.home}/.local/share/keyrings)")

    def start_sandbox(self) -> str:
        from credd_sandbox import SandboxProcess

        sandbox = SandboxProcess(
            min_duration=60, log_path=str(self.home / "sandbox.log"), env=self.env
        )
        sandbox.start()
        self.sandbox = sandbox
        say(f"sandbox up at {sandbox.endpoint} (strict STS + moto for IAM/S3/SQS)")
        return sandbox.endpoint

    def configure(self, endpoint: str) -> None:
        from credd.secrets.store import SecretStore
        from credd_sandbox import AdminClient

        admin = AdminClient(endpoint)
        user = admin.create_user("demo-scientist")
        device = admin.create_mfa_device(user)
        role = admin.create_role("demo-reader", trusted=[user.arn], mfa_required=True)
        store = SecretStore()
        store.set_long_term_keys("demo-mfa", user.access_key_id, user.secret_access_key)
        store.set_totp_seed("demo-mfa", device.seed)
        say(f"IAM user {user.arn} with virtual MFA device {device.serial}")
        say("its long-term keys and TOTP seed are in the keyring, not in any file")
        # IAM Identity Center: 5 min access tokens, 2 min role credentials, so both renew on screen
        admin.set_sso_settings(access_token_seconds=300)
        instance = admin.create_sso_instance(region="us-east-1")
        self.sso_user = admin.create_sso_user("demo-notebook-user", start_url=instance)
        self.sso_instance = instance
        admin.assign_sso_role(self.sso_user, "DemoReader", start_url=instance, session_duration=120)
        self.admin = admin
        self.aws.mkdir(mode=0o700, parents=True, exist_ok=True)
        services = "".join(
            f"{svc} =\n  endpoint_url = {endpoint}\n"
            for svc in ("sts", "iam", "s3", "sqs", "sso", "sso_oidc")
        )
        getter = self.credd_cmd("get", "demo-mfa", "--socket", str(self.socket))
        (self.aws / "config").write_text(
            "# Written by `make demo` into its own home; your real ~/.aws is untouched.\n"
            "[profile demo-mfa]\n"
            "region = us-east-1\n"
            "services = sandbox\n"
            "credd = true\n"
            "credd_mfa_source = totp\n"
            f"mfa_serial = {device.serial}\n"
            f"credd_session_duration = {self.session_seconds}\n\n"
            "# What a long-running program uses: botocore re-runs credd before expiry.\n"
            "[profile demo-app]\n"
            "region = us-east-1\n"
            "services = sandbox\n"
            f"credential_process = {getter}\n\n"
            "# A role assumed from demo-mfa's MFA session: no code of its own, renewed every\n"
            "# half-lifetime; programs under `credd exec demo-role` get it from the endpoint.\n"
            "[profile demo-role]\n"
            f"role_arn = {role.arn}\n"
            "source_profile = demo-mfa\n"
            "duration_seconds = 60\n"
            "region = us-east-1\n"
            "services = sandbox\n"
            "credd = true\n\n"
            "# IAM Identity Center, as `aws configure sso` writes it (seed 000's notebook user).\n"
            "[profile demo-sso]\n"
            "sso_session = demo\n"
            "sso_account_id = 123456789012\n"
            "sso_role_name = DemoReader\n"
            "region = us-east-1\n"
            "services = sandbox\n"
            "credd = true\n\n"
            "[sso-session demo]\n"
            f"sso_start_url = {self.sso_instance.start_url}\n"
            "sso_region = us-east-1\n"
            "sso_registration_scopes = sso:account:access\n\n"
            "[services sandbox]\n" + services
        )
        (self.aws / "credentials").write_text(
            "# Your own sections and comments stay exactly as they are; credd adds its own.\n"
            "[someone-else]\naws_access_key_id = AKIAEXAMPLEOTHER0000\n"
            "aws_secret_access_key = not-a-real-secret\n"
        )
        os.chmod(self.aws / "credentials", 0o600)

    def start_daemon(self) -> None:
        from credd.client import Client

        log = open(self.home / "daemon.log", "wb")  # noqa: SIM115 - kept for the daemon's life
        daemon = subprocess.Popen(
            [sys.executable, "-m", "credd.cli", "daemon"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(("daemon", daemon))
        client = Client(self.socket, timeout=2)
        for _ in range(200):
            if daemon.poll() is not None:
                raise SystemExit(f"credd demo: the daemon exited; see {self.home}/daemon.log")
            try:
                client.status()
                break
            except CreddError:
                time.sleep(0.1)
        say(f"credd daemon up (pid {daemon.pid}), socket {self.socket}")
        threading.Thread(target=self._tail_daemon, daemon=True).start()

    def login_sso(self) -> None:
        """`credd login demo-sso --device-code`, with the sandbox approving in the 'browser'."""
        self.admin.sso_auto_approve(self.sso_user, start_url=self.sso_instance, count=1)
        say("logging in to IAM Identity Center: credd login demo-sso --device-code")
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "credd.cli",
                "login",
                "demo-sso",
                "--device-code",
                "--no-browser",
            ],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        for line in (done.stdout + done.stderr).splitlines():
            print("login: " + line, flush=True)
        if done.returncode != 0:
            say("the SSO login failed; demo-sso will show login_required")

    def _tail_daemon(self) -> None:
        with open(self.home / "daemon.log", encoding="utf-8", errors="replace") as f:
            while True:
                line = f.readline()
                if not line:
                    time.sleep(0.2)
                    continue
                if "new MFA session" in line:
                    self.rotations += 1
                if any(
                    w in line
                    for w in (
                        "new MFA session",
                        "new role",
                        "new SSO",
                        "SSO access",
                        "WARNING",
                        "ERROR",
                    )
                ):
                    print("daemon: " + line.rstrip().split(": ", 1)[-1], flush=True)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        proc = subprocess.Popen(
            argv,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.procs.append((name, proc))
        threading.Thread(target=self._read_app, args=(proc.stdout,), daemon=True).start()

    def start_app(self, endpoint: str) -> None:
        program = [sys.executable, "-u", "-m", "credd_sandbox.demo_app"]
        self._spawn("app", [*program, "--profile", "demo-app"], self.env)
        say("a long-running boto3 program now calls STS and S3 every 2 s through credd")
        # The same program under `credd exec demo-role`: no profile, no keys in its environment;
        # botocore finds the loopback container endpoint (the sandbox URL replaces [services]).
        self._spawn(
            "role-app",
            [
                sys.executable,
                "-m",
                "credd.cli",
                "exec",
                "demo-role",
                "--",
                *program,
                "--label",
                "role-app",
                "--bucket",
                "credd-demo-role",
            ],
            self.env | {"AWS_ENDPOINT_URL": endpoint},
        )
        say("and `credd exec demo-role -- <the same program>` runs it as role demo-reader")

    def _read_app(self, stream: IO[str] | None) -> None:
        assert stream is not None
        for line in stream:
            if " ok as " in line:
                self.app_calls += 1
            if "FAILED" in line:
                self.app_failures += 1
            print(line.rstrip(), flush=True)

    def show_status(self) -> None:
        from credd.cli.status import render_status
        from credd.client import Client

        try:
            status = Client(self.socket, timeout=5).status()
        except CreddError as exc:
            say(f"status unavailable: {exc}")
            return
        print("-" * 78)
        render_status(status, sys.stdout)
        print("-" * 78, flush=True)

    def print_exports(self, endpoint: str) -> None:
        print(
            "\nTalk to the demo daemon from another shell:\n\n"
            f"    export CREDD_SOCKET={self.socket}\n"
            f"    export AWS_CONFIG_FILE={self.aws / 'config'}\n"
            f"    export AWS_SHARED_CREDENTIALS_FILE={self.aws / 'credentials'}\n\n"
            f"    {self.credd_cmd('status')}\n"
            f"    {self.credd_cmd('get', 'demo-mfa')}\n"
            "    aws sts get-caller-identity --profile demo-mfa-credd "
            f"--endpoint-url {endpoint}   # the profile credd writes\n\n"
            f"Logs: {self.home}/daemon.log, sandbox.log. Ctrl-C stops everything.\n",
            flush=True,
        )

    def stop(self) -> None:
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    say(f"{name} did not stop; killing it")
                    proc.kill()
                    proc.wait()
        sandbox = getattr(self, "sandbox", None)
        if sandbox is not None:
            sandbox.stop()


def run_inner(args: argparse.Namespace) -> int:
    home = Path(
        args.home or os.environ.get("CREDD_DEMO_HOME") or tempfile.mkdtemp(prefix="credd-demo-")
    )
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    say(f"isolated home: {home} (HOME for everything the demo starts)")
    demo = Demo(home, args.session_seconds)
    stopping = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        demo.start_keyring()
        endpoint = demo.start_sandbox()
        demo.configure(endpoint)
        demo.start_daemon()
        demo.login_sso()
        demo.print_exports(endpoint)
        demo.start_app(endpoint)
        deadline = time.monotonic() + args.seconds if args.seconds else None
        while not stopping.is_set() and (deadline is None or time.monotonic() < deadline):
            stopping.wait(args.status_every)
            if not stopping.is_set():
                demo.show_status()
    finally:
        say("stopping the app, the daemon, the sandbox and the keyring")
        demo.stop()
    say(
        f"done: {demo.rotations} MFA sessions issued, the app made {demo.app_calls} calls "
        f"with {demo.app_failures} failures"
    )
    return 0 if demo.app_failures == 0 else 1


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m credd_sandbox.demo", description=__doc__)
    parser.add_argument("--home", help="demo home (default: $CREDD_DEMO_HOME, else a temp dir)")
    parser.add_argument("--seconds", type=float, default=0, help="stop after this long (0: Ctrl-C)")
    parser.add_argument(
        "--session-seconds",
        type=int,
        default=120,
        help="MFA session length in the sandbox (default 120)",
    )
    parser.add_argument("--status-every", type=float, default=15, help="seconds between tables")
    args = parser.parse_args(args_list)
    if os.environ.get("CREDD_DEMO_BUS") != "1":
        return _reexec_under_private_bus(args_list)
    return run_inner(args)


if __name__ == "__main__":
    sys.exit(main())
