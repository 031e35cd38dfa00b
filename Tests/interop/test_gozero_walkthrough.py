"""The go-zero guide's walk-through in Swift, as a user runs it (Examples/gozero/walkthrough.sh)."""
import os
import shutil
import subprocess

import pytest

from conftest import DTMD, ROOT, free_port


@pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd-server is not installed")
def test_walkthrough_transfers_30_cents():
    result = subprocess.run([str(ROOT / "Examples" / "gozero" / "walkthrough.sh")], capture_output=True, text=True, timeout=180,
                            env={**os.environ, "BIN_DIR": str(DTMD.parent), **{name: str(free_port()) for name in (
                                "ETCD_PORT", "ETCD_PEER_PORT", "DTM_GRPC_PORT", "DTM_HTTP_PORT", "TRANS_PORT")}})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "transfer out 30 cents from 1" in result.stdout
    assert "transfer in 30 cents to 2" in result.stdout
    assert "walk-through OK" in result.stdout
