"""go-zero support against a real etcd (Debian's etcd-server): dtmd registers itself the way
go-zero does, and resolves etcd:// branch targets registered by (Python, go-zero style) services."""
import base64
import json
import os
import shutil
import signal
import ssl
import subprocess
import threading
import time
import urllib.request

import grpc
import pytest

from conftest import DTMD, Dtmd, free_port, start_branch_server, wait_for
from test_grpc_interop import new_gid, request

ETCD = shutil.which("etcd")
pytestmark = pytest.mark.skipif(ETCD is None, reason="etcd-server is not installed (tools/install-deps.sh --test installs it)")


class Etcd:
    def __init__(self, workdir, tls=None):
        """`tls`: a directory with ca.pem and server.pem/.key (etcd's certificate) and
        client.pem/.key: then etcd serves https only and wants a client certificate."""
        self.workdir = workdir
        self.port = free_port()
        self.process = None
        self.tls = tls
        self.scheme = "https" if tls else "http"

    def start(self, fresh=False):
        data = self.workdir / "etcd-data"
        if fresh and data.exists():
            shutil.rmtree(data)
        peer = free_port()
        url = f"{self.scheme}://127.0.0.1:{self.port}"
        tls = [] if not self.tls else [
            "--cert-file", str(self.tls / "server.pem"), "--key-file", str(self.tls / "server.key"),
            "--client-cert-auth", "--trusted-ca-file", str(self.tls / "ca.pem")]
        self.process = subprocess.Popen(
            [ETCD, "--data-dir", str(data), "--listen-client-urls", url, "--advertise-client-urls", url,
             "--listen-peer-urls", f"http://127.0.0.1:{peer}", "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-cluster", f"default=http://127.0.0.1:{peer}", "--name", "default", *tls],
            stdout=subprocess.DEVNULL, stderr=open(self.workdir / "etcd.log", "ab"))
        wait_for(lambda: self.healthy(), timeout=20, what="etcd to start")
        return self

    def healthy(self):
        try:
            self.call("kv/range", {"key": b64("health")})
            return True
        except OSError:
            return False

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)

    def call(self, path, body):
        req = urllib.request.Request(f"{self.scheme}://127.0.0.1:{self.port}/v3/{path}", data=json.dumps(body).encode(), method="POST")
        context = None
        if self.tls:
            context = ssl.create_default_context(cafile=str(self.tls / "ca.pem"))
            context.load_cert_chain(str(self.tls / "client.pem"), str(self.tls / "client.key"))
        with urllib.request.urlopen(req, timeout=5, context=context) as r:
            return json.load(r)

    def prefix(self, prefix):
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        reply = self.call("kv/range", {"key": b64(prefix), "range_end": b64(end)})
        return {unb64(kv["key"]): unb64(kv["value"]) for kv in reply.get("kvs", [])}

    def register(self, key, value, ttl=10):
        """What go-zero does: a lease, `key/<lease id>` = value under it, kept alive."""
        lease = self.call("lease/grant", {"TTL": str(ttl)})["ID"]
        self.call("kv/put", {"key": b64(f"{key}/{lease}"), "value": b64(value), "lease": lease})
        return lease

    def revoke(self, lease):
        self.call("lease/revoke", {"ID": lease})


def b64(text):
    return base64.b64encode(text.encode()).decode()


def unb64(text):
    return base64.b64decode(text).decode()


@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    server = Etcd(tmp_path_factory.mktemp("etcd")).start()
    yield server
    server.stop()


def dtmd_registered(tmp_path, etcd, key="dtmservice"):
    """dtmd with dtm's go-zero MicroService block, registering its own gRPC address."""
    server = Dtmd(tmp_path)
    config = json.loads(server.config.read_text())
    config["MicroService"] = {"Driver": "dtm-driver-gozero", "Target": f"etcd://127.0.0.1:{etcd.port}/{key}",
                              "EndPoint": f"127.0.0.1:{server.grpc_port}"}
    server.config.write_text(json.dumps(config))
    return server.start()


def test_registration_follows_the_lifecycle(tmp_path, etcd):
    server = dtmd_registered(tmp_path, etcd)
    keys = wait_for(lambda: etcd.prefix("dtmservice/"), what="dtmd's key in etcd")
    [(key, value)] = keys.items()
    assert value == f"127.0.0.1:{server.grpc_port}"
    assert int(key.split("/", 1)[1]) != 0, "the key ends in the lease id as a signed decimal"
    server.stop()  # SIGTERM: the lease is revoked, the key is gone at once
    assert server.process.returncode == 0
    assert etcd.prefix("dtmservice/") == {}

    server.start()
    wait_for(lambda: etcd.prefix("dtmservice/"), what="dtmd registered again")
    server.stop(signal.SIGKILL)
    assert etcd.prefix("dtmservice/"), "after SIGKILL the key stays until its lease expires"
    wait_for(lambda: etcd.prefix("dtmservice/") == {}, timeout=20, what="the 10 s lease to expire")


def test_dtmd_registers_again_after_etcd_loses_its_lease(tmp_path, etcd):
    server = dtmd_registered(tmp_path, etcd, key="dtmservice-restart")
    try:
        first = wait_for(lambda: etcd.prefix("dtmservice-restart/"), what="registration")
        etcd.stop()
        etcd.start(fresh=True)  # a new cluster: the lease and the key are gone
        second = wait_for(lambda: etcd.prefix("dtmservice-restart/"), timeout=30, what="registration after the restart")
        assert list(second.values()) == list(first.values())
        assert second.keys() != first.keys(), "a new lease"
    finally:
        server.stop()


def test_branches_are_called_through_etcd_and_spread_over_instances(tmp_path, etcd, pb):
    first, first_server = start_branch_server()
    second, second_server = start_branch_server()
    server = Dtmd(tmp_path).start()
    try:
        first_lease = etcd.register("trans.rpc", first.target)
        etcd.register("trans.rpc", second.target)
        dtm = pb[1].DtmStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
        url = f"etcd://127.0.0.1:{etcd.port}/trans.rpc/busi.Busi/TransOut"
        gids = []
        for _ in range(6):
            gid = new_gid(dtm)
            dtm.Submit(request(pb, gid, "msg", [{"action": url}], [b"30"], WaitResult=True))
            gids.append(gid)
        served = [len([c for gid in gids for c in s.calls_for(gid)]) for s in (first, second)]
        assert sum(served) == 6 and min(served) >= 2, served

        etcd.revoke(first_lease)  # one instance leaves: the watch removes it
        time.sleep(0.5)
        later = []
        for _ in range(4):
            gid = new_gid(dtm)
            dtm.Submit(request(pb, gid, "msg", [{"action": url}], [b"30"], WaitResult=True))
            later.append(gid)
        assert [len(second.calls_for(gid)) for gid in later] == [1, 1, 1, 1]
        assert not [c for gid in later for c in first.calls_for(gid)]

        with pytest.raises(grpc.RpcError) as unknown:
            dtm.Submit(request(pb, new_gid(dtm), "msg", [{"action": "zk://h:1/x/busi.Busi/A"}], [b"1"]))
        assert unknown.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        server.stop()
        first_server.stop(0)
        second_server.stop(0)


def test_endpoint_failover_and_credentials(tmp_path, pb):
    """A dead endpoint first in the list is skipped; with etcd auth on, ?user=&password= log in."""
    secured = Etcd(tmp_path).start(fresh=True)
    try:
        secured.call("auth/user/add", {"name": "root", "password": "rootpw"})
        secured.call("auth/user/grant", {"user": "root", "role": "root"})
        secured.call("auth/enable", {})
        dead = free_port()
        server = Dtmd(tmp_path)
        config = json.loads(server.config.read_text())
        config["MicroService"] = {
            "Driver": "dtm-driver-gozero",
            "Target": f"etcd://127.0.0.1:{dead},127.0.0.1:{secured.port}/secured?user=root&password=rootpw",
            "EndPoint": f"127.0.0.1:{server.grpc_port}"}
        server.config.write_text(json.dumps(config))
        server.start()
        try:
            def registered():
                token = secured.call("auth/authenticate", {"name": "root", "password": "rootpw"})["token"]
                req = urllib.request.Request(
                    f"http://127.0.0.1:{secured.port}/v3/kv/range",
                    data=json.dumps({"key": b64("secured/"), "range_end": b64("secured0")}).encode(),
                    headers={"Authorization": token}, method="POST")
                with urllib.request.urlopen(req, timeout=5) as r:
                    return [unb64(kv["value"]) for kv in json.load(r).get("kvs", [])]
            assert wait_for(registered, what="registration through the second endpoint with credentials") == [f"127.0.0.1:{server.grpc_port}"]
        finally:
            server.stop()
    finally:
        secured.stop()


def test_etcd_over_tls_with_a_client_certificate(tmp_path, certificates, pb):
    """go-zero's etcd TLS settings (Etcd.CACertFile, CertFile, CertKeyFile) serve dtmd's
    registration and its etcd:// branch targets against an etcd that wants client certificates;
    without the client certificate etcd refuses dtmd, which keeps running and says why."""
    etcd = Etcd(tmp_path / "etcd", tls=certificates)
    etcd.workdir.mkdir()
    etcd.start()
    branch, branch_server = start_branch_server()
    try:
        etcd.register("trans-tls.rpc", branch.target)
        tls = {"CACertFile": str(certificates / "ca.pem"), "CertFile": str(certificates / "client.pem"),
               "CertKeyFile": str(certificates / "client.key")}
        unverified = {"CertFile": tls["CertFile"], "CertKeyFile": tls["CertKeyFile"]}
        for name, settings, environment in (("with-client-certificate", tls, {}),
                                            ("ca-only", {"CACertFile": tls["CACertFile"]}, {}),
                                            ("unverified", unverified, {"ETCD_INSECURE_SKIP_VERIFY": "true"})):
            (tmp_path / name).mkdir()
            server = Dtmd(tmp_path / name, Etcd=settings)
            config = json.loads(server.config.read_text())
            config["MicroService"] = {"Driver": "dtm-driver-gozero", "Target": f"etcd://127.0.0.1:{etcd.port}/dtmservice-{name}",
                                      "EndPoint": f"127.0.0.1:{server.grpc_port}"}
            server.config.write_text(json.dumps(config))
            os.environ.update(environment)
            try:
                server.start()
            finally:
                for key in environment:
                    del os.environ[key]
            try:
                dtm = pb[1].DtmStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
                gid = new_gid(dtm)
                dtm.Submit(request(pb, gid, "msg", [{"action": f"etcd://127.0.0.1:{etcd.port}/trans-tls.rpc/busi.Busi/TransIn"}], [b"x"]))
                if name == "with-client-certificate":
                    keys = wait_for(lambda: etcd.prefix(f"dtmservice-{name}/"), what="dtmd's key in etcd over TLS")
                    assert list(keys.values()) == [f"127.0.0.1:{server.grpc_port}"]
                    server.wait_status(gid, "succeed")
                    assert branch.calls_for(gid)
                    # The Swift SDK finds dtmd through the same etcd, with its own client certificate.
                    target = f"etcd://127.0.0.1:{etcd.port}/dtmservice-{name}"
                    example = [str(DTMD.parent / "barrier-transfer"), "--dtm", target, "--listen", f"127.0.0.1:{free_port()}",
                               "--database", str(tmp_path / f"bank-{name}.sqlite")]
                    sdk = subprocess.run(example + ["--etcd-ca", tls["CACertFile"], "--etcd-cert", tls["CertFile"],
                                                    "--etcd-key", tls["CertKeyFile"]], capture_output=True, text=True, timeout=120)
                    assert sdk.returncode == 0 and "barrier transfer OK" in sdk.stdout, sdk.stdout + sdk.stderr
                    plain = subprocess.run(example, capture_output=True, text=True, timeout=60)
                    assert plain.returncode != 0, "without TLS settings the SDK cannot read this etcd"
                elif name == "unverified":
                    # InsecureSkipVerify (here from the environment): TLS without the CA, etcd's certificate unchecked.
                    wait_for(lambda: etcd.prefix(f"dtmservice-{name}/"), what="registration without verifying etcd")
                    server.wait_status(gid, "succeed")
                else:
                    wait_for(lambda: "etcd registration failed" in server.log_text(), what="the refused registration in the log")
                    assert etcd.prefix(f"dtmservice-{name}/") == {}
                    assert server.status(gid) == "submitted" and not branch.calls_for(gid)
            finally:
                server.stop()
            assert server.process.returncode == 0
        assert etcd.prefix("dtmservice-with-client-certificate/") == {}, "the lease was revoked over TLS at shutdown"
    finally:
        branch_server.stop(None)
        etcd.stop()


def test_half_an_etcd_client_certificate_and_a_bad_flag_are_refused_at_start(tmp_path, certificates):
    for settings, message in (({"CertFile": str(certificates / "client.pem")}, "Etcd.CertFile and Etcd.CertKeyFile go together"),
                              ({"InsecureSkipVerify": "maybe"}, "Etcd.InsecureSkipVerify must be true or false")):
        server = Dtmd(tmp_path, Etcd=settings)
        done = subprocess.run([str(DTMD), "-c", str(server.config)], capture_output=True, text=True, timeout=30)
        assert done.returncode != 0
        assert message in done.stderr + done.stdout
