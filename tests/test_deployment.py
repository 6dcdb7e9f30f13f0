"""docker-compose.yml and the Dockerfile, checked for structure (this project's test machines run no Docker,
so neither is built or started here): the four services, workers that scale, one storage for the server and
the workers, the health checks on what the code offers, and the image's torch pinned as the dev install."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BROKER = "redis://redis:6379/0"


@pytest.fixture(scope="module")
def compose() -> dict:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def flag(command: list, name: str) -> str:
    """The value after ``name`` in a command given as a list."""
    assert name in command, (name, command)
    return command[command.index(name) + 1]


def test_the_services_and_their_images(compose):
    services = compose["services"]
    assert set(services) == {"redis", "postgres", "web", "worker"}
    assert services["redis"]["image"].startswith("redis:")
    assert services["postgres"]["image"].startswith("pgvector/pgvector:")  # PostgreSQL with pgvector
    for name in ("web", "worker"):
        assert services[name]["build"] == "." and services[name]["image"] == "neuralens:latest"
        assert set(services[name]["depends_on"]) == {"redis", "postgres"}
    for name, service in services.items():
        assert "healthcheck" in service, name
    assert set(compose["volumes"]) >= {"storage", "redis", "postgres"}
    for service in services.values():  # every named volume a service mounts is declared
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in compose["volumes"], volume


def test_web_and_workers_share_the_queue_and_the_storage(compose):
    web, worker = compose["services"]["web"], compose["services"]["worker"]
    assert web["command"][:2] == ["neuralens", "serve"] and worker["command"][:2] == ["neuralens", "worker"]
    assert flag(web["command"], "--host") == "0.0.0.0"
    assert flag(web["command"], "--broker") == flag(worker["command"], "--broker") == BROKER
    storage = flag(web["command"], "--storage")
    assert storage == flag(worker["command"], "--storage") and storage.startswith("file:///data/")
    assert web["volumes"] == worker["volumes"] == ["storage:/data"]
    # A server reachable from other machines needs a token: it comes from the environment (serve reads it).
    assert "NEURALENS_TOKEN" in web["environment"] and "--token" not in web["command"]
    assert worker["environment"]["NEURALENS_GALLERY"].startswith("postgresql://neuralens:")
    assert "@postgres:5432/" in web["environment"]["NEURALENS_GALLERY"]  # for the shared gallery


def test_workers_scale(compose):
    worker = compose["services"]["worker"]
    # `docker compose up --scale worker=N` refuses services with a fixed name or a published port.
    assert "container_name" not in worker and "ports" not in worker
    assert "ports" not in compose["services"]["redis"]  # the queue is reached inside the network only


def test_health_checks_use_what_the_code_offers(compose):
    web, worker = compose["services"]["web"], compose["services"]["worker"]
    assert "/healthz" in " ".join(web["healthcheck"]["test"])
    assert worker["healthcheck"]["test"][1:] == ["neuralens", "worker", "--broker", BROKER, "--health"]
    from neuralens.web import health_api

    assert "/healthz" in health_api.__doc__


def test_the_image_pins_torch_as_the_dev_install_and_has_the_queue_and_postgres_extras():
    dockerfile = (ROOT / "Dockerfile").read_text()
    pinned = re.search(r"^torch==(\S+)$", (ROOT / "requirements-dev.txt").read_text(), re.M)
    assert pinned and f"ARG TORCH_VERSION={pinned.group(1)}" in dockerfile
    assert "download.pytorch.org/whl/cpu" in dockerfile
    assert 'pip install ".[queue,postgres]"' in dockerfile  # Celery for the workers, psycopg for the shared gallery
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.M)  # not root
