"""dtm's gRPC API driven by grpcio stubs built from the proto, against real dtmd and a Python
branch server: every mode, retries, WaitResult, state errors and bad input."""
import json
import os
import signal
import time

import grpc
import pytest
from google.protobuf import empty_pb2

from conftest import Dtmd, wait_for


def new_gid(dtm):
    gid = dtm.NewGid(empty_pb2.Empty()).Gid
    assert len(gid) == 22
    return gid


def request(pb, gid, trans_type, steps=(), payloads=(), **options):
    custom = options.pop("custom", "")
    query_prepared = options.pop("query_prepared", "")
    return pb[0].DtmRequest(
        Gid=gid, TransType=trans_type, Steps=json.dumps(list(steps)) if steps else "",
        BinPayloads=list(payloads), CustomedData=custom, QueryPrepared=query_prepared,
        TransOptions=pb[0].DtmTransOptions(**options))


def ops(calls):
    return [(c.branch, c.op) for c in calls]


def test_msg_submit_calls_every_action_with_raw_bytes_and_dtm_metadata(dtm, dtmd, busi, pb):
    gid = new_gid(dtm)
    steps = [{"action": busi.url("TransOut")}, {"action": busi.url("TransIn")}]
    payloads = [b"\x08\x1e\x10\x01", b"\x08\x1e\x10\x02"]
    dtm.Submit(request(pb, gid, "msg", steps, payloads, BranchHeaders={"X-Test-Header": "swift"}))
    dtmd.wait_status(gid, "succeed")
    calls = busi.calls_for(gid)
    assert [c.method for c in calls] == ["/busi.Busi/TransOut", "/busi.Busi/TransIn"]
    assert [c.payload for c in calls] == payloads
    for call, branch in zip(calls, ["01", "02"]):
        assert call.metadata["dtm-gid"] == gid
        assert call.metadata["dtm-trans_type"] == "msg"
        assert call.metadata["dtm-branch_id"] == branch
        assert call.metadata["dtm-op"] == "action"
        assert call.metadata["dtm-dtm"] == ""
        assert call.metadata["x-test-header"] == "swift"
    query = dtmd.query(gid)
    assert query["transaction"]["trans_type"] == "msg"
    assert [(b["branch_id"], b["op"], b["status"]) for b in query["branches"]] == [("01", "action", "succeed"), ("02", "action", "succeed")]


@pytest.mark.parametrize("answer,final", [("SUCCESS", "succeed"), ("FAILURE", "failed"), ("ONGOING", "prepared")])
def test_msg_query_prepared_decides_a_prepared_message(dtm, dtmd, busi, pb, answer, final):
    gid = new_gid(dtm)
    busi.plan(gid, "QueryPrepared", [answer] * 50)
    steps = [{"action": busi.url("TransOut")}]
    dtm.Prepare(request(pb, gid, "msg", steps, [b"out"], TimeoutToFail=1, query_prepared=busi.url("QueryPrepared")))
    assert dtmd.status(gid) == "prepared"
    dtm.Prepare(request(pb, gid, "msg", steps, [b"out"], TimeoutToFail=1, query_prepared=busi.url("QueryPrepared")))  # idempotent
    wait_for(lambda: any(c.op == "msg" for c in busi.calls_for(gid)), what="QueryPrepared call")
    query_call = next(c for c in busi.calls_for(gid) if c.op == "msg")
    assert query_call.method == "/busi.Busi/QueryPrepared"
    assert query_call.metadata["dtm-branch_id"] == "00"
    if final == "prepared":
        wait_for(lambda: len([c for c in busi.calls_for(gid) if c.op == "msg"]) >= 2, what="QueryPrepared asked again")
        assert dtmd.status(gid) == "prepared"
        assert not [c for c in busi.calls_for(gid) if c.op == "action"]
        dtm.Submit(request(pb, gid, "msg", steps, [b"out"]))
        dtmd.wait_status(gid, "succeed")
        return
    dtmd.wait_status(gid, final)
    actions = [c for c in busi.calls_for(gid) if c.op == "action"]
    assert [c.payload for c in actions] == ([b"out"] if final == "succeed" else [])


def saga_steps(busi, count):
    return [{"action": busi.url(f"Action{i}"), "compensate": busi.url(f"Compensate{i}")} for i in range(1, count + 1)]


def test_saga_runs_actions_in_order(dtm, dtmd, busi, pb):
    gid = new_gid(dtm)
    dtm.Submit(request(pb, gid, "saga", saga_steps(busi, 3), [b"1", b"2", b"3"], WaitResult=True))
    assert dtmd.status(gid) == "succeed"
    assert ops(busi.calls_for(gid)) == [("01", "action"), ("02", "action"), ("03", "action")]
    assert [c.payload for c in busi.calls_for(gid)] == [b"1", b"2", b"3"]


def test_saga_failure_compensates_attempted_steps_in_reverse(dtm, dtmd, busi, pb):
    gid = new_gid(dtm)
    busi.plan(gid, "Action2", ["FAILURE"])
    dtm.Submit(request(pb, gid, "saga", saga_steps(busi, 3), [b"1", b"2", b"3"]))
    dtmd.wait_status(gid, "failed")
    assert ops(busi.calls_for(gid)) == [("01", "action"), ("02", "action"), ("02", "compensate"), ("01", "compensate")]
    transaction = dtmd.query(gid)["transaction"]
    # dtm's text: the branch URL, its message, and Go's `%w` of ErrFailure.
    assert transaction["rollback_reason"] == f"url:{busi.url('Action2')} return failed: /busi.Busi/Action2 refused: insufficient balance FAILURE"


def test_concurrent_saga_follows_orders(dtm, dtmd, busi, pb):
    gid = new_gid(dtm)
    custom = json.dumps({"concurrent": True, "orders": {"2": [0, 1]}})
    busi.plan(gid, "Action1", [("SLEEP", 0.3)])
    busi.plan(gid, "Action2", [("SLEEP", 0.3)])
    dtm.Submit(request(pb, gid, "saga", saga_steps(busi, 3), [b"1", b"2", b"3"], custom=custom, WaitResult=True))
    assert dtmd.status(gid) == "succeed"
    calls = busi.calls_for(gid)
    first_two = sorted(c.branch for c in calls[:2])
    assert first_two == ["01", "02"]
    assert abs(calls[0].at - calls[1].at) < 0.25, "steps 0 and 1 start together"
    assert calls[2].branch == "03"


def test_saga_ongoing_then_success(dtm, dtmd, busi, pb):
    gid = new_gid(dtm)
    busi.plan(gid, "Action1", ["ONGOING", "ONGOING"])
    dtm.Submit(request(pb, gid, "saga", saga_steps(busi, 2), [b"1", b"2"]))
    dtmd.wait_status(gid, "succeed")
    assert ops(busi.calls_for(gid)) == [("01", "action")] * 3 + [("02", "action")]


def test_saga_errors_back_off_without_a_retry_limit(dtm, dtmd, busi, pb):
    gid = new_gid(dtm)
    busi.plan(gid, "Action1", ["ERROR"] * 3)
    dtm.Submit(request(pb, gid, "saga", saga_steps(busi, 2), [b"1", b"2"]))
    dtmd.wait_status(gid, "succeed", timeout=30)
    attempts = [c for c in busi.calls_for(gid) if c.branch == "01" and c.op == "action"]
    assert len(attempts) == 4
    gaps = [b.at - a.at for a, b in zip(attempts, attempts[1:])]
    # RetryInterval 1 s doubling on errors: about 1, 2, 4 seconds apart.
    assert gaps[1] > gaps[0] * 1.5 and gaps[2] > gaps[1] * 1.5, gaps


def test_saga_retry_limit_retries_at_once_then_aborts_like_dtm(dtm, dtmd, busi, pb):
    """dtm: RetryLimit N allows N immediate retries (shared by all steps) in the same round, then
    aborts with its own reason; a WaitResult Submit answers from that round."""
    gid = new_gid(dtm)
    busi.plan(gid, "Action1", ["ERROR"] * 10)
    with pytest.raises(grpc.RpcError) as raised:
        dtm.Submit(request(pb, gid, "saga", saga_steps(busi, 2), [b"1", b"2"], RetryLimit=1, WaitResult=True))
    assert raised.value.code() == grpc.StatusCode.ABORTED
    assert raised.value.details() == "RetryCount is greater than RetryLimit, RetryLimit: 1 FAILURE"
    transaction = dtmd.query(gid)["transaction"]
    assert transaction["status"] == "failed"
    assert transaction["rollback_reason"] == "RetryCount is greater than RetryLimit, RetryLimit: 1"
    assert ops(busi.calls_for(gid)) == [("01", "action"), ("01", "action"), ("01", "compensate")]

    recovered = new_gid(dtm)
    busi.plan(recovered, "Action1", ["ERROR", "ONGOING"])
    dtm.Submit(request(pb, recovered, "saga", saga_steps(busi, 2), [b"1", b"2"], RetryLimit=2, WaitResult=True))
    assert dtmd.status(recovered) == "succeed"
    assert ops(busi.calls_for(recovered)) == [("01", "action")] * 3 + [("02", "action")]


def test_wait_result_reports_failure_with_the_rollback_reason(dtm, dtmd, busi, pb):
    gid = new_gid(dtm)
    busi.plan(gid, "Action1", ["FAILURE"])
    with pytest.raises(grpc.RpcError) as raised:
        dtm.Submit(request(pb, gid, "saga", saga_steps(busi, 1), [b"1"], WaitResult=True))
    assert raised.value.code() == grpc.StatusCode.ABORTED
    assert raised.value.details() == dtmd.query(gid)["transaction"]["rollback_reason"]
    assert raised.value.details().endswith("insufficient balance FAILURE")
    assert dtmd.status(gid) == "failed"


def register(dtm, pb, gid, trans_type, branch, data, payload=b""):
    dtm.RegisterBranch(pb[0].DtmBranchRequest(Gid=gid, TransType=trans_type, BranchID=branch, Data=data, BusiPayload=payload))


def test_tcc_confirms_in_reverse_after_submit(dtm, dtmd, busi, pb):
    gid = new_gid(dtm)
    dtm.Prepare(request(pb, gid, "tcc"))
    for branch in ["01", "02"]:
        register(dtm, pb, gid, "tcc", branch, {"confirm": busi.url(f"Confirm{branch}"), "cancel": busi.url(f"Cancel{branch}")}, branch.encode())
    dtm.Submit(request(pb, gid, "tcc", WaitResult=True))
    assert dtmd.status(gid) == "succeed"
    assert ops(busi.calls_for(gid)) == [("02", "confirm"), ("01", "confirm")]
    assert [c.payload for c in busi.calls_for(gid)] == [b"02", b"01"]


def test_tcc_cancels_in_reverse_after_abort(dtm, dtmd, busi, pb):
    gid = new_gid(dtm)
    dtm.Prepare(request(pb, gid, "tcc"))
    for branch in ["01", "02"]:
        register(dtm, pb, gid, "tcc", branch, {"confirm": busi.url("Confirm"), "cancel": busi.url("Cancel")})
    dtm.Abort(request(pb, gid, "tcc"))
    dtmd.wait_status(gid, "failed")
    assert ops(busi.calls_for(gid)) == [("02", "cancel"), ("01", "cancel")]


def test_tcc_prepared_too_long_times_out_and_cancels(dtm, dtmd, busi, pb):
    gid = new_gid(dtm)
    dtm.Prepare(request(pb, gid, "tcc", TimeoutToFail=1))
    register(dtm, pb, gid, "tcc", "01", {"confirm": busi.url("Confirm"), "cancel": busi.url("Cancel")})
    dtmd.wait_status(gid, "failed")
    assert ops(busi.calls_for(gid)) == [("01", "cancel")]
    assert dtmd.query(gid)["transaction"]["rollback_reason"] == "Timeout after 1 seconds"


@pytest.mark.parametrize("finish,expected,status", [("Submit", "commit", "succeed"), ("Abort", "rollback", "failed")])
def test_xa_commits_or_rolls_back_in_order(dtm, dtmd, busi, pb, finish, expected, status):
    gid = new_gid(dtm)
    dtm.Prepare(request(pb, gid, "xa"))
    for branch in ["01", "02"]:
        register(dtm, pb, gid, "xa", branch, {"url": busi.url("Xa")})
    getattr(dtm, finish)(request(pb, gid, "xa"))
    dtmd.wait_status(gid, status)
    assert ops(busi.calls_for(gid)) == [("01", expected), ("02", expected)]


def expect_status(code, call, *args, contains=""):
    with pytest.raises(grpc.RpcError) as raised:
        call(*args)
    assert raised.value.code() == code, raised.value.details()
    assert contains in raised.value.details()
    return raised.value.details()


def test_state_errors_answer_aborted_with_dtm_texts(dtm, dtmd, busi, pb):
    gid = new_gid(dtm)
    busi.plan(gid, "Action1", ["FAILURE"])
    dtm.Submit(request(pb, gid, "saga", saga_steps(busi, 1), [b"1"], WaitResult=False))
    dtmd.wait_status(gid, "failed")
    aborted = grpc.StatusCode.ABORTED
    assert expect_status(aborted, dtm.Submit, request(pb, gid, "saga", saga_steps(busi, 1), [b"1"])) == "current status 'failed', cannot sumbmit. FAILURE"
    assert expect_status(aborted, dtm.Prepare, request(pb, gid, "saga", saga_steps(busi, 1), [b"1"])) == "current status 'failed', cannot prepare. FAILURE"
    assert expect_status(aborted, dtm.Abort, request(pb, gid, "saga")) == "trans type: 'saga' current status 'failed', cannot abort. FAILURE"
    tcc = new_gid(dtm)
    dtm.Submit(request(pb, tcc, "tcc", WaitResult=True))
    assert expect_status(aborted, register, dtm, pb, tcc, "tcc", "01", {"confirm": busi.url("C"), "cancel": busi.url("X")}) == \
        f"no trans with gid: {tcc} status: prepared found FAILURE"
    unknown = new_gid(dtm)
    assert expect_status(grpc.StatusCode.UNKNOWN, dtm.Abort, request(pb, unknown, "tcc")) == f"no TransGlobal with gid: {unknown} found"


def test_bad_input_is_invalid_argument_naming_the_field(dtm, pb, busi):
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    gid = new_gid(dtm)
    bad = pb[0].DtmRequest(Gid=gid, TransType="saga", Steps="[{oops", BinPayloads=[b"1"])
    expect_status(invalid, dtm.Submit, bad, contains="Steps")
    expect_status(invalid, dtm.Submit, request(pb, gid, "saga", saga_steps(busi, 2), [b"1"]), contains="BinPayloads")
    expect_status(invalid, dtm.Submit, request(pb, gid, "sagax", saga_steps(busi, 1), [b"1"]), contains="TransType")
    expect_status(invalid, dtm.Submit, request(pb, "", "saga", saga_steps(busi, 1), [b"1"]), contains="Gid")
    expect_status(invalid, dtm.Submit, request(pb, "g" * 129, "saga", saga_steps(busi, 1), [b"1"]), contains="Gid")
    no_method = [{"action": busi.target, "compensate": ""}]
    expect_status(invalid, dtm.Submit, request(pb, gid, "saga", no_method, [b"1"]), contains="method path")
    expect_status(invalid, dtm.Submit, request(pb, gid, "saga", saga_steps(busi, 2), [b"1", b"2"], custom='{"concurrent":true,"orders":{"0":[1],"1":[0]}}'), contains="cycle")
    expect_status(invalid, dtm.PrepareWorkflow, request(pb, gid, "saga"), contains="TransType")
    big = request(pb, gid, "saga", saga_steps(busi, 1), [b"x" * (5 << 20)])
    with pytest.raises(grpc.RpcError) as raised:
        dtm.Submit(big)
    # Over the 4 MiB limit: grpc-swift resets the stream instead of reading the message.
    assert raised.value.code() in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED)
    assert len(dtm.NewGid(empty_pb2.Empty()).Gid) == 22, "the server is still serving"


def test_sigkill_mid_saga_then_restart_finishes_without_compensation(tmp_path, pb, busi):
    server = Dtmd(tmp_path).start()
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        dtm = pb[1].DtmStub(channel)
        gid = new_gid(dtm)
        busi.plan(gid, "Action2", ["ONGOING"] * 3)
        dtm.Submit(request(pb, gid, "saga", saga_steps(busi, 3), [b"1", b"2", b"3"]))
        wait_for(lambda: [c for c in busi.calls_for(gid) if c.branch == "02"], what="action 2 to be called")
        server.stop(signal.SIGKILL)
        channel.close()
        server.start()
        server.wait_status(gid, "succeed", timeout=30)
        calls = busi.calls_for(gid)
        assert not [c for c in calls if c.op == "compensate"]
        assert [c.branch for c in calls if c.op == "action"][-2:] == ["02", "03"]
        assert [c.branch for c in calls if c.branch == "01"] == ["01"], "a step that succeeded is not repeated"
    finally:
        server.stop()
