"""The Swift SDK's examples (Examples/), run as a user runs them against a real dtmd."""
import shutil
import subprocess

import pytest

from conftest import DTMD, free_port

EXAMPLES = DTMD.parent


def run_example(name, *arguments):
    binary = EXAMPLES / name
    assert binary.exists(), f"{binary} is not built"
    result = subprocess.run([str(binary), *arguments], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def dtm_target(dtmd, protocol):
    """The example's --dtm: dtmd's gRPC address, or its HTTP API (the SDK's HTTP mode)."""
    return f"127.0.0.1:{dtmd.grpc_port}" if protocol == "grpc" else f"http://127.0.0.1:{dtmd.http_port}/api/dtmsvr"


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_barrier_transfer_keeps_balances_right_through_retries_and_null_compensation(dtmd, tmp_path, protocol):
    out = run_example("barrier-transfer", "--dtm", dtm_target(dtmd, protocol), "--listen", f"127.0.0.1:{free_port()}",
                      "--database", str(tmp_path / "bank.sqlite"))
    assert "balances after transferring 30: 1 → 70, 2 → 30" in out
    assert "TransOutCompensate 500: skipped by the barrier" in out  # the null compensation
    assert "TransIn 20: skipped by the barrier" in out  # the repeated call
    assert "balances after a TransIn that was called 2 times: 1 → 50, 2 → 50" in out
    assert "balances after a deposit to a topic: 1 → 50, 2 → 55" in out
    assert "barrier transfer OK" in out


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_workflow_transfer_commits_rolls_back_and_resumes(dtmd, protocol):
    out = run_example("workflow-transfer", "--dtm", dtm_target(dtmd, protocol), "--listen", f"127.0.0.1:{free_port()}")
    assert "result: moved 30" in out
    assert "rolled back: 40 back to account 1" in out
    assert "TransIn is restarting" in out and "waiting for dtm to resume it" in out
    assert "balances after the resumed transfer: 1 → 50, 2 → 50" in out
    assert out.count("TransOut 20") == 1  # resumed from the record, not called again
    assert "workflow transfer OK" in out


@pytest.mark.skipif(shutil.which("ldd") is None, reason="ldd is not installed")
def test_an_sdk_service_with_the_sqlite_barrier_loads_no_server_library():
    libraries = subprocess.run(["ldd", str(EXAMPLES / "barrier-transfer")], capture_output=True, text=True, check=True).stdout
    assert "liblmdb" not in libraries
