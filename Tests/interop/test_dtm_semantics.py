"""dtm v1.19's exact semantics where SwiftDTM used to differ (WIRE-DTM-API.md §5, §7): what query
lists and keeps, a Submit of a submitted transaction, the legacy `steps[i].data` body, and
resetCronTime."""
import json
import time
import urllib.request

import grpc
import pytest

from test_grpc_interop import new_gid, ops, request, saga_steps
from test_http_api import post


@pytest.fixture(scope="module")
def api(dtmd):
    return f"http://127.0.0.1:{dtmd.http_port}/api/dtmsvr"


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_query_lists_stored_branches_only_not_the_msg_query_prepared_call(dtm, dtmd, busi, pb, admin_pb):
    gid = new_gid(dtm)
    busi.plan(gid, "QueryPrepared", ["SUCCESS"])
    dtm.Prepare(request(pb, gid, "msg", [{"action": busi.url("TransOut")}], [b"out"], TimeoutToFail=1, query_prepared=busi.url("QueryPrepared")))
    dtmd.wait_status(gid, "succeed")
    assert [(b["branch_id"], b["op"]) for b in dtmd.query(gid)["branches"]] == [("01", "action")]
    assert ("00", "msg") in ops(busi.calls_for(gid)), "QueryPrepared was called (and stays in the history)"


def test_saga_rows_come_compensate_then_action_per_step(dtm, dtmd, busi, pb):
    gid = new_gid(dtm)
    dtm.Submit(request(pb, gid, "saga", saga_steps(busi, 2), [b"1", b"2"], WaitResult=True))
    assert [(b["branch_id"], b["op"]) for b in dtmd.query(gid)["branches"]] == [
        ("01", "compensate"), ("01", "action"), ("02", "compensate"), ("02", "action")]


def test_next_cron_time_is_kept_after_the_end_and_reset_to_now(dtm, dtmd, busi, pb, api):
    gid = new_gid(dtm)
    dtm.Submit(request(pb, gid, "saga", saga_steps(busi, 1), [b"1"], WaitResult=True))
    finished = dtmd.query(gid)["transaction"]
    assert finished["status"] == "succeed"
    assert finished["next_cron_time"] is not None
    before = time.time()
    assert post(f"{api}/resetNextCronTime", {"gid": gid}) == (200, {"dtm_result": "SUCCESS"})
    reset = dtmd.query(gid)["transaction"]
    assert reset["status"] == "succeed"
    from datetime import datetime
    assert abs(datetime.fromisoformat(reset["next_cron_time"].replace("Z", "+00:00")).timestamp() - before) < 5
    assert post(f"{api}/resetNextCronTime", {"gid": "no-such-gid"}) == (500, {"message": "no TransGlobal with gid: no-such-gid found"})
    time.sleep(1.5)
    assert len(busi.calls_for(gid)) == 1, "a finished transaction is never driven again"


def test_submit_of_a_submitted_saga_runs_a_new_round_at_once(dtm, dtmd, busi, pb):
    """dtm runs a round at once and answers WaitResult from it (on the stored branches here; dtm
    would also replace them by the new request's, which SwiftDTM does not copy)."""
    gid = new_gid(dtm)
    busi.plan(gid, "Action1", ["ERROR"])
    dtm.Submit(request(pb, gid, "saga", saga_steps(busi, 1), [b"1"], RetryInterval=60))
    wait_for_calls = time.time() + 10
    while not busi.calls_for(gid) and time.time() < wait_for_calls:
        time.sleep(0.05)
    assert dtmd.status(gid) == "submitted", "the error waits a minute for its retry"
    dtm.Submit(request(pb, gid, "saga", saga_steps(busi, 1), [b"1"], WaitResult=True))
    assert dtmd.status(gid) == "succeed"
    assert ops(busi.calls_for(gid)) == [("01", "action"), ("01", "action")]


def test_legacy_body_with_each_steps_payload_in_its_data(api, dtmd, http_busi):
    status, gid = get(f"{api}/newGid")
    gid = gid["gid"]
    body = {"gid": gid, "trans_type": "saga", "wait_result": True, "steps": [
        {"action": http_busi.url("TransOut"), "compensate": http_busi.url("TransOutRevert"), "data": '{"amount":30}'},
        {"action": http_busi.url("TransIn"), "compensate": http_busi.url("TransInRevert"), "data": '{"amount":40}'},
    ]}
    assert post(f"{api}/submit", body) == (200, {"dtm_result": "SUCCESS"})
    calls = http_busi.calls_for(gid)
    assert [(c.path.rsplit("/", 1)[1], json.loads(c.body)) for c in calls] == [("TransOut", {"amount": 30}), ("TransIn", {"amount": 40})]


def test_reset_cron_time_makes_transactions_waiting_long_due_now(dtm, dtmd, busi, pb, api):
    gids = [new_gid(dtm) for _ in range(3)]
    for gid in gids:
        busi.plan(gid, "Action1", ["ERROR"])
        dtm.Submit(request(pb, gid, "saga", saga_steps(busi, 1), [b"1"], RetryInterval=600))
    deadline = time.time() + 10
    while any(not busi.calls_for(g) for g in gids) and time.time() < deadline:
        time.sleep(0.05)
    status, first = get(f"{api}/resetCronTime?timeout=60&limit=2")
    assert status == 200 and first == {"succeed_count": 2, "has_remaining": True}
    status, second = get(f"{api}/resetCronTime?timeout=60&limit=2")
    assert status == 200 and second["succeed_count"] >= 1
    for gid in gids:
        dtmd.wait_status(gid, "succeed", timeout=10)
    assert get(f"{api}/resetCronTime?limit=x")[0] == 400
