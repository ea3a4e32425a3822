"""Shared fixtures. Prefect's home and result storage point at a temporary folder before Prefect is imported, so
tests never touch the user's ~/.prefect; one Prefect test server serves the whole session."""

from __future__ import annotations

import fcntl
import functools
import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from unittest import mock

_PREFECT_HOME = tempfile.mkdtemp(prefix="taxi-tests-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_LOCAL_STORAGE_PATH"] = str(Path(_PREFECT_HOME) / "storage")
os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = str(Path(_PREFECT_HOME) / "storage")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_TO_API_BATCH_INTERVAL"] = "0.3"
os.environ["TAXI_DASK_PERFORMANCE_REPORT"] = str(Path(_PREFECT_HOME) / "dask" / "performance-report.html")

import pyarrow as pa  # noqa: E402
import pytest  # noqa: E402

from tasks import settings  # noqa: E402
from tasks.pipeline.zones import load_zone_table  # noqa: E402

REAL_DATA = settings.PROJECT_ROOT.parent / "shared" / "data" / "tlc"


class OutboundNetworkBlocked(ConnectionRefusedError):
    """A test tried to reach a host outside this machine (TLC, AWS, ...): tests must not depend on being online."""


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return host == "localhost"


@pytest.fixture(autouse=True, scope="session")
def no_outbound_network():
    """Every connection this test process opens goes to loopback (the test's own servers) or fails at once, so a
    test behaves the same on a machine with or without internet. Subprocesses are given loopback URLs only."""
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def refuse_outbound(sock: socket.socket, address) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(str(address[0])):
            raise OutboundNetworkBlocked(f"tests may not reach {address[0]}:{address[1]}")

    def connect(sock, address):
        refuse_outbound(sock, address)
        return real_connect(sock, address)

    def connect_ex(sock, address):
        refuse_outbound(sock, address)
        return real_connect_ex(sock, address)

    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
    yield
    socket.socket.connect, socket.socket.connect_ex = real_connect, real_connect_ex


@pytest.fixture(autouse=True, scope="session")
def no_flow_run_heartbeats():
    """Flow runs in this process send no heartbeats. Prefect 3.9.1's heartbeat thread (on by default, every 180 s)
    sleeps in 1 s steps, and a sync flow joins it as it returns: every flow call ends at the next whole second
    after it began, idle for up to a second (`overhead_heartbeats` in benchmarks/README.md). Heartbeats only feed
    the detection of zombie runs, which no test relies on; the flows' subprocesses (deployments, CLI, benchmarks)
    keep them."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


# Under pytest-xdist (`-n 2 --dist loadfile`), each worker is a process with its own session fixtures, and a
# module's tests run on one worker (its module fixtures start once). Modules that share a costly session fixture
# count as one file here: the course site is built once, by the worker that runs test_docs and test_site, and one
# real Prefect server (`real_prefect_server`) serves the quick benchmark, the monitoring stack and the run logs.
SAME_WORKER = {
    **{"tests/test_docs.py": "course site", "tests/test_site.py": "course site"},
    **dict.fromkeys(("tests/test_benchmark.py", "tests/test_monitoring.py", "tests/test_run_logs.py"), "real server"),
}


# The longest modules, longest first: under xdist each is handed out before the short ones, so the two workers end
# together instead of one starting the longest module last (longest-processing-time-first scheduling).
LONGEST_FIRST = (
    "tests/test_benchmark.py",
    "tests/test_deployments.py",
    "tests/test_runner.py",
    "tests/test_lessons_services.py",
    "tests/test_lesson_runs.py",
    "tests/test_automations.py",
    "tests/test_monitoring.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest modules first (`LONGEST_FIRST`), every other test in its collected order."""
    rank = {module: place for place, module in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.hasplugin("xdist"):  # its hooks exist only when it is installed and enabled
        config.pluginmanager.register(ModulesTogether(), "taxi-modules-together")


class ModulesTogether:
    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log):
        """`--dist loadfile` with SAME_WORKER's modules as one file, handed out in collection order (xdist's
        default puts the files with the most tests first, which leaves a long module of few tests for the end).
        xdist's own `--dist loadgroup` would do this with marks, but does not rename pytest 9's test ids."""
        if config.getvalue("dist") != "loadfile":
            return None
        from xdist.scheduler import LoadFileScheduling

        class Scheduling(LoadFileScheduling):
            def _split_scope(self, nodeid: str) -> str:
                module = super()._split_scope(nodeid)
                return SAME_WORKER.get(module, module)

        config.option.loadscopereorder = False
        return Scheduling(config, log)


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory) -> Path:
    """A Prefect database at this Prefect's schema head, migrated once per `make test`: every server the suite
    starts begins from a copy (`prefect_home`, `prefect_server`) instead of running Prefect's migrations on an
    empty file, some 6 s of CPU each. The xdist workers share it: the first to take the lock migrates, the other
    waits and copies."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    shared = tmp_path_factory.getbasetemp().parent if worker else tmp_path_factory.getbasetemp()
    database = shared / "migrated-prefect.db"
    with open(shared / "migrated-prefect.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not database.exists():
            home = Path(tempfile.mkdtemp(prefix="migrating-", dir=shared))
            migrated = subprocess.run(
                [sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"],
                env={
                    **os.environ,
                    "PREFECT_HOME": str(home),
                    "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
                },
                capture_output=True,
                text=True,
            )
            assert migrated.returncode == 0, migrated.stdout[-2000:] + migrated.stderr[-2000:]
            (home / "prefect.db").rename(database)
    return database


@pytest.fixture(scope="session")
def prefect_home(migrated_database) -> Callable[[Path], str]:
    """Makes a folder a Prefect home for a `prefect server start`: its database (`prefect.db`, the default's place)
    a copy of the migrated one. Returns the folder as `PREFECT_HOME` takes it."""

    def make(home: Path) -> str:
        home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(migrated_database, home / "prefect.db")
        return str(home)

    return make


@pytest.fixture(scope="session")
def real_prefect_server(tmp_path_factory, prefect_home) -> Iterator[dict[str, str]]:
    """One `prefect server start` (as `make server` starts it: its services and /api/metrics on) for the modules
    that need a real server process rather than the test harness's, on a free loopback port with its own home,
    stopped by the process id it recorded: `{"PREFECT_API_URL": ..., "PREFECT_HOME": ...}`. Its database holds
    every run those modules make: a test reads back only the runs it made."""
    import servers

    base = tmp_path_factory.mktemp("real-prefect-server")
    home, records = prefect_home(base / "prefect-home"), base / "run"
    previous, settings.RUN_DIR = settings.RUN_DIR, records
    try:
        api = servers.start_prefect({"PREFECT_HOME": home})["PREFECT_API_URL"]
    finally:
        settings.RUN_DIR = previous
    yield {"PREFECT_API_URL": api, "PREFECT_HOME": home}
    previous, settings.RUN_DIR = settings.RUN_DIR, records
    try:
        servers.stop(["prefect"])
    finally:
        settings.RUN_DIR = previous


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory, migrated_database):
    """One temporary Prefect server (SQLite) for every flow test in the session: Prefect's test harness, its
    database (`prefect-test.db` in a folder it makes with `mkdtemp`) a copy of the migrated one."""
    from prefect.testing import utilities

    folder = tmp_path_factory.mktemp("prefect-test-harness")
    shutil.copyfile(migrated_database, folder / "prefect-test.db")
    with ExitStack() as harness:
        with mock.patch.object(utilities, "mkdtemp", lambda: str(folder)):
            harness.enter_context(utilities.prefect_test_harness(server_startup_timeout=None))
        yield


@pytest.fixture(autouse=True)
def hermetic_zone_cache(tmp_path_factory, monkeypatch):
    """Never read or write the user's cached zone table: each test starts with an empty cache."""
    monkeypatch.setattr(settings, "ZONES_CACHE", tmp_path_factory.mktemp("zones") / "taxi_zone_lookup.csv")


@pytest.fixture(scope="session")
def zones() -> pa.Table:
    return load_zone_table().table


@pytest.fixture(scope="session")
def known_ids(zones) -> list[int]:
    return load_zone_table().known_location_ids()


@pytest.fixture
def real_data() -> Path:
    if not REAL_DATA.is_dir():
        pytest.skip(f"real TLC files not found at {REAL_DATA} (they live beside the project in shared/data/tlc)")
    return REAL_DATA


@pytest.fixture(scope="session")
def moto_endpoint():
    """A real S3 API (moto in server mode) on a free loopback port, stopped after the session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(moto_endpoint, monkeypatch) -> str:
    """A fresh bucket on the moto server, with the environment pointing every S3 client at it."""
    import boto3
    import s3fs

    for name, value in {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    s3fs.S3FileSystem.clear_instance_cache()
    bucket = f"taxi-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=bucket)
    yield bucket
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="session")
def http_root(tmp_path_factory):
    """A plain `http.server` on a free loopback port serving a temporary folder: `(folder, base URL)`."""
    folder = tmp_path_factory.mktemp("http")
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep test output readable
        pass


@pytest.fixture(scope="session")
def course_site(tmp_path_factory) -> Path:
    """The course site built once per session as `make docs` builds it (`mkdocs build --strict`), into a temporary
    folder: tests/test_docs.py reads its pages, tests/test_site.py opens them in a browser. Never --quiet, which
    hides the warnings --strict turns into a failure."""
    site_dir = tmp_path_factory.mktemp("site")
    completed = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return site_dir
