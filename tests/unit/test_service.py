"""The systemd units (systemd-analyze verify and security) and `credd service`."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from credd.daemon import units as service
from credd.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
ANALYZE = "/usr/bin/systemd-analyze"
MAX_EXPOSURE = 2.5

needs_analyze = pytest.mark.skipif(not Path(ANALYZE).exists(), reason="needs systemd-analyze")


def analyze(*args: str, home: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze --user``: the user manager's view (``%h``, ``%t``) of the units. The
    runtime dir is short: socket paths in it (ours, gpg-agent's) must fit in sun_path."""
    with tempfile.TemporaryDirectory(prefix="sa-", dir="/tmp") as runtime:
        env = {"PATH": os.environ["PATH"], "HOME": str(home), "XDG_RUNTIME_DIR": runtime}
        return subprocess.run(
            [ANALYZE, "--user", *args],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
        )


def installed_units(clean_env: Path) -> Path:
    return clean_env / ".config" / "systemd" / "user"


def exec_start(unit_text: str) -> list[str]:
    line = next(x for x in unit_text.splitlines() if x.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))


# -- the units ------------------------------------------------------------------------------


def test_shipped_units_are_the_rendered_ones() -> None:
    shipped = service.render([service.SHIPPED_EXEC, "daemon"], {}, home=Path("/nonexistent"))
    for name, text in shipped.files.items():
        assert (REPO / "systemd" / name).read_text() == text, f"systemd/{name} is out of date"


@needs_analyze
def test_shipped_units_verify_clean(clean_env: Path) -> None:
    launcher = clean_env / ".local" / "bin" / "credd"  # what %h/.local/bin/credd resolves to
    launcher.parent.mkdir(parents=True)
    launcher.symlink_to(Path(sys.executable).parent / "credd")
    done = analyze("verify", "--man=no", "credd.service", "credd.socket", home=clean_env,
                   cwd=REPO / "systemd")  # fmt: skip
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


@needs_analyze
def test_verify_catches_a_broken_unit(clean_env: Path, tmp_path: Path) -> None:
    """The check above can fail: an unknown key or a missing program is reported."""
    text = (REPO / "systemd" / "credd.service").read_text()
    broken = tmp_path / "credd.service"
    broken.write_text(text.replace("LockPersonality=yes", "LockPersonalty=yes"))
    (tmp_path / "credd.socket").write_text((REPO / "systemd" / "credd.socket").read_text())
    done = analyze("verify", "--man=no", "credd.service", "credd.socket", home=clean_env,
                   cwd=tmp_path)  # fmt: skip
    output = done.stdout + done.stderr
    assert "Unknown key 'LockPersonalty'" in output
    assert "is not executable" in output  # %h/.local/bin/credd does not exist in this HOME


@needs_analyze
def test_security_exposure_stays_low(clean_env: Path) -> None:
    done = analyze("security", "--offline=true", "--no-pager", "credd.service",
                   home=clean_env, cwd=REPO / "systemd")  # fmt: skip
    match = re.search(r"Overall exposure level for credd\.service: ([0-9.]+)", done.stdout)
    assert match, done.stdout + done.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, done.stdout
    for setting in ("NoNewPrivileges=", "MemoryDenyWriteExecute=", "PrivateTmp=", "UMask="):
        line = next(x for x in done.stdout.splitlines() if setting in x)
        assert line.lstrip().startswith("✓"), line


def test_render_passes_non_default_locations_and_escapes_exec_start(tmp_path: Path) -> None:
    home = tmp_path / "h"
    env = {
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(home / "cfg" / "aws config"),
        "AWS_SHARED_CREDENTIALS_FILE": "/srv/creds/credentials",
        "XDG_RUNTIME_DIR": "/run/user/1000",
        "CREDD_SOCKET": "/run/user/1000/credd/credd.sock",  # the default: nothing to pass
    }
    units = service.render(["/opt/my tools/bin/credd", "daemon", "100%"], env, home=home)
    text = units.files[service.SERVICE]
    assert 'ExecStart="/opt/my tools/bin/credd" daemon 100%%' in text
    assert 'Environment="AWS_CONFIG_FILE=%h/cfg/aws config"' in text
    assert "Environment=AWS_SHARED_CREDENTIALS_FILE=/srv/creds/credentials" in text
    rw = next(x for x in text.splitlines() if x.startswith("ReadWritePaths="))
    assert "-%h/cfg" in rw and "-/srv/creds" in rw and "%t/credd" in rw
    assert "CREDD_SOCKET" not in text
    assert "ListenStream=%t/credd/credd.sock" in units.files[service.SOCKET]
    other = service.render(["credd"], {**env, "CREDD_SOCKET": "/srv/s/c.sock"}, home=home)
    assert "ListenStream=/srv/s/c.sock" in other.files[service.SOCKET]
    assert "Environment=CREDD_SOCKET=/srv/s/c.sock" in other.files[service.SERVICE]


def test_a_daemon_that_cannot_use_its_config_is_not_restarted(clean_env: Path) -> None:
    """Exit 3 is "the config is unusable": the daemon exits with it on a config botocore cannot
    parse, and the unit tells systemd not to restart on it (no restart loop)."""
    aws = clean_env / ".aws"
    aws.mkdir()
    (aws / "config").write_text("[profile a]\nregion = us-east-1\n[profile a]\nregion = x\n")
    env = {**os.environ, "CREDD_SOCKET": str(clean_env / "s.sock"), "CREDD_ENDPOINT_PORT": "off"}
    done = credd("daemon", env=env)
    assert done.returncode == ConfigError.exit_code == 3, done.stderr
    assert "cannot be parsed" in done.stderr
    text = service.render(["credd", "daemon"], {}, home=clean_env).files[service.SERVICE]
    lines = text.splitlines()
    assert "Restart=on-failure" in lines
    assert f"RestartPreventExitStatus={ConfigError.exit_code}" in lines


# -- credd service --------------------------------------------------------------------------


def credd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "credd.cli", *args],
        env=env or dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.skipif(not Path("/usr/bin/systemctl").exists(), reason="needs systemctl")
def test_install_without_a_user_manager_writes_the_units_and_says_so(clean_env: Path) -> None:
    done = credd("service", "install")
    assert done.returncode == ConfigError.exit_code, done.stderr
    assert "no systemd user manager is reachable" in done.stderr
    assert "credd daemon --detach" in done.stderr
    directory = installed_units(clean_env)
    assert f"wrote {directory / 'credd.service'}" in done.stderr
    text = (directory / "credd.service").read_text()
    assert exec_start(text)[:1] == service.exec_command()[:1]
    assert (clean_env / ".aws").is_dir()
    status = credd("service", "status")
    assert status.returncode != 0
    assert f"credd.service: installed in {directory / 'credd.service'}" in status.stdout
    gone = credd("service", "uninstall")
    assert gone.returncode == ConfigError.exit_code
    assert f"removed {directory / 'credd.service'}" in gone.stderr
    assert not (directory / "credd.service").exists()


@pytest.fixture
def recording_systemctl(tmp_path: Path) -> tuple[service.Systemctl, Path]:
    """A stand-in `systemctl` program that records its arguments and answers `show`."""
    calls = tmp_path / "calls"
    prog = tmp_path / "systemctl"
    prog.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {calls}\n'
        'case "$2" in show) printf "LoadState=loaded\\nUnitFileState=enabled\\n'
        "ActiveState=active\\nSubState=listening\\n\\nLoadState=loaded\\n"
        "UnitFileState=enabled\\nActiveState=active\\nSubState=running\\n"
        'StatusText=2 fresh\\nMainPID=42\\n";; esac\n'
    )
    prog.chmod(0o755)
    return service.Systemctl(str(prog)), calls


def test_install_is_idempotent_and_restarts_only_on_change(
    clean_env: Path, recording_systemctl: tuple[service.Systemctl, Path]
) -> None:
    systemctl, calls = recording_systemctl
    first = service.install(systemctl)
    directory = installed_units(clean_env)
    assert first[:2] == [
        f"wrote {directory / 'credd.socket'}",
        f"wrote {directory / 'credd.service'}",
    ]
    assert calls.read_text().splitlines() == [
        "--user daemon-reload",
        "--user enable credd.socket credd.service",
        "--user start credd.socket",
        "--user restart credd.service",
    ]
    before = {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}
    calls.write_text("")
    second = service.install(systemctl)
    assert second[0] == f"units in {directory} are up to date"
    assert "--user start credd.service" in calls.read_text().splitlines()
    assert {p.name: p.stat().st_mtime_ns for p in directory.iterdir()} == before
    assert sorted(os.listdir(directory)) == ["credd.service", "credd.socket"]  # no temp files
    code, text = service.status(systemctl)
    assert code == 0
    assert "credd.service: enabled, active (running): 2 fresh" in text
    calls.write_text("")
    removed = service.uninstall(systemctl)
    assert calls.read_text().splitlines() == [
        "--user disable --now credd.socket credd.service",
        "--user daemon-reload",
    ]
    assert f"removed {directory / 'credd.service'}" in removed
    assert service.uninstall(systemctl)[-1] == f"no credd units in {directory}"


def test_service_status_json_is_the_report_the_text_is_made_from(
    clean_env: Path, recording_systemctl: tuple[service.Systemctl, Path]
) -> None:
    import io
    import json

    from credd.cli.app import build_parser
    from credd.cli.io import Io

    systemctl, _ = recording_systemctl
    service.install(systemctl)
    args = build_parser().parse_args(["service", "status", "--json"])
    args.systemctl = systemctl  # the seam cmd_service reads
    out = io.StringIO()
    assert args.func(args, Io(stdout=out)) == 0
    report = json.loads(out.getvalue())
    directory = installed_units(clean_env)
    assert report == {
        "active": True,
        "units": [
            {"name": "credd.socket", "file": str(directory / "credd.socket"),
             "enabled": "enabled", "active": "active", "sub": "listening", "status_text": None},
            {"name": "credd.service", "file": str(directory / "credd.service"),
             "enabled": "enabled", "active": "active", "sub": "running",
             "status_text": "2 fresh"},
        ],
    }  # fmt: skip


def test_the_installed_exec_start_runs_this_credd(clean_env: Path) -> None:
    """ExecStart (with `daemon` swapped for `version`) runs this very installation."""
    text = service.render(service.exec_command(), dict(os.environ)).files[service.SERVICE]
    words = exec_start(text)
    assert words[-1] == "daemon"
    done = subprocess.run([*words[:-1], "version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    from credd import __version__

    assert done.stdout.strip() == f"credd {__version__}"
