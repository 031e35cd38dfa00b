"""Bounded fuzzing of dtmd from outside: random and mutated gRPC requests (random bytes too),
random HTTP bodies and query strings on every route, random and huge numbers in every option,
canonically equivalent gids. After each batch dtmd is alive, nothing it refused was stored, and
`dtmctl verify` is clean.

The test command runs a few thousand cases (seconds). A longer run, with another seed:

    FUZZ_CASES=200000 FUZZ_SEED=7 DTMD_BIN=.build/release/dtmd DTMCTL_BIN=.build/release/dtmctl \\
        .venv/bin/python -m pytest -q Tests/interop/test_fuzz.py

Branch URLs in generated requests only ever name the local branch server: mutations are applied
to the encoded request outside its URLs, or to requests that hold none, so no fuzzed call can
leave 127.0.0.1.
"""
import json
import os
import random
import urllib.error
import urllib.parse
import urllib.request

import grpc
import pytest

from conftest import Dtmd
from test_dtmctl import dtmctl

SEED = int(os.environ.get("FUZZ_SEED", "20261125"))
CASES = int(os.environ.get("FUZZ_CASES", "3000"))
BATCH = 500

TRANS_TYPES = ["saga", "msg", "tcc", "xa", "workflow", "", "SAGA", "sag\u00e1"]
GID_PARTS = ["caf\u00e9", "cafe\u0301", "K", "\u212a", "\u00c5", "A\u030a", "\u212b", "x", "/", "\x00", "\u200b", "%", " "]
NUMBERS = [0, 1, -1, 2**31 - 1, 2**31, 2**63 - 1, -(2**63), 10**13, 9_300_000_000_000, 315_360_000, 315_360_001,
           86_400, 86_401, 2_592_000, 2_592_001]
JSON_NUMBERS = NUMBERS + [1e19, -1e19, 1e308, -1e308, 0.5, 1e-300, 9.2e18, 2**64, -(2**64), "12", "1e3", True, None, [], {}]


def random_gid(rng, case):
    """Mostly a gid only this case uses (`fz-<case>-…`), sometimes one any case may use."""
    if rng.random() < 0.6:
        return f"fz-{case}-" + "".join(rng.choice(GID_PARTS) for _ in range(rng.randrange(0, 4)))
    return rng.choice(["", "a" * 129, "a" * 128, "".join(chr(rng.randrange(1, 0x3000)) for _ in range(rng.randrange(1, 10)))])


def owned(gid, case):
    """Whether `gid` belongs to this case alone, so its being refused means it must be absent."""
    return isinstance(gid, str) and gid.startswith(f"fz-{case}-")


def random_steps(rng, busi, count):
    ops = ["action", "compensate", "confirm", "cancel", "", "\u212aill"]
    steps = []
    for _ in range(count):
        step = {}
        for _ in range(rng.randrange(0, 3)):
            step[rng.choice(ops)] = rng.choice([busi.url("A"), busi.url("B"), "", "127.0.0.1:1", "nohost/a.B/C",
                                                 "zk://127.0.0.1:1/a.B/C", "http://127.0.0.1:1/x"])
        steps.append(step)
    return steps


def random_custom(rng, count):
    choices = ["", "null", "{", "[]", '"x"', json.dumps({"concurrent": rng.choice([True, False, 1, "yes"])}),
               json.dumps({"delay": rng.choice(JSON_NUMBERS)}),
               json.dumps({"orders": {str(rng.randrange(-1, count + 2)): [rng.choice(JSON_NUMBERS)]}})]
    return rng.choice(choices)


def grpc_request(pb, rng, busi, index):
    count = rng.randrange(0, 4)
    options = pb[0].DtmTransOptions(
        WaitResult=rng.random() < 0.3,
        TimeoutToFail=rng.choice(NUMBERS), RetryInterval=rng.choice(NUMBERS),
        RequestTimeout=rng.choice([1, 2] + NUMBERS), RetryLimit=rng.choice(NUMBERS),
        BranchHeaders={rng.choice(["x-a", "X-B", "\u212a"]): rng.choice(["v", "caf\u00e9", ""])} if rng.random() < 0.3 else {})
    steps = random_steps(rng, busi, count)
    return pb[0].DtmRequest(
        Gid=random_gid(rng, f"g{index}"), TransType=rng.choice(TRANS_TYPES), TransOptions=options,
        CustomedData=random_custom(rng, count),
        BinPayloads=[rng.randbytes(rng.randrange(0, 8)) for _ in range(rng.choice([count, count, count + 1, max(count - 1, 0)]))],
        QueryPrepared=rng.choice(["", busi.url("Q"), "bad"]),
        Steps=rng.choice([json.dumps(steps), json.dumps(steps), "", "null", "[", "{}", '[{"action": 5}]']),
        RollbackReason=rng.choice(["", "r", "\u212a"]))


def branch_request(pb, rng, busi, index):
    return pb[0].DtmBranchRequest(
        Gid=random_gid(rng, f"g{index}"), TransType=rng.choice(TRANS_TYPES), BranchID=rng.choice(["", "01", "\u212a", "x" * 65]),
        Op=rng.choice(["", "try", "action"]),
        Data={rng.choice(["confirm", "cancel", "url", "x"]): rng.choice([busi.url("C"), "", "bad", "http://127.0.0.1:1/y"])},
        BusiPayload=rng.randbytes(rng.randrange(0, 8)))


def mutate(rng, data, protected):
    """Flips, inserts or deletes bytes of `data` outside the `protected` substrings (the URLs) and
    the byte on either side of each (a JSON quote or a length prefix), so a URL is never changed
    or joined to other bytes: at most cut short, which leaves its host 127.0.0.1 or invalid."""
    spans = []
    for text in protected:
        start = data.find(text)
        while start != -1:
            spans.append((start - 1, start + len(text) + 1))
            start = data.find(text, start + 1)
    data = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        if not data:
            break
        position = rng.randrange(len(data))
        if any(start <= position < end for start, end in spans):
            continue
        what = rng.random()
        if what < 0.6:
            data[position] ^= 1 << rng.randrange(8)
        elif what < 0.8:
            data[position:position] = bytes([rng.randrange(256)])
            break  # positions after this shift: stop mutating
        else:
            del data[position]
            break
    return bytes(data)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    server = Dtmd(tmp_path_factory.mktemp("fuzz"), RequestTimeout=1, TimeoutToFail=2).start()
    yield server
    server.stop()
    assert server.process.returncode == 0, server.log_text()


def check_batch(server, refused):
    assert server.ping(), "dtmd died"
    for gid in refused[-50:]:
        transaction = server.query(gid)["transaction"]
        assert transaction is None, f"refused gid {gid!r} was stored"
    verified = dtmctl("verify", "--data", server.workdir / "data")
    assert verified.returncode == 0, verified.stdout + verified.stderr


# dtm's own plain refusals (HTTP 500 / gRPC Unknown or Internal with these texts): a request dtm
# refuses this way is refused the same way, so these answers are not the server failing.
DTM_REFUSALS = ("no TransGlobal with gid: ", "empty topic", "empty url", "this url exists", "no such a topic",
                "this topic is empty", "no such an url ", "storage: NotFound", "storage: UniqueKeyConflict", "topic not found")


def dtm_refusal(message):
    return message.startswith(DTM_REFUSALS)


def test_fuzzed_grpc_requests(fuzzed, pb, busi):
    rng = random.Random(SEED)
    channel = grpc.insecure_channel(f"127.0.0.1:{fuzzed.grpc_port}")
    methods = {name: channel.unary_unary(f"/dtmgimp.Dtm/{name}") for name in
               ["Submit", "Prepare", "Abort", "RegisterBranch", "NewGid", "PrepareWorkflow", "Subscribe", "Unsubscribe",
                "DeleteTopic", "Nope"]}
    accepted_gids, refused = set(), []
    for index in range(CASES):
        method = rng.choice(list(methods))
        protected = [busi.url(m).encode() for m in "ABCQ"]
        if method == "RegisterBranch":
            message = branch_request(pb, rng, busi, index)
        else:
            message = grpc_request(pb, rng, busi, index)
        kind = rng.random()
        body = message.SerializeToString()
        if kind < 0.25:
            body = mutate(rng, body, protected)
        elif kind < 0.3:
            body = rng.randbytes(rng.randrange(0, 64))
        if len(body) > 0 and b"127.0.0.1" in body and kind >= 0.25 and kind < 0.3:
            continue  # random bytes never name an address; this guard keeps it so
        try:
            methods[method](body, timeout=10)
            if kind >= 0.3 and message.Gid:
                accepted_gids.add(message.Gid)
        except grpc.RpcError as error:
            assert error.code() not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE) \
                or (error.code() != grpc.StatusCode.UNAVAILABLE and dtm_refusal(error.details() or "")), \
                f"{method} {message!r}: {error.code()} {error.details()}"
            if error.code() == grpc.StatusCode.INVALID_ARGUMENT and kind >= 0.3 and method in ("Submit", "Prepare") \
                    and owned(message.Gid, f"g{index}"):
                refused.append(message.Gid)
        if index % BATCH == BATCH - 1:
            check_batch(fuzzed, [g for g in refused if g not in accepted_gids])
    check_batch(fuzzed, [g for g in refused if g not in accepted_gids])
    channel.close()
    # The generator reaches both sides: requests stored and requests refused.
    assert len(accepted_gids) > CASES // 50 and len(refused) > CASES // 50, (len(accepted_gids), len(refused))


ROUTES = [("POST", "prepare"), ("POST", "submit"), ("POST", "abort"), ("POST", "registerBranch"), ("POST", "registerTccBranch"),
          ("POST", "registerXaBranch"), ("POST", "forceStop"), ("POST", "resetNextCronTime"), ("GET", "query"), ("GET", "all"),
          ("GET", "newGid"), ("GET", "version"), ("GET", "subscribe"), ("GET", "unsubscribe"), ("DELETE", "topic/fz"),
          ("GET", "queryKV"), ("GET", "scanKV"), ("GET", "resetCronTime")]
QUERY_KEYS = ["gid", "limit", "position", "status", "transType", "createTimeStart", "createTimeEnd", "topic", "url", "remark",
              "cat", "key", "timeout"]


def random_body(rng, busi, index):
    kind = rng.random()
    if kind < 0.15:
        return rng.randbytes(rng.randrange(0, 100)), None
    if kind < 0.25:
        return rng.choice([b"", b"null", b"[]", b"{", b"1e999", b'"x"', b"{}"]), None
    count = rng.randrange(1, 3)
    # A valid request, then up to three fields replaced by random values.
    body = {"gid": random_gid(rng, f"h{index}"), "trans_type": rng.choice(["saga", "msg"]),
            "steps": [{"action": busi.url("A"), "compensate": busi.url("B")}] * count, "payloads": ["p"] * count}
    for key in rng.sample(["trans_type", "steps", "payloads", "custom_data", "wait_result", "timeout_to_fail", "retry_interval",
                           "request_timeout", "retry_limit", "branch_headers", "branch_id", "confirm", "cancel", "url", "data",
                           "query_prepared", "concurrent"], rng.randrange(0, 4)):
        body[key] = rng.choice([
            random_steps(rng, busi, count), ["p"] * count, random_custom(rng, count), rng.choice(JSON_NUMBERS),
            rng.choice(TRANS_TYPES), {"k": "v"}, busi.url("C"), "", None, True])
    return json.dumps(body).encode(), body.get("gid")


def test_fuzzed_http_requests(fuzzed, busi):
    rng = random.Random(SEED + 1)
    refused, accepted = [], set()
    base = f"http://127.0.0.1:{fuzzed.http_port}/api/dtmsvr/"
    for index in range(CASES):
        method, route = rng.choice(ROUTES)
        query = urllib.parse.urlencode({key: rng.choice([str(rng.choice(JSON_NUMBERS)), random_gid(rng, f"h{index}"), ""])
                                        for key in rng.sample(QUERY_KEYS, rng.randrange(0, 4))})
        body, gid = random_body(rng, busi, index) if method == "POST" else (None, None)
        request = urllib.request.Request(base + route + ("?" + query if query else ""), data=body, method=method,
                                         headers={"Content-Type": "application/json"})
        message = ""
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status = response.status
                json.load(response)
        except urllib.error.HTTPError as error:
            status = error.code
            message = json.loads(error.read() or b"{}").get("message", "")
        assert status in (200, 400, 409, 425) or (status == 500 and dtm_refusal(message)), \
            f"{method} {route}?{query} {body!r}: {status} {message}"
        if route in ("prepare", "submit") and isinstance(gid, str) and gid:
            if status == 200:
                accepted.add(gid)
            elif status == 400 and owned(gid, f"h{index}"):
                refused.append(gid)
        if index % BATCH == BATCH - 1:
            check_batch(fuzzed, [g for g in refused if g not in accepted])
    check_batch(fuzzed, [g for g in refused if g not in accepted])
    assert len(accepted) > CASES // 50 and len(refused) > CASES // 50, (len(accepted), len(refused))
