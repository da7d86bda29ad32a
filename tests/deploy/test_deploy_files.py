"""The compose file and Dockerfiles, checked as far as they can be without a Docker engine."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def _dockerfile(name: str) -> str:
    return (ROOT / "docker" / f"{name}.Dockerfile").read_text()


def test_services_and_their_images(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"redis", "bot", "worker"}
    for name in ("bot", "worker"):
        build = services[name]["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).is_file()
        assert services[name]["restart"] == "unless-stopped"
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    gpu = services["worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    assert any(v.endswith(":/models") for v in services["worker"]["volumes"])


def test_redis_is_durable_password_protected_and_never_evicts(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    conf = (ROOT / "docker" / "redis.conf").read_text()
    assert re.search(r"^appendonly yes$", conf, re.M)
    assert re.search(r"^appendfsync everysec$", conf, re.M)
    assert re.search(r"^maxmemory-policy noeviction$", conf, re.M)
    assert "--requirepass" in redis["command"]
    assert any(v.endswith(":/data") for v in redis["volumes"])
    assert "healthcheck" in redis


@pytest.mark.parametrize(("name", "module"), [("bot", "bot"), ("worker", "worker")])
def test_images_run_the_documented_entry_points_as_non_root(name: str, module: str) -> None:
    text = _dockerfile(name)
    assert f'ENTRYPOINT ["python", "-m", "{module}"]' in text
    assert re.search(r"^USER (?!root)\w+", text, re.M)
    assert "HEALTHCHECK" in text and "/healthz" in text
    entry = importlib.import_module(f"{module}.__main__")
    assert callable(entry.main)


def test_bot_image_has_no_torch() -> None:
    text = _dockerfile("bot")
    installs = [line for line in text.splitlines() if "pip install" in line]
    assert installs and not any("torch" in line or "[worker]" in line for line in installs)
    assert "COPY worker" not in text


def test_worker_image_installs_the_worker_extra_and_can_prefetch() -> None:
    text = _dockerfile("worker")
    assert '".[worker]"' in text and "COPY bot" not in text
    assert "python -m worker prefetch" in text
    importlib.import_module("worker.prefetch")


def test_every_compose_variable_is_in_env_example(compose: dict[str, Any]) -> None:
    raw = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{([A-Z_]+)", raw))
    example = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert used - example == set(), f"missing from .env.example: {sorted(used - example)}"
