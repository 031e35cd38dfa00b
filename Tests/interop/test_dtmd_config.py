"""dtmd's configuration: dtm's YAML keys, environment overrides, unknown keys, invalid values,
and a clean exit on SIGTERM."""
import json
import os
import signal
import subprocess

from conftest import DTMD, Dtmd, free_port


def test_invalid_values_stop_startup_with_a_clear_message(tmp_path):
    config = tmp_path / "bad.yml"
    config.write_text("TimeoutToFail: -1\n")
    result = subprocess.run([str(DTMD), "-c", str(config)], capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert result.returncode != 0
    assert "TimeoutToFail must be a positive whole number" in result.stderr
    config.write_text("Store:\n  Driver: mysql\n")
    result = subprocess.run([str(DTMD), "-c", str(config)], capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert result.returncode != 0
    assert "Store.Driver 'mysql' is not supported" in result.stderr


def test_unknown_keys_warn_environment_overrides_and_sigterm_exits_cleanly(tmp_path):
    server = Dtmd(tmp_path, SomethingNew=1)
    wanted = free_port()
    os.environ["GRPC_PORT"] = str(wanted)
    try:
        server.start()
    finally:
        del os.environ["GRPC_PORT"]
    assert "unknown config key 'SomethingNew' ignored" in server.log_text()
    assert f"127.0.0.1:{wanted}" in server.log_text(), "GRPC_PORT overrides GrpcPort"
    server.stop(signal.SIGTERM)
    assert server.process.returncode == 0
    assert "event log flushed" in server.log_text()


def test_sigterm_is_not_held_up_by_a_branch_whose_name_does_not_resolve(tmp_path, pb):
    """A gRPC branch that cannot be reached leaves its connection in reconnect backoff (up to 120 s
    in grpc-swift-nio-transport 2.9); dtmd must still stop promptly."""
    import time
    import grpc
    from test_grpc_interop import new_gid, request
    server = Dtmd(tmp_path).start()
    dtm = pb[1].DtmStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
    gid = new_gid(dtm)
    dtm.Submit(request(pb, gid, "msg", [{"action": "nosuch.invalid:5000/busi.Busi/TransIn"}], [b""]))
    time.sleep(3)  # the first attempt and its failure (RequestTimeout 2 s)
    started = time.monotonic()
    server.stop(signal.SIGTERM)
    assert server.process.returncode == 0
    assert time.monotonic() - started < 10, "dtmd waited for a connection that cannot be made"
