"""The docker provider says clearly when the Docker engine cannot be reached."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.protocols import HarnessError


def test_unreachable_engine_is_one_clear_line(tmp_path: Path) -> None:
    from harness.providers.docker import DockerProvider, engine_problem

    if engine_problem() is None:
        pytest.skip("a Docker engine runs here: the real path is exercised elsewhere")
    with pytest.raises(HarnessError) as err:
        DockerProvider({"image": "faultline-node:latest"}).setup(["n1"])
    msg = str(err.value)
    assert "Docker engine is not reachable" in msg and "\n" not in msg


def test_missing_client_binary_is_named() -> None:
    from harness.providers.docker import DockerProvider

    with pytest.raises(HarnessError, match="not-a-docker-binary"):
        DockerProvider({"docker": "not-a-docker-binary"}).setup(["n1"])


def test_registry_creates_it() -> None:
    from harness import providers

    p = providers.get("docker")({"provider_opts": {"image": "x"}}, Path("."))
    assert p.name == "docker" and not p.supports_clock
    with pytest.raises(HarnessError, match="clock faults"):
        p.set_clock("n1", 1.0)
