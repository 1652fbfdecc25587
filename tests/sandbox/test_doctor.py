"""`doctor` and every result report each isolation layer; a weaker layer warns (cost and fix), never fails."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sandbox import SandboxConfig, layers

if __package__:
    from .test_cli import sandbox_cli
else:
    from test_cli import sandbox_cli

LAYER_CHECKS = ("uids", "cgroups", "memory", "pids", "cpu", "disk", "layers", "seccomp", "network")


def lines(out: str) -> dict[str, str]:
    """Map each `[ok] name: detail` line of doctor's output to its mark and detail."""
    found = {}
    for line in out.splitlines():
        mark, _, rest = line.partition("] ")
        name, _, detail = rest.partition(": ")
        found[name] = f"{mark}] {detail}"
    return found


async def test_doctor_without_cgroups_or_uid_range_warns_for_each_weaker_layer(cfg: SandboxConfig) -> None:
    env = {"CODEBOT_SANDBOX_CGROUP": "off", "CODEBOT_SANDBOX_UIDS": "off"}
    code, out, err = await sandbox_cli("doctor", env=env)
    assert code == 0, out + err  # weaker layers are warnings: the bot can still run safely
    found = lines(out)
    assert set(LAYER_CHECKS) <= set(found), out
    for name in ("memory", "pids", "cpu", "cgroups"):
        assert found[name].startswith("[ok] WEAKER"), found[name]
        assert "Delegate=yes" in found[name] or name == "cgroups", found[name]
    assert "RLIMIT_AS" in found["memory"] and "/proc" in found["cpu"] and "per poll" in found["cpu"]
    if os.geteuid() == 0:
        assert "CODEBOT_SANDBOX_UIDS" in found["uids"] and "WEAKER" in found["uids"], found["uids"]
    assert "partial isolation" in found["live run"], found["live run"]
    reported = json.loads(found["layers"].split("reports: ", 1)[1])
    assert (reported["memory"], reported["pids"], reported["cpu"]) == ("rlimit", "rlimit", "proc")


@pytest.mark.skipif(os.geteuid() != 0, reason="the per-slot uid range is used only by a root bot")
async def test_doctor_names_a_uid_range_conflict(cfg: SandboxConfig) -> None:
    env = {"CODEBOT_SANDBOX_UIDS": "65534-65534", "CODEBOT_SANDBOX_POOL_SIZE": "0"}
    env["CODEBOT_SANDBOX_MAX_CONCURRENT"] = "1"
    code, out, _ = await sandbox_cli("doctor", env=env)
    assert code == 0, out
    uids = lines(out)["uids"]
    assert "WEAKER" in uids and "uid 65534: passwd entry 'nobody'" in uids, uids


async def test_every_result_reports_its_layers(cfg: SandboxConfig, tmp_path: Path) -> None:
    script = tmp_path / "hello.py"
    script.write_text("print('hi')\n")
    code, out, _ = await sandbox_cli("run", "--json", str(script))
    assert code == 0, out
    data = json.loads(out)
    assert set(data["layers"]) == set(layers.STRONG), data
    assert data["isolation"] == layers.isolation(data["layers"], ""), data
    if os.geteuid() == 0 and data["layers"]["memory"] != "rlimit":
        assert data["layers"]["uid"] == "per-slot", data


def test_isolation_is_full_only_when_every_layer_is_strong() -> None:
    strong = {name: values[0] for name, values in layers.STRONG.items()}
    assert layers.isolation(strong, "") == "full"
    for name in strong:
        weaker = {**strong, name: "rlimit" if isinstance(strong[name], str) else False}
        assert layers.isolation(weaker, "") == "partial", name
        assert layers.weaker(weaker) == [name]
    assert layers.isolation(strong, "no-userns-rlimits-only") == "no-userns-rlimits-only"
