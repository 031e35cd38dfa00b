"""dtm's JSON-RPC API at POST /api/json-rpc (WIRE-DTM-API.md §4): its methods, its envelope and
error codes, and the branches of a json-rpc transaction called over JSON-RPC."""
import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import wait_for
from test_http_api import post


@pytest.fixture(scope="module")
def rpc(dtmd):
    url = f"http://127.0.0.1:{dtmd.http_port}/api/json-rpc"

    def call(method, params=None, id="1", raw=None):
        body = {"jsonrpc": "2.0", "id": id, "method": method, "params": params}
        return post(url, body, raw=raw)
    return call


class JsonRpcBusi:
    """A JSON-RPC business service: `plan(gid, method, [...])` answers SUCCESS, FAILURE (-32901),
    ONGOING (-32902) or ERROR (-32000)."""

    def __init__(self):
        self.calls, self.plans, self.lock = [], {}, threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                with owner.lock:
                    owner.calls.append((self.path, body))
                    queue = owner.plans.get((body["params"].get("gid"), body["method"]))
                    answer = queue.pop(0) if queue else "SUCCESS"
                codes = {"FAILURE": -32901, "ONGOING": -32902, "ERROR": -32000}
                reply = {"jsonrpc": "2.0", "id": body["id"], "result": None if answer != "SUCCESS" else {"dtm_result": "SUCCESS"},
                         "error": {"code": codes[answer], "message": answer.lower()} if answer in codes else None}
                payload = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, method):
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/json-rpc?method={method}"

    def calls_for(self, gid):
        with self.lock:
            return [body for _, body in self.calls if body["params"].get("gid") == gid]


@pytest.fixture(scope="module")
def rpc_busi():
    busi = JsonRpcBusi()
    yield busi
    busi.server.shutdown()


def test_a_saga_over_json_rpc_calls_its_branches_over_json_rpc(rpc, dtmd, rpc_busi):
    status, answer = rpc("newGid")
    assert status == 200 and answer["error"] is None and answer["id"] == "1" and answer["jsonrpc"] == "2.0"
    gid = answer["result"]["gid"]
    rpc_busi.plans[(gid, "TransIn")] = ["ERROR", "ONGOING"]
    body = {"gid": gid, "trans_type": "saga", "protocol": "json-rpc", "payloads": ['{"amount":30}', '{"amount":30}'],
            "steps": [{"action": rpc_busi.url("TransOut"), "compensate": rpc_busi.url("TransOutRevert")},
                      {"action": rpc_busi.url("TransIn"), "compensate": rpc_busi.url("TransInRevert")}]}
    assert rpc("submit", body) == (200, {"jsonrpc": "2.0", "id": "1", "error": None, "result": None})
    dtmd.wait_status(gid, "succeed", timeout=20)
    calls = rpc_busi.calls_for(gid)
    assert [c["method"] for c in calls] == ["TransOut", "TransIn", "TransIn", "TransIn"]
    assert calls[0]["jsonrpc"] == "2.0" and calls[0]["id"]
    assert calls[0]["params"] == {"amount": 30, "gid": gid, "trans_type": "saga", "branch_id": "01", "op": "action"}
    assert dtmd.query(gid)["transaction"]["protocol"] == "json-rpc"


def test_a_json_rpc_failure_rolls_back_and_answers_32901(rpc, dtmd, rpc_busi):
    gid = rpc("newGid")[1]["result"]["gid"]
    rpc_busi.plans[(gid, "TransIn")] = ["FAILURE"]
    body = {"gid": gid, "trans_type": "saga", "protocol": "json-rpc", "wait_result": True, "payloads": ["{}", "{}"],
            "steps": [{"action": rpc_busi.url("TransOut"), "compensate": rpc_busi.url("TransOutRevert")},
                      {"action": rpc_busi.url("TransIn"), "compensate": rpc_busi.url("TransInRevert")}]}
    status, answer = rpc("submit", body)
    assert status == 200 and answer["result"] is None
    assert answer["error"]["code"] == -32901 and answer["error"]["message"].endswith("failure FAILURE")
    assert [c["method"] for c in rpc_busi.calls_for(gid)] == ["TransOut", "TransIn", "TransInRevert", "TransOutRevert"]
    status, again = rpc("submit", body)
    assert again["error"] == {"code": -32901, "message": "current status 'failed', cannot sumbmit. FAILURE"}


def test_tcc_methods_and_dtms_error_codes(rpc, dtmd, http_busi):
    gid = rpc("newGid")[1]["result"]["gid"]
    assert rpc("prepare", {"gid": gid, "trans_type": "tcc"})[1]["error"] is None
    registration = {"gid": gid, "trans_type": "tcc", "branch_id": "01", "confirm": http_busi.url("Confirm"), "cancel": http_busi.url("Cancel")}
    assert rpc("registerBranch", registration)[1]["error"] is None
    assert rpc("abort", {"gid": gid, "trans_type": "tcc"})[1]["error"] is None
    dtmd.wait_status(gid, "failed")

    assert rpc("abort", {"gid": "no-such", "trans_type": "tcc"})[1]["error"] == {"code": -32603, "message": "no TransGlobal with gid: no-such found"}
    assert rpc("nope")[1]["error"] == {"code": -32601, "message": "Method not found: nope"}
    status, bad = rpc("newGid", raw=b"{not json")
    assert status == 400 and bad["error"]["code"] == -32700 and bad["error"]["message"].startswith("Parse json error: ") and bad["id"] == ""
    status, bad = rpc("newGid", raw=json.dumps({"jsonrpc": "2.0", "id": 7, "method": "newGid"}).encode())
    assert status == 400 and bad["error"]["code"] == -32700
    status, bad = rpc("newGid", raw=json.dumps({"jsonrpc": "1.0", "id": "x", "method": "newGid"}).encode())
    assert status == 200 and bad["id"] == "x" and bad["error"]["code"] == -32600 and bad["error"]["message"].startswith("Bad json request: ")
    status, bad = rpc("newGid", id="")
    assert status == 200 and bad["error"]["code"] == -32600
    status, bad = rpc("submit", {"gid": gid, "trans_type": "saga", "steps": "[{oops"})
    assert bad["error"]["code"] == -32603 and "Steps" in bad["error"]["message"]
