"""File secret stores for hosts with no Secret Service, chosen explicitly, never by fallback.

``CREDD_SECRET_STORE`` (else the one word in ``$XDG_CONFIG_HOME/credd/secret-store``, written
by ``credd store init``/``use``; else ``keyring``) picks where
:class:`credd.secrets.store.SecretStore` keeps its entries:

``keyring``         the OS keyring through python-keyring (the default)
``encrypted-file``  ``$XDG_DATA_HOME/credd/secrets.enc``: AES-256-GCM, key from the passphrase
                    with scrypt (N=2^17, r=8, p=1); unlocked once when the store is first used
``plaintext-file``  ``$XDG_DATA_HOME/credd/secrets.json``, 0600, with a loud warning

Both files are 0600 in a 0700 directory, replaced atomically (temporary file, fsync, rename)
under an exclusive ``flock`` on ``secrets.lock``, and reread on every call so entries written by
``credd keys set`` reach a running daemon. The passphrase comes from ``CREDD_PASSPHRASE_FD``
(``--passphrase-fd``), else the systemd credential ``$CREDENTIALS_DIRECTORY/credd-passphrase``,
else ``CREDD_PASSPHRASE_FILE`` (a file only its owner can read), else the standard output of
``CREDD_PASSPHRASE_COMMAND`` (run without a shell), else a prompt, only when the caller allows
one and standard input is a terminal. Neither
passphrase nor key nor plaintext ever reaches a log line, an exception or a repr.
"""

from __future__ import annotations

import abc
import base64
import binascii
import contextlib
import fcntl
import json
import logging
import os
import select
import stat
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import keyring.backend
import keyring.errors
from keyring.compat import properties

from credd.errors import SecretStoreError, SecretStoreLocked, SecretStoreSealed, UsageError
from credd.paths import ensure_private_dir

log = logging.getLogger(__name__)

KEYRING = "keyring"
ENCRYPTED = "encrypted-file"
PLAINTEXT = "plaintext-file"
KINDS = (KEYRING, ENCRYPTED, PLAINTEXT)
STORE_ENV = "CREDD_SECRET_STORE"
FD_ENV = "CREDD_PASSPHRASE_FD"
FILE_ENV = "CREDD_PASSPHRASE_FILE"
COMMAND_ENV = "CREDD_PASSPHRASE_COMMAND"
CREDENTIAL_NAME = "credd-passphrase"
DOCS = "see docs/secrets.md (headless hosts)"
FORMAT = "credd-secret-store"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1
FD_TIMEOUT = 10.0
MAX_PASSPHRASE = 4096
PLAINTEXT_WARNING = (
    "SECRETS ARE STORED UNENCRYPTED in %s (CREDD_SECRET_STORE=plaintext-file): anyone who can "
    "read that file or a backup of it has your AWS keys and TOTP seeds; prefer encrypted-file"
)

Passphrase = Callable[[], bytes]


# -- where and which --------------------------------------------------------------------------


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def data_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = _env(environ)
    base = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local/share")
    return Path(base) / "credd"


def selection_file(environ: Mapping[str, str] | None = None) -> Path:
    env = _env(environ)
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "credd" / "secret-store"


def store_path(kind: str, environ: Mapping[str, str] | None = None) -> Path:
    return data_dir(environ) / ("secrets.enc" if kind == ENCRYPTED else "secrets.json")


def _check_kind(kind: str, source: str) -> str:
    if kind not in KINDS:
        raise UsageError(
            f"{source} names an unknown secret store {kind!r}",
            hint=f"use one of: {', '.join(KINDS)}; " + DOCS,
        )
    return kind


def selected(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """``(kind, where the choice came from)``; ``keyring`` unless chosen explicitly."""
    env = _env(environ)
    value = env.get(STORE_ENV, "").strip()
    if value:
        return _check_kind(value, STORE_ENV), STORE_ENV
    path = selection_file(env)
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return KEYRING, "default"
    except OSError as exc:
        raise SecretStoreError(f"cannot read {path}: {exc.strerror}", hint=DOCS) from None
    return _check_kind(text, str(path)), str(path)


def select_store(kind: str, environ: Mapping[str, str] | None = None) -> Path:
    """Record ``kind`` as the store to use (``credd store init``/``use``)."""
    path = selection_file(environ)
    ensure_private_dir(path.parent)
    _atomic_write(path, (_check_kind(kind, "the choice") + "\n").encode())
    return path


# -- passphrase -------------------------------------------------------------------------------


def _strip(raw: bytes, source: str) -> bytes:
    if raw.endswith(b"\n"):
        raw = raw[:-1]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
    if not raw:
        raise SecretStoreLocked(f"the passphrase from {source} is empty", hint=DOCS)
    return raw


def read_fd(fd: int, timeout: float = FD_TIMEOUT) -> bytes:
    """Read a passphrase from ``fd`` up to end of file; give up after ``timeout`` seconds."""
    source = f"file descriptor {fd}"
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(left, 0))
            if not ready:
                raise SecretStoreLocked(
                    f"no end of file on {source} within {timeout:g}s",
                    hint="write the passphrase to it and close it (e.g. `3< file`); " + DOCS,
                )
            chunk = os.read(fd, 1024)
            if not chunk:
                break
            chunks.append(chunk)
            if sum(map(len, chunks)) > MAX_PASSPHRASE:
                raise SecretStoreLocked(f"the passphrase on {source} is too long", hint=DOCS)
    except OSError as exc:
        raise SecretStoreLocked(
            f"cannot read the passphrase from {source}: {exc.strerror}",
            hint="pass an open descriptor (--passphrase-fd 3 3< file); " + DOCS,
        ) from None
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    return _strip(b"".join(chunks), source)


def _parse_fd(text: str) -> int:
    try:
        fd = int(text)
    except ValueError:
        fd = -1
    if fd < 0:
        raise UsageError(f"{FD_ENV}={text!r} is not a file descriptor number", hint=DOCS)
    return fd


def read_file(path: Path) -> bytes:
    """The passphrase in ``path``: a regular file of this user that nobody else can read."""
    source = f"{FILE_ENV} ({path})"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise SecretStoreLocked(f"cannot read {source}: {exc.strerror}", hint=DOCS) from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            raise SecretStoreLocked(f"{source} is not a regular file of yours", hint=DOCS)
        if info.st_mode & 0o077:
            raise SecretStoreLocked(
                f"{source} can be read by others (mode {stat.S_IMODE(info.st_mode):04o})",
                hint=f"chmod 600 {path}; " + DOCS,
            )
        return _strip(handle.read(MAX_PASSPHRASE + 2), source)


def run_command(command: str, timeout: float = FD_TIMEOUT) -> bytes:
    """The standard output of ``command`` (split like a shell would, run without one)."""
    import shlex
    import subprocess

    source = COMMAND_ENV
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise UsageError(f"{COMMAND_ENV} cannot be split into words: {exc}", hint=DOCS) from None
    if not argv:
        raise UsageError(f"{COMMAND_ENV} is empty", hint=DOCS)
    try:
        done = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise SecretStoreLocked(
            f"{source} ({argv[0]}) did not finish within {timeout:g}s", hint=DOCS
        ) from None
    except OSError as exc:
        raise SecretStoreLocked(
            f"cannot run {source} ({argv[0]}): {exc.strerror}", hint=DOCS
        ) from None
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        raise SecretStoreLocked(
            f"{source} ({argv[0]}) exited with status {done.returncode}"
            + (f": {said[-1][:200]}" if said else ""),
            hint=DOCS,
        )
    if len(done.stdout) > MAX_PASSPHRASE + 2:
        raise SecretStoreLocked(f"the passphrase from {source} is too long", hint=DOCS)
    return _strip(done.stdout, source)


def passphrase_source(
    environ: Mapping[str, str] | None = None,
    *,
    prompt: Callable[[str], str] | None = None,
) -> tuple[str, Passphrase] | None:
    """Where the passphrase will come from, as ``(description, reader)``; None: nowhere.

    Order: ``CREDD_PASSPHRASE_FD``, the systemd credential, ``CREDD_PASSPHRASE_FILE``,
    ``CREDD_PASSPHRASE_COMMAND``, then ``prompt`` (give one only when a person is at a
    terminal). Nothing is read (or run) until the reader is called.
    """
    env = _env(environ)
    if env.get(FD_ENV):
        fd = _parse_fd(env[FD_ENV])
        return f"file descriptor {fd}", lambda: read_fd(fd)
    creds = env.get("CREDENTIALS_DIRECTORY")
    if creds and (Path(creds) / CREDENTIAL_NAME).exists():
        path = Path(creds) / CREDENTIAL_NAME

        def from_credential() -> bytes:
            try:
                return _strip(path.read_bytes()[: MAX_PASSPHRASE + 2], f"systemd credential {path}")
            except OSError as exc:
                raise SecretStoreLocked(f"cannot read {path}: {exc.strerror}", hint=DOCS) from None

        return f"systemd credential {CREDENTIAL_NAME}", from_credential
    if env.get(FILE_ENV):
        file = Path(env[FILE_ENV]).expanduser()
        return f"{FILE_ENV} ({file})", lambda: read_file(file)
    if env.get(COMMAND_ENV, "").strip():
        command = env[COMMAND_ENV]
        return COMMAND_ENV, lambda: run_command(command)
    if prompt is not None:
        ask = prompt
        return "the terminal", lambda: _strip(
            ask("Passphrase of the credd secret store: ").encode(), "the prompt"
        )
    return None


def no_passphrase_error(path: Path) -> SecretStoreSealed:
    return SecretStoreSealed(
        f"the encrypted secret store {path} is locked: no passphrase was given",
        hint=f"pass it with --passphrase-fd N ({FD_ENV}=N), as the systemd credential "
        f"{CREDENTIAL_NAME} (LoadCredential=), in a file ({FILE_ENV}), from a command "
        f"({COMMAND_ENV}), or run interactively to be asked; " + DOCS,
    )


# -- file plumbing ----------------------------------------------------------------------------


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dirfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


def _read_private(path: Path) -> bytes | None:
    """The file's bytes (None if missing); refuse one owned by someone else, tighten 0600."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SecretStoreError(f"cannot open {path}: {exc.strerror}", hint=DOCS) from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if st.st_uid != os.getuid():
            raise SecretStoreError(
                f"{path} belongs to uid {st.st_uid}, not to you", hint="remove it; " + DOCS
            )
        if stat.S_IMODE(st.st_mode) & 0o077:
            log.warning("%s was readable by others; setting its mode to 0600", path)
            os.fchmod(f.fileno(), 0o600)
        return f.read()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not a string")
    return base64.b64decode(text, validate=True)


# -- the backends -----------------------------------------------------------------------------


class FileKeyring(keyring.backend.KeyringBackend):
    """Entries ``{service: {username: value}}`` in one private file. Never auto-selected."""

    @properties.classproperty
    def priority(cls) -> float:
        raise RuntimeError("credd file stores are chosen explicitly (CREDD_SECRET_STORE)")

    def __init__(self, path: Path) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.path = path

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    __str__ = __repr__

    @contextlib.contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        try:
            ensure_private_dir(self.path.parent)
            lock = os.open(self.path.parent / "secrets.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(lock, mode)
                yield
            finally:
                os.close(lock)
        except OSError as exc:
            raise SecretStoreError(
                f"cannot use the secret store {self.path}: {exc.strerror or type(exc).__name__}",
                hint="check the directory's space and permissions; " + DOCS,
            ) from None

    @abc.abstractmethod
    def encode(self, entries: dict[str, dict[str, str]]) -> bytes:
        """The file's bytes for these entries."""

    @abc.abstractmethod
    def decode(self, blob: bytes) -> dict[str, dict[str, str]]:
        """The entries in the file's bytes."""

    def missing(self) -> SecretStoreError:
        return SecretStoreError(f"the secret store {self.path} does not exist", hint=DOCS)

    def _entries(self) -> dict[str, dict[str, str]]:
        blob = _read_private(self.path)
        if blob is None:
            raise self.missing()
        return self.decode(blob)

    def create(self) -> None:
        """Write an empty store; refuse to overwrite one."""
        with self._locked(fcntl.LOCK_EX):
            if self.path.exists():
                raise UsageError(
                    f"{self.path} already exists",
                    hint="it may hold secrets: move it away yourself if you want a new one",
                )
            _atomic_write(self.path, self.encode({}))

    def check(self) -> None:
        with self._locked(fcntl.LOCK_SH):
            self._entries()

    def get_password(self, service: str, username: str) -> str | None:
        with self._locked(fcntl.LOCK_SH):
            return self._entries().get(service, {}).get(username)

    def set_password(self, service: str, username: str, password: str) -> None:
        with self._locked(fcntl.LOCK_EX):
            entries = self._entries()
            entries.setdefault(service, {})[username] = password
            _atomic_write(self.path, self.encode(entries))

    def delete_password(self, service: str, username: str) -> None:
        with self._locked(fcntl.LOCK_EX):
            entries = self._entries()
            if username not in entries.get(service, {}):
                raise keyring.errors.PasswordDeleteError("no such entry")
            del entries[service][username]
            if not entries[service]:
                del entries[service]
            _atomic_write(self.path, self.encode(entries))


def _entries_from(data: Any, path: Path) -> dict[str, dict[str, str]]:
    entries = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(entries, dict) or not all(
        isinstance(v, dict) and all(isinstance(x, str) for x in v.values())
        for v in entries.values()
    ):
        raise SecretStoreError(f"{path} is not a credd secret store", hint=DOCS)
    return entries


class PlaintextFileKeyring(FileKeyring):
    """``secrets.json``, 0600: readable by anyone who can read the file. Opt-in only."""

    def encode(self, entries: dict[str, dict[str, str]]) -> bytes:
        return json.dumps({"format": FORMAT, "version": 1, "entries": entries}, indent=1).encode()

    def decode(self, blob: bytes) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(blob)
        except ValueError:
            data = None
        return _entries_from(data, self.path)

    def missing(self) -> SecretStoreError:
        return SecretStoreError(
            f"the plain-text secret store {self.path} does not exist",
            hint="create it with `credd store init plaintext-file`; " + DOCS,
        )


class EncryptedFileKeyring(FileKeyring):
    """``secrets.enc``: AES-256-GCM under a scrypt key; the header is authenticated too."""

    def __init__(self, path: Path, passphrase: Passphrase | None = None) -> None:
        super().__init__(path)
        self._passphrase = passphrase
        self._key: tuple[bytes, bytes] | None = None  # (salt, key)
        self._failed: SecretStoreError | None = None

    @staticmethod
    def _derive(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
        from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

        return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase)

    def _header(self, salt: bytes) -> dict[str, Any]:
        kdf = {"name": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _b64(salt)}
        return {"format": FORMAT, "version": 1, "cipher": "AES-256-GCM", "kdf": kdf}

    @staticmethod
    def _aad(header: dict[str, Any]) -> bytes:
        return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()

    def _read_passphrase(self) -> bytes:
        if self._passphrase is None:
            raise no_passphrase_error(self.path)
        return self._passphrase()

    def unlock(self) -> None:
        """Read the passphrase once and check it against the file (or a new one: ``create``)."""
        if self._key is not None:
            return
        if self._failed is not None:
            raise self._failed
        with self._locked(fcntl.LOCK_SH):
            blob = _read_private(self.path)
        if blob is None:
            raise self.missing()
        try:
            header, _, _ = self._parse(blob)
            kdf = header["kdf"]
            salt = _unb64(kdf["salt"])
            passphrase = self._read_passphrase()
            try:
                key = self._derive(passphrase, salt, kdf["n"], kdf["r"], kdf["p"])
            except ValueError:
                bad = f"{self.path} has unusable scrypt settings"
                raise SecretStoreError(bad, hint=DOCS) from None
            self._key = (salt, key)
            self.decode(blob)
        except SecretStoreError as exc:
            self._key = None
            self._failed = exc
            raise
        log.info("encrypted secret store %s unlocked", self.path)

    def _unlocked(self) -> tuple[bytes, bytes]:
        self.unlock()
        if self._key is None:
            raise no_passphrase_error(self.path)
        return self._key

    def create_with(self, passphrase: bytes) -> None:
        salt = os.urandom(16)
        self._key = (salt, self._derive(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P))
        self.create()

    def missing(self) -> SecretStoreError:
        return SecretStoreError(
            f"the encrypted secret store {self.path} does not exist",
            hint="create it with `credd store init encrypted-file`; " + DOCS,
        )

    def _parse(self, blob: bytes) -> tuple[dict[str, Any], bytes, bytes]:
        bad = SecretStoreError(f"{self.path} is not a credd encrypted secret store", hint=DOCS)
        try:
            data = json.loads(blob)
            header = {k: data[k] for k in ("format", "version", "cipher", "kdf")}
            nonce, sealed = _unb64(data["nonce"]), _unb64(data["data"])
            kdf = header["kdf"]
            ok = header["format"] == FORMAT and header["version"] == 1
            ok = ok and header["cipher"] == "AES-256-GCM" and kdf["name"] == "scrypt"
            ok = ok and all(isinstance(kdf[k], int) and kdf[k] > 0 for k in ("n", "r", "p"))
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise bad from None
        if not ok or len(nonce) != 12 or kdf["n"] > 2**22:
            raise bad
        return header, nonce, sealed

    def encode(self, entries: dict[str, dict[str, str]]) -> bytes:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        salt, key = self._unlocked()
        header = self._header(salt)
        nonce = os.urandom(12)
        plain = json.dumps({"entries": entries}).encode()
        sealed = AESGCM(key).encrypt(nonce, plain, self._aad(header))
        return json.dumps({**header, "nonce": _b64(nonce), "data": _b64(sealed)}).encode()

    def decode(self, blob: bytes) -> dict[str, dict[str, str]]:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        salt, key = self._unlocked()
        header, nonce, sealed = self._parse(blob)
        if _unb64(header["kdf"]["salt"]) != salt:
            raise SecretStoreLocked(
                f"{self.path} was re-created with another passphrase since credd unlocked it",
                hint="restart credd with the new passphrase; " + DOCS,
            )
        try:
            plain = AESGCM(key).decrypt(nonce, sealed, self._aad(header))
        except InvalidTag:
            raise SecretStoreSealed(
                f"wrong passphrase for the encrypted secret store {self.path} "
                "(or the file was altered)",
                hint="give the passphrase used with `credd store init`; restart credd "
                "with the right one; " + DOCS,
            ) from None
        return _entries_from(json.loads(plain), self.path)


def open_store(
    kind: str,
    environ: Mapping[str, str] | None = None,
    *,
    prompt: Callable[[str], str] | None = None,
) -> FileKeyring:
    """The file backend for ``kind``, unlocked (encrypted) or warned about (plain text)."""
    path = store_path(kind, environ)
    if kind == PLAINTEXT:
        log.warning(PLAINTEXT_WARNING, path)
        return PlaintextFileKeyring(path)
    if kind != ENCRYPTED:
        raise UsageError(f"{kind!r} is not a file secret store", hint=DOCS)
    source = passphrase_source(environ, prompt=prompt)
    if environ is None:
        os.environ.pop(FD_ENV, None)  # read once: children must not try that descriptor
    store = EncryptedFileKeyring(path, source[1] if source else None)
    if not path.exists():
        raise store.missing()
    store.unlock()
    return store
