"""The secret store: long-term keys, TOTP seeds and saved sessions in the OS keyring.

This is the only module in credd that imports :mod:`keyring` (lazily, so ``import
credd.secrets.store`` stays cheap). Every entry lives under one keyring *service* (``"credd"``) with
a *username* naming what it holds:

==============================  ====================================================
username                        value
==============================  ====================================================
``long-term-keys:<profile>``    ``{"Version": 1, "AccessKeyId", "SecretAccessKey"}``
``totp-seed:<profile>``         the base32 TOTP seed, upper case, no padding
``session:<id>``                a JSON object (saved sessions, see issue 5)
==============================  ====================================================

Every keyring call runs in a worker thread and is abandoned after ``timeout`` seconds, so a
keyring that waits for a person (an unlock prompt nobody answers) or a D-Bus peer that never
replies cannot hang credd. An abandoned call keeps running in its (daemon) thread; while it does,
further calls fail fast instead of piling up threads. Any keyring backend object can be passed
in; ``CREDD_SECRET_STORE=encrypted-file|plaintext-file`` swaps the OS keyring for one of the
file stores of :mod:`credd.secrets.files`, chosen explicitly and never as a fallback.

Secrets never appear in exceptions, log lines or reprs.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from credd.errors import CreddError, SecretStoreError, SecretStoreLocked, UsageError
from credd.models import Credentials

if TYPE_CHECKING:
    import keyring.backend

log = logging.getLogger(__name__)

T = TypeVar("T")

SERVICE = "credd"
LONG_TERM_KEYS = "long-term-keys"
TOTP_SEED = "totp-seed"
SESSION = "session"

DOCS = "see docs/secrets.md"
NO_KEYRING_HINT = (
    "start a Secret Service (on a desktop log in normally; on a server run credd under "
    "`dbus-run-session` with `gnome-keyring-daemon --unlock --components=secrets`), "
    "or set PYTHON_KEYRING_BACKEND to a usable keyring backend; with no Secret Service "
    "(SSH box, hosted notebook) choose a file store yourself: `credd store init "
    "encrypted-file` (or, unencrypted, plaintext-file); " + DOCS
)
LOCKED_HINT = (
    "unlock your keyring (log in to the desktop, or unlock the 'login' collection with your "
    "keyring tool), then try again; " + DOCS
)
_UNUSABLE_BACKENDS = {
    "keyring.backends.fail.Keyring",
    "keyring.backends.null.Keyring",
}
_KEY_ID_RE = re.compile(r"[A-Za-z0-9_]{16,128}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_BASE32_RE = re.compile(r"[A-Z2-7]+")


def entry_name(kind: str, name: str) -> str:
    """The keyring username for one entry, e.g. ``long-term-keys:work``."""
    if not name or len(name) > 256 or _CONTROL_RE.search(name):
        raise UsageError(
            f"invalid {kind} name {name!r}",
            hint="use a non-empty name of at most 256 characters without control characters",
        )
    return f"{kind}:{name}"


def validate_access_key_id(access_key_id: str) -> None:
    """Raise :class:`UsageError` unless this looks like a long-term access key id."""
    if not _KEY_ID_RE.fullmatch(access_key_id):
        raise UsageError(
            "the access key id is not valid",
            hint="an access key id is 16-128 letters and digits, like AKIAIOSFODNN7EXAMPLE",
        )
    if access_key_id.startswith("ASIA"):
        raise UsageError(
            "that access key id (ASIA...) belongs to temporary credentials",
            hint="store the IAM user's long-term keys (AKIA...); credd makes the sessions",
        )


def validate_long_term_keys(access_key_id: str, secret_access_key: str) -> None:
    """Raise :class:`UsageError` unless the pair looks like long-term AWS keys."""
    validate_access_key_id(access_key_id)
    if not secret_access_key:
        raise UsageError("the secret access key is empty", hint="paste the 40-character secret")
    if (
        len(secret_access_key) > 256
        or not secret_access_key.isascii()
        or any(c.isspace() or not c.isprintable() for c in secret_access_key)
    ):
        raise UsageError(
            "the secret access key is not valid",
            hint="it is printable ASCII without spaces, usually 40 characters",
        )
    if secret_access_key == access_key_id:
        raise UsageError(
            "the secret access key is the access key id",
            hint="paste the secret access key, not the key id, as the secret",
        )


def normalise_totp_seed(seed_or_uri: str) -> str:
    """Return the normalised base32 seed from a seed or an ``otpauth://totp/`` URI.

    Raises :class:`UsageError` (never quoting the input) when it is not a usable TOTP seed.
    """
    text = seed_or_uri.strip()
    if text.lower().startswith("otpauth:"):
        text = _seed_from_uri(text)
    if re.fullmatch(r"\d{6,8}", text):
        raise UsageError(
            "that looks like a one-time code, not a TOTP seed",
            hint="give the seed (the 'secret key' shown when the MFA device was created, "
            "or its otpauth:// URI)",
        )
    seed = re.sub(r"[\s-]+", "", text).upper().rstrip("=")
    if not _BASE32_RE.fullmatch(seed or "-"):
        raise UsageError(
            "the TOTP seed is not valid base32",
            hint="a seed uses only the letters A-Z and digits 2-7 (spaces are fine)",
        )
    if len(seed) < 16:
        raise UsageError(
            "the TOTP seed is too short (fewer than 16 base32 characters)",
            hint="AWS virtual MFA seeds are 64 characters; check that you copied all of it",
        )
    import binascii

    import pyotp

    try:
        pyotp.TOTP(seed).at(0)  # the check that counts: pyotp can make codes from it
    except (binascii.Error, ValueError):
        raise UsageError(
            "the TOTP seed is not valid base32 (its length is wrong)",
            hint="check that you copied the whole seed",
        ) from None
    return seed


def _seed_from_uri(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.scheme.lower() != "otpauth":
        raise UsageError("not an otpauth:// URI", hint="give the seed or an otpauth://totp/ URI")
    if parts.netloc.lower() != "totp":
        raise UsageError(
            f"otpauth URIs of type {parts.netloc!r} are not supported",
            hint="AWS virtual MFA devices use otpauth://totp/ (time-based) URIs",
        )
    params = {k.lower(): v for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    secret = params.get("secret", [""])[0]
    if not secret:
        raise UsageError("the otpauth URI has no secret= parameter", hint="copy the whole URI")
    for key, wanted in (("algorithm", "SHA1"), ("digits", "6"), ("period", "30")):
        value = params.get(key, [wanted])[0]
        if value.upper() != wanted:
            raise UsageError(
                f"the otpauth URI asks for {key}={value}, credd supports only {key}={wanted}",
                hint="AWS virtual MFA uses SHA1, 6 digits and 30-second steps",
            )
    return unquote(secret)


def _describe(exc: BaseException, secrets: tuple[str, ...]) -> str:
    """``Type: message`` with any secret blanked out, kept short."""
    text = str(exc)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = " ".join(text.split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _translate(exc: BaseException, what: str, secrets: tuple[str, ...]) -> CreddError:
    """Map a keyring / secretstorage / jeepney / OS error to a credd error."""
    if isinstance(exc, CreddError):
        return exc
    import keyring.errors

    if isinstance(exc, keyring.errors.KeyringLocked):
        return SecretStoreLocked(f"the keyring is locked ({what})", hint=LOCKED_HINT)
    if isinstance(exc, keyring.errors.NoKeyringError):
        return SecretStoreError(f"no usable keyring backend ({what})", hint=NO_KEYRING_HINT)
    try:
        import secretstorage.exceptions as ss
    except ImportError:  # pragma: no cover - secretstorage ships with keyring on Linux
        pass
    else:
        if isinstance(exc, (ss.LockedException, ss.PromptDismissedException)):
            return SecretStoreLocked(f"the keyring is locked ({what})", hint=LOCKED_HINT)
        if isinstance(exc, ss.SecretServiceNotAvailableException):
            return SecretStoreError(
                f"no Secret Service is reachable ({what}): {_describe(exc, secrets)}",
                hint=NO_KEYRING_HINT,
            )
    try:
        from jeepney.wrappers import DBusErrorResponse
    except ImportError:  # pragma: no cover
        pass
    else:
        if isinstance(exc, DBusErrorResponse):
            return SecretStoreError(
                f"the Secret Service answered with a D-Bus error ({what}): {exc.name}",
                hint=NO_KEYRING_HINT,
            )
    if isinstance(exc, (OSError, EOFError)):
        return SecretStoreError(
            f"cannot reach the D-Bus session bus or keyring ({what}): {_describe(exc, secrets)}",
            hint="check DBUS_SESSION_BUS_ADDRESS; " + NO_KEYRING_HINT,
        )
    return SecretStoreError(
        f"the keyring failed ({what}): {_describe(exc, secrets)}", hint=NO_KEYRING_HINT
    )


class SecretStore:
    """credd's entries in one keyring backend; every call bounded by ``timeout`` seconds.

    ``backend`` defaults to what ``PYTHON_KEYRING_BACKEND``, the keyringrc file or keyring's
    own detection picks, unless ``CREDD_SECRET_STORE`` (or the choice recorded by ``credd
    secret-store``) names a file store (:mod:`credd.secrets.files`): that one is opened and
    unlocked on first use, in the calling thread. ``passphrase_prompt`` (default:
    ``allow_prompt``) lets that unlock ask at the terminal when standard input is one.
    With ``allow_prompt=False`` a locked Secret Service collection is
    reported as :class:`SecretStoreLocked` without asking the Secret Service to show an unlock
    prompt (what a daemon nobody watches wants); the default lets the keyring prompt, which a
    desktop answers and a headless box dismisses at once.
    """

    def __init__(
        self,
        backend: keyring.backend.KeyringBackend | None = None,
        *,
        service: str = SERVICE,
        timeout: float = 10.0,
        allow_prompt: bool = True,
        environ: Mapping[str, str] | None = None,
        passphrase_prompt: bool | None = None,
    ) -> None:
        if not service:
            raise UsageError("the keyring service name must not be empty")
        if timeout <= 0:
            raise UsageError("the keyring timeout must be positive")
        self._backend = backend
        self._service = service
        self._timeout = timeout
        self._allow_prompt = allow_prompt
        self._lock = threading.Lock()
        self._stuck: threading.Thread | None = None
        self._environ = environ
        self._passphrase_prompt = allow_prompt if passphrase_prompt is None else passphrase_prompt
        self._open_error: CreddError | None = None

    def __repr__(self) -> str:
        backend = type(self._backend).__name__ if self._backend is not None else "auto"
        return f"SecretStore(service={self._service!r}, backend={backend})"

    @property
    def service(self) -> str:
        return self._service

    @property
    def timeout(self) -> float:
        return self._timeout

    # -- plumbing -------------------------------------------------------------------------

    def _run(self, what: str, fn: Callable[[], T], secrets: tuple[str, ...] = ()) -> T:
        """Run ``fn`` in a worker thread; give up after ``timeout`` seconds."""
        self._open_file_store()
        with self._lock:
            if self._stuck is not None and self._stuck.is_alive():
                raise SecretStoreError(
                    f"the keyring is still busy with an earlier request ({what})",
                    hint="it may be waiting for an unlock prompt; answer it or restart the "
                    "Secret Service; " + DOCS,
                )
            self._stuck = None
        result: list[T] = []
        error: list[BaseException] = []

        def work() -> None:
            try:
                result.append(fn())
            except BaseException as exc:  # handed to the caller below
                error.append(exc)

        worker = threading.Thread(target=work, name=f"credd-keyring-{what}", daemon=True)
        worker.start()
        worker.join(self._timeout)
        if worker.is_alive():
            with self._lock:
                self._stuck = worker
            log.warning(
                "keyring call %s did not finish within %.1fs; abandoned", what, self._timeout
            )
            raise SecretStoreError(
                f"the keyring did not answer within {self._timeout:g}s ({what})",
                hint="it may be waiting for an unlock prompt or a stuck D-Bus service; "
                "unlock or restart it; " + DOCS,
            )
        if error:
            translated = _translate(error[0], what, secrets)
            log.debug("keyring call %s failed: %s", what, translated.code)
            raise translated from None
        return result[0]

    def _open_file_store(self) -> None:
        """With ``CREDD_SECRET_STORE`` naming a file store, open (and unlock) it once, here in
        the calling thread: a passphrase prompt must not race the keyring timeout."""
        with self._lock:
            if self._backend is not None:
                return
            if self._open_error is not None:
                raise self._open_error
            from credd.secrets import files as filestore

            try:
                kind, _source = filestore.selected(self._environ)
                if kind == filestore.KEYRING:
                    return
                self._backend = filestore.open_store(
                    kind, self._environ, prompt=self._prompt_reader()
                )
            except CreddError as exc:
                self._open_error = exc
                raise

    def _prompt_reader(self) -> Callable[[str], str] | None:
        import sys

        if not self._passphrase_prompt or not sys.stdin or not sys.stdin.isatty():
            return None
        import getpass

        return getpass.getpass

    def _resolve(self) -> keyring.backend.KeyringBackend:
        """The backend to use (called inside a worker thread)."""
        with self._lock:
            if self._backend is not None:
                return self._backend
        import os

        import keyring
        import keyring.core

        try:
            backend = keyring.core.load_env() or keyring.core.load_config() or keyring.get_keyring()
        except (RuntimeError, ImportError, AttributeError) as exc:  # a named backend is unusable
            name = os.environ.get("PYTHON_KEYRING_BACKEND")
            source = f"PYTHON_KEYRING_BACKEND={name}" if name else "the keyringrc.cfg file"
            raise SecretStoreError(
                f"the keyring backend chosen by {source} is not usable: {_describe(exc, ())}",
                hint=NO_KEYRING_HINT,
            ) from None
        with self._lock:
            if self._backend is None:
                self._backend = backend
            return self._backend

    def _usable(self, what: str) -> keyring.backend.KeyringBackend:
        backend = self._resolve()
        name = _dotted(backend)
        chained = getattr(backend, "backends", None)
        if name in _UNUSABLE_BACKENDS or (
            name == "keyring.backends.chainer.ChainerBackend" and not chained
        ):
            raise SecretStoreError(f"no usable keyring backend ({name})", hint=NO_KEYRING_HINT)
        if not self._allow_prompt:
            _refuse_if_locked(backend, what)
        return backend

    def _get(self, username: str) -> str | None:
        what = f"read {username}"

        def op() -> str | None:
            value = self._usable(what).get_password(self._service, username)
            return None if value is None else str(value)

        return self._run(what, op)

    def _set(self, username: str, value: str, *secrets: str) -> None:
        what = f"write {username}"
        self._run(
            what,
            lambda: self._usable(what).set_password(self._service, username, value),
            secrets=(value, *secrets),
        )
        log.info("stored %s in keyring service %s", username, self._service)

    def _delete(self, username: str) -> bool:
        what = f"delete {username}"

        def op() -> bool:
            import keyring.errors

            backend = self._usable(what)
            try:
                backend.delete_password(self._service, username)
            except keyring.errors.PasswordDeleteError:
                return False
            return True

        deleted = self._run(what, op)
        if deleted:
            log.info("deleted %s from keyring service %s", username, self._service)
        return deleted

    def _get_json(self, username: str, fix: str) -> dict[str, Any] | None:
        raw = self._get(username)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise SecretStoreError(f"the keyring entry {username!r} is not valid JSON", hint=fix)
        return data

    # -- public API -----------------------------------------------------------------------

    def backend_name(self) -> str:
        """Dotted class path of the backend, as ``PYTHON_KEYRING_BACKEND`` takes it."""
        return _dotted(self._run("find backend", self._resolve))

    def check(self) -> None:
        """Raise :class:`SecretStoreError` / :class:`SecretStoreLocked` unless usable."""
        self._get(f"{SESSION}:credd-check")

    def get_long_term_keys(self, profile: str) -> Credentials | None:
        username = entry_name(LONG_TERM_KEYS, profile)
        fix = f"store the keys again with `credd keys set {profile}`"
        data = self._get_json(username, fix)
        if data is None:
            return None
        key_id, secret = data.get("AccessKeyId"), data.get("SecretAccessKey")
        if not isinstance(key_id, str) or not isinstance(secret, str) or not key_id or not secret:
            raise SecretStoreError(f"the keyring entry {username!r} is incomplete", hint=fix)
        return Credentials(access_key_id=key_id, secret_access_key=secret)

    def set_long_term_keys(self, profile: str, access_key_id: str, secret_access_key: str) -> None:
        username = entry_name(LONG_TERM_KEYS, profile)
        validate_long_term_keys(access_key_id, secret_access_key)
        blob = {"Version": 1, "AccessKeyId": access_key_id, "SecretAccessKey": secret_access_key}
        self._set(username, json.dumps(blob), secret_access_key)

    def delete_long_term_keys(self, profile: str) -> bool:
        return self._delete(entry_name(LONG_TERM_KEYS, profile))

    def get_totp_seed(self, profile: str) -> str | None:
        return self._get(entry_name(TOTP_SEED, profile))

    def set_totp_seed(self, profile: str, seed_or_uri: str) -> None:
        username = entry_name(TOTP_SEED, profile)
        self._set(username, normalise_totp_seed(seed_or_uri))

    def delete_totp_seed(self, profile: str) -> bool:
        return self._delete(entry_name(TOTP_SEED, profile))

    def get_session(self, session_id: str) -> dict[str, Any] | None:
        username = entry_name(SESSION, session_id)
        return self._get_json(username, "delete it; credd makes a new session when needed")

    def set_session(self, session_id: str, data: dict[str, Any]) -> None:
        username = entry_name(SESSION, session_id)
        try:
            blob = json.dumps(data, separators=(",", ":"), sort_keys=True)
        except (TypeError, ValueError):
            raise UsageError("session data must be a JSON-serialisable object") from None
        self._set(username, blob)

    def delete_session(self, session_id: str) -> bool:
        return self._delete(entry_name(SESSION, session_id))


def _dotted(backend: object) -> str:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


def _refuse_if_locked(backend: keyring.backend.KeyringBackend, what: str) -> None:
    """For a Secret Service backend: raise SecretStoreLocked if its collection is locked."""
    if type(backend).__module__ != "keyring.backends.SecretService":
        return
    from contextlib import closing

    import secretstorage

    default = secretstorage.collection.DEFAULT_COLLECTION
    path = getattr(backend, "preferred_collection", None) or default
    with closing(secretstorage.dbus_init()) as bus:
        collection = secretstorage.Collection(bus, path)
        if collection.is_locked():
            raise SecretStoreLocked(f"the keyring is locked ({what})", hint=LOCKED_HINT)
