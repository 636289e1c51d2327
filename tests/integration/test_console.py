"""``credd console``: the sign-in URL's token is accepted by the sandbox's federation endpoint
(once, within 15 minutes); an MFA user is refused with the role profile to use; a plain IAM user
goes through GetFederationToken."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from credd.actions.console import destination
from tests.fixtures.daemon import DaemonFactory, remember, services_section
from tests.fixtures.sandbox import SandboxHandle

pytestmark = pytest.mark.integration


def login(url: str) -> tuple[int, str, str]:
    """(status, Location, principal) of following the sign-in URL once, without redirects."""
    done = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-D", "-", url], capture_output=True, text=True,
        timeout=30,
    )  # fmt: skip
    lines = done.stdout.splitlines()
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    return status, headers.get("location", ""), headers.get("x-sandbox-console-principal", "")


def test_destinations() -> None:
    assert destination(None, None) == "https://console.aws.amazon.com/console/home"
    assert destination("s3/home", "eu-west-1") == (
        "https://console.aws.amazon.com/s3/home?region=eu-west-1"
    )


def test_federation_refuses_get_session_token_credentials(sandbox_clean: SandboxHandle) -> None:
    user = sandbox_clean.new_user("fed")
    remember(user.secret_access_key)
    creds = sandbox_clean.user_client("sts", user).get_session_token()["Credentials"]
    remember(creds["SecretAccessKey"], creds["SessionToken"])
    session = {"sessionId": creds["AccessKeyId"], "sessionKey": creds["SecretAccessKey"],
               "sessionToken": creds["SessionToken"]}  # fmt: skip
    query = urlencode({"Action": "getSigninToken", "Session": json.dumps(session)})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{sandbox_clean.endpoint}/federation?{query}", timeout=10)  # noqa: S310
    assert refused.value.code == 400 and b"GetSessionToken" in refused.value.read()


@pytest.mark.timeout(240)
def test_console_end_to_end(daemons: DaemonFactory) -> None:
    sandbox = daemons.sandbox
    user, dev = sandbox.new_user_with_mfa("console")
    plain = sandbox.new_user("plain")
    remember(user.secret_access_key, dev.seed, plain.secret_access_key)
    daemons.store.set_long_term_keys("user", user.access_key_id, user.secret_access_key)
    daemons.store.set_totp_seed("user", dev.seed)
    daemons.store.set_long_term_keys("plain", plain.access_key_id, plain.secret_access_key)
    role = sandbox.admin.create_role(f"admin-{user.name}", trusted=[user.arn], mfa_required=True)
    daemons.write_config(
        "[profile user]\nregion = us-east-1\nservices = sandbox\ncredd = true\n"
        f"[profile user-admin]\nrole_arn = {role.arn}\nsource_profile = user\n"
        "credd = true\nregion = us-east-1\nservices = sandbox\n"
        "[profile plain]\nregion = us-east-1\nservices = sandbox\n"
    )
    d = daemons.start()
    d.wait_state("user-admin", "fresh")
    d.env["CREDD_FEDERATION_URL"] = f"{sandbox.endpoint}/federation"

    done = d.run("console", "user-admin", "--print", "--region", "eu-west-1",
                 "--destination", "s3/home")  # fmt: skip
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    query = parse_qs(urlsplit(url).query)
    remember(*query["SigninToken"])  # a bearer token: the run-wide scan checks every log for it
    leaked = query["SigninToken"][0] in done.stderr  # a bool: a failure must not show the token
    assert not leaked, "the sign-in token is on stderr (printed on stdout only, never logged)"
    assert query["Action"] == ["login"] and query["Issuer"] == ["credd"]
    assert query["Destination"] == ["https://console.aws.amazon.com/s3/home?region=eu-west-1"]
    status, location, principal = login(url)
    assert status == 302 and location == query["Destination"][0]
    assert principal.startswith(f"arn:aws:sts::123456789012:assumed-role/{role.name}/")
    assert login(url)[0] == 400  # a sign-in token works once

    refused = d.run("console", "user", "--print")
    assert refused.returncode == 3 and refused.stdout == ""
    assert "carry no MFA" in refused.stderr and "credd console user-admin" in refused.stderr

    fed = d.run("console", "plain", "--print")
    assert fed.returncode == 0, fed.stderr
    status, _, principal = login(fed.stdout.strip())
    assert status == 302 and principal.endswith(":federated-user/credd-plain")

    expired = d.run("console", "user-admin", "--print")
    sandbox.admin.advance(15 * 60 + 1)  # sign-in tokens last 15 minutes
    assert login(expired.stdout.strip())[0] == 400


def test_the_federation_url_must_be_https_or_loopback() -> None:
    from credd.actions.console import federation_url
    from credd.errors import ConfigError

    assert federation_url({}) == "https://signin.aws.amazon.com/federation"
    assert federation_url({"CREDD_FEDERATION_URL": "http://127.0.0.1:9/federation"})
    with pytest.raises(ConfigError, match="not https"):
        federation_url({"CREDD_FEDERATION_URL": "http://example.com/federation"})


def test_the_browser_never_sees_the_sign_in_token(
    clean_env: Path, sandbox_clean: SandboxHandle, keyring_env: Any, tmp_path: Path
) -> None:
    """A browser's command line is visible to every user (``ps``): the browser gets the path of
    a private page that forwards to the sign-in URL, never the URL, and the page is gone after.
    The browser here is a program that records its argv and what the file it was given held."""
    plain = sandbox_clean.new_user("argv")
    remember(plain.secret_access_key)
    aws = clean_env / ".aws"
    aws.mkdir()
    (aws / "config").write_text("[profile plain]\nregion = us-east-1\nservices = sandbox\n"
                                + services_section(sandbox_clean.endpoint))  # fmt: skip
    keys = f"aws_access_key_id = {plain.access_key_id}\n"
    keys += f"aws_secret_access_key = {plain.secret_access_key}\n"
    (aws / "credentials").write_text("[plain]\n" + keys)
    seen = tmp_path / "seen"
    seen.mkdir()
    browser = tmp_path / "browser"
    browser.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > {seen}/argv\n'
        'for a in "$@"; do f="${a#file://}"; if [ -f "$f" ]; then\n'
        f'  cat "$f" > {seen}/page; stat -c %a "$f" > {seen}/mode; fi; done\n'
    )
    browser.chmod(0o700)
    env = {**os.environ, "BROWSER": str(browser),
           "CREDD_FEDERATION_URL": f"{sandbox_clean.endpoint}/federation"}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "credd.cli", "console", "plain"], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    argv = (seen / "argv").read_text()
    on_argv = "SigninToken" in argv  # a bool: a failure must not print the token
    assert not on_argv, "the sign-in token is on the browser's command line"
    page = (seen / "page").read_text()
    match = re.search(r'href="([^"]+)"', page)
    assert match, "the page links to the sign-in URL"
    url = html.unescape(match.group(1))
    token = parse_qs(urlsplit(url).query)["SigninToken"][0]
    remember(token)
    on_argv = token in argv
    assert not on_argv, "the token is on the browser's argv"
    assert argv.startswith("file://") and (seen / "mode").read_text().strip() == "600"
    path = Path(argv.strip().removeprefix("file://"))
    assert path.parent == clean_env.parent / "run" / "credd" and not path.exists()
    leaked = token in done.stdout + done.stderr
    assert not leaked, "the sign-in token was printed"
    status, _, principal = login(url)  # the page forwards to a working sign-in URL
    assert status == 302 and principal.endswith(":federated-user/credd-plain")
