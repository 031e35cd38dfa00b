"""dtmd on the PostgreSQL store (a private cluster the fixture starts): every mode on one node,
state kept across a restart, the tables dtmd creates, and dtm's Store keys from the environment."""
import urllib.request
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
        assert tables == {"swiftdtm_meta", "swiftdtm_events", "swiftdtm_transactions", "swiftdtm_kv", "swiftdtm_batches"}
        assert postgres.sql(f"SELECT count(*) FROM {schema}.swiftdtm_transactions").strip() == "5"
        assert postgres.sql(f"SELECT value FROM {schema}.swiftdtm_meta WHERE key = 'schema_version'").strip() == "2"

        # The admin pages and SwiftDTM's store metrics work on this store too.
        base = f"http://127.0.0.1:{server.http_port}"
        listing = urllib.request.urlopen(f"{base}/admin").read().decode()
        assert failing in listing and '<b>3</b> succeed' in listing and '<b>2</b> failed' in listing  # the xa aborted
        detail = urllib.request.urlopen(f"{base}/admin/transactions/{failing}").read().decode()
        assert "02 action, attempt 1: FAILURE" in detail and "Hash chain verified" in detail
        metrics = urllib.request.urlopen(f"{base}/api/metrics").read().decode()
        assert 'swiftdtm_log_appends_total{store="postgres"}' in metrics
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


def test_two_nodes_share_the_load_and_one_takes_over_when_the_other_is_killed(tmp_path, postgres, schema, pb, busi):
    """Both nodes accept requests; kill -9 of one mid-load: every acknowledged transaction finishes
    on the other (after the dead node's leases run out), with no compensation where none was due."""
    import random
    import signal
    import threading
    import time

    from conftest import wait_for
    from test_dtmctl import valid_saga_calls

    a = node(tmp_path, postgres, schema, "a", TransCronInterval=1)
    b = node(tmp_path, postgres, schema, "b", TransCronInterval=1)
    acknowledged, lock, stop = {}, threading.Lock(), threading.Event()

    def client(index, server):
        rng = random.Random(index)
        dtm = stub(server, pb)
        while not stop.is_set():
            gid = f"pg-load-{index}-{rng.randrange(1 << 30)}"
            try:
                if rng.random() < 0.5:
                    if rng.random() < 0.3:
                        busi.plan(gid, "Action2", ["FAILURE"])
                    busi.plan(gid, "Action1", [("SLEEP", 0.05)])
                    dtm.Submit(request(pb, gid, "saga", saga_steps(busi, 2), [b"1", b"2"]), timeout=5)
                    kind = "saga"
                else:
                    dtm.Submit(request(pb, gid, "msg", [{"action": busi.url("MsgA")}, {"action": busi.url("MsgB")}], [b"a", b"b"]), timeout=5)
                    kind = "msg"
                with lock:
                    acknowledged[gid] = kind
            except grpc.RpcError:
                time.sleep(0.05)

    threads = [threading.Thread(target=client, args=(i, a if i % 2 else b), daemon=True) for i in range(4)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(2)
        a.stop(signal.SIGKILL)
        killed = time.monotonic()
        time.sleep(1)
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        assert len(acknowledged) > 20
        # Leases run out within max(5 s, RequestTimeout + 2 s); then b drives a's transactions.
        for gid in acknowledged:
            wait_for(lambda: b.status(gid) in ("succeed", "failed"), timeout=30, what=f"{gid} to finish on the surviving node")
        taken_over = time.monotonic() - killed
        print(f"every acknowledged transaction finished {taken_over:.1f} s after the kill")
        assert taken_over < 10 + 2, "with TransCronInterval 1, the survivor takes over within 10 s (+ the polling here)"
        with busi.lock:
            calls = {}
            for call in busi.calls:
                calls.setdefault(call.metadata.get("dtm-gid"), []).append(call)
        for gid, kind in acknowledged.items():
            made = [(c.branch, c.op) for c in calls.get(gid, [])]
            # One node drives a transaction at a time: no branch op of one gid runs twice at once.
            by_op = {}
            for c in calls.get(gid, []):
                by_op.setdefault((c.branch, c.op), []).append((c.at, c.until or float("inf")))
            for op, spans in by_op.items():
                spans.sort()
                assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:])), (gid, op, spans)
            status = b.status(gid)
            if kind == "msg":
                assert status == "succeed" and all(op == "action" for _, op in made), (gid, made)
            else:
                assert valid_saga_calls(made), (gid, made)
                assert (status == "failed") == any(op == "compensate" for _, op in made), (gid, status, made)
        served_by_a = [g for g in acknowledged if g.split("-")[2] in ("1", "3")]
        assert served_by_a, "node a accepted requests before it died"
        # Every stream's chain, every state row against its events, every decision: clean.
        from test_dtmctl import dtmctl
        verified = dtmctl("-c", b.config, "verify", check=0)
        assert verified.stdout.startswith("ok: ") and "every decision re-derives" in verified.stdout, verified.stdout
    finally:
        stop.set()
        a.stop()
        b.stop()


def test_conflicting_requests_on_two_nodes_end_consistent(tmp_path, postgres, schema, pb, busi):
    """Submit on one node and Abort on the other for the same TCC at once: one wins; the branches
    see either confirms or cancels, never both, and a registration answered OK is always finished."""
    import threading

    a = node(tmp_path, postgres, schema, "a")
    b = node(tmp_path, postgres, schema, "b")
    try:
        on_a, on_b = stub(a, pb), stub(b, pb)
        outcomes = []
        for round_number in range(12):
            gid = f"pg-race-{round_number}-{uuid.uuid4().hex[:8]}"
            on_a.Prepare(request(pb, gid, "tcc"))
            register(on_b, pb, gid, "tcc", "01", {"confirm": busi.url("Confirm"), "cancel": busi.url("Cancel")})
            results = {}

            def run(name, call):
                try:
                    call()
                    results[name] = "ok"
                except grpc.RpcError as error:
                    results[name] = error.code()
            threads = [threading.Thread(target=run, args=("submit", lambda: on_a.Submit(request(pb, gid, "tcc", WaitResult=True)))),
                       threading.Thread(target=run, args=("abort", lambda: on_b.Abort(request(pb, gid, "tcc"))))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            from conftest import wait_for
            wait_for(lambda: b.status(gid) in ("succeed", "failed"), timeout=20, what=f"{gid} to finish")
            made = {op for _, op in ops(busi.calls_for(gid))}
            final = b.status(gid)
            assert made == ({"confirm"} if final == "succeed" else {"cancel"}), (gid, final, made, results)
            assert results["submit" if final == "succeed" else "abort"] == "ok", (gid, final, results)
            outcomes.append(final)
        assert set(outcomes) <= {"succeed", "failed"}
    finally:
        a.stop()
        b.stop()


def test_store_keys_from_the_environment_and_watch_events(tmp_path, postgres, schema, pb, admin_pb, busi):
    """dtm's Store keys come from the environment as every key does (STORE_DRIVER, STORE_PORT, …),
    and the admin service's WatchEvents follows the PostgreSQL log."""
    import os
    import subprocess
    import threading

    from conftest import DTMD, wait_for
    directory = tmp_path / "env"
    directory.mkdir()
    server = Dtmd(directory)  # its config file says lmdb: the environment wins
    environment = dict(os.environ, STORE_DRIVER="postgres", STORE_HOST="127.0.0.1", STORE_PORT=str(postgres.port),
                       STORE_USER="postgres", STORE_DB="dtm", STORE_SCHEMA=schema)
    server.log = open(directory / "dtmd.log", "ab")
    server.process = subprocess.Popen([str(DTMD), "-c", str(server.config)], stdout=server.log, stderr=server.log, env=environment)
    wait_for(server.ping, timeout=20, what="dtmd on PostgreSQL from the environment")
    try:
        admin = admin_pb[1].AdminStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
        seen = []
        watch = admin.WatchEvents(admin_pb[0].WatchEventsRequest(from_seq=0), timeout=20)

        def read():
            try:
                for event in watch:
                    seen.append(event)
            except grpc.RpcError:
                pass
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        dtm = stub(server, pb)
        gid = new_gid(dtm)
        dtm.Submit(request(pb, gid, "saga", saga_steps(busi, 1), [b"1"], WaitResult=True))
        wait_for(lambda: any(e.gid == gid and e.event.WhichOneof("kind") == "status_changed" for e in seen), timeout=10,
                 what="WatchEvents to show the saga's end")
        watch.cancel()
        assert [e.seq for e in seen] == sorted(e.seq for e in seen)
        assert "swiftdtm_events" in postgres.sql(f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{schema}'")
        assert not (directory / "data").exists(), "nothing was written to LMDB"
    finally:
        server.stop()


def test_dtmctl_reads_the_shared_store_from_dtmds_config_and_verify_finds_tampering(tmp_path, postgres, schema, pb, busi):
    """`dtmctl -c dtmd.yml` reads the store the file names: history, log, state, export and stats on
    PostgreSQL; verify is clean, then finds an edited event, a cut tail and a removed state row."""
    import json

    from test_dtmctl import dtmctl
    server = node(tmp_path, postgres, schema)
    try:
        dtm = stub(server, pb)
        done, failing, third, gone = new_gid(dtm), new_gid(dtm), new_gid(dtm), new_gid(dtm)
        dtm.Submit(request(pb, gone, "saga", saga_steps(busi, 1), [b"1"], WaitResult=True))
        dtm.Submit(request(pb, done, "saga", saga_steps(busi, 2), [b"1", b"2"], WaitResult=True))
        busi.plan(failing, "Action1", ["FAILURE"])
        dtm.Submit(request(pb, failing, "saga", saga_steps(busi, 1), [b"1"]))
        server.wait_status(failing, "failed")
        # log --follow sees events committed after it started, in order.
        import subprocess

        from test_dtmctl import DTMCTL
        import threading
        follow = subprocess.Popen([str(DTMCTL), "-c", str(server.config), "log", "--follow", "--json"], stdout=subprocess.PIPE, text=True)
        deadline = threading.Timer(20, follow.kill)  # a follow that never shows the event ends the read (and the test)
        deadline.start()
        try:
            dtm.Submit(request(pb, third, "msg", [{"action": busi.url("MsgA")}], [b"a"], WaitResult=True))
            followed = []
            while not any(e["gid"] == third and e["type"] == "status_changed" for e in followed):
                followed.append(json.loads(follow.stdout.readline()))
            assert [e["seq"] for e in followed] == sorted(e["seq"] for e in followed)
        finally:
            deadline.cancel()
            follow.kill()
            follow.wait()
        dtm.Subscribe(topic_request(pb, "audited", busi.url("Sub1")))
    finally:
        server.stop()
    config = server.config

    history = dtmctl("-c", config, "history", done, check=0).stdout
    assert "created" in history and "status submitted → succeed" in history and "now: saga succeed" in history
    events = json.loads(dtmctl("history", done, "--json", "-c", config, check=0).stdout)
    assert [e["type"] for e in events][0] == "created" and all(e["gid"] == done for e in events)
    log = dtmctl("-c", config, "log", "--json", check=0).stdout.splitlines()
    seqs = [json.loads(line)["seq"] for line in log]
    assert seqs == sorted(seqs) and {json.loads(line)["gid"] for line in log} >= {done, failing, third}
    state = dtmctl("-c", config, "state", "--status", "failed", "--json", check=0).stdout.splitlines()
    assert [json.loads(line)["gid"] for line in state] == [failing]
    exported = [json.loads(line) for line in dtmctl("-c", config, "export", check=0).stdout.splitlines()]
    assert len(exported) == len(log) and all(len(e["hash"]) == 64 for e in exported)
    first_of_done = [e for e in exported if e["gid"] == done]
    assert first_of_done[0]["previous_hash"] == "0" * 64 and first_of_done[1]["previous_hash"] == first_of_done[0]["hash"]
    stats = dtmctl("-c", config, "stats", check=0).stdout
    assert f"events:         {len(log)}" in stats and "succeed    3" in stats and "failed     1" in stats
    clean = dtmctl("-c", config, "verify", check=0).stdout
    assert "chain intact" in clean and "writer batches chained, covering every event once" in clean, clean

    # A whole transaction removed (its events and its state row): every stream left is whole,
    # but the writer batch that held its events no longer matches.
    backup = f"{schema}.gone_events"
    postgres.sql(f"CREATE TABLE {backup} AS SELECT * FROM {schema}.swiftdtm_events WHERE stream = convert_to('{gone}', 'UTF8')")
    postgres.sql(f"CREATE TABLE {backup}_state AS SELECT * FROM {schema}.swiftdtm_transactions WHERE gid = convert_to('{gone}', 'UTF8')")
    postgres.sql(f"DELETE FROM {schema}.swiftdtm_events WHERE stream = convert_to('{gone}', 'UTF8')")
    postgres.sql(f"DELETE FROM {schema}.swiftdtm_transactions WHERE gid = convert_to('{gone}', 'UTF8')")
    whole = dtmctl("-c", config, "verify", check=1).stderr
    assert "(events removed)" in whole, whole
    postgres.sql(f"INSERT INTO {schema}.swiftdtm_events SELECT * FROM {backup}")
    postgres.sql(f"INSERT INTO {schema}.swiftdtm_transactions SELECT * FROM {backup}_state")
    dtmctl("-c", config, "verify", check=0)

    table = f"{schema}.swiftdtm_events"
    postgres.sql(f"UPDATE {table} SET time_us = time_us + 1 WHERE seq = {first_of_done[1]['seq']}")
    edited = dtmctl("-c", config, "verify", check=1)
    assert f"{done}: event {first_of_done[1]['seq']} does not match its hash" in edited.stderr, edited.stderr
    postgres.sql(f"UPDATE {table} SET time_us = time_us - 1 WHERE seq = {first_of_done[1]['seq']}")
    dtmctl("-c", config, "verify", check=0)

    postgres.sql(f"DELETE FROM {table} WHERE seq = (SELECT max(seq) FROM {table} WHERE stream = convert_to('{failing}', 'UTF8'))")
    cut = dtmctl("-c", config, "verify", check=1).stderr
    assert f"{failing}: the state row is at version" in cut, cut
    postgres.sql(f"DELETE FROM {schema}.swiftdtm_transactions WHERE gid = convert_to('{third}', 'UTF8')")
    removed = dtmctl("-c", config, "verify", check=1).stderr
    assert f"{third}: " in removed and "but no state row" in removed, removed

    # A schema dtmd never wrote is not created by a reader: exit 3 with a message.
    missing = tmp_path / "missing.yml"
    missing.write_text(json.dumps({"Store": postgres.store("no_such_schema")}))
    absent = dtmctl("-c", missing, "stats", check=3)
    assert "holds no SwiftDTM tables" in absent.stderr
    assert "no_such_schema" not in postgres.sql("SELECT schema_name FROM information_schema.schemata")


def test_wait_result_answered_by_one_node_while_the_other_drives_later_rounds(tmp_path, postgres, schema, pb, busi):
    """WaitResult on node a answers from a's first round (dtm's semantics: not SUCCESS while a
    branch must be retried); a dies; node b drives the later rounds to the end."""
    import signal

    a = node(tmp_path, postgres, schema, "a", TransCronInterval=1)
    b = node(tmp_path, postgres, schema, "b", TransCronInterval=1)
    try:
        on_a = stub(a, pb)
        gid = new_gid(on_a)
        busi.plan(gid, "Action1", ["ERROR"])
        with pytest.raises(grpc.RpcError) as answer:
            on_a.Submit(request(pb, gid, "saga", saga_steps(busi, 2), [b"1", b"2"], WaitResult=True, RetryInterval=1))
        assert answer.value.code() == grpc.StatusCode.ABORTED and "FAILURE" in answer.value.details(), answer.value
        assert ops(busi.calls_for(gid)) == [("01", "action")]
        a.stop(signal.SIGKILL)
        b.wait_status(gid, "succeed", timeout=20)
        assert ops(busi.calls_for(gid)) == [("01", "action"), ("01", "action"), ("02", "action")]
    finally:
        a.stop()
        b.stop()


def test_dtmcli_tcc_across_two_nodes(tmp_path, postgres, schema, http_busi):
    """PyPI's dtmcli (HTTP) starts a TCC on node a, registers one branch on b and one on a, and
    submits on b: one transaction, confirmed once per branch; a Try failure cancels both."""
    from dtmcli import tcc, utils

    a = node(tmp_path, postgres, schema, "a")
    b = node(tmp_path, postgres, schema, "b")
    api_a = f"http://127.0.0.1:{a.http_port}/api/dtmsvr"
    api_b = f"http://127.0.0.1:{b.http_port}/api/dtmsvr"
    try:
        def branches(t):
            t.dtm = api_b
            t.call_branch({"amount": 30}, http_busi.url("TransOutTry"), http_busi.url("TransOutConfirm"), http_busi.url("TransOutCancel"))
            t.dtm = api_a
            t.call_branch({"amount": 30}, http_busi.url("TransInTry"), http_busi.url("TransInConfirm"), http_busi.url("TransInCancel"))
            t.dtm = api_b

        gid = utils.gen_gid(api_a)
        assert tcc.tcc_global_transaction(api_a, gid, branches) == gid
        a.wait_status(gid, "succeed")
        paths = sorted(c.path.rsplit("/", 1)[1] for c in http_busi.calls_for(gid))
        assert paths == ["TransInConfirm", "TransInTry", "TransOutConfirm", "TransOutTry"]

        cancelled = utils.gen_gid(api_b)
        http_busi.plan(cancelled, "TransInTry", ["FAILURE"])
        assert tcc.tcc_global_transaction(api_a, cancelled, branches) == ""
        b.wait_status(cancelled, "failed")
        paths = sorted(c.path.rsplit("/", 1)[1] for c in http_busi.calls_for(cancelled))
        assert paths == ["TransInCancel", "TransInTry", "TransOutCancel", "TransOutTry"]
    finally:
        a.stop()
        b.stop()


def test_tls_to_postgresql_with_libpqs_sslmodes(tmp_path, postgres, schema, pb, busi):
    """Store.SslMode as libpq's sslmode: require and verify-full (trusting the cluster's
    certificate) encrypt dtmd's connections, disable does not; verify-full refuses a certificate
    it cannot verify, with a message, instead of starting."""
    import subprocess

    from conftest import DTMD, wait_for

    def encrypted():
        return int(postgres.sql("SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE ssl AND datname = 'dtm'").strip())

    for mode, extra, expect_tls in [("require", {}, True), ("verify-full", {"SslRootCert": str(postgres.ca)}, True), ("disable", {}, False)]:
        wait_for(lambda: encrypted() == 0, timeout=10, what="the previous node's connections to close")
        directory = tmp_path / mode
        directory.mkdir()
        server = Dtmd(directory, Store={**postgres.store(schema), "SslMode": mode, **extra}).start()
        try:
            dtm = stub(server, pb)
            gid = new_gid(dtm)
            dtm.Submit(request(pb, gid, "saga", saga_steps(busi, 1), [b"1"], WaitResult=True))
            assert server.status(gid) == "succeed"
            assert (encrypted() > 0) == expect_tls, mode
        finally:
            server.stop()

    directory = tmp_path / "untrusted"
    directory.mkdir()
    refused = Dtmd(directory, Store={**postgres.store(schema), "SslMode": "verify-full"})
    result = subprocess.run([str(DTMD), "-c", str(refused.config)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "certificate" in (result.stdout + result.stderr).lower(), result.stdout + result.stderr

    directory = tmp_path / "bad-mode"
    directory.mkdir()
    bad = Dtmd(directory, Store={**postgres.store(schema), "SslMode": "sometimes"})
    result = subprocess.run([str(DTMD), "-c", str(bad.config)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "Store.SslMode must be one of disable, prefer, require, verify-full" in result.stderr, result.stderr
