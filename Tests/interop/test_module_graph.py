"""The module graph as Package.swift declares it: the SDK links nothing of the server, and the server
nothing of the SDK. A go-zero-style Swift service that only calls dtm needs neither liblmdb nor the server."""
import json
import shutil
import subprocess

import pytest

from conftest import DTMD, ROOT

SERVER_MODULES = {"EventLog", "CLMDB", "Projections", "Modes", "TransactionStore", "LMDBStore", "PostgresStore", "MemoryStore",
                  "Coordinator", "Invokers", "GrpcGateway", "HttpGateway"}


@pytest.fixture(scope="module")
def graph():
    result = subprocess.run(["swift", "package", "dump-package"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    package = json.loads(result.stdout)
    edges = {}
    for target in package["targets"]:
        names = []
        for dependency in target["dependencies"]:
            for kind in ("byName", "target"):
                if kind in dependency:
                    names.append(dependency[kind][0])
        edges[target["name"]] = [name for name in names if name]
    return edges


def closure(edges, name):
    seen, stack = set(), [name]
    while stack:
        for dependency in edges.get(stack.pop(), []):
            if dependency not in seen:
                seen.add(dependency)
                stack.append(dependency)
    return seen


def test_the_sdk_links_no_server_module(graph):
    for name in ("DTMWire", "DTMDiscovery", "DTMClient", "DTMClientHummingbird", "DTMBarrier", "DTMBarrierPostgres", "DTMBarrierSQLite",
                 "TransApp", "TransService"):
        assert not closure(graph, name) & SERVER_MODULES, f"{name} depends on {closure(graph, name) & SERVER_MODULES}"


def test_the_sdk_test_kit_links_no_lmdb(graph):
    # An in-process dtm (coordinator on the in-memory store), so SDK users' tests need no liblmdb.
    assert not closure(graph, "DTMClientTesting") & {"EventLog", "CLMDB", "LMDBStore", "PostgresStore"}


def test_the_server_does_not_reach_around_into_the_sdk(graph):
    # One way: server modules (dtmd included) may use the wire, never the SDK or its test kit.
    # (SwiftPM itself refuses cycles, so no test is needed for those.)
    for name in SERVER_MODULES | {"dtmd", "DTMCtl", "DTMBench"}:
        assert not closure(graph, name) & {"DTMClient", "DTMClientTesting"}, f"{name} depends on the SDK"


@pytest.mark.skipif(shutil.which("ldd") is None, reason="ldd is not installed")
def test_the_go_zero_app_does_not_load_liblmdb():
    app = DTMD.parent / "trans-app"
    assert app.exists(), f"{app} is not built"
    libraries = subprocess.run(["ldd", str(app)], capture_output=True, text=True, check=True).stdout
    assert "liblmdb" not in libraries
    assert "liblmdb" in subprocess.run(["ldd", str(DTMD)], capture_output=True, text=True, check=True).stdout
