"""dtmctl against real data: audit while dtmd runs, rebuild after it stops, damage and foreign
directories, and a crash-recovery run under load with SIGKILLs at random moments."""
import json
import os
import random
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import grpc

import conftest
from conftest import ROOT, Dtmd, wait_for
from test_grpc_interop import new_gid, request, saga_steps

DTMCTL = Path(os.environ.get("DTMCTL_BIN", ROOT / ".build" / "debug" / "dtmctl"))


def dtmctl(*args, check=None):
    result = subprocess.run([str(DTMCTL), *map(str, args)], capture_output=True, text=True, timeout=120)
    if check is not None:
        assert result.returncode == check, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def test_audit_while_running_then_rebuild(tmp_path, pb, busi):
    server = Dtmd(tmp_path).start()
    data = tmp_path / "data"
    try:
        dtm = pb[1].DtmStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
        good, bad = new_gid(dtm), new_gid(dtm)
        busi.plan(bad, "Action2", ["FAILURE"])
        for gid in (good, bad):
            dtm.Submit(request(pb, gid, "saga", saga_steps(busi, 2), [b"1", b"2"], WaitResult=gid == good))
        server.wait_status(bad, "failed")

        history = dtmctl("history", bad, "--data", data, check=0).stdout
        for text in ["created", "02/action attempt 1 → failure", "submitted → aborting", "02/compensate", "aborting → failed"]:
            assert text in history
        events = json.loads(dtmctl("history", good, "--data", data, "--json", check=0).stdout)
        assert [e["type"] for e in events][0] == "created" and events[-1]["event"]["status_changed"]["to"] == "TRANSACTION_STATUS_SUCCEED"
        assert "every decision re-derives" in dtmctl("verify", "--data", data, check=0).stdout

        refused = dtmctl("rebuild", "--data", data, check=1)
        assert "stop it first" in refused.stderr
        follow = subprocess.Popen([str(DTMCTL), "log", "--follow", "--json", "--data", str(data)], stdout=subprocess.PIPE, text=True)
        later = new_gid(dtm)
        dtm.Submit(request(pb, later, "saga", saga_steps(busi, 1), [b"1"], WaitResult=True))
        lines = []
        wait_for(lambda: lines.append(json.loads(follow.stdout.readline())) or any(l["gid"] == later and l["type"] == "status_changed" for l in lines), what="follow to show the new transaction")
        follow.kill()
        assert [l["seq"] for l in lines] == list(range(1, len(lines) + 1))
    finally:
        server.stop()

    exported = dtmctl("export", "--format", "jsonl", "--data", data, check=0).stdout.splitlines()
    records = [json.loads(line) for line in exported]
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert all(r["previous_hash"] == p["hash"] for p, r in zip(records, records[1:]))
    assert f"{len(records)} records" in dtmctl("rebuild", "--data", data, check=0).stderr
    assert "every decision re-derives" in dtmctl("verify", "--data", data, check=0).stdout
    before = dtmctl("state", "--data", data, "--at", records[2]["seq"], "--json", check=0).stdout.splitlines()
    assert len(before) == 1 and json.loads(before[0])["status"] == "submitted"
    assert "succeed" in dtmctl("state", "--data", data, "--status", "succeed", check=0).stdout
    server.start()  # the rebuilt view serves
    assert server.status(bad) == "failed"
    server.stop()


def test_damage_and_foreign_directories_are_clear_errors(tmp_path, pb, busi):
    server = Dtmd(tmp_path).start()
    try:
        dtm = pb[1].DtmStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
        gid = "damage-" + new_gid(dtm)
        dtm.Submit(request(pb, gid, "saga", saga_steps(busi, 1), [b"1"], WaitResult=True))
    finally:
        server.stop()
    copy = tmp_path / "copy"
    copy.mkdir()
    content = bytearray((tmp_path / "data" / "data.mdb").read_bytes())
    marker = gid.encode()
    position = content.find(marker)
    assert position > 0
    while position >= 0:  # every copy of the record's bytes, live page or stale
        content[position + 3] ^= 0x01
        position = content.find(marker, position + 1)
    (copy / "data.mdb").write_bytes(bytes(content))
    damaged = dtmctl("verify", "--data", copy)
    assert damaged.returncode == 1
    assert "is damaged" in damaged.stderr or "breaks the hash chain" in damaged.stderr, damaged.stderr
    refused = subprocess.run([str(conftest.DTMD)], capture_output=True, text=True, timeout=30,
                             env={**os.environ, "STORE_PATH": str(copy), "GRPC_PORT": str(conftest.free_port()), "HTTP_PORT": str(conftest.free_port()), "LISTEN_ADDRESS": "127.0.0.1"})
    assert refused.returncode != 0 and "is damaged" in refused.stderr, refused.stderr
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.mdb").write_text("not a database")
    result = dtmctl("stats", "--data", foreign)
    assert result.returncode == 3 and "cannot open" in result.stderr
    assert dtmctl("verify", "--data", tmp_path / "missing").returncode == 3


def valid_saga_calls(ops):
    """A saga's branch calls: actions in step order until one fails or all succeed; then only
    compensations, each step at most once compensated after it succeeded."""
    compensating = False
    for branch, op in ops:
        if op == "compensate":
            compensating = True
        elif compensating:
            return False
    return True


def test_crash_recovery_under_load(tmp_path, pb, busi):
    rounds = int(os.environ.get("CRASH_ROUNDS", "3"))
    server = Dtmd(tmp_path).start()
    acknowledged = {}
    lock = threading.Lock()
    stop = threading.Event()

    def client(index):
        rng = random.Random(index)
        while not stop.is_set():
            try:
                channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
                dtm = pb[1].DtmStub(channel)
                while not stop.is_set():
                    gid = f"load-{index}-{rng.randrange(1 << 30)}"
                    if rng.random() < 0.5:
                        if rng.random() < 0.3:
                            busi.plan(gid, "Action2", ["FAILURE"])
                        dtm.Submit(request(pb, gid, "saga", saga_steps(busi, 2), [b"1", b"2"]), timeout=5)
                        kind = "saga"
                    else:
                        steps = [{"action": busi.url("MsgA")}, {"action": busi.url("MsgB")}]
                        dtm.Submit(request(pb, gid, "msg", steps, [b"a", b"b"]), timeout=5)
                        kind = "msg"
                    with lock:
                        acknowledged[gid] = kind
            except grpc.RpcError:
                time.sleep(0.1)  # dtmd is down: try again when it is back

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(rounds):
            time.sleep(random.uniform(0.3, 1.2))
            server.stop(signal.SIGKILL)
            server.start()
        time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        assert len(acknowledged) > 20
        for gid in acknowledged:
            wait_for(lambda: server.status(gid) in ("succeed", "failed"), timeout=60, what=f"{gid} to finish")
        calls_by_gid = {}
        with busi.lock:
            for call in busi.calls:
                calls_by_gid.setdefault(call.metadata.get("dtm-gid"), []).append(call)
        for gid, kind in acknowledged.items():
            ops = [(c.branch, c.op) for c in calls_by_gid.get(gid, [])]
            status = server.status(gid)
            if kind == "msg":
                assert status == "succeed" and all(op == "action" for _, op in ops)
            else:
                assert valid_saga_calls(ops), (gid, ops)
                assert (status == "failed") == any(op == "compensate" for _, op in ops), (gid, status, ops)
    finally:
        stop.set()
        server.stop()
    assert "every decision re-derives" in dtmctl("verify", "--data", tmp_path / "data", check=0).stdout
