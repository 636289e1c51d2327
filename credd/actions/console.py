"""``credd console PROFILE``: an AWS console sign-in URL from the profile's session
(docs/console.md).

The federation endpoint turns session credentials into a sign-in token
(``Action=getSigninToken``), and ``Action=login`` with that token opens the console. It accepts
AssumeRole credentials (roles, IAM Identity Center) and GetFederationToken credentials; not
long-term keys and not GetSessionToken sessions. An IAM user therefore needs
GetFederationToken, whose session carries **no MFA**: for a user whose policy requires MFA the
console would deny everything (aws-vault 564/784), so credd refuses and names the role profile
to use. The URL holds a bearer token valid for 15 minutes: it is printed, or opened through a
page, never logged and never put on a command line (:func:`open_signin`).
"""

from __future__ import annotations

import html
import json
import os
import tempfile
import urllib.request
from collections.abc import Callable, Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from credd.clock import Clock
from credd.errors import AwsError, ConfigError
from credd.models import Credentials

FEDERATION_URL = "https://signin.aws.amazon.com/federation"
CONSOLE_URL = "https://console.aws.amazon.com/"
ISSUER = "credd"
ALLOW_ALL = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)


#: How long the sign-in page waits for the browser to read it before it is deleted anyway.
PAGE_WAIT = 30.0


class ConsoleRefused(ConfigError):
    code = "console_refused"


def federation_url(environ: Mapping[str, str] | None = None) -> str:
    """``CREDD_FEDERATION_URL`` (the sandbox's ``/federation`` in tests), else AWS's."""
    env = os.environ if environ is None else environ
    url = env.get("CREDD_FEDERATION_URL") or FEDERATION_URL
    parts = urlsplit(url)
    loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ConfigError(
            f"CREDD_FEDERATION_URL {url!r} is not https (session credentials are sent there)",
            hint="use https, or http only on a loopback address (the sandbox)",
        )
    return url


def destination(path: str | None, region: str | None) -> str:
    """The console page to land on: ``console/home`` by default, ``?region=`` when given."""
    target = CONSOLE_URL + (path or "console/home").lstrip("/")
    if region:
        target += ("&" if "?" in target else "?") + "region=" + quote(region)
    return target


def signin_token(creds: Credentials, *, url: str, duration: int | None, timeout: float = 15) -> str:
    session = json.dumps({
        "sessionId": creds.access_key_id,
        "sessionKey": creds.secret_access_key,
        "sessionToken": creds.session_token,
    })  # fmt: skip
    params = {"Action": "getSigninToken", "Session": session}
    if duration is not None:
        params["SessionDuration"] = str(duration)
    try:
        with urllib.request.urlopen(f"{url}?{urlencode(params)}", timeout=timeout) as reply:  # noqa: S310
            body = json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read(300).decode("utf-8", "replace")
        raise AwsError(
            f"the federation endpoint refused the session (HTTP {exc.code}): {detail}"
        ) from None
    except (OSError, ValueError) as exc:
        raise AwsError(
            f"the federation endpoint {url} did not answer ({type(exc).__name__})"
        ) from None
    token = body.get("SigninToken") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise AwsError("the federation endpoint answered without a SigninToken")
    return token


def login_url(token: str, *, url: str, dest: str) -> str:
    query = urlencode(
        {"Action": "login", "Issuer": ISSUER, "Destination": dest, "SigninToken": token}
    )
    return f"{url}?{query}"


def role_profiles_of(config: Any, user: str) -> list[str]:
    return sorted(
        name
        for name, raw in config.profiles.items()
        if raw.get("role_arn") and raw.get("source_profile") == user
    )


def console_credentials(
    name: str, *, config: Any, daemon_credentials: Any, clients: Any
) -> tuple[Credentials, bool]:
    """Session credentials the federation endpoint accepts, and whether they are a role's."""
    from credd.actions.profilecreds import is_role_or_sso, served_profile

    raw = config.require_profile(name)
    served = served_profile(config, name, raw)
    kind_raw = config.profiles.get(served, raw) if served else raw
    is_role = is_role_or_sso(kind_raw)
    if served is not None and is_role:
        return Credentials.from_process_json(daemon_credentials(served)), "role_arn" in kind_raw
    if served is not None or kind_raw.get("mfa_serial"):
        roles = role_profiles_of(config, served or name)
        raise ConsoleRefused(
            f"profile {name} is an IAM user that signs in with MFA; the console needs "
            "GetFederationToken credentials for a user, and those carry no MFA, so a policy "
            "that requires MFA would deny everything in the console",
            hint=f"use a role profile instead: credd console {roles[0]}"
            if roles
            else f"add a role profile with source_profile = {served or name} (and "
            "credd = true), then credd console ROLE-PROFILE",
        )
    return _federation_token(name, raw, config, clients), False


def _federation_token(name: str, raw: Mapping[str, Any], config: Any, clients: Any) -> Credentials:
    from credd.actions.profilecreds import long_term_keys
    from credd.aws.errors import translate
    from credd.secrets.store import SecretStore
    from credd.sources.session_token import from_sts

    keys = long_term_keys(SecretStore(), name, raw)
    if keys is None:
        raise ConfigError(f"profile {name} has no credentials credd can open the console with",
                          hint=f"credd enable {name}, or use a role profile")  # fmt: skip
    sts = clients.client("sts", name, keys)
    try:
        reply = sts.get_federation_token(Name=f"credd-{name}"[:32], Policy=ALLOW_ALL)
    except Exception as exc:
        raise translate(exc, profile=name, action="sts:GetFederationToken") from None
    return from_sts(reply)


def signin_page(link: str) -> str:
    """A page that sends the browser on to ``link`` at once (meta refresh, script, a link)."""
    attr = html.escape(link, quote=True)
    script = json.dumps(link).replace("<", "\\u003c")
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        '<meta name="referrer" content="no-referrer">'
        f'<meta http-equiv="refresh" content="0;url={attr}"><title>credd console</title>'
        f"<script>location.replace({script});</script></head>"
        f'<body><a href="{attr}">Open the AWS console</a></body></html>\n'
    )


def open_signin(
    link: str, *, open_browser: Callable[[str], bool], directory: Path, clock: Clock
) -> bool:
    """Open ``link`` in a browser without putting it on a command line.

    A browser is started with the URL in its argv, which every user on the host can read
    (``ps``), and the sign-in URL is a bearer token. So the URL goes into a page, 0600 in the
    private ``directory`` (0700, credd's runtime dir), the browser is given the page's path, and
    the page is deleted once the browser has read it (its access time moves) or after
    :data:`PAGE_WAIT` seconds."""
    fd, name = tempfile.mkstemp(prefix="console-", suffix=".html", dir=directory)
    page = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(signin_page(link))
        written = page.stat()
        opened = open_browser(page.as_uri())
        if opened:
            _wait_read(page, written.st_atime_ns, written.st_mtime_ns, clock)
        return opened
    finally:
        with suppress(FileNotFoundError):
            page.unlink()


def _wait_read(page: Path, atime_ns: int, mtime_ns: int, clock: Clock) -> None:
    """Until the browser read the page (its atime moved past the write), at most PAGE_WAIT s."""
    deadline = clock.monotonic() + PAGE_WAIT
    while clock.monotonic() < deadline:
        try:
            st = page.stat()
        except FileNotFoundError:
            return
        if st.st_atime_ns != atime_ns and st.st_atime_ns >= mtime_ns:
            clock.sleep(0.5)  # a browser reads a page this small at once; a moment to be sure
            return
        clock.sleep(0.1)
