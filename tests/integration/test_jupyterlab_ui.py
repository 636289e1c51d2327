"""The JupyterLab front end (issue 13) in a real ``jupyter lab`` driven by headless Chromium.

One hub for the module, as on a hosted JupyterHub: a home of its own, the encrypted file store
with its passphrase in a file (``c.CreddApp.passphrase_file``), two profiles of one IAM Identity
Center login on the sandbox with 20 s role sessions (so credd rotates them every ~10 s), and
``jupyter lab`` with the credd server extension, which starts the daemon, and the front end
loaded from the committed build (``credd/jupyter/labextension``, through ``JUPYTER_PATH``).

Proven through the browser: the status bar shows the profiles; a notebook's s3fs reads keep
working across real rotations; a browser refresh leaves the daemon alone; a revoked SSO session
turns the bar red; the device-code login is done through the dialog (the code read from it,
approved in the sandbox) and the bar turns back; the daemon stops with the server. Screenshots
of each state go to a temp dir (``CREDD_SCREENSHOTS=DIR`` to keep them; docs/img/jupyter-*.png
came from such a run).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import credd
from tests.fixtures.browser import Browser, need_chromium
from tests.fixtures.daemon import LOG_FILES, assert_no_secret, remember
from tests.fixtures.jupyter import JupyterServer
from tests.fixtures.sandbox import SandboxHandle, unique_name
from tests.integration.test_sso_daemon import cli_login

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("jupyterlab")]

BUILT = Path(credd.__file__).parent / "jupyter" / "labextension"
ROLE_SECONDS = 20  # the sandbox's role sessions: credd rotates them at half-life
PASSPHRASE = "the hub user's store passphrase"
SECRET_WORDS = ("SecretAccessKey", "SessionToken", "accessToken", "refreshToken", "clientSecret")

NOTEBOOK_SETUP = """\
import json, time
import s3fs
from credd.client import aiobotocore_session

# seed 000's notebook, with credd's session for the profile
session = aiobotocore_session("dev", advisory_timeout=7, mandatory_timeout=4)
fs = s3fs.S3FileSystem(session=session)
bucket = "BUCKET"
fs.mkdir(bucket)
for name in ("scene-1.tif", "scene-2.tif", "notes.txt"):
    fs.pipe_file(f"{bucket}/folder/{name}", f"pixels of {name}".encode())
tif_files = [f for f in fs.ls(f"{bucket}/folder/") if f.endswith(".tif")]
print("ready", len(tif_files))
"""
NOTEBOOK_LOOP = """\
keys, reads, failures = [], 0, []
creds = await session.get_credentials()
deadline = time.monotonic() + 90
while time.monotonic() < deadline and len(set(keys)) < 3:
    try:
        keys.append((await creds.get_frozen_credentials()).access_key)
        with fs.open(tif_files[1], "rb") as f:
            assert f.read() == b"pixels of scene-2.tif"
        reads += 1
    except Exception as exc:
        failures.append(type(exc).__name__)
    time.sleep(0.5)  # a notebook's pace between reads
print("RESULT " + json.dumps({"keys": len(set(keys)), "reads": reads, "failures": failures}))
"""


def hub_env(root: Path) -> dict[str, str]:
    """A hub user's environment: a home of its own, nothing of the developer's."""
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


def init_store(env: dict[str, str], home: Path) -> Path:
    """``credd store init encrypted-file``, and the passphrase in a file only its owner reads."""
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
    path = home / ".config" / "credd-passphrase"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(PASSPHRASE)
    path.chmod(0o600)
    return path


def aws_config(sandbox: SandboxHandle, start_url: str) -> str:
    profiles = "".join(
        f"[profile {name}]\nsso_session = dev\nsso_account_id = 123456789012\n"
        f"sso_role_name = {role}\nregion = us-east-1\nservices = sandbox\ncredd = true\n\n"
        for name, role in (("dev", "Reader"), ("ops", "Operator"))
    )
    return (
        profiles + f"[sso-session dev]\nsso_start_url = {start_url}\nsso_region = us-east-1\n"
        "sso_registration_scopes = sso:account:access\n\n[services sandbox]\n"
        + "".join(
            f"{svc} =\n  endpoint_url = {sandbox.endpoint}\n"
            for svc in ("sso_oidc", "sso", "sts", "s3")
        )
    )


def lab_settings(root: Path) -> Path:
    """JupyterLab user settings: no news or update checks (no network here)."""
    settings = root / "lab-settings"
    folder = settings / "@jupyterlab" / "apputils-extension"
    folder.mkdir(parents=True)
    (folder / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    return settings


@dataclass
class Hub:
    env: dict[str, str]
    sandbox: SandboxHandle
    server: JupyterServer
    browser: Browser
    instance: Any
    user: Any
    socket: Path

    def status(self) -> dict[str, Any]:
        answer = self.server.request("GET", "/credd/api/status")
        assert answer.status == 200, answer.text
        data: dict[str, Any] = answer.json()
        return data

    def wait_states(self, state: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            states = {p["name"]: p["state"] for p in status["profiles"]}
            if set(states.values()) == {state} and len(states) == 2:
                return status
            assert time.monotonic() < deadline, f"profiles stayed {states}"
            time.sleep(0.2)

    # -- the page ---------------------------------------------------------------------------

    def open_lab(self) -> None:
        # ?reset: a fresh workspace each time (no notebook reopened, no kernel restarted)
        self.browser.driver.get(f"{self.server.url}/lab?reset&token={self.server.token}")
        self.browser.wait(lambda: self.browser.css("#credd-status"), "the credd status item")
        self.browser.wait(
            lambda: (
                self.browser.js("return !!(window.jupyterapp && window.jupyterapp.started)")
                or self.browser.js("return !!window.jupyterapp")
            ),
            "JupyterLab to start",
        )

    def bar(self) -> tuple[str, str, str]:
        """The status item's text, level (ok, busy, warn, person, off) and tooltip."""
        item = self.browser.css("#credd-status")
        return (
            item.text,
            item.get_attribute("data-level") or "",
            item.get_attribute("title") or "",
        )

    def wait_bar(self, level: str, timeout: float = 45) -> tuple[str, str, str]:
        # the item polls every 12 s: a state change shows within one poll
        return self.browser.wait(
            lambda: (bar := self.bar())[1] == level and bar, f"the bar to be {level}", timeout
        )

    def command(self, name: str, args: dict[str, Any] | None = None) -> None:
        self.browser.js(
            "window.jupyterapp.commands.execute(arguments[0], arguments[1]);", name, args or {}
        )


@pytest.fixture(scope="module")
def hub(
    sandbox: SandboxHandle, tmp_path_factory: pytest.TempPathFactory, daemon_log_dir: Path
) -> Iterator[Hub]:
    need_chromium()
    root = tmp_path_factory.mktemp("hub")
    env = hub_env(root)
    home = Path(env["HOME"])
    admin = sandbox.admin
    admin.set_min_duration(ROLE_SECONDS)
    instance = admin.create_sso_instance(region="us-east-1")
    user = admin.create_sso_user(unique_name("hub"), start_url=instance)
    for role in ("Reader", "Operator"):
        admin.assign_sso_role(user, role, start_url=instance, session_duration=ROLE_SECONDS)
    aws = home / ".aws"
    aws.mkdir(mode=0o700)
    (aws / "config").write_text(aws_config(sandbox, instance.start_url))
    # `credd login` done once in a terminal on the hub: a token in the shared cache
    cli_login_hub(sandbox, instance.start_url, user, aws / "sso" / "cache")
    passphrase = init_store(env, home)
    # the front end from the committed build, found as any installed lab extension is
    extensions = root / "jupyter-path" / "labextensions"
    extensions.mkdir(parents=True)
    (extensions / "credd-jupyterlab").symlink_to(BUILT, target_is_directory=True)
    env.update(
        JUPYTER_PATH=str(root / "jupyter-path"),
        JUPYTERLAB_SETTINGS_DIR=str(lab_settings(root)),
        JUPYTERLAB_WORKSPACES_DIR=str(root / "workspaces"),
    )
    log = daemon_log_dir / "jupyterlab-ui-lab.log"
    LOG_FILES.add(log)
    LOG_FILES.add(home / ".local" / "state" / "credd" / "credd.log")
    server = JupyterServer(home, env, log, credd={"passphrase_file": str(passphrase)}, lab=True)
    server.config_dir.mkdir(parents=True, exist_ok=True)
    (server.config_dir / "jupyter_lab_config.json").write_text(
        json.dumps({"LabApp": {"expose_app_in_browser": True, "news_url": None}})
    )
    server.start()
    shots = Path(os.environ.get("CREDD_SCREENSHOTS") or (root / "screenshots"))
    browser = Browser(shots)
    hub = Hub(env, sandbox, server, browser, instance, user, socket_of(env))
    try:
        yield hub
    finally:
        browser.close()
        server.stop()
        # the daemon the extension started stops with the server
        done = subprocess.run(
            [sys.executable, "-m", "credd.cli", "status"], env=env, capture_output=True, timeout=60
        )
        assert done.returncode != 0 and not hub.socket.exists(), "the daemon outlived the server"
        text = "\n".join(server.answers)
        assert not [w for w in SECRET_WORDS if w in text], "a credential field reached an answer"
        assert_no_secret(text, "the Jupyter API's answers")


def socket_of(env: dict[str, str]) -> Path:
    return Path(env["XDG_RUNTIME_DIR"]) / "credd" / "credd.sock"


def cli_login_hub(sandbox: SandboxHandle, start_url: str, user: Any, cache: Path) -> None:
    """What ``credd login`` (or ``aws sso login``) leaves in ~/.aws/sso/cache."""
    from datetime import timedelta

    entry = cli_login(sandbox, start_url, user, cache, timedelta(minutes=50))
    remember(entry["accessToken"], entry.get("refreshToken"))


# -- the tests (in this order on one worker; each also stands alone on a hub of its own) -----


def test_the_status_bar_shows_every_profile_and_its_time_left(hub: Hub) -> None:
    status = hub.wait_states("fresh")
    assert status["daemon"] == "running" and status["started_by_extension"] is True
    hub.open_lab()
    text, _, title = hub.wait_bar("ok")
    shown = re.fullmatch(r"credd: 2 ok · (\d+)s", text)
    assert shown and int(shown.group(1)) <= ROLE_SECONDS, text  # the shortest time left
    for name in ("dev", "ops"):  # a 20 s session is often being refreshed: still served
        assert re.search(rf"^{name}: (fresh|refreshing), \d+s left$", title, re.M), title
    hub.browser.screenshot("jupyter-status-ok")
    # hover lists every profile; a click, with nothing to do, lists them in a dialog
    hub.browser.css("#credd-status").click()
    items = hub.browser.wait(lambda: hub.browser.all(".credd-profiles li"), "the profile list")
    assert sorted(i.get_attribute("data-profile") for i in items) == ["dev", "ops"]
    assert not hub.browser.all(".credd-profiles button.credd-act")
    hub.browser.screenshot("jupyter-profiles")
    hub.browser.css(".jp-Dialog button.jp-mod-accept").click()
    hub.browser.wait(lambda: not hub.browser.all(".jp-Dialog"), "the dialog to close")


def run_notebook(hub: Hub, bucket: str) -> dict[str, Any]:
    """Open a notebook in the lab, run its cells, and read the loop's result from the page."""
    cells = [NOTEBOOK_SETUP.replace("BUCKET", bucket), NOTEBOOK_LOOP]
    notebook = {
        "cells": [
            {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
             "source": source}
            for source in cells
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                    "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }  # fmt: skip
    path = Path(hub.env["HOME"]) / f"{bucket}.ipynb"
    path.write_text(json.dumps(notebook))
    hub.command("docmanager:open", {"path": path.name, "factory": "Notebook"})
    hub.browser.wait(
        lambda: hub.browser.js(
            "const w = window.jupyterapp.shell.currentWidget;"
            "return !!(w && w.sessionContext && w.sessionContext.session"
            " && w.sessionContext.session.kernel"
            " && w.sessionContext.session.kernel.status === 'idle');"
        ),
        "the notebook's kernel",
        timeout=90,
    )
    hub.command("notebook:run-all-cells")

    def result() -> dict[str, Any] | None:
        for out in hub.browser.all(".jp-OutputArea-output"):
            line = next((s for s in out.text.splitlines() if s.startswith("RESULT ")), None)
            if line:
                found: dict[str, Any] = json.loads(line[len("RESULT ") :])
                return found
        stderr = "[data-mime-type='application/vnd.jupyter.stderr']"
        failed = [e.text for e in hub.browser.all(stderr) if "Error" in e.text]
        return {"error": failed} if failed else None

    found = hub.browser.wait(result, "the notebook's reads", timeout=150)
    assert "error" not in found, found["error"]
    return found


@pytest.mark.timeout(300)
def test_a_notebooks_s3fs_reads_keep_working_across_rotations(hub: Hub) -> None:
    hub.wait_states("fresh")
    hub.open_lab()
    hub.wait_bar("ok")
    bucket = unique_name("nb")
    expiries = {hub.status()["profiles"][0]["expires_at"]}
    found = run_notebook(hub, bucket)
    assert found["failures"] == [], found
    assert found["keys"] >= 3, found  # two rotations or more, each picked up by s3fs
    assert found["reads"] >= 6, found
    expiries.add(hub.status()["profiles"][0]["expires_at"])
    assert len(expiries) == 2  # and the daemon rotated meanwhile, as the bar shows
    hub.wait_bar("ok")
    hub.browser.js(
        "const outs = document.querySelectorAll('.jp-OutputArea-output');"
        "outs[outs.length - 1].scrollIntoView({block: 'end'});"
    )
    hub.browser.screenshot("jupyter-notebook-s3fs")
    for kernel in hub.server.request("GET", "/api/kernels").json():
        hub.server.request("DELETE", f"/api/kernels/{kernel['id']}")
    hub.browser.js("window.jupyterapp.shell.currentWidget.dispose();")


def test_the_daemon_survives_a_browser_refresh(hub: Hub) -> None:
    before = hub.status()
    assert before["daemon"] == "running" and before["pid"]
    hub.open_lab()
    hub.browser.driver.refresh()
    hub.browser.wait(lambda: hub.browser.css("#credd-status"), "the status item after a refresh")
    hub.wait_bar("ok")
    after = hub.status()
    assert after["pid"] == before["pid"] and after["started_by_extension"] is True


@pytest.mark.timeout(300)
def test_a_revoked_login_turns_the_bar_red_and_the_dialog_logs_in_again(hub: Hub) -> None:
    hub.wait_states("fresh")
    hub.open_lab()
    hub.wait_bar("ok")
    windows = len(hub.browser.driver.window_handles)
    hub.sandbox.admin.revoke_sso_sessions(user=hub.user)
    # the next rotation (within ~10 s) finds the login revoked: a person is needed
    hub.wait_states("login_required", timeout=90)
    text, _, title = hub.wait_bar("person")
    assert text.startswith("credd: sign-in needed"), text
    assert "dev: login required (sign-in needed)" in title, title
    colour = hub.browser.css("#credd-status").value_of_css_property("background-color")
    assert colour.startswith("rgba(") and colour != "rgba(0, 0, 0, 0)", colour
    hub.browser.screenshot("jupyter-login-needed")

    # one click: the device-code dialog with the code and the link, and no window opened
    hub.browser.css("#credd-status").click()
    code = hub.browser.wait(
        lambda: hub.browser.css(".credd-user-code").text.strip(), "the user code", timeout=60
    )
    link = hub.browser.css("a.credd-verification-link")
    href = link.get_attribute("href")
    assert link.get_attribute("target") == "_blank" and code in href, href
    assert link.text == href
    assert len(hub.browser.driver.window_handles) == windows  # nothing opened by itself
    hub.browser.screenshot("jupyter-login-dialog")

    # the person approves in their own browser (here: the sandbox's admin API)
    hub.sandbox.admin.approve_device(code, user=hub.user)
    hub.browser.wait(lambda: not hub.browser.all(".credd-login"), "the dialog to close", 60)
    text, _, _ = hub.wait_bar("ok", timeout=30)  # at once: the dialog asks for the status
    assert text.startswith("credd: 2 ok"), text
    status = hub.wait_states("fresh", timeout=30)
    assert status["started_by_extension"] is True
    hub.browser.screenshot("jupyter-logged-in")


def test_a_profile_waiting_for_an_mfa_code_gets_it_through_the_dialog(hub: Hub) -> None:
    """An IAM user's profile whose MFA code comes from a person (no TOTP seed stored): the
    bar turns red, one click asks for the code, and the code reaches the daemon."""
    import pyotp

    user, device = hub.sandbox.new_user_with_mfa("hubmfa")
    remember(user.secret_access_key, device.seed)
    env = {
        **hub.env,
        "CREDD_PASSPHRASE_FILE": str(Path(hub.env["HOME"]) / ".config" / "credd-passphrase"),
    }
    keys = f"{user.access_key_id}\n{user.secret_access_key}\n"
    done = subprocess.run(
        [sys.executable, "-m", "credd.cli", "keys", "set", "mfa", "--stdin"],
        env=env, input=keys, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with Path(hub.env["AWS_CONFIG_FILE"]).open("a") as config:
        config.write(
            f"\n[profile mfa]\nmfa_serial = {device.serial}\nregion = us-east-1\n"
            "services = sandbox\ncredd = true\n"
        )
    os.kill(hub.status()["pid"], signal.SIGHUP)  # the daemon reloads the AWS config
    hub.browser.wait(
        lambda: {p["name"]: p["state"] for p in hub.status()["profiles"]}.get("mfa") == "needs_mfa",
        "the new profile to wait for a code",
    )
    hub.open_lab()
    text, _, title = hub.wait_bar("person")
    assert text == "credd: MFA code needed (mfa)", text
    assert "mfa: needs mfa (MFA code needed)" in title, title
    hub.browser.css("#credd-status").click()
    field = hub.browser.wait(lambda: hub.browser.css("input.credd-mfa-input"), "the code field")
    hub.browser.screenshot("jupyter-mfa-dialog")
    field.send_keys(pyotp.TOTP(device.seed).now())
    hub.browser.css(".jp-Dialog button.jp-mod-accept").click()
    hub.browser.wait(lambda: not hub.browser.all(".credd-mfa"), "the dialog to close")
    text, _, _ = hub.wait_bar("ok", timeout=30)
    assert text.startswith("credd: 3 ok"), text
