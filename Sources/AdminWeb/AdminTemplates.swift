/// The admin pages' templates (Mustache, HTML-escaped by default), style and script: shipped in
/// the binary, no build step, nothing loaded from elsewhere.
enum AdminTemplates {
    static let head = """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>{{title}} · SwiftDTM</title>
        <link rel="stylesheet" href="/admin/assets/admin.css">
        </head>
        <body data-last-seq="{{lastSeq}}" data-gid="{{watchGid}}">
        <header><a href="/admin" class="brand">SwiftDTM</a> <span id="live" class="live" title="updates as events arrive">live</span></header>
        <main id="content">
        """

    static let foot = """
        </main>
        <script src="/admin/assets/admin.js"></script>
        </body>
        </html>
        """

    static let list = """
        {{>head}}
        <nav class="counts">{{#counts}}<a class="count status-{{status}}{{#selected}} selected{{/selected}}" href="{{link}}"><b>{{count}}</b> {{status}}</a>{{/counts}}</nav>
        <form class="filters" method="get" action="/admin">
          <label>status <select name="status">{{#statusOptions}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{label}}</option>{{/statusOptions}}</select></label>
          <label>trans type <input name="trans_type" value="{{transType}}" placeholder="saga, tcc, …" size="8"></label>
          <label>gid prefix <input name="gid_prefix" value="{{gidPrefix}}" size="12"></label>
          <label>created from <input name="from" value="{{from}}" placeholder="YYYY-MM-DD" size="10"></label>
          <label>to <input name="to" value="{{to}}" placeholder="YYYY-MM-DD" size="10"></label>
          <button>filter</button> <a href="/admin">clear</a>
        </form>
        <table class="transactions">
        <thead><tr><th>gid</th><th>type</th><th>status</th><th>created</th><th>updated</th><th>rollback reason</th></tr></thead>
        <tbody>
        {{#rows}}<tr class="status-{{status}}"><td class="gid"><a href="{{link}}">{{gid}}</a></td><td>{{transType}}</td><td><span class="badge status-{{status}}">{{status}}</span></td><td>{{created}}</td><td>{{updated}}</td><td class="reason">{{reason}}</td></tr>
        {{/rows}}
        </tbody>
        </table>
        {{#empty}}<p class="empty">No transactions match.</p>{{/empty}}
        {{#hasNext}}<p><a class="next" href="{{next}}">older →</a></p>{{/hasNext}}
        {{>foot}}
        """

    static let detail = """
        {{>head}}
        <h1 class="gid">{{gid}} <span class="badge status-{{status}}">{{status}}</span></h1>
        <table class="header">{{#header}}<tr><th>{{name}}</th><td>{{value}}</td></tr>{{/header}}</table>
        {{^finished}}
        <div class="actions">
          <form method="post" action="{{gidPath}}/retry" data-confirm="Call the branches of {{gid}} again now?"><input type="hidden" name="confirm" value="yes"><button>retry now</button></form>
          <form method="post" action="{{gidPath}}/force-stop" data-confirm="Force {{gid}} to failed? Nothing more will be called."><input type="hidden" name="confirm" value="yes"><button class="danger">force stop</button></form>
        </div>
        {{/finished}}
        <h2>Branches</h2>
        <table class="branches">
        <thead><tr><th>id</th><th>op</th><th>status</th><th>attempts</th><th>last outcome</th><th>url</th></tr></thead>
        <tbody>
        {{#branches}}<tr><td>{{id}}</td><td>{{op}}</td><td>{{status}}</td><td>{{attempts}}</td><td>{{lastOutcome}}{{#lastError}}<div class="error">{{lastError}}</div>{{/lastError}}</td><td class="url">{{url}}{{#payload}}<details><summary>payload, {{size}}</summary>{{#text}}<pre>{{text}}</pre>{{/text}}<pre class="hex">{{hex}}</pre></details>{{/payload}}</td></tr>
        {{/branches}}
        </tbody>
        </table>
        <h2>Timeline</h2>
        <p class="chain {{#chainVerified}}ok{{/chainVerified}}{{^chainVerified}}bad{{/chainVerified}}">{{chainText}}</p>
        <ol class="timeline">
        {{#timeline}}<li class="event kind-{{kind}}" data-seq="{{seq}}"><span class="seq">#{{seq}}</span> <time>{{time}}</time> <span class="type">{{type}}</span> <span class="detail">{{detail}}</span>{{#hash}} <code class="hash" title="stored hash">{{hash}}</code>{{/hash}}{{#error}}<div class="error">{{error}}</div>{{/error}}{{#payload}}<details><summary>payload, {{size}}</summary>{{#text}}<pre>{{text}}</pre>{{/text}}<pre class="hex">{{hex}}</pre></details>{{/payload}}</li>
        {{/timeline}}
        </ol>
        {{>foot}}
        """

    static let message = """
        {{>head}}
        <h1>{{title}}</h1>
        <p>{{message}}</p>
        <p><a href="/admin">all transactions</a></p>
        {{>foot}}
        """

    static let login = """
        {{>head}}
        <h1>Sign in</h1>
        {{#failed}}<p class="error">That is not one of dtmd's tokens.</p>{{/failed}}
        <form method="post" action="/admin/login" class="filters">
          <label>token <input name="token" type="password" autocomplete="current-password" size="40" required></label>
          <button>sign in</button>
        </form>
        <p class="empty">dtmd's <code>Auth.Tokens</code>; it is kept in a cookie for these pages only.</p>
        {{>foot}}
        """

    static let css = """
        :root { --fg: #1d232a; --muted: #67707a; --line: #d9dee3; --bg: #fff; --ok: #1a7f37; --bad: #c62828; --warn: #9a6700; --info: #0b5cad; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
        header { display: flex; align-items: center; gap: 1em; padding: .6em 1em; border-bottom: 1px solid var(--line); }
        .brand { font-weight: 700; color: var(--fg); text-decoration: none; }
        .live { font-size: 12px; color: var(--muted); } .live.on { color: var(--ok); } .live.on::before { content: "● "; }
        main { padding: 1em; max-width: 1200px; }
        a { color: var(--info); }
        .counts { display: flex; flex-wrap: wrap; gap: .5em; margin-bottom: 1em; }
        .count { padding: .3em .7em; border: 1px solid var(--line); border-radius: 6px; text-decoration: none; color: var(--fg); }
        .count.selected { border-color: var(--fg); }
        .filters { display: flex; flex-wrap: wrap; gap: .6em; align-items: end; margin-bottom: 1em; }
        .filters label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); }
        input, select, button { font: inherit; padding: .25em .4em; }
        table { border-collapse: collapse; width: 100%; }
        th, td { text-align: left; padding: .35em .5em; border-bottom: 1px solid var(--line); vertical-align: top; }
        th { font-size: 12px; color: var(--muted); font-weight: 600; }
        table.header th { width: 10em; }
        td.gid, h1.gid { font-family: ui-monospace, monospace; word-break: break-all; }
        td.url { word-break: break-all; }
        .badge { display: inline-block; padding: 0 .5em; border-radius: 1em; font-size: 12px; border: 1px solid currentColor; }
        .status-succeed { color: var(--ok); } .status-failed { color: var(--bad); } .status-aborting { color: var(--warn); }
        .status-prepared, .status-submitted { color: var(--info); }
        tr.status-succeed, tr.status-failed, tr.status-aborting, tr.status-prepared, tr.status-submitted { color: var(--fg); }
        .error { color: var(--bad); white-space: pre-wrap; word-break: break-word; }
        .reason { color: var(--bad); }
        .actions { display: flex; gap: .6em; margin: 1em 0; } .danger { color: var(--bad); }
        .timeline { list-style: none; padding: 0; margin: 0; border-left: 2px solid var(--line); }
        .event { padding: .3em .8em; position: relative; }
        .event::before { content: ""; position: absolute; left: -6px; top: .75em; width: 10px; height: 10px; border-radius: 50%; background: var(--muted); }
        .kind-ok::before { background: var(--ok); } .kind-bad::before { background: var(--bad); } .kind-retry::before { background: var(--warn); }
        .kind-call::before { background: var(--info); } .kind-status::before { background: var(--fg); }
        .seq, time { color: var(--muted); font-size: 12px; } .type { font-family: ui-monospace, monospace; font-size: 12px; }
        pre { white-space: pre-wrap; word-break: break-all; background: #f6f8fa; padding: .5em; margin: .3em 0; }
        .hash { font-size: 11px; color: var(--muted); word-break: break-all; } .chain.ok { color: var(--ok); } .chain.bad { color: var(--bad); font-weight: 600; }
        .empty { color: var(--muted); }
        @media (max-width: 640px) { th:nth-child(5), td:nth-child(5) { display: none; } main { padding: .5em; } }
        """

    /// Live updates: follows the log (server-sent events from `/admin/events`, the same tail as
    /// `WatchEvents`) and, when an event arrives, fetches this page again and swaps its content;
    /// asks before the actions.
    static let script = """
        (function () {
          document.addEventListener("submit", function (event) {
            var question = event.target.getAttribute("data-confirm");
            if (question && !window.confirm(question)) event.preventDefault();
          });
          if (!window.EventSource) return;
          var body = document.body, live = document.getElementById("live");
          var params = new URLSearchParams({ after: body.getAttribute("data-last-seq") || "0" });
          if (body.getAttribute("data-gid")) params.set("gid", body.getAttribute("data-gid"));
          var source = new EventSource("/admin/events?" + params.toString());
          var pending = null;
          source.onopen = function () { live.classList.add("on"); };
          source.onerror = function () { live.classList.remove("on"); };
          source.onmessage = function () {
            if (pending) return;
            pending = setTimeout(function () {
              fetch(window.location.href, { headers: { "Accept": "text/html" } })
                .then(function (response) { return response.text(); })
                .then(function (html) {
                  var page = new DOMParser().parseFromString(html, "text/html");
                  var content = page.getElementById("content");
                  if (content) document.getElementById("content").innerHTML = content.innerHTML;
                  pending = null;
                }, function () { pending = null; });
            }, 200);
          };
        })();
        """
}
