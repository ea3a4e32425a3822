"""The container image and the cluster files, checked statically: no Docker engine or Kubernetes cluster here."""

from __future__ import annotations

import re
import tomllib

import yaml

import servers
from tasks import settings

ROOT = settings.PROJECT_ROOT
DOCKERFILE = (ROOT / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_image_uses_the_python_the_project_requires():
    minimum = PYPROJECT["project"]["requires-python"].removeprefix(">=")
    assert re.search(rf"^FROM python:{re.escape(minimum)}-slim$", DOCKERFILE, re.MULTILINE)


def test_the_image_installs_the_tested_pins_and_every_package():
    assert "--constraint constraints.txt" in DOCKERFILE and "COPY constraints.txt" in DOCKERFILE
    packages = [name.rstrip("*") for name in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]]
    for package in packages:
        assert re.search(rf"^COPY {package} {package}$", DOCKERFILE, re.MULTILINE), f"{package}/ is not in the image"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert not set(packages) & set(ignored)


def test_the_kubernetes_flows_use_the_helm_chart_scheduler():
    values_file = ROOT / "deploy" / "dask-helm-values.yaml"
    values = yaml.safe_load(values_file.read_text())
    assert values["scheduler"]["image"] == {k: v for k, v in values["worker"]["image"].items() if k != "dask_worker"}
    (announced,) = set(re.findall(r"tcp://[\w.-]+:\d+", values_file.read_text()))
    assert announced.endswith(f":{values['scheduler']['servicePort']}")
    kubernetes = (ROOT / "deploy" / "prefect-kubernetes.yaml").read_text()
    assert set(re.findall(r"tcp://[\w.-]+:\d+", kubernetes)) == {announced}


def test_the_clusters_workers_are_the_projects_workers_as_make_dask_starts_them():
    values = yaml.safe_load((ROOT / "deploy" / "dask-helm-values.yaml").read_text())
    assert tuple(values["worker"]["extraArgs"]) == servers.DASK_WORKER_ARGS
    assert " ".join(servers.DASK_WORKER_ARGS) in DOCKERFILE  # the image's example worker command
