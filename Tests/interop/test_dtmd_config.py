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
