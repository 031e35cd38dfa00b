"""Security: dtmd never calls itself (always on)."""
import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import grpc
import pytest
from google.protobuf import empty_pb2

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
    assert subscriber.value.code == 400 and "points at dtmd itself" in subscriber.value.read().decode()


TOKENS = ["s3cret-one", "tw0;two"]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, admin_pb):
    from conftest import Dtmd
    directory = tmp_path_factory.mktemp("guarded")
    (directory / "tokens").write_text("# one per line\n" + TOKENS[1] + "\n")
    server = Dtmd(directory, Auth={"Tokens": [TOKENS[0]], "TokensFile": str(directory / "tokens")}).start()
    yield server
    server.stop()
    assert server.process.returncode == 0, server.log_text()
    log = server.log_text()
    assert all(token not in log for token in TOKENS), "a token was logged"


def http(method, url, headers=None, data=None, follow=True):
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None
    opener = urllib.request.build_opener() if follow else urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, data=data, headers=headers or {}, method=method)) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def test_grpc_calls_need_a_token(guarded, pb, admin_pb):
    channel = grpc.insecure_channel(f"127.0.0.1:{guarded.grpc_port}")
    dtm = pb[1].DtmStub(channel)
    admin = admin_pb[1].AdminStub(channel)
    for metadata in [None, [("authorization", "Bearer wrong")], [("authorization", TOKENS[0])], [("authorization", "Bearer " + TOKENS[0] + "x")]]:
        with pytest.raises(grpc.RpcError) as refused:
            dtm.NewGid(empty_pb2.Empty(), metadata=metadata)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as listing:
            admin.ListTransactions(admin_pb[0].ListTransactionsRequest(), metadata=metadata)
        assert listing.value.code() == grpc.StatusCode.UNAUTHENTICATED
    for token in TOKENS:  # either token, from the config or from the tokens file
        assert dtm.NewGid(empty_pb2.Empty(), metadata=[("authorization", f"Bearer {token}")]).Gid
    admin.ListTransactions(admin_pb[0].ListTransactionsRequest(), metadata=[("authorization", f"Bearer {TOKENS[1]}")])
    channel.close()


def test_http_routes_need_a_token_except_ping_and_metrics(guarded):
    base = f"http://127.0.0.1:{guarded.http_port}"
    assert http("GET", f"{base}/api/ping")[0] == 200
    assert http("GET", f"{base}/api/metrics")[0] == 200
    for headers in [{}, {"Authorization": "Bearer nope"}, {"Authorization": TOKENS[0]}]:
        status, answer_headers, body = http("GET", f"{base}/api/dtmsvr/newGid", headers)
        assert status == 401 and "token" in body and answer_headers.get("WWW-Authenticate") == "Bearer"
        assert http("POST", f"{base}/api/dtmsvr/submit", headers, b"{}")[0] == 401
    assert http("GET", f"{base}/api/dtmsvr/newGid", {"Authorization": f"Bearer {TOKENS[0]}"})[0] == 200
    assert http("POST", f"{base}/api/json-rpc", {}, b'{"jsonrpc":"2.0","id":"1","method":"newGid"}')[0] == 401


def test_the_admin_pages_sign_in_with_a_token_kept_in_a_cookie(guarded):
    base = f"http://127.0.0.1:{guarded.http_port}"
    status, headers, _ = http("GET", f"{base}/admin", follow=False)
    assert status == 303 and headers["Location"] == "/admin/login"
    assert http("GET", f"{base}/admin/transactions/x", follow=False)[0] == 303
    status, _, page = http("GET", f"{base}/admin/login")
    assert status == 200 and 'name="token"' in page
    assert http("POST", f"{base}/admin/login", {}, b"token=wrong", follow=False)[0] == 401
    status, headers, _ = http("POST", f"{base}/admin/login", {}, ("token=" + urllib.parse.quote(TOKENS[1])).encode(), follow=False)
    assert status == 303
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKENS[1] not in cookie  # encoded
    value = cookie.split(";")[0]
    assert http("GET", f"{base}/admin", {"Cookie": value})[0] == 200
    assert http("GET", f"{base}/admin", {"Authorization": f"Bearer {TOKENS[0]}"})[0] == 200
    # The cookie opens the pages only, not dtm's API.
    assert http("GET", f"{base}/api/dtmsvr/newGid", {"Cookie": value})[0] == 401


def test_tokens_from_the_environment_and_an_unreadable_tokens_file(tmp_path):
    from conftest import Dtmd, DTMD, wait_for
    (tmp_path / "env").mkdir()
    server = Dtmd(tmp_path / "env")
    server.log = open(server.workdir / "dtmd.log", "ab")
    server.process = subprocess.Popen([str(DTMD), "-c", str(server.config)], stdout=server.log, stderr=server.log,
                                      env={**os.environ, "AUTH_TOKENS": "alpha, beta"})
    wait_for(server.ping, timeout=20, what="dtmd")
    try:
        base = f"http://127.0.0.1:{server.http_port}/api/dtmsvr/newGid"
        assert http("GET", base)[0] == 401
        assert http("GET", base, {"Authorization": "Bearer beta"})[0] == 200
    finally:
        server.stop()
    refused = subprocess.run([str(DTMD), "-c", str(server.config)], capture_output=True, text=True, timeout=30,
                             env={**os.environ, "AUTH_TOKENS_FILE": str(tmp_path / "missing")})
    assert refused.returncode != 0 and "Auth.TokensFile" in refused.stdout + refused.stderr


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_the_swift_sdk_sends_its_token(guarded, tmp_path, protocol):
    from conftest import DTMD, free_port
    target = f"127.0.0.1:{guarded.grpc_port}" if protocol == "grpc" else f"http://127.0.0.1:{guarded.http_port}/api/dtmsvr"
    example = [str(DTMD.parent / "barrier-transfer"), "--dtm", target, "--database", str(tmp_path / "bank.sqlite")]
    refused = subprocess.run(example + ["--listen", f"127.0.0.1:{free_port()}"], capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and ("unauthenticated" in (refused.stdout + refused.stderr).lower() or "401" in refused.stdout + refused.stderr)
    done = subprocess.run(example + ["--listen", f"127.0.0.1:{free_port()}", "--token", TOKENS[0]], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "barrier transfer OK" in done.stdout, done.stdout + done.stderr


def start_tls_dtmd(directory, tls):
    import socket
    from conftest import DTMD, Dtmd
    directory.mkdir()
    server = Dtmd(directory, TLS=tls)
    server.log = open(server.workdir / "dtmd.log", "ab")
    server.process = subprocess.Popen([str(DTMD), "-c", str(server.config)], stdout=server.log, stderr=server.log)

    def listening():
        assert server.process.poll() is None, server.log_text()
        try:
            socket.create_connection(("127.0.0.1", server.http_port), timeout=1).close()
            return True
        except OSError:
            return False
    from conftest import wait_for
    wait_for(listening, timeout=20, what="dtmd to listen")
    return server


def curl(*arguments):
    return subprocess.run(["curl", "-s", "--max-time", "5", *arguments], capture_output=True, text=True)


def test_tls_on_both_ports_and_plaintext_clients_fail_at_once(tmp_path, certificates, pb):
    from conftest import free_port
    d = certificates
    server = start_tls_dtmd(tmp_path / "tls", {"CertFile": str(d / "server.pem"), "KeyFile": str(d / "server.key")})
    try:
        credentials = grpc.ssl_channel_credentials(root_certificates=(d / "ca.pem").read_bytes())
        with grpc.secure_channel(f"127.0.0.1:{server.grpc_port}", credentials) as channel:
            assert pb[1].DtmStub(channel).NewGid(empty_pb2.Empty(), timeout=10).Gid
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            with pytest.raises(grpc.RpcError) as plaintext:
                pb[1].DtmStub(channel).NewGid(empty_pb2.Empty(), timeout=5)
            assert plaintext.value.code() == grpc.StatusCode.UNAVAILABLE  # a failed handshake, not a hang (DEADLINE_EXCEEDED)
        ping = curl("--cacert", str(d / "ca.pem"), f"https://127.0.0.1:{server.http_port}/api/ping")
        assert ping.returncode == 0 and json.loads(ping.stdout) == {"msg": "pong"}
        assert curl(f"http://127.0.0.1:{server.http_port}/api/ping").stdout != '{"msg":"pong"}'
        assert curl(f"https://127.0.0.1:{server.http_port}/api/ping").returncode != 0  # not trusted without the CA
        # The Swift SDK over TLS, trusting the CA.
        from conftest import DTMD
        example = subprocess.run([str(DTMD.parent / "barrier-transfer"), "--dtm", f"127.0.0.1:{server.grpc_port}", "--tls-ca", str(d / "ca.pem"),
                                  "--listen", f"127.0.0.1:{free_port()}", "--database", str(tmp_path / "bank.sqlite")],
                                 capture_output=True, text=True, timeout=120)
        assert example.returncode == 0 and "barrier transfer OK" in example.stdout, example.stdout + example.stderr
    finally:
        server.stop()


def test_mutual_tls_accepts_the_cas_clients_only(tmp_path, certificates, pb):
    d = certificates
    server = start_tls_dtmd(tmp_path / "mtls", {"CertFile": str(d / "server.pem"), "KeyFile": str(d / "server.key"),
                                                  "ClientCAFile": str(d / "ca.pem")})
    try:
        def channel(client=None):
            key = (d / f"{client}.key").read_bytes() if client else None
            chain = (d / f"{client}.pem").read_bytes() if client else None
            credentials = grpc.ssl_channel_credentials(root_certificates=(d / "ca.pem").read_bytes(), private_key=key, certificate_chain=chain)
            return grpc.secure_channel(f"127.0.0.1:{server.grpc_port}", credentials)
        with channel("client") as accepted:
            assert pb[1].DtmStub(accepted).NewGid(empty_pb2.Empty(), timeout=10).Gid
        for refused in (None, "rogue"):
            with channel(refused) as c:
                with pytest.raises(grpc.RpcError):
                    pb[1].DtmStub(c).NewGid(empty_pb2.Empty(), timeout=5)
        base = f"https://127.0.0.1:{server.http_port}/api/ping"
        assert json.loads(curl("--cacert", str(d / "ca.pem"), "--cert", str(d / "client.pem"), "--key", str(d / "client.key"), base).stdout) == {"msg": "pong"}
        assert curl("--cacert", str(d / "ca.pem"), base).returncode != 0
        assert curl("--cacert", str(d / "ca.pem"), "--cert", str(d / "rogue.pem"), "--key", str(d / "rogue.key"), base).returncode != 0
    finally:
        server.stop()


def served_certificate(port):
    """The certificate (PEM) a TLS server on 127.0.0.1:`port` presents to a new connection."""
    import ssl
    return ssl.get_server_certificate(("127.0.0.1", port), timeout=5).strip()


def pem(path):
    import ssl
    return ssl.DER_cert_to_PEM_cert(ssl.PEM_cert_to_DER_cert(path.read_text())).strip()


def test_sighup_reloads_the_certificate_on_both_ports(tmp_path, certificates, pb):
    import shutil
    import signal
    from conftest import wait_for
    d = certificates
    live = tmp_path / "live"
    live.mkdir()
    shutil.copy(d / "server.pem", live / "cert.pem")
    shutil.copy(d / "server.key", live / "key.pem")
    server = start_tls_dtmd(tmp_path / "reload", {"CertFile": str(live / "cert.pem"), "KeyFile": str(live / "key.pem")})
    try:
        credentials = grpc.ssl_channel_credentials(root_certificates=(d / "ca.pem").read_bytes())
        kept = grpc.secure_channel(f"127.0.0.1:{server.grpc_port}", credentials)
        assert pb[1].DtmStub(kept).NewGid(empty_pb2.Empty(), timeout=10).Gid
        for port in (server.grpc_port, server.http_port):
            assert served_certificate(port) == pem(d / "server.pem")

        # The renewed pair, then SIGHUP: new connections on both ports get it.
        shutil.copy(d / "renewed-server.pem", live / "cert.pem")
        shutil.copy(d / "renewed-server.key", live / "key.pem")
        server.process.send_signal(signal.SIGHUP)
        for port in (server.grpc_port, server.http_port):
            wait_for(lambda: served_certificate(port) == pem(d / "renewed-server.pem"), what=f"the renewed certificate on {port}")
        assert pb[1].DtmStub(kept).NewGid(empty_pb2.Empty(), timeout=10).Gid, "an open connection keeps working"
        assert "TLS certificate reloaded" in server.log_text()

        # A certificate whose key does not match: refused, the renewed pair stays, dtmd runs on.
        shutil.copy(d / "server.pem", live / "cert.pem")
        server.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "TLS certificate not reloaded" in server.log_text(), what="the refused reload in the log")
        assert server.process.poll() is None
        for port in (server.grpc_port, server.http_port):
            assert served_certificate(port) == pem(d / "renewed-server.pem")
        ping = curl("--cacert", str(d / "ca.pem"), f"https://127.0.0.1:{server.http_port}/api/ping")
        assert json.loads(ping.stdout) == {"msg": "pong"}
        kept.close()
    finally:
        server.stop()
    assert server.process.returncode == 0


def test_half_a_tls_configuration_is_refused_at_start(tmp_path, certificates):
    from conftest import DTMD, Dtmd
    (tmp_path / "half").mkdir()
    server = Dtmd(tmp_path / "half", TLS={"CertFile": str(certificates / "server.pem")})
    refused = subprocess.run([str(DTMD), "-c", str(server.config)], capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0 and "TLS.CertFile and TLS.KeyFile go together" in refused.stdout + refused.stderr


def test_branch_targets_allow_and_deny(tmp_path, pb, busi):
    from conftest import Dtmd
    (tmp_path / "targets").mkdir()
    (tmp_path / "bad").mkdir()
    server = Dtmd(tmp_path / "targets", BranchTargets={"Allow": ["127.0.0.0/8"], "Deny": ["127.0.0.99"]}).start()
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        dtm = pb[1].DtmStub(channel)
        allowed = new_gid(dtm)
        dtm.Submit(request(pb, allowed, "msg", [{"action": busi.url("TransIn")}], [b""], WaitResult=True))
        assert server.status(allowed) == "succeed"
        for url, reason in (("10.1.2.3:8080/busi.Busi/TransIn", "matches no entry of BranchTargets.Allow"),
                            ("127.0.0.99:8080/busi.Busi/TransIn", "refused by BranchTargets.Deny (127.0.0.99)")):
            refused = new_gid(dtm)
            with pytest.raises(grpc.RpcError) as error:
                dtm.Submit(request(pb, refused, "msg", [{"action": url}], [b""]))
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and reason in error.value.details()
            assert server.query(refused)["transaction"] is None
        channel.close()
    finally:
        server.stop()
    bad = Dtmd(tmp_path / "bad", BranchTargets={"Deny": ["10.0.0.0/99"]})
    from conftest import DTMD
    refused = subprocess.run([str(DTMD), "-c", str(bad.config)], capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0 and "BranchTargets.Deny entry '10.0.0.0/99'" in refused.stdout + refused.stderr


def test_dns_names_are_judged_by_their_addresses_at_call_time(tmp_path, pb, busi, http_busi):
    """A CIDR allow list takes a name that resolves inside it (localhost → 127.0.0.1 / ::1), and
    refuses at call time one that resolves outside, without calling it."""
    from conftest import Dtmd, wait_for
    branches = ((f"localhost:{busi.port}/busi.Busi/TransIn", busi),
                (http_busi.url("TransIn").replace("127.0.0.1", "localhost"), http_busi))
    for name, allow, allowed in (("inside", ["127.0.0.0/8", "::1/128"], True), ("outside", ["10.0.0.0/8"], False)):
        (tmp_path / name).mkdir()
        server = Dtmd(tmp_path / name, BranchTargets={"Allow": allow}).start()
        try:
            channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
            dtm = pb[1].DtmStub(channel)
            for url, branch in branches:
                gid = new_gid(dtm)
                dtm.Submit(request(pb, gid, "msg", [{"action": url}], [b'{"amount":1}']))  # a name: accepted at submit
                if allowed:
                    server.wait_status(gid, "succeed")
                    assert branch.calls_for(gid)
                    continue
                page = f"http://127.0.0.1:{server.http_port}/admin/transactions/{gid}"
                wait_for(lambda: "which matches no entry of BranchTargets.Allow" in http("GET", page)[2], what=f"the refused attempt of {url}")
                assert server.status(gid) == "submitted" and not branch.calls_for(gid)
            channel.close()
        finally:
            server.stop()


def https_branch_server(certificates):
    """An HTTPS branch server with the test CA's server certificate: every call succeeds."""
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    calls = []

    class Handler(BaseHTTPRequestHandler):
        def answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            calls.append((self.path, self.rfile.read(length)))
            body = b'{"dtm_result":"SUCCESS"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        do_GET = do_POST = answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(certificates / "server.pem"), str(certificates / "server.key"))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, calls


def test_https_branches_are_verified_against_the_configured_ca(tmp_path, certificates):
    from conftest import Dtmd
    server, calls = https_branch_server(certificates)
    url = f"https://127.0.0.1:{server.server_address[1]}/api/busi/TransIn"
    try:
        for name, extra in (("trusting", {"BranchTLS": {"CAFile": str(certificates / "ca.pem")}}), ("default", {})):
            (tmp_path / name).mkdir()
            node = Dtmd(tmp_path / name, **extra).start()
            try:
                api = f"http://127.0.0.1:{node.http_port}/api/dtmsvr"
                gid = f"https-{name}"
                status, body = post(f"{api}/submit", {"gid": gid, "trans_type": "msg", "steps": [{"action": url}], "payloads": ['{"a":1}']})
                assert status == 200, body
                if name == "trusting":
                    node.wait_status(gid, "succeed")
                else:
                    # The test CA is not among the system's roots: the call fails its handshake and is retried.
                    time.sleep(2)
                    assert node.status(gid) == "submitted"
                    page = urllib.request.urlopen(f"http://127.0.0.1:{node.http_port}/admin/transactions/{gid}").read().decode().lower()
                    assert "certificate" in page or "handshake" in page or "ssl" in page
            finally:
                node.stop()
        assert [path for path, _ in calls] == ["/api/busi/TransIn?gid=https-trusting&trans_type=msg&branch_id=01&op=action"]
    finally:
        server.shutdown()


def test_grpc_branches_over_tls_for_the_listed_targets(tmp_path, certificates, pb):
    from concurrent import futures
    from conftest import Dtmd
    calls = []

    class AnyMethod(grpc.GenericRpcHandler):
        def service(self, details):
            return grpc.unary_unary_rpc_method_handler(lambda request, context: calls.append(details.method) or b"")

    branch = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    branch.add_generic_rpc_handlers((AnyMethod(),))
    credentials = grpc.ssl_server_credentials([((certificates / "server.key").read_bytes(), (certificates / "server.pem").read_bytes())])
    port = branch.add_secure_port("127.0.0.1:0", credentials)
    branch.start()
    try:
        for name, extra, succeeds in (("tls", {"BranchTLS": {"CAFile": str(certificates / "ca.pem"), "Grpc": ["127.0.0.0/8"]}}, True),
                                      ("plaintext", {}, False)):
            (tmp_path / name).mkdir()
            node = Dtmd(tmp_path / name, **extra).start()
            try:
                channel = grpc.insecure_channel(f"127.0.0.1:{node.grpc_port}")
                gid = f"grpc-tls-{name}"
                pb[1].DtmStub(channel).Submit(request(pb, gid, "msg", [{"action": f"127.0.0.1:{port}/busi.Busi/TransIn"}], [b"x"]))
                if succeeds:
                    node.wait_status(gid, "succeed")
                else:
                    time.sleep(2)  # plaintext to a TLS server: every attempt fails, and is retried
                    assert node.status(gid) == "submitted"
                channel.close()
            finally:
                node.stop()
        assert calls == ["/busi.Busi/TransIn"]
    finally:
        branch.stop(None)
