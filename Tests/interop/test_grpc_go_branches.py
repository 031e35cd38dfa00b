"""Branches served by a plain grpc-go server, as every go-zero service is one, under load.

grpc-go estimates bandwidth with a PING after data arrives, about one per call on a busy
connection; grpc-swift's HTTP/2 stack closes a connection that receives more than 200 PINGs in
30 seconds. Before dtmd answered those pings itself, a few percent of first rounds failed here
with "Stream unexpectedly closed" or "Channel isn't ready"."""
import os
import subprocess
import threading
import time

import grpc
import pytest

from conftest import ROOT, Dtmd
from test_grpc_interop import request

GOPATH = "/usr/share/gocode"


@pytest.fixture(scope="module")
def go_branch(tmp_path_factory):
    binary = tmp_path_factory.mktemp("gobranch") / "gobranch"
    environment = dict(os.environ, GOPATH=GOPATH, GO111MODULE="off", GOFLAGS="", GOCACHE=str(binary.parent / "cache"))
    subprocess.run(["go", "build", "-o", str(binary), "./tools/branch-servers/gobranch"], cwd=ROOT, env=environment,
                   check=True, timeout=300)
    process = subprocess.Popen([str(binary), "-listen", "127.0.0.1:0", "-fail", "Refuse"], stdout=subprocess.PIPE, text=True)
    address = process.stdout.readline().split()[-1]
    yield address
    process.terminate()
    process.wait(timeout=10)


def test_no_first_round_fails_against_grpc_go_under_load(tmp_path, pb, go_branch):
    server = Dtmd(tmp_path, RequestTimeout=5).start()
    failures, done = [], [0]
    lock = threading.Lock()
    deadline = time.time() + 6

    def client(number):
        dtm = pb[1].DtmStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
        index = 0
        while time.time() < deadline:
            index += 1
            gid = f"go-{number}-{index}"
            trans_type = "saga" if index % 2 else "msg"
            steps = [{"action": f"{go_branch}/busi.Busi/TransOut", "compensate": f"{go_branch}/busi.Busi/TransOutRevert"},
                     {"action": f"{go_branch}/busi.Busi/TransIn", "compensate": f"{go_branch}/busi.Busi/TransInRevert"}]
            if trans_type == "msg":
                steps = [{"action": s["action"]} for s in steps]
            try:
                dtm.Submit(request(pb, gid, trans_type, steps, [b"30", b"30"], WaitResult=True), timeout=30)
                with lock:
                    done[0] += 1
            except grpc.RpcError as error:
                with lock:
                    failures.append((gid, error.code(), error.details()))

    try:
        threads = [threading.Thread(target=client, args=(number,)) for number in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert done[0] > 400, f"only {done[0]} transactions: the load did not reach grpc-go's ping rate"
        assert failures == [], f"{len(failures)} of {done[0] + len(failures)} first rounds failed, e.g. {failures[:3]}"
        # FAILURE from a grpc-go branch is still a FAILURE (Aborted), not a transport error.
        refused = pb[1].DtmStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
        with pytest.raises(grpc.RpcError) as rolled_back:
            refused.Submit(request(pb, "go-refused", "saga", [{"action": f"{go_branch}/busi.Busi/Refuse",
                                                                "compensate": f"{go_branch}/busi.Busi/Revert"}],
                                   [b"x"], WaitResult=True), timeout=30)
        assert rolled_back.value.code() == grpc.StatusCode.ABORTED
        server.wait_status("go-refused", "failed")
    finally:
        server.stop()
    assert "transport failure" not in server.log_text()
