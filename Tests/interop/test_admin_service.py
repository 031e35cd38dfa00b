"""SwiftDTM's admin service (swiftdtm.v1.Admin) from grpcio stubs built from its proto."""
import threading

import grpc
import pytest

from test_grpc_interop import new_gid, request, saga_steps


@pytest.fixture(scope="module")
def admin(dtmd, admin_pb):
    channel = grpc.insecure_channel(f"127.0.0.1:{dtmd.grpc_port}")
    yield admin_pb[1].AdminStub(channel)
    channel.close()


def test_get_transaction_returns_state_and_history(dtm, dtmd, busi, pb, admin, admin_pb):
    gid = new_gid(dtm)
    dtm.Submit(request(pb, gid, "saga", saga_steps(busi, 2), [b"1", b"2"], WaitResult=True))
    reply = admin.GetTransaction(admin_pb[0].GetTransactionRequest(gid=gid))
    assert reply.state.gid == gid
    assert reply.state.status == 4  # TRANSACTION_STATUS_SUCCEED
    types = [e.type for e in reply.history]
    assert types[0] == "created" and types[-1] == "status_changed"
    assert types.count("attempt_finished") == 2
    assert [e.seq for e in reply.history] == sorted(e.seq for e in reply.history)
    with pytest.raises(grpc.RpcError) as missing:
        admin.GetTransaction(admin_pb[0].GetTransactionRequest(gid="no-such-gid"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_list_transactions_filters_and_pages(dtm, dtmd, busi, pb, admin, admin_pb):
    failed = []
    for _ in range(3):
        gid = new_gid(dtm)
        busi.plan(gid, "Action1", ["FAILURE"])
        dtm.Submit(request(pb, gid, "saga", saga_steps(busi, 1), [b"1"]))
        failed.append(gid)
    for gid in failed:
        dtmd.wait_status(gid, "failed")
    seen, token = [], ""
    while True:
        page = admin.ListTransactions(admin_pb[0].ListTransactionsRequest(status="failed", trans_type="saga", limit=1, page_token=token))
        seen += [t.gid for t in page.transactions]
        token = page.next_page_token
        if not token:
            break
    assert set(failed) <= set(seen)
    assert seen[:3] == failed[::-1], "newest first"
    with pytest.raises(grpc.RpcError) as bad:
        admin.ListTransactions(admin_pb[0].ListTransactionsRequest(status="done"))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_watch_events_replays_then_follows(dtm, busi, pb, admin, admin_pb):
    stream = admin.WatchEvents(admin_pb[0].WatchEventsRequest(from_seq=1))
    first = next(stream)
    assert first.seq == 1
    gid = new_gid(dtm)
    threading.Timer(0.2, lambda: dtm.Submit(request(pb, gid, "saga", saga_steps(busi, 1), [b"1"], WaitResult=True))).start()
    previous = first.seq
    for event in stream:
        assert event.seq == previous + 1
        previous = event.seq
        if event.gid == gid and event.type == "status_changed":
            break
    stream.cancel()


def test_sigterm_ends_open_watch_streams(tmp_path, admin_pb):
    from conftest import Dtmd

    server = Dtmd(tmp_path).start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    stream = admin_pb[1].AdminStub(channel).WatchEvents(admin_pb[0].WatchEventsRequest(from_seq=1))
    def drain():
        try:
            for _ in stream:
                pass
        except grpc.RpcError:
            pass  # the server ended the stream as it shut down

    watcher = threading.Thread(target=drain, daemon=True)
    watcher.start()
    server.stop()  # SIGTERM; waits at most 20 s
    assert server.process.returncode == 0
    channel.close()
