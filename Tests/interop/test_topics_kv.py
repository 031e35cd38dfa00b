"""dtm's topics and KV routes (WIRE-DTM-API.md §2, §3) over gRPC and HTTP: subscribe and
unsubscribe with dtm's errors, msg actions sent to every subscriber, topic deletion, queryKV and
scanKV paging, and the topic events in dtmctl's history and verify."""
import json
import urllib.parse
import uuid

import grpc
import pytest

from conftest import Dtmd
from test_dtm_semantics import get
from test_dtmctl import dtmctl
from test_grpc_interop import expect_status, new_gid, ops, request


@pytest.fixture(scope="module")
def api(dtmd):
    return f"http://127.0.0.1:{dtmd.http_port}/api/dtmsvr"


def subscribe(api, topic, url, remark=None):
    query = {"topic": topic, "url": url} | ({"remark": remark} if remark is not None else {})
    return get(f"{api}/subscribe?{urllib.parse.urlencode(query)}")


def delete(api, topic):
    import urllib.request
    req = urllib.request.Request(f"{api}/topic/{urllib.parse.quote(topic, safe='')}", method="DELETE")
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def topic_request(pb, topic, url="", remark=""):
    return pb[0].DtmTopicRequest(Topic=topic, URL=url, Remark=remark)


def query_kv(api, topic):
    status, body = get(f"{api}/queryKV?cat=topics&key={urllib.parse.quote(topic, safe='')}")
    assert status == 200
    return body["kv"]


def test_msg_to_a_topic_reaches_every_subscriber_in_order(dtm, dtmd, busi, pb, api):
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    assert subscribe(api, topic, busi.url("First"), "the first") == (200, {"dtm_result": "SUCCESS"})
    dtm.Subscribe(topic_request(pb, topic, busi.url("Second")))
    [record] = query_kv(api, topic)
    assert record["cat"] == "topics" and record["k"] == topic and record["version"] == 2
    assert json.loads(record["v"]) == [{"url": busi.url("First"), "remark": "the first"}, {"url": busi.url("Second"), "remark": ""}]
    assert record["v"].startswith('[{"url":'), "dtm's JSON: url before remark"

    gid = new_gid(dtm)
    dtm.Submit(request(pb, gid, "msg", [{"action": f"topic://{topic}"}, {"action": busi.url("Direct")}], [b"event", b"direct"], WaitResult=True))
    assert dtmd.status(gid) == "succeed"
    calls = busi.calls_for(gid)
    assert [(c.method.rsplit("/", 1)[1], c.branch, c.payload) for c in calls] == [
        ("First", "01-01", b"event"), ("Second", "01-02", b"event"), ("Direct", "02", b"direct")]
    assert [(b["branch_id"], b["url"]) for b in dtmd.query(gid)["branches"]] == [
        ("01-01", busi.url("First")), ("01-02", busi.url("Second")), ("02", busi.url("Direct"))]

    # One subscriber: the step's own id.
    dtm.Unsubscribe(topic_request(pb, topic, busi.url("First")))
    single = new_gid(dtm)
    dtm.Submit(request(pb, single, "msg", [{"action": f"topic://{topic}"}], [b"e"], WaitResult=True))
    assert ops(busi.calls_for(single)) == [("01", "action")]


def test_topic_errors_are_dtms(dtm, busi, pb, api):
    topic = f"errors-{uuid.uuid4().hex[:8]}"
    unknown = grpc.StatusCode.UNKNOWN
    assert subscribe(api, "", busi.url("A")) == (500, {"message": "empty topic"})
    assert subscribe(api, topic, "") == (500, {"message": "empty url"})
    assert expect_status(unknown, dtm.Subscribe, topic_request(pb, "", busi.url("A"))) == "empty topic"
    dtm.Subscribe(topic_request(pb, topic, busi.url("A")))
    assert subscribe(api, topic, busi.url("A")) == (500, {"message": "this url exists"})
    assert expect_status(unknown, dtm.Subscribe, topic_request(pb, topic, busi.url("A"))) == "this url exists"
    assert get(f"{api}/unsubscribe?topic=&url=x") == (500, {"message": "empty topic"})
    assert get(f"{api}/unsubscribe?topic={topic}&url=") == (500, {"message": "empty url"})
    assert get(f"{api}/unsubscribe?topic=nope-{topic}&url=x") == (500, {"message": "no such a topic"})
    assert get(f"{api}/unsubscribe?topic={topic}&url=x") == (500, {"message": "no such an url "})
    dtm.Unsubscribe(topic_request(pb, topic, busi.url("A")))
    assert json.loads(query_kv(api, topic)[0]["v"]) == [], "the last unsubscribe leaves an empty list"
    assert expect_status(unknown, dtm.Unsubscribe, topic_request(pb, topic, busi.url("A"))) == "this topic is empty"
    assert subscribe(api, topic, "not a url")[0] == 400, "SwiftDTM checks the URL a msg will call"


def test_msg_to_an_unknown_or_empty_topic_is_refused_and_nothing_is_stored(dtm, dtmd, busi, pb, api):
    gid = new_gid(dtm)
    steps = [{"action": f"topic://missing-{uuid.uuid4().hex[:8]}"}]
    assert expect_status(grpc.StatusCode.INTERNAL, dtm.Submit, request(pb, gid, "msg", steps, [b"e"])) == "topic not found"
    assert dtmd.query(gid)["transaction"] is None
    from test_http_api import post
    assert post(f"{api}/submit", {"gid": gid, "trans_type": "msg", "steps": steps, "payloads": ["e"]}) == (500, {"message": "topic not found"})

    # Looked up at Prepare and again at Submit: a prepared msg whose topic emptied cannot submit.
    topic = f"emptied-{uuid.uuid4().hex[:8]}"
    dtm.Subscribe(topic_request(pb, topic, busi.url("Sub")))
    prepared = new_gid(dtm)
    steps = [{"action": f"topic://{topic}"}]
    dtm.Prepare(request(pb, prepared, "msg", steps, [b"e"]))
    dtm.Unsubscribe(topic_request(pb, topic, busi.url("Sub")))
    assert expect_status(grpc.StatusCode.INTERNAL, dtm.Submit, request(pb, prepared, "msg", steps, [b"e"])) == "topic not found"
    assert dtmd.status(prepared) == "prepared"
    dtm.Subscribe(topic_request(pb, topic, busi.url("Later")))
    dtm.Submit(request(pb, prepared, "msg", steps, [b"e"], WaitResult=True))
    assert [c.method.rsplit("/", 1)[1] for c in busi.calls_for(prepared)] == ["Sub"], "the branches stored at Prepare run"


def test_delete_topic_removes_it_even_with_subscribers(dtm, busi, pb, api):
    topic = f"deleted-{uuid.uuid4().hex[:8]}"
    dtm.Subscribe(topic_request(pb, topic, busi.url("A")))
    dtm.Subscribe(topic_request(pb, topic, busi.url("B")))
    assert delete(api, topic) == (200, {"dtm_result": "SUCCESS"})
    assert query_kv(api, topic) == []
    assert delete(api, topic) == (500, {"message": "storage: NotFound"})
    assert expect_status(grpc.StatusCode.UNKNOWN, dtm.DeleteTopic, topic_request(pb, topic)) == "storage: NotFound"
    dtm.Subscribe(topic_request(pb, topic, busi.url("C")))
    [again] = query_kv(api, topic)
    assert again["version"] == 1 and json.loads(again["v"]) == [{"url": busi.url("C"), "remark": ""}]
    dtm.DeleteTopic(topic_request(pb, topic))
    assert query_kv(api, topic) == []


def test_scan_kv_pages_in_key_order(dtm, busi, pb, api):
    prefix = f"scan-{uuid.uuid4().hex[:8]}"
    topics = [f"{prefix}-{n}" for n in "bac"]
    for topic in topics:
        dtm.Subscribe(topic_request(pb, topic, busi.url("S")))
    seen, position, pages = [], "", 0
    while True:
        status, page = get(f"{api}/scanKV?cat=topics&limit=2&position={urllib.parse.quote(position, safe='')}")
        assert status == 200 and len(page["kv"]) <= 2
        seen += [record["k"] for record in page["kv"]]
        pages += 1
        position = page["next_position"]
        if len(page["kv"]) < 2:
            assert position == ""
            break
        assert position
    assert [k for k in seen if k.startswith(prefix)] == sorted(topics)
    assert seen == sorted(seen, key=lambda k: k.encode())
    assert get(f"{api}/scanKV?cat=nothing-here") == (200, {"kv": [], "next_position": ""})
    assert get(f"{api}/queryKV?cat=topics&key=none-{prefix}") == (200, {"kv": []})


def test_topic_events_are_in_the_history_and_verified(tmp_path, pb, busi):
    server = Dtmd(tmp_path).start()
    data = tmp_path / "data"
    try:
        dtm = pb[1].DtmStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
        dtm.Subscribe(topic_request(pb, "audited", busi.url("A")))
        dtm.Subscribe(topic_request(pb, "audited", busi.url("B")))
        dtm.Unsubscribe(topic_request(pb, "audited", busi.url("A")))
        dtm.DeleteTopic(topic_request(pb, "audited"))
        dtm.Subscribe(topic_request(pb, "kept", busi.url("K")))
        history = dtmctl("history", "kv/topics/audited", "--data", data, check=0).stdout
        assert history.count("kv_changed") == 4 and "topics audited deleted" in history
        assert "2 KV records" in dtmctl("verify", "--data", data, check=0).stdout
    finally:
        server.stop()
    dtmctl("rebuild", "--data", data, check=0)
    assert "2 KV records" in dtmctl("verify", "--data", data, check=0).stdout
    server = Dtmd(tmp_path).start()
    try:
        status, body = get(f"http://127.0.0.1:{server.http_port}/api/dtmsvr/queryKV?cat=topics&key=kept")
        assert json.loads(body["kv"][0]["v"]) == [{"url": busi.url("K"), "remark": ""}]
    finally:
        server.stop()
