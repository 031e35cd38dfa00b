"""dtm's HTTP API driven by PyPI's dtmcli 1.7.7.0 (a client we did not write) and raw requests,
with HTTP branches on a Python business server, and a saga mixing HTTP and gRPC branches."""
import json
import urllib.error
import urllib.request

import pytest
from dtmcli import msg, saga, tcc, utils

from test_grpc_interop import new_gid, request


@pytest.fixture(scope="module")
def api(dtmd):
    return f"http://127.0.0.1:{dtmd.http_port}/api/dtmsvr"


def post(url, body, raw=None):
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_dtmcli_saga_calls_http_branches_like_dtm(api, dtmd, http_busi):
    gid = utils.gen_gid(api)
    assert len(gid) == 22
    s = saga.Saga(api, gid)
    s.add({"amount": 30}, http_busi.url("TransOut"), http_busi.url("TransOutRevert"))
    s.add({"amount": 30}, http_busi.url("TransIn"), http_busi.url("TransInRevert"))
    s.submit()
    dtmd.wait_status(gid, "succeed")
    calls = http_busi.calls_for(gid)
    assert [(c.method, c.path) for c in calls] == [("POST", "/api/busi/TransOut"), ("POST", "/api/busi/TransIn")]
    assert calls[0].query == {"gid": gid, "trans_type": "saga", "branch_id": "01", "op": "action"}
    assert json.loads(calls[0].body) == {"amount": 30}
    assert calls[0].headers["content-type"] == "application/json"
    assert dtmd.query(gid)["transaction"]["protocol"] == "http"


def test_dtmcli_saga_rollback_compensates_in_reverse(api, dtmd, http_busi):
    gid = utils.gen_gid(api)
    http_busi.plan(gid, "TransIn", ["FAILURE"])
    s = saga.Saga(api, gid)
    s.add({"amount": 30}, http_busi.url("TransOut"), http_busi.url("TransOutRevert"))
    s.add({"amount": 30}, http_busi.url("TransIn"), http_busi.url("TransInRevert"))
    s.submit()
    dtmd.wait_status(gid, "failed")
    assert [c.path.rsplit("/", 1)[1] for c in http_busi.calls_for(gid)] == ["TransOut", "TransIn", "TransInRevert", "TransOutRevert"]


def test_dtmcli_tcc_confirms_after_submit(api, dtmd, http_busi):
    gid = utils.gen_gid(api)

    def busi(t):
        t.call_branch({"amount": 30}, http_busi.url("TransOutTry"), http_busi.url("TransOutConfirm"), http_busi.url("TransOutCancel"))
        t.call_branch({"amount": 30}, http_busi.url("TransInTry"), http_busi.url("TransInConfirm"), http_busi.url("TransInCancel"))

    assert tcc.tcc_global_transaction(api, gid, busi) == gid
    dtmd.wait_status(gid, "succeed")
    paths = [c.path.rsplit("/", 1)[1] for c in http_busi.calls_for(gid)]
    assert paths == ["TransOutTry", "TransInTry", "TransInConfirm", "TransOutConfirm"]
    confirm = http_busi.calls_for(gid)[2]
    assert confirm.method == "POST" and json.loads(confirm.body) == {"amount": 30}


def test_dtmcli_tcc_try_failure_cancels(api, dtmd, http_busi):
    gid = utils.gen_gid(api)
    http_busi.plan(gid, "TransInTry", ["FAILURE"])

    def busi(t):
        t.call_branch({"amount": 30}, http_busi.url("TransOutTry"), http_busi.url("TransOutConfirm"), http_busi.url("TransOutCancel"))
        t.call_branch({"amount": 30}, http_busi.url("TransInTry"), http_busi.url("TransInConfirm"), http_busi.url("TransInCancel"))

    assert tcc.tcc_global_transaction(api, gid, busi) == ""
    dtmd.wait_status(gid, "failed")
    assert [c.path.rsplit("/", 1)[1] for c in http_busi.calls_for(gid)][-2:] == ["TransInCancel", "TransOutCancel"]


def test_dtmcli_msg_prepare_submit(api, dtmd, http_busi):
    gid = utils.gen_gid(api)
    m = msg.Msg(api, gid)
    m.add({"amount": 30}, http_busi.url("TransOut"))
    m.add({"amount": 30}, http_busi.url("TransIn"))
    m.prepare(http_busi.url("QueryPrepared"))
    assert dtmd.status(gid) == "prepared"
    m.submit()
    dtmd.wait_status(gid, "succeed")
    assert [c.path.rsplit("/", 1)[1] for c in http_busi.calls_for(gid)] == ["TransOut", "TransIn"]


def test_error_envelopes_and_admin_routes(api, dtmd, http_busi):
    gid = utils.gen_gid(api)
    body = {"gid": gid, "trans_type": "saga", "steps": [{"action": http_busi.url("A"), "compensate": ""}],
            "payloads": ["{}"], "custom_data": None, "query_prepared": None, "protocol": None,
            "passthrough_headers": [], "wait_result": True}
    assert post(f"{api}/submit", body) == (200, {"dtm_result": "SUCCESS"})
    status, failure = post(f"{api}/prepare", body)
    assert status == 409 and failure["dtm_result"] == "FAILURE" and "cannot prepare" in failure["message"]
    assert post(f"{api}/submit", None, raw=b"{not json")[0] == 400
    status, missing = post(f"{api}/submit", {"trans_type": "saga"})
    assert status == 400 and "gid" in missing["message"]
    status, wrong = post(f"{api}/submit", {**body, "gid": utils.gen_gid(api), "steps": "[{"})
    assert status == 400 and "Steps" in wrong["message"]
    with urllib.request.urlopen(f"{api}/query?gid=unknown-gid") as r:
        assert json.load(r) == {"branches": [], "transaction": None}
    with urllib.request.urlopen(f"{api}/all?limit=1&status=succeed") as r:
        page = json.load(r)
    assert len(page["transactions"]) == 1 and page["transactions"][0]["status"] == "succeed" and page["next_position"]
    with urllib.request.urlopen(f"{api}/version") as r:
        assert json.load(r)["version"].startswith("swiftdtm-")

    prepared = utils.gen_gid(api)
    assert post(f"{api}/prepare", {"gid": prepared, "trans_type": "tcc"})[0] == 200
    assert post(f"{api}/forceStop", {"gid": prepared}) == (200, {"dtm_result": "SUCCESS"})
    assert dtmd.status(prepared) == "failed"
    assert post(f"{api}/forceStop", {"gid": prepared})[0] == 409


def test_mixed_http_and_grpc_saga(dtm, dtmd, busi, http_busi, pb):
    gid = new_gid(dtm)
    steps = [{"action": http_busi.url("TransOut"), "compensate": http_busi.url("TransOutRevert")},
             {"action": busi.url("TransIn"), "compensate": busi.url("TransInRevert")}]
    dtm.Submit(request(pb, gid, "saga", steps, [b'{"amount":30}', b"\x08\x1e"], WaitResult=True))
    assert dtmd.status(gid) == "succeed"
    assert [c.path for c in http_busi.calls_for(gid)] == ["/api/busi/TransOut"]
    assert http_busi.calls_for(gid)[0].body == b'{"amount":30}'
    assert [c.method for c in busi.calls_for(gid)] == ["/busi.Busi/TransIn"]


def test_metrics_scrape_has_dtms_names(api, dtm, dtmd, http_busi):
    gid = utils.gen_gid(api)
    s = saga.Saga(api, gid)
    s.add({"amount": 1}, http_busi.url("TransOut"), http_busi.url("TransOutRevert"))
    s.submit()
    dtmd.wait_status(gid, "succeed")
    with urllib.request.urlopen(f"http://127.0.0.1:{dtmd.http_port}/api/metrics") as r:
        assert r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    lines = text.splitlines()
    def has(name, *labels):
        return any(l.startswith(name) and all(label in l for label in labels) for l in lines)
    # dtm's label values (dtmsvr/metrics.go): ok/fail, lower-cased api names.
    assert has("dtm_server_process_total", 'type="http"', 'api="submit"', 'status="ok"')
    assert has("dtm_server_response_duration", 'type="http"', 'api="submit"')
    assert has("dtm_transaction_process_total", 'model="saga"', 'status="ok"')
    assert has("dtm_transaction_handled_duration", 'model="saga"')
    assert has("dtm_branch_process_total", 'model="saga"', 'branchid="01"', 'branchtype="action"', 'status="ok"')
    assert has("dtm_server_info", 'gin_version="', 'grpc_version="')
    # Every API is measured, not just the transaction commands (middleware, interceptor).
    assert has("dtm_server_process_total", 'type="http"', 'api="newgid"', 'status="ok"')
    new_gid(dtm)
    # A saga that fails: its TransIn refuses, TransOut is compensated.
    failed = utils.gen_gid(api)
    s = saga.Saga(api, failed)
    s.add({"amount": 1}, http_busi.url("TransOut"), http_busi.url("TransOutRevert"))
    s.add({"amount": 1}, http_busi.url("TransIn"), http_busi.url("TransInRevert"))
    http_busi.plan(failed, "TransIn", ["FAILURE"])
    s.submit()
    dtmd.wait_status(failed, "failed")
    with urllib.request.urlopen(f"http://127.0.0.1:{dtmd.http_port}/api/metrics") as r:
        lines = r.read().decode().splitlines()
    assert has("dtm_server_process_total", 'type="grpc"', 'api="newgid"', 'status="ok"')
    assert has("dtm_transaction_process_total", 'model="saga"', 'status="fail"')
    assert has("dtm_branch_process_total", 'model="saga"', 'branchid="02"', 'branchtype="action"', 'status="fail"')
    assert has("dtm_branch_process_total", 'model="saga"', 'branchid="01"', 'branchtype="compensate"', 'status="ok"')
    # SwiftDTM's own metrics, under their prefix.
    assert has("swiftdtm_log_appends_total", 'store="lmdb"')
    assert has("swiftdtm_group_commit_events_count", 'store="lmdb"')
    assert has("swiftdtm_log_commit_duration_count", 'store="lmdb"')
    assert has("swiftdtm_rounds_in_flight")
    assert has("swiftdtm_due_backlog")
    assert has("swiftdtm_branch_call_duration_count", f'target="http://127.0.0.1:{http_busi.port}"')
    # Only dtm's label values: nothing of SwiftDTM's earlier SUCCESS/FAILURE/succeed.
    dtm_lines = [l for l in lines if l.startswith(("dtm_server_process_total", "dtm_transaction_process_total", "dtm_branch_process_total"))]
    assert dtm_lines and all('status="ok"' in l or 'status="fail"' in l for l in dtm_lines), dtm_lines


def test_same_request_over_http_or_grpc_records_the_same_events(api, dtm, dtmd, http_busi, pb):
    from test_dtmctl import dtmctl

    steps = [{"action": http_busi.url("TransOut"), "compensate": http_busi.url("TransOutRevert")}]
    over_http = utils.gen_gid(api)
    assert post(f"{api}/submit", {"gid": over_http, "trans_type": "saga", "steps": steps, "payloads": ['{"a":1}'],
                                  "wait_result": True, "retry_interval": 5})[0] == 200
    over_grpc = new_gid(dtm)
    dtm.Submit(request(pb, over_grpc, "saga", steps, [b'{"a":1}'], WaitResult=True, RetryInterval=5))

    def events(gid):
        history = json.loads(dtmctl("history", gid, "--json", "--data", dtmd.workdir / "data", check=0).stdout)
        for event in history:
            event.pop("seq"), event.pop("time"), event.pop("gid")
            created = event["event"].get("created")
            if created:  # what differs by transport or by time: the protocol, the due time, the Steps text
                created.pop("protocol"), created.pop("next_due_us")
                created["steps"] = json.loads(created["steps"])
            event["event"].get("attempt_finished", {}).pop("duration_us", None)
            for timed in ("attempt_started", "status_changed"):  # when the decision was made
                event["event"].get(timed, {}).pop("decided_at_us", None)
        return history

    assert events(over_http) == events(over_grpc)
