"""The Jupyter Server extension in a real ``jupyter server`` with a real daemon against the
sandbox (issue 13): the daemon's life with the server, the REST API under ``/credd/api/``, its
authentication (token, login cookie, XSRF), a device-code login and MFA codes through it, and
no secret in any answer.

One server and one daemon (started by the test, before the server: the extension must leave it
alone) are shared by the module; the tests of the daemon's start and of ``needs_setup`` start
servers of their own. The module runs on one xdist worker (``xdist_group``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
import pytest

from credd.client import Client
from credd.daemon import detach
from credd.errors import CreddError
from credd.sso.cache import TokenCache
from credd.sso.settings import load_full_config, resolve_profile
from tests.fixtures.daemon import LOG_FILES, Daemon, assert_no_secret, remember
from tests.fixtures.jupyter import JupyterServer
from tests.fixtures.sandbox import SandboxHandle, unique_name

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("jupyter")]

#: words that would mean a credential (or what makes one) reached the browser
SECRET_WORDS = (
    "SecretAccessKey", "SessionToken", "secret_access_key", "accessToken", "refreshToken",
    "clientSecret", "deviceCode", "device_code",
)  # fmt: skip
PASSPHRASE = "a long passphrase for the hub store"


def hub_env(root: Path) -> dict[str, str]:
    """A hub user's environment: a home of its own, nothing from the developer's."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "CREDD_", "XDG_", "BOTO_", "JUPYTER", "JPY_"))
        and k not in {"HOME", "DBUS_SESSION_BUS_ADDRESS", "PYTHON_KEYRING_BACKEND"}
    }
    home = root / "home"
    home.mkdir(parents=True)
    (root / "run").mkdir(mode=0o700)
    env.update(
        HOME=str(home),
        XDG_RUNTIME_DIR=str(root / "run"),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_STATE_HOME=str(home / ".local" / "state"),
        AWS_CONFIG_FILE=str(home / ".aws" / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / ".aws" / "credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        CREDD_ENDPOINT_PORT="0",
    )
    return env


def credd_cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "credd.cli", *args],
        env=env, input=stdin, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert_no_secret(done.stdout + done.stderr, f"credd {args[0]}")
    return done.stdout


def init_encrypted_store(env: dict[str, str]) -> None:
    r, w = os.pipe()
    os.write(w, PASSPHRASE.encode())
    os.close(w)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "credd.cli", "store", "init", "encrypted-file",
             "--passphrase-fd", str(r)],
            env=env, pass_fds=(r,), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        os.close(r)
    assert done.returncode == 0, done.stderr


def write_config(env: dict[str, str], sandbox: SandboxHandle, profiles: str) -> None:
    path = Path(env["AWS_CONFIG_FILE"])
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_text(
        profiles
        + "\n[services sandbox]\n"
        + "".join(
            f"{svc} =\n  endpoint_url = {sandbox.endpoint}\n"
            for svc in ("sso_oidc", "sso", "sts", "iam")
        )
    )


def socket_of(env: dict[str, str]) -> Path:
    return Path(env["XDG_RUNTIME_DIR"]) / "credd" / "credd.sock"


def wait_daemon(server: JupyterServer, timeout: float = 60) -> dict[str, Any]:
    """The status once the daemon the extension starts (in the background) answers."""
    deadline = time.monotonic() + timeout
    while True:
        data: dict[str, Any] = server.request("GET", "/credd/api/status").json()
        if data["daemon"] != "stopped" or time.monotonic() > deadline:
            return data
        assert data["message"] == "the credd daemon is starting", data
        time.sleep(0.1)


def check_answers(server: JupyterServer) -> None:
    """No credential in anything the server answered (known secrets counted, never shown)."""
    text = "\n".join(server.answers)
    found = [word for word in SECRET_WORDS if word in text]
    assert not found, f"secret-bearing fields in an answer: {found}"
    assert_no_secret(text, "the Jupyter API's answers")


# -- the shared hub: a daemon already running, then the server --------------------------------


@dataclass
class Hub:
    env: dict[str, str]
    sandbox: SandboxHandle
    daemon: Daemon
    server: JupyterServer
    instance: Any
    sso_user: Any
    seed: str

    def status(self) -> dict[str, Any]:
        answer = self.server.request("GET", "/credd/api/status")
        assert answer.status == 200, answer.text
        data: dict[str, Any] = answer.json()
        return data

    def profile(self, name: str) -> dict[str, Any]:
        return next(p for p in self.status()["profiles"] if p["name"] == name)


@pytest.fixture(scope="module")
def hub(
    sandbox: SandboxHandle, tmp_path_factory: pytest.TempPathFactory, daemon_log_dir: Path
) -> Iterator[Hub]:
    sandbox.admin.reset()
    LOG_FILES.add(sandbox.log_path)
    env = hub_env(tmp_path_factory.mktemp("hub"))
    env["CREDD_SECRET_STORE"] = "plaintext-file"  # the opt-in: no passphrase at all
    admin = sandbox.admin
    instance = admin.create_sso_instance(region="us-east-1")
    sso_user = admin.create_sso_user(unique_name("hub"), start_url=instance)
    admin.assign_sso_role(sso_user, "Reader", start_url=instance)
    user, device = sandbox.new_user_with_mfa("desk")
    remember(user.secret_access_key, device.seed)
    credd_cli(env, "store", "init", "plaintext-file")
    keys = {"AccessKeyId": user.access_key_id, "SecretAccessKey": user.secret_access_key}
    credd_cli(env, "keys", "set", "desk", "--stdin", stdin=json.dumps(keys))
    write_config(
        env,
        sandbox,
        "[profile science]\nsso_session = lab\nsso_account_id = 123456789012\n"
        "sso_role_name = Reader\nregion = us-east-1\nservices = sandbox\ncredd = true\n\n"
        f"[sso-session lab]\nsso_start_url = {instance.start_url}\nsso_region = us-east-1\n"
        "sso_registration_scopes = sso:account:access\n\n"
        "[profile desk]\nregion = us-east-1\nservices = sandbox\ncredd = true\n"
        "credd_mfa_source = person\n",
    )
    daemon = Daemon(
        Path(env["HOME"]),
        {**env, "CREDD_SOCKET": str(socket_of(env))},
        daemon_log_dir / "jupyter-hub-daemon.log",
    ).start()
    server_log = daemon_log_dir / "jupyter-hub-server.log"
    LOG_FILES.add(server_log)
    server = JupyterServer(Path(env["HOME"]), env, server_log)
    try:
        server.start()
        yield Hub(env, sandbox, daemon, server, instance, sso_user, device.seed)
    finally:
        code = server.stop()
        try:
            # the extension did not start this daemon: it must still run after the server
            Client(socket_of(env)).status()
            left_alone = True
        except CreddError:
            left_alone = False
        daemon.stop()
        check_answers(server)
    assert code == 0
    assert left_alone, "the extension stopped a daemon it did not start"


def test_the_api_refuses_anyone_without_the_servers_token(hub: Hub) -> None:
    server = hub.server
    for method, path, body in (
        ("GET", "/credd/api/status", None),
        ("POST", "/credd/api/login/science", None),
        ("POST", "/credd/api/mfa/desk", {"code": "123456"}),
        ("POST", "/credd/api/daemon/start", None),
    ):
        answer = server.request(method, path, body, token=False)
        assert answer.status == 403, (method, path, answer.status)
        assert "science" not in answer.text
    wrong = server.send("GET", "/credd/api/status", headers={"Authorization": "token nope"})
    assert wrong.status == 403
    assert hub.daemon.profile("desk")["state"] == "needs_mfa"  # nothing reached the daemon


def test_a_browser_session_needs_xsrf_on_post(hub: Hub) -> None:
    browser = hub.server.browser()
    status = browser.request("GET", "/credd/api/status")
    assert status.status == 200 and status.json()["daemon"] == "running"
    refused = browser.request("POST", "/credd/api/mfa/desk", {"code": "123456"}, xsrf=False)
    assert refused.status == 403 and "xsrf" in refused.text.lower()
    accepted = browser.request("POST", "/credd/api/mfa/desk", {"code": None})
    assert accepted.status == 400  # past the XSRF check: the body was looked at
    assert accepted.json() == {
        "ok": False, "message": 'send {"code": "123456"} for a valid profile',
        "code": "bad_request",
    }  # fmt: skip
    assert hub.daemon.profile("desk")["state"] == "needs_mfa"


def test_status_shows_every_profile_and_what_a_person_must_do(hub: Hub) -> None:
    data = hub.status()
    assert set(data) == {"daemon", "started_by_extension", "message", "pid", "profiles"}
    assert data["daemon"] == "running" and data["started_by_extension"] is False
    assert data["pid"] == hub.daemon.proc.pid if hub.daemon.proc else False
    keys = {
        "name", "kind", "state", "expires_at", "seconds_left", "needs_person", "person_action",
        "person_profile", "message", "error_code",
    }  # fmt: skip
    by_name = {p["name"]: p for p in data["profiles"]}
    assert set(by_name) >= {"desk"} and all(set(p) == keys for p in data["profiles"])
    desk = by_name["desk"]
    assert (desk["state"], desk["needs_person"], desk["person_action"]) == (
        "needs_mfa", True, "mfa_code",
    )  # fmt: skip
    assert desk["person_profile"] == "desk" and "credd mfa desk" in desk["message"]
    science = hub.profile("science")
    if science["state"] == "login_required":  # (fresh once the login test ran)
        assert science["needs_person"] and science["person_action"] == "sso_login"
    check_answers(hub.server)


def test_a_device_code_login_completed_through_the_http_api(hub: Hub) -> None:
    browser = hub.server.browser()
    started = browser.request("POST", "/credd/api/login/science")
    assert started.status == 200, started.text
    login = started.json()
    assert set(login) == {
        "login_id", "user_code", "verification_uri", "verification_uri_complete",
        "expires_in", "label", "profile",
    }  # fmt: skip
    assert login["label"] == "lab" and login["user_code"] in login["verification_uri_complete"]
    pending = browser.request("GET", f"/credd/api/login/{login['login_id']}").json()
    assert pending["state"] == "pending" and pending["user_code"] == login["user_code"]

    # the person opens the link on any device and approves (the sandbox's admin API)
    hub.sandbox.admin.approve_device(login["user_code"], user=hub.sso_user, start_url=hub.instance)
    deadline = time.monotonic() + 60
    while pending["state"] == "pending" and time.monotonic() < deadline:
        time.sleep(0.2)
        pending = browser.request("GET", f"/credd/api/login/{login['login_id']}").json()
    assert pending["state"] == "done", pending
    assert "science: fresh" in pending["message"]

    science = hub.profile("science")
    assert science["state"] == "fresh" and not science["needs_person"]
    assert science["seconds_left"] > 600 and science["expires_at"].endswith("Z")
    # the credentials and the token exist (and are registered as secrets): none was sent
    env = {**hub.env, "HOME": hub.env["HOME"]}
    token = TokenCache(Path(env["HOME"]) / ".aws" / "sso" / "cache").read(
        resolve_profile("science", load_full_config(env))
    )
    assert token is not None
    remember(token.access_token, token.refresh_token, token.client_secret)
    hub.daemon.get("science")
    check_answers(hub.server)

    unknown = browser.request("GET", "/credd/api/login/0123456789abcdef")
    assert unknown.status == 404 and unknown.json()["code"] == "not_found"
    bad = browser.request("POST", "/credd/api/login/nope")
    assert bad.status == 404 and "nope" in bad.json()["message"]


def test_a_wrong_mfa_code_gives_a_clear_message(hub: Hub) -> None:
    totp = pyotp.TOTP(hub.seed)
    good = totp.now()
    wrong = f"{(int(good) + 500000) % 1000000:06d}"
    answer = hub.server.request("POST", "/credd/api/mfa/desk", {"code": wrong})
    assert answer.status == 200
    data = answer.json()
    assert data["ok"] is False and data["code"] == "mfa_code_rejected"
    assert "rejected" in data["message"]
    short = hub.server.request("POST", "/credd/api/mfa/desk", {"code": "12"}).json()
    assert short["ok"] is False and "six digits" in short["message"]
    assert hub.profile("desk")["state"] == "needs_mfa"

    done = hub.server.request("POST", "/credd/api/mfa/desk", {"code": good}).json()
    assert done["ok"] is True, done
    assert done["profile"]["state"] == "fresh" and not done["profile"]["needs_person"]
    hub.daemon.get("desk")  # registers the session's secrets for the checks
    check_answers(hub.server)


# -- servers of their own: the daemon's start and stop, and a store that needs setting up ----


def test_the_extension_starts_the_daemon_and_stops_it_with_the_server(
    sandbox: SandboxHandle, tmp_path_factory: pytest.TempPathFactory, daemon_log_dir: Path
) -> None:
    env = hub_env(tmp_path_factory.mktemp("own"))
    init_encrypted_store(env)
    secret = Path(env["HOME"]) / ".config" / "credd" / "passphrase"
    secret.write_text(PASSPHRASE + "\n")
    secret.chmod(0o600)
    remember(PASSPHRASE)
    user, device = sandbox.new_user_with_mfa("plain")
    remember(user.secret_access_key, device.seed)
    keys = {"AccessKeyId": user.access_key_id, "SecretAccessKey": user.secret_access_key}
    unlocked = {**env, "CREDD_PASSPHRASE_FILE": str(secret)}
    credd_cli(unlocked, "keys", "set", "plain", "--stdin", stdin=json.dumps(keys))
    credd_cli(unlocked, "totp", "set", "plain", "--stdin", stdin=device.seed)
    write_config(env, sandbox, "[profile plain]\nregion = us-east-1\nservices = sandbox\n"
                 "credd = true\n")  # fmt: skip
    log = daemon_log_dir / "jupyter-own-server.log"
    LOG_FILES.add(log)
    # the passphrase source as a hub user sets it: in the Jupyter config, a command
    server = JupyterServer(
        Path(env["HOME"]), env, log, credd={"passphrase_command": f"cat {secret}"}
    )
    socket = socket_of(env)
    try:
        server.start()  # the server answers before the daemon is up: it starts in a thread
        data = wait_daemon(server)
        assert data["daemon"] == "running" and data["started_by_extension"] is True
        pid = data["pid"]
        assert pid == detach.running_pid(socket)
        # the store was unlocked from the command: the profile's keys and seed were used
        deadline = time.monotonic() + 60
        state = data["profiles"][0]["state"]
        while state != "fresh" and time.monotonic() < deadline:
            time.sleep(0.2)
            state = server.request("GET", "/credd/api/status").json()["profiles"][0]["state"]
        assert state == "fresh"
        # a browser refresh is a new session: same daemon
        for _ in range(2):
            again = server.browser().request("GET", "/credd/api/status").json()
            assert again["pid"] == pid and again["started_by_extension"] is True
        assert Path(f"/proc/{pid}").exists()
    finally:
        code = server.stop()
    assert code == 0
    check_answers(server)
    assert (
        not Path(f"/proc/{pid}").exists()
        or b"credd" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    )
    assert not socket.exists() and detach.running_pid(socket) is None
    assert "stopped the daemon" in log.read_text()


def test_needs_setup_without_a_passphrase_source(
    sandbox: SandboxHandle, tmp_path_factory: pytest.TempPathFactory, daemon_log_dir: Path
) -> None:
    env = hub_env(tmp_path_factory.mktemp("setup"))
    init_encrypted_store(env)
    write_config(env, sandbox, "[profile plain]\nregion = us-east-1\ncredd = true\n")
    log = daemon_log_dir / "jupyter-setup-server.log"
    LOG_FILES.add(log)
    server = JupyterServer(Path(env["HOME"]), env, log)
    try:
        server.start()
        data = wait_daemon(server)
        assert data["daemon"] == "needs_setup" and data["started_by_extension"] is False
        assert "CREDD_PASSPHRASE_FILE" in data["message"]
        assert "hosted-hubs" in data["message"] and data["profiles"] == []
        # asking again does not prompt or start anything either
        again = server.request("POST", "/credd/api/daemon/start").json()
        assert again["daemon"] == "needs_setup"
        assert not socket_of(env).exists()
        # without a daemon, the actions say so
        login = server.request("POST", "/credd/api/login/plain")
        assert login.status == 503 and login.json()["code"] == "daemon_unavailable"
        mfa = server.request("POST", "/credd/api/mfa/plain", {"code": "123456"}).json()
        assert mfa["ok"] is False and mfa["code"] == "daemon_unavailable"
    finally:
        assert server.stop() == 0
    assert "not starting the daemon" in log.read_text()
