# The image for the Docker and Kubernetes work pools (deploy/prefect-docker.yaml, deploy/prefect-kubernetes.yaml) and
# for Dask workers on a cluster: the project in /opt/nyc-taxi-prefect with the exact pinned set from constraints.txt.
#
#   docker build -t registry.example.com/nyc-taxi-prefect:1 .
#   docker run --rm registry.example.com/nyc-taxi-prefect:1 python -m flows.etl        # the sample, offline
#   docker run --rm registry.example.com/nyc-taxi-prefect:1 dask worker tcp://SCHEDULER:8786 --nthreads 1 \
#       --resources MONTH=1 --preload flows.runners                                      # servers.DASK_WORKER_ARGS
#
# Not built by this project's tests (no Docker engine here); tests/test_deployments.py checks it statically.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false

WORKDIR /opt/nyc-taxi-prefect

# The runtime dependencies (and matplotlib, for the benchmark and mart charts) first, at the tested pins, so a code change does not reinstall them.
# Compiled to bytecode here, since PYTHONDONTWRITEBYTECODE keeps Python from caching it: without it every flow run's
# process would compile Prefect's sources again as it imports them.
COPY constraints.txt pyproject.toml README.md ./
RUN pip install --no-cache-dir "$(grep '^uv==' constraints.txt)" \
    && uv pip install --system --no-cache --compile-bytecode --constraint constraints.txt -r pyproject.toml --extra bench

# The project itself, editable so settings.PROJECT_ROOT is this folder (the sample and zone table live in data/);
# flows run from here, which is the WORKDIR the deployments' empty pull step relies on.
COPY flows flows
COPY tasks tasks
COPY blocks blocks
COPY data data
COPY servers servers
COPY benchmarks benchmarks
COPY tools tools
RUN uv pip install --system --no-cache --no-deps --editable .

RUN useradd --create-home --uid 1000 taxi && chown -R taxi /opt/nyc-taxi-prefect
USER taxi
CMD ["python", "-m", "flows.etl", "--help"]
