"""The admin web pages in a real browser: Debian's chromium, headless, against dtmd."""
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from dtmcli import saga, utils

from conftest import ROOT, free_port, wait_for

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
# Kept after the run: a screenshot of a rolled-back saga's timeline.
OUTPUT = Path(os.environ.get("TEST_OUTPUT_DIR", ROOT / ".test-output"))


def chromium(*arguments, timeout=60):
    """Runs headless chromium once (as root it needs --no-sandbox); answers its stdout."""
    result = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                             "--no-first-run", "--user-data-dir=" + str(OUTPUT / "chromium-profile"), *arguments],
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def dom(url):
    # The page's DOM once loaded (its script has run; the live tail it opens stays open).
    return chromium("--dump-dom", url)


@pytest.fixture(scope="module")
def rolled_back(dtmd, http_busi):
    api = f"http://127.0.0.1:{dtmd.http_port}/api/dtmsvr"
    gid = utils.gen_gid(api)
    s = saga.Saga(api, gid)
    s.add({"amount": 30}, http_busi.url("TransOut"), http_busi.url("TransOutRevert"))
    s.add({"amount": 30}, http_busi.url("TransIn"), http_busi.url("TransInRevert"))
    http_busi.plan(gid, "TransIn", ["FAILURE"])
    s.submit()
    dtmd.wait_status(gid, "failed")
    return gid


def test_the_list_shows_the_rolled_back_saga(dtmd, rolled_back):
    base = f"http://127.0.0.1:{dtmd.http_port}"
    page = dom(f"{base}/admin?status=failed")
    assert rolled_back in page
    assert "failed" in page
    assert "TransIn" in page and "FAILURE" in page  # the rollback reason names the refusing branch
    # "/" leads to the list; filters narrow it.
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None
    with pytest.raises(urllib.error.HTTPError) as root:
        urllib.request.build_opener(NoRedirect).open(f"{base}/")
    assert root.value.code == 302 and root.value.headers["Location"] == "/admin"
    assert rolled_back in dom(f"{base}/admin?trans_type=saga")
    assert rolled_back not in dom(f"{base}/admin?trans_type=tcc")
    assert rolled_back not in dom(f"{base}/admin?status=succeed")
    assert rolled_back in dom(f"{base}/admin?gid_prefix=" + urllib.parse.quote(rolled_back[:6]))


def test_the_detail_page_shows_the_timeline_with_attempt_errors(dtmd, rolled_back):
    url = f"http://127.0.0.1:{dtmd.http_port}/admin/transactions/{urllib.parse.quote(rolled_back, safe='')}"
    page = dom(url)
    assert rolled_back in page
    assert "submitted → aborting" in page and "aborting → failed" in page
    assert "02 action, attempt 1: FAILURE" in page  # the attempt with its outcome
    assert "01 compensate, attempt 1: SUCCESS" in page
    assert '<div class="error">{"dtm_result": "FAILURE"}</div>' in page  # the attempt's error text, as TransIn answered
    assert "Hash chain verified" in page
    OUTPUT.mkdir(parents=True, exist_ok=True)
    shot = OUTPUT / "admin-timeline.png"
    chromium("--window-size=1200,1500", "--hide-scrollbars", f"--screenshot={shot}", url)
    assert shot.stat().st_size > 10_000


def test_an_unknown_gid_and_bad_filters_are_clear_errors(dtmd):
    base = f"http://127.0.0.1:{dtmd.http_port}"
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{base}/admin/transactions/no-such-gid")
    assert missing.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as bad:
        urllib.request.urlopen(f"{base}/admin?status=done")
    assert bad.value.code == 400 and "status must be" in bad.value.read().decode()


def test_actions_need_confirmation_and_are_recorded(dtmd, pb, dtm):
    from test_grpc_interop import new_gid, request
    gid = new_gid(dtm)
    dtm.Prepare(request(pb, gid, "msg", [{"action": "127.0.0.1:1/busi.Busi/TransIn"}], [b""], query_prepared="127.0.0.1:1/busi.Busi/Q"))
    path = f"http://127.0.0.1:{dtmd.http_port}/admin/transactions/{gid}/force-stop"
    with pytest.raises(urllib.error.HTTPError) as unconfirmed:
        urllib.request.urlopen(urllib.request.Request(path, data=b"", method="POST"))
    assert unconfirmed.value.code == 400
    assert dtmd.status(gid) == "prepared"

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None
    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as done:  # 303 back to the page, not followed
        opener.open(urllib.request.Request(path, data=b"confirm=yes", method="POST"))
    assert done.value.code == 303
    assert dtmd.status(gid) == "failed"
    page = urllib.request.urlopen(f"http://127.0.0.1:{dtmd.http_port}/admin/transactions/{gid}").read().decode()
    assert "prepared → failed (client request)" in page  # recorded like the API's forceStop


def test_pages_update_live_without_reloading(dtmd, http_busi):
    """A browser on the list page sees a new transaction appear, through the log's live tail."""
    import websocket

    port = free_port()
    browser = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                                f"--remote-debugging-port={port}", "--user-data-dir=" + str(OUTPUT / "chromium-live"), "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def targets():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json") as r:
                    return [t for t in json.load(r) if t.get("type") == "page"]
            except OSError:
                return []
        wait_for(targets, timeout=30, what="chromium's debugging port")
        ws = websocket.create_connection(targets()[0]["webSocketDebuggerUrl"], timeout=30)
        calls = iter(range(1, 10_000))

        def send(method, **params):
            ident = next(calls)
            ws.send(json.dumps({"id": ident, "method": method, "params": params}))
            while True:
                message = json.loads(ws.recv())
                if message.get("id") == ident:
                    return message.get("result", {})

        def evaluate(expression):
            return send("Runtime.evaluate", expression=expression, returnByValue=True).get("result", {}).get("value")

        send("Page.enable")
        send("Page.navigate", url=f"http://127.0.0.1:{dtmd.http_port}/admin")
        wait_for(lambda: evaluate("document.readyState") == "complete" and evaluate(
            "document.getElementById('live').classList.contains('on')"), timeout=20, what="the list page to follow the log")
        evaluate("window.notReloaded = true")

        api = f"http://127.0.0.1:{dtmd.http_port}/api/dtmsvr"
        gid = utils.gen_gid(api)
        s = saga.Saga(api, gid)
        s.add({"amount": 1}, http_busi.url("TransOut"), http_busi.url("TransOutRevert"))
        s.submit()
        wait_for(lambda: evaluate(f"document.body.innerText.includes({json.dumps(gid)})"), timeout=20,
                 what="the new transaction to appear on the open page")
        assert evaluate("window.notReloaded === true"), "the page was reloaded instead of updated"
        ws.close()
    finally:
        browser.terminate()
        browser.wait(timeout=20)
