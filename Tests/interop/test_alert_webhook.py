"""dtm's AlertWebHook (WIRE-DTM-API.md §6): a branch that keeps erring is reported once the
transaction's retry count reaches AlertRetryLimit, again on every later error; a saga action's
FAILURE and msg's QueryPrepared calls are not."""
import json

import grpc

from conftest import Dtmd, wait_for
from test_grpc_interop import new_gid, request, saga_steps


def alerts(http_busi):
    with http_busi.lock:
        return [json.loads(c.body) for c in http_busi.calls if c.path == "/api/busi/alert"]


def test_a_branch_that_keeps_erring_is_reported(tmp_path, pb, busi, http_busi):
    server = Dtmd(tmp_path, AlertWebHook=http_busi.url("alert"), AlertRetryLimit=2).start()
    try:
        dtm = pb[1].DtmStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
        gid, failed, queried = new_gid(dtm), new_gid(dtm), new_gid(dtm)
        busi.plan(gid, "Action1", ["ERROR"] * 3)
        dtm.Submit(request(pb, gid, "saga", saga_steps(busi, 1), [b"1"]))
        busi.plan(failed, "Action1", ["FAILURE"])
        dtm.Submit(request(pb, failed, "saga", saga_steps(busi, 1), [b"1"]))
        busi.plan(queried, "QueryPrepared", ["ERROR"] * 4)
        dtm.Prepare(request(pb, queried, "msg", [{"action": busi.url("A")}], [b"a"], TimeoutToFail=1, query_prepared=busi.url("QueryPrepared")))
        server.wait_status(gid, "succeed", timeout=20)
        mine = [a for a in alerts(http_busi) if a["gid"] == gid]
        # Errors 1, 2, 3 leave retry counts 1, 2, 3: the second and the third reach the limit 2.
        assert [a["retry_count"] for a in mine] == [2, 3], mine
        assert mine[0] == {"gid": gid, "status": "submitted", "branch": busi.url("Action1"),
                           "error": mine[0]["error"], "retry_count": 2}
        assert "temporarily unavailable" in mine[0]["error"]
        server.wait_status(failed, "failed")
        wait_for(lambda: len([c for c in busi.calls_for(queried) if c.op == "msg"]) >= 4, timeout=40, what="QueryPrepared errors")
        assert not [a for a in alerts(http_busi) if a["gid"] in (failed, queried)]
    finally:
        server.stop()
