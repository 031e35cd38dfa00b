"""Security: dtmd never calls itself (always on)."""
import json
import urllib.error
import urllib.parse
import urllib.request

import grpc
import pytest

from test_grpc_interop import new_gid, register, request


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_a_branch_url_pointing_at_dtmds_http_api_is_refused_and_nothing_is_stored(dtmd, dtm, pb):
    victim = new_gid(dtm)
    dtm.Prepare(request(pb, victim, "tcc"))
    api = f"http://127.0.0.1:{dtmd.http_port}/api/dtmsvr"
    attacker = new_gid(dtm)
    status, body = post(f"{api}/submit", {
        "gid": attacker, "trans_type": "saga",
        "steps": [{"action": f"{api}/forceStop", "compensate": f"{api}/forceStop"}],
        "payloads": [json.dumps({"gid": victim})]})
    assert status == 400, body
    assert "points at dtmd itself" in body and "branch 01" in body
    assert dtmd.query(attacker)["transaction"] is None  # nothing stored
    assert dtmd.status(victim) == "prepared"


def test_a_grpc_branch_url_pointing_at_dtmds_own_abort_is_refused(dtmd, dtm, pb):
    victim = new_gid(dtm)
    dtm.Prepare(request(pb, victim, "tcc"))
    attacker = new_gid(dtm)
    target = f"127.0.0.1:{dtmd.grpc_port}/dtmgimp.Dtm/Abort"
    with pytest.raises(grpc.RpcError) as refused:
        dtm.Submit(request(pb, attacker, "saga", [{"action": target, "compensate": target}], [b""]))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "points at dtmd itself" in refused.value.details()
    assert dtmd.query(attacker)["transaction"] is None
    assert dtmd.status(victim) == "prepared"


def test_every_url_field_is_guarded(dtmd, dtm, pb):
    own = f"http://localhost:{dtmd.http_port}/api/dtmsvr/abort"
    gid = new_gid(dtm)
    with pytest.raises(grpc.RpcError) as query_prepared:  # QueryPrepared (also the workflow callback)
        dtm.Prepare(request(pb, gid, "msg", [{"action": "127.0.0.1:1/busi.Busi/A"}], [b""], query_prepared=own))
    assert "QueryPrepared" in query_prepared.value.details()
    tcc = new_gid(dtm)
    dtm.Prepare(request(pb, tcc, "tcc"))
    with pytest.raises(grpc.RpcError) as registration:  # a TCC branch's confirm
        register(dtm, pb, tcc, "tcc", "01", {"confirm": own, "cancel": "127.0.0.1:1/busi.Busi/Cancel"})
    assert registration.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert dtmd.query(tcc)["branches"] == []
    with pytest.raises(urllib.error.HTTPError) as subscriber:
        urllib.request.urlopen(f"http://127.0.0.1:{dtmd.http_port}/api/dtmsvr/subscribe?topic=t&url=" + urllib.parse.quote(own))
    assert subscriber.value.code in (400, 500) and "points at dtmd itself" in subscriber.value.read().decode()
