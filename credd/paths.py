"""Where credd keeps its socket and runtime files. Standard library only.

Socket: ``--socket`` / ``CREDD_SOCKET``, else ``$XDG_RUNTIME_DIR/credd/credd.sock``, else
``/tmp/credd-<uid>/credd.sock`` (the directory must be ours and 0700, as tmux does).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from credd.errors import ConfigError


def runtime_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg) / "credd"
    return Path(f"/tmp/credd-{os.getuid()}")  # noqa: S108 - checked by ensure_private_dir


def socket_path(environ: Mapping[str, str] | None = None, override: str | None = None) -> Path:
    env = os.environ if environ is None else environ
    if override:
        return Path(override)
    if env.get("CREDD_SOCKET"):
        return Path(env["CREDD_SOCKET"])
    return runtime_dir(env) / "credd.sock"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` 0700 if missing; refuse one owned by someone else or open to others."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{path} exists and is not a directory")
    if st.st_uid != os.getuid():
        raise ConfigError(
            f"{path} belongs to uid {st.st_uid}, not to you",
            hint="remove it or set CREDD_SOCKET to a path in a directory you own",
        )
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return path
