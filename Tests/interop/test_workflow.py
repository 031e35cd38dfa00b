"""dtm's workflow mode (WIRE-DTM-API.md §1), with the tests playing dtm's workflow SDK: PrepareWorkflow
and its progress, step outcomes registered once, Submit recording the end, and the server calling
the application back to resume a workflow it left unfinished, over gRPC and HTTP."""
import base64
import json
import time

import grpc
import pytest

from conftest import Dtmd, wait_for
from test_dtmctl import dtmctl
from test_grpc_interop import expect_status, new_gid
from test_http_api import post


def workflow_request(pb, gid, name="transfer", data=b"input", callback="", **options):
    custom = json.dumps({"name": name, "data": base64.b64encode(data).decode() if data else None})
    return pb[0].DtmRequest(Gid=gid, TransType="workflow", CustomedData=custom, QueryPrepared=callback, Steps="null",
                            TransOptions=pb[0].DtmTransOptions(**options))


def progress(dtm, pb, gid, branch, op, status, payload):
    dtm.RegisterBranch(pb[0].DtmBranchRequest(Gid=gid, TransType="workflow", BranchID=branch, Data={"status": status, "op": op},
                                              BusiPayload=payload))


def submit(dtm, pb, gid, status, reason="", result=b"", **kwargs):
    request = workflow_request(pb, gid, **kwargs)
    request.ReqExtra.update({"status": status, "rollback_reason": reason, "result": base64.b64encode(result).decode() if result else ""})
    dtm.Submit(request)


def test_prepare_register_and_submit_like_dtms_sdk(dtm, dtmd, pb):
    gid = new_gid(dtm)
    first = dtm.PrepareWorkflow(workflow_request(pb, gid))
    assert (first.Transaction.Gid, first.Transaction.Status, list(first.Progresses)) == (gid, "prepared", [])
    progress(dtm, pb, gid, "01", "action", "succeed", b"reply-1")
    assert expect_status(grpc.StatusCode.UNKNOWN, progress, dtm, pb, gid, "01", "action", "succeed", b"again") == "storage: UniqueKeyConflict"
    progress(dtm, pb, gid, "02", "action", "failed", b"no money")
    progress(dtm, pb, gid, "01", "rollback", "succeed", b"")

    # A rerun: PrepareWorkflow changes nothing and answers the progress so far, in order.
    again = dtm.PrepareWorkflow(workflow_request(pb, gid))
    assert again.Transaction.Status == "prepared" and again.Transaction.Result == ""
    assert [(p.BranchID, p.Op, p.Status, p.BinData) for p in again.Progresses] == [
        ("01", "action", "succeed", b"reply-1"), ("02", "action", "failed", b"no money"), ("01", "rollback", "succeed", b"")]

    submit(dtm, pb, gid, "failed", reason="no money")
    transaction = dtmd.query(gid)["transaction"]
    assert (transaction["status"], transaction["rollback_reason"]) == ("failed", "no money")
    assert transaction["finish_time"] is not None
    ended = dtm.PrepareWorkflow(workflow_request(pb, gid))
    assert (ended.Transaction.Status, ended.Transaction.RollbackReason) == ("failed", "no money")

    assert expect_status(grpc.StatusCode.INTERNAL, submit, dtm, pb, gid, "succeed") == "storage: NotFound"
    assert expect_status(grpc.StatusCode.ABORTED, progress, dtm, pb, gid, "03", "action", "succeed", b"") == \
        f"no trans with gid: {gid} status: prepared found FAILURE"
    assert expect_status(grpc.StatusCode.INTERNAL, submit, dtm, pb, new_gid(dtm), "succeed") == "storage: NotFound"
    bad = pb[0].DtmRequest(Gid=new_gid(dtm), TransType="workflow", CustomedData='{"name": 5}')
    assert "CustomedData" in expect_status(grpc.StatusCode.INVALID_ARGUMENT, dtm.PrepareWorkflow, bad)


def test_a_succeeded_workflow_keeps_its_result(dtm, dtmd, pb):
    gid = new_gid(dtm)
    dtm.PrepareWorkflow(workflow_request(pb, gid, data=b""))
    progress(dtm, pb, gid, "01", "action", "succeed", b"ok")
    submit(dtm, pb, gid, "succeed", result=b"the result")
    transaction = dtmd.query(gid)["transaction"]
    assert transaction["status"] == "succeed"
    assert transaction["result"] == base64.b64encode(b"the result").decode(), "stored as sent (base64)"


def test_the_server_resumes_a_workflow_the_client_left(tmp_path, pb, busi):
    """The client prepared, recorded one step and went away: the server calls it back on its
    schedule (answer ignored, no backoff) until a rerun submits; then never again."""
    server = Dtmd(tmp_path).start()
    data = tmp_path / "data"
    try:
        dtm = pb[1].DtmStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
        gid = new_gid(dtm)
        callback = f"{busi.target}/workflow.Workflow/Execute"
        dtm.PrepareWorkflow(workflow_request(pb, gid, callback=callback, RetryInterval=1, BranchHeaders={"x-tenant": "t1"}))
        progress(dtm, pb, gid, "01", "action", "succeed", b"reply-1")
        busi.plans[(gid, "/workflow.Workflow/Execute")] = ["ERROR", "ONGOING", "FAILURE"]
        calls = wait_for(lambda: (lambda c: c if len(c) >= 3 else None)(busi.calls_for(gid)), timeout=20, what="three callbacks")
        first = calls[0]
        assert first.method == "/workflow.Workflow/Execute"
        assert first.payload == b"\n\x05input", "workflow.WorkflowData{Data: input}"
        assert (first.metadata["dtm-trans_type"], first.metadata["dtm-branch_id"], first.metadata["dtm-op"]) == ("workflow", "00", "transfer")
        assert first.metadata["x-tenant"] == "t1"
        gaps = [b.at - a.at for a, b in zip(calls, calls[1:])]
        assert all(0.5 < gap < 2.5 for gap in gaps), f"every server RetryInterval (1 s), no backoff: {gaps}"
        assert server.status(gid) == "prepared", "the server never fails a workflow"

        # The rerun the callback triggers: PrepareWorkflow, replay, the rest, Submit.
        rerun = dtm.PrepareWorkflow(workflow_request(pb, gid, callback=callback))
        assert [(p.BranchID, p.Op) for p in rerun.Progresses] == [("01", "action")]
        progress(dtm, pb, gid, "02", "action", "succeed", b"reply-2")
        submit(dtm, pb, gid, "succeed", callback=callback)
        assert server.status(gid) == "succeed"
        settled = len(busi.calls_for(gid))
        time.sleep(2.5)
        assert len(busi.calls_for(gid)) == settled, "a finished workflow is never called back"
        assert [(b["branch_id"], b["op"]) for b in server.query(gid)["branches"]] == [("01", "action"), ("02", "action")]

        history = dtmctl("history", gid, "--data", data, check=0).stdout
        assert "call 00/transfer attempt 1" in history and "prepared → succeed" in history
        assert "every decision re-derives" in dtmctl("verify", "--data", data, check=0).stdout
    finally:
        server.stop()


def test_the_http_form_with_an_http_callback(dtmd, http_busi):
    api = f"http://127.0.0.1:{dtmd.http_port}/api/dtmsvr"
    gid = json.load(__import__("urllib.request").request.urlopen(f"{api}/newGid"))["gid"]
    custom = json.dumps({"name": "http-flow", "data": base64.b64encode(b'{"amount":30}').decode()})
    body = {"gid": gid, "trans_type": "workflow", "custom_data": custom, "query_prepared": http_busi.url("workflow/resume"),
            "protocol": "http", "concurrent": False, "retry_interval": 1}
    status, answer = post(f"{api}/prepareWorkflow", body)
    assert status == 200 and answer["progresses"] == []
    assert (answer["transaction"]["gid"], answer["transaction"]["status"], answer["transaction"]["protocol"]) == (gid, "prepared", "http")
    assert post(f"{api}/registerBranch", {"gid": gid, "trans_type": "workflow", "branch_id": "01", "op": "action", "status": "succeed",
                                          "data": '{"ok":1}'}) == (200, {"dtm_result": "SUCCESS"})
    status, answer = post(f"{api}/prepareWorkflow", body)
    [step] = answer["progresses"]
    assert (step["branch_id"], step["op"], step["status"], base64.b64decode(step["bin_data"])) == ("01", "action", "succeed", b'{"ok":1}')

    call = wait_for(lambda: next(iter(http_busi.calls_for(gid)), None), timeout=10, what="the HTTP callback")
    assert (call.method, call.path) == ("POST", "/api/busi/workflow/resume")
    assert call.query == {"gid": gid, "trans_type": "workflow", "branch_id": "00", "op": "http-flow"}
    assert json.loads(call.body) == {"amount": 30}

    done = {"gid": gid, "trans_type": "workflow", "req_extra": {"status": "succeed", "rollback_reason": "", "result": ""}}
    assert post(f"{api}/submit", done) == (200, {"dtm_result": "SUCCESS"})
    assert dtmd.status(gid) == "succeed"
    assert post(f"{api}/submit", done) == (500, {"message": "storage: NotFound"})
