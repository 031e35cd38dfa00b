"""Hostile and unlucky input from outside: numbers that would overflow, canonically equivalent
gids, damaged data files, a full disk, huge bodies and SIGTERM in the middle of rounds. dtmd must
answer each with a clear error (or keep working), never crash, and never lose what it acknowledged."""
import json
import resource
import signal
import subprocess
import time
import unicodedata
import urllib.error
import urllib.request

import grpc
import pytest

from conftest import DTMD, Dtmd, wait_for
from test_dtmctl import dtmctl
from test_grpc_interop import request, saga_steps

INT64_MAX = 2**63 - 1


def http(dtmd, method, path, body=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(f"http://127.0.0.1:{dtmd.http_port}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=20) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        text = error.read()
        try:
            return error.code, json.loads(text or b"{}")
        except ValueError:
            return error.code, {"message": text.decode(errors="replace")}


def invalid(call):
    with pytest.raises(grpc.RpcError) as refused:
        call()
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
    return refused.value.details()


# 1. Numbers that overflow

def test_out_of_range_numbers_are_refused_naming_the_field_and_dtmd_survives_a_restart(tmp_path, pb, busi):
    server = Dtmd(tmp_path).start()
    try:
        dtm = pb[1].DtmStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
        steps = saga_steps(busi, 1)
        gid = "overflow-grpc"
        for field, options, method in [
            ("TimeoutToFail", {"TimeoutToFail": 10_000_000_000_000}, dtm.Submit),
            ("TimeoutToFail", {"TimeoutToFail": 9_300_000_000_000}, dtm.Prepare),
            ("RetryInterval", {"RetryInterval": 10_000_000_000_000}, dtm.Submit),
            ("RequestTimeout", {"RequestTimeout": INT64_MAX}, dtm.Submit),
            ("RetryLimit", {"RetryLimit": INT64_MAX}, dtm.Submit),
        ]:
            details = invalid(lambda: method(request(pb, gid, "saga", steps, [b"1"], **options)))
            assert field in details and "between" in details, details
        details = invalid(lambda: dtm.Submit(request(pb, gid, "msg", [{"action": busi.url("A")}], [b"1"], custom='{"delay": 1e13}')))
        assert "CustomedData.delay" in details

        for body, field in [({"timeout_to_fail": 1e19}, "timeout_to_fail"), ({"timeout_to_fail": 10_000_000_000_000}, "TimeoutToFail"),
                            ({"retry_interval": -1e19}, "retry_interval"), ({"request_timeout": INT64_MAX}, "RequestTimeout")]:
            status, answer = http(server, "POST", "/api/dtmsvr/submit", {
                "gid": "overflow-http", "trans_type": "saga", "steps": steps, "payloads": ["1"], **body})
            assert status == 400 and field in answer["message"], answer
        for query in ["createTimeStart=9223372036854775807", "createTimeEnd=-9223372036854775808", "createTimeStart=abc"]:
            status, answer = http(server, "GET", f"/api/dtmsvr/all?{query}")
            assert status == 400 and query.split("=")[0] in answer["message"], answer
        assert server.ping()
        assert server.query("overflow-grpc")["transaction"] is None, "nothing refused was stored"
        assert server.query("overflow-http")["transaction"] is None

        # The largest accepted values are stored and driven, and survive a restart.
        dtm.Submit(request(pb, "at-the-bounds", "saga", steps, [b"1"], TimeoutToFail=315_360_000,
                           RetryInterval=2_592_000, RequestTimeout=86_400, RetryLimit=2**31 - 1))
        server.wait_status("at-the-bounds", "succeed")
        busi.plan("bounded-retry", "Action1", ["ERROR"])
        dtm.Submit(request(pb, "bounded-retry", "saga", steps, [b"1"], RetryInterval=2_592_000, TimeoutToFail=315_360_000))
        wait_for(lambda: busi.calls_for("bounded-retry"), what="the first attempt")
    finally:
        server.stop()
    assert server.process.returncode == 0, server.log_text()
    server.start()
    try:
        assert server.status("bounded-retry") == "submitted"
        assert server.ping()
    finally:
        server.stop()
    assert server.process.returncode == 0
    assert "arithmetic overflow" not in server.log_text()
    dtmctl("verify", "--data", tmp_path / "data", check=0)


# 2. Gids are bytes

def test_canonically_equivalent_gids_are_two_transactions_everywhere(tmp_path, pb, busi):
    composed = "gid-caf\u00e9"
    decomposed = "gid-cafe\u0301"
    assert unicodedata.normalize("NFC", decomposed) == composed and composed != decomposed
    server = Dtmd(tmp_path).start()
    data = tmp_path / "data"
    try:
        dtm = pb[1].DtmStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
        for index, gid in enumerate([composed, decomposed]):
            dtm.Submit(request(pb, gid, "saga", saga_steps(busi, 2), [b"%d" % index, b"x"], WaitResult=True))
        # Over HTTP too, and a failing one so both transactions differ in status.
        busi.plan("h-\u212a", "Action1", ["FAILURE"])
        for gid in ["h-K", "h-\u212a"]:  # Kelvin sign: equal to "K" under Swift's String ==
            status, _ = http(server, "POST", "/api/dtmsvr/submit", {
                "gid": gid, "trans_type": "saga", "steps": saga_steps(busi, 1), "payloads": ["1"]})
            assert status == 200
        server.wait_status("h-K", "succeed")
        server.wait_status("h-\u212a", "failed")
        for index, gid in enumerate([composed, decomposed]):
            calls = busi.calls_for(gid)
            assert [c.payload for c in calls] == [b"%d" % index, b"x"], f"{gid!r} got calls {calls}"
            assert server.status(gid) == "succeed"
    finally:
        server.stop()
    for gid in [composed, decomposed, "h-K", "h-\u212a"]:
        history = dtmctl("history", gid, "--json", "--data", data, check=0).stdout
        events = json.loads(history)
        assert events and all(e["gid"] == gid for e in events), (gid, history)
    assert "every decision re-derives" in dtmctl("verify", "--data", data, check=0).stdout
    dtmctl("rebuild", "--data", data, check=0)
    assert "(4 transactions, 0 KV records)" in dtmctl("verify", "--data", data, check=0).stdout
    states = [json.loads(line) for line in dtmctl("state", "--json", "--data", data, check=0).stdout.splitlines()]
    assert sorted(s["gid"] for s in states) == sorted([composed, decomposed, "h-K", "h-\u212a"])


# 3. Damaged or foreign files

def written_data(tmp_path, pb, busi):
    server = Dtmd(tmp_path).start()
    dtm = pb[1].DtmStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
    for index in range(300):
        dtm.Submit(request(pb, f"damage-{index}", "msg", [{"action": ""}], [b"x" * 2000]))
    server.wait_status("damage-299", "succeed")
    server.stop()
    return server


@pytest.mark.parametrize("cut", ["half", "8KiB", "empty"])
def test_a_damaged_data_file_is_refused_with_a_message_never_a_signal(tmp_path, pb, busi, cut):
    server = written_data(tmp_path, pb, busi)
    data_file = tmp_path / "data" / "data.mdb"
    size = data_file.stat().st_size
    with open(data_file, "r+b") as f:
        f.truncate({"half": size // 2, "8KiB": 8192, "empty": 0}[cut])
    result = dtmctl("verify", "--data", tmp_path / "data")
    assert result.returncode in (1, 3), result
    assert "empty" in result.stderr if cut == "empty" else "shorter than" in result.stderr, result.stderr
    started = subprocess.run([str(DTMD), "-c", str(server.config)], capture_output=True, text=True, timeout=30)
    assert started.returncode not in (0, -signal.SIGBUS, 128 + signal.SIGBUS), started
    assert started.returncode > 0, f"dtmd died by a signal: {started}"
    assert "empty" in started.stderr if cut == "empty" else "shorter than" in started.stderr, started.stderr
    if cut == "empty":
        # Told explicitly, dtmd starts a new log in place of the empty file.
        server.start("--accept-empty-data-file")
        server.stop()
        assert server.process.returncode == 0, server.log_text()


def test_a_second_dtmd_is_refused_even_without_the_lock_files(tmp_path):
    first = Dtmd(tmp_path).start()
    try:
        for name in ["writer.lock", "lock.mdb"]:
            (tmp_path / "data" / name).unlink(missing_ok=True)
        second = Dtmd(tmp_path)
        second.config = tmp_path / "second.yml"
        config = json.loads(first.config.read_text())
        config.update(GrpcPort=second.grpc_port, HttpPort=second.http_port)
        second.config.write_text(json.dumps(config))
        result = subprocess.run([str(DTMD), "-c", str(second.config)], capture_output=True, text=True, timeout=30)
        assert result.returncode != 0
        assert "another process" in result.stderr, result.stderr
        assert first.ping()
    finally:
        first.stop()
    assert first.process.returncode == 0


def test_dtmctl_takes_data_before_or_after_the_subcommand_and_bad_usage_exits_2(tmp_path):
    server = Dtmd(tmp_path).start()
    server.stop()
    data = tmp_path / "data"
    assert "ok:" in dtmctl("--data", data, "verify", check=0).stdout
    assert "ok:" in dtmctl("verify", "--data", data, check=0).stdout
    dtmctl("--no-such-option", check=2)
    dtmctl("verify", "--data", check=2)
    dtmctl("state", "--status", "nonsense", "--data", data, check=2)
    dtmctl("verify", "--data", tmp_path / "missing", check=3)


# 4. Errors that say what happened

def test_a_full_disk_is_reported_as_such_and_nothing_unacknowledged_is_stored(tmp_path, pb):
    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # inherited: writes past the limit fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    server = Dtmd(tmp_path, Store={"Path": str(tmp_path / "data")}).start(preexec_fn=limit_file_size)  # with fsync
    dtm = pb[1].DtmStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
    acknowledged, refused = [], []
    try:
        for index in range(400):
            gid = f"full-{index}"
            try:
                if index % 2:
                    dtm.Prepare(request(pb, gid, "msg", [{"action": ""}], [b"x" * 4000]))
                else:
                    status, answer = http(server, "POST", "/api/dtmsvr/prepare", {
                        "gid": gid, "trans_type": "msg", "steps": [{"action": ""}], "payloads": ["x" * 4000]})
                    if status != 200:
                        assert status == 507 and "cannot grow" in answer["message"], (status, answer)
                        refused.append(gid)
                        continue
                acknowledged.append(gid)
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
                assert "File too large" in error.details() or "No space" in error.details(), error.details()
                refused.append(gid)
        assert acknowledged and refused, (len(acknowledged), len(refused))
        assert server.ping()
        assert all(server.status(gid) == "prepared" for gid in acknowledged)
        assert all(server.status(gid) is None for gid in refused[:20])
    finally:
        server.stop()
    assert "prepare failed: the event log cannot grow" in server.log_text()
    assert "Prepare failed: the event log cannot grow" in server.log_text()
    dtmctl("verify", "--data", tmp_path / "data", check=0)


def test_an_oversized_body_gets_413(dtmd):
    status, answer = http(dtmd, "POST", "/api/dtmsvr/submit", raw=b" " * (9 << 20))
    assert status == 413 and "larger than" in answer["message"], (status, answer)
    assert dtmd.ping()


# 6. Shutdown drains what it started

def test_sigterm_lets_running_rounds_finish_and_exits_0(tmp_path, pb, busi):
    server = Dtmd(tmp_path, RequestTimeout=5).start()
    dtm = pb[1].DtmStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
    gids = [f"drain-{index}" for index in range(5)]
    for gid in gids:
        busi.plan(gid, "Action1", [("SLEEP", 1.5)])
        dtm.Submit(request(pb, gid, "saga", saga_steps(busi, 2), [b"1", b"2"]))
    wait_for(lambda: all(busi.calls_for(gid) for gid in gids), what="every first branch call")
    started = time.time()
    server.stop(signal.SIGTERM)
    assert server.process.returncode == 0, server.log_text()
    assert time.time() - started < 10
    assert "log closed" not in server.log_text() and "round failed" not in server.log_text(), server.log_text()
    server.start()
    try:
        for gid in gids:  # each round ran to its end before dtmd stopped
            assert server.status(gid) == "succeed"
            assert [c.op for c in busi.calls_for(gid)] == ["action", "action"]
    finally:
        server.stop()
