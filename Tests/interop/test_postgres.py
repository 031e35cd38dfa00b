"""dtmd on the PostgreSQL store (a private cluster the fixture starts): every mode on one node,
state kept across a restart, the tables dtmd creates, and dtm's Store keys from the environment."""
import uuid

import grpc
import pytest

from conftest import Dtmd
from test_grpc_interop import new_gid, ops, register, request, saga_steps
from test_topics_kv import topic_request


def node(tmp_path, postgres, schema, name="node", **overrides):
    directory = tmp_path / name
    directory.mkdir(exist_ok=True)
    return Dtmd(directory, Store=postgres.store(schema), **overrides).start()


def stub(server, pb):
    return pb[1].DtmStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))


@pytest.fixture
def schema():
    return f"t_{uuid.uuid4().hex[:10]}"


def test_every_mode_on_one_node(tmp_path, postgres, schema, pb, busi):
    server = node(tmp_path, postgres, schema)
    try:
        dtm = stub(server, pb)
        gid = new_gid(dtm)
        dtm.Submit(request(pb, gid, "msg", [{"action": busi.url("MsgA")}, {"action": busi.url("MsgB")}], [b"a", b"b"], WaitResult=True))
        assert server.status(gid) == "succeed" and ops(busi.calls_for(gid)) == [("01", "action"), ("02", "action")]

        failing = f"pg-saga-{uuid.uuid4().hex}"
        busi.plan(failing, "Action2", ["FAILURE"])
        dtm.Submit(request(pb, failing, "saga", saga_steps(busi, 2), [b"1", b"2"]))
        server.wait_status(failing, "failed")
        assert ops(busi.calls_for(failing)) == [("01", "action"), ("02", "action"), ("02", "compensate"), ("01", "compensate")]

        tcc = f"pg-tcc-{uuid.uuid4().hex}"
        dtm.Prepare(request(pb, tcc, "tcc"))
        register(dtm, pb, tcc, "tcc", "01", {"confirm": busi.url("Confirm"), "cancel": busi.url("Cancel")})
        dtm.Submit(request(pb, tcc, "tcc", WaitResult=True))
        assert ops(busi.calls_for(tcc)) == [("01", "confirm")]

        xa = f"pg-xa-{uuid.uuid4().hex}"
        dtm.Prepare(request(pb, xa, "xa"))
        register(dtm, pb, xa, "xa", "01", {"url": busi.url("Xa")})
        dtm.Abort(request(pb, xa, "xa"))
        server.wait_status(xa, "failed")
        assert ops(busi.calls_for(xa)) == [("01", "rollback")]

        dtm.Subscribe(topic_request(pb, "orders", busi.url("Sub1")))
        dtm.Subscribe(topic_request(pb, "orders", busi.url("Sub2")))
        topical = f"pg-topic-{uuid.uuid4().hex}"
        dtm.Submit(request(pb, topical, "msg", [{"action": "topic://orders"}], [b"e"], WaitResult=True))
        assert ops(busi.calls_for(topical)) == [("01-01", "action"), ("01-02", "action")]

        # The tables are in the configured schema; the view's rows are the transactions.
        tables = set(postgres.sql(f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{schema}'").split())
        assert tables == {"swiftdtm_meta", "swiftdtm_events", "swiftdtm_transactions", "swiftdtm_kv"}
        assert postgres.sql(f"SELECT count(*) FROM {schema}.swiftdtm_transactions").strip() == "5"
        assert postgres.sql(f"SELECT value FROM {schema}.swiftdtm_meta WHERE key = 'schema_version'").strip() == "1"
    finally:
        server.stop()
    assert server.process.returncode == 0, server.log_text()


def test_state_survives_a_restart_and_unfinished_work_resumes(tmp_path, postgres, schema, pb, busi):
    server = node(tmp_path, postgres, schema)
    gid = f"pg-resume-{uuid.uuid4().hex}"
    try:
        dtm = stub(server, pb)
        busi.plan(gid, "Action1", ["ERROR"])
        dtm.Submit(request(pb, gid, "saga", saga_steps(busi, 1), [b"1"], RetryInterval=2))
        done = f"pg-done-{uuid.uuid4().hex}"
        dtm.Submit(request(pb, done, "saga", saga_steps(busi, 1), [b"1"], WaitResult=True))
    finally:
        server.stop()
    server = node(tmp_path, postgres, schema)
    try:
        assert server.status(done) == "succeed"
        server.wait_status(gid, "succeed", timeout=20)
        assert ops(busi.calls_for(gid)) == [("01", "action"), ("01", "action")]
    finally:
        server.stop()


def test_an_incompatible_schema_is_refused_with_a_message(tmp_path, postgres, schema, pb):
    server = node(tmp_path, postgres, schema)
    server.stop()
    postgres.sql(f"UPDATE {schema}.swiftdtm_meta SET value = '99' WHERE key = 'schema_version'")
    refused = Dtmd(tmp_path / "node", Store=postgres.store(schema))
    with pytest.raises(AssertionError) as raised:
        refused.start()
    assert "version 99" in str(raised.value)
    refused.stop()
