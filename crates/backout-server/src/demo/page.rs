//! The demo service's page: its version and error rate, buttons to break and heal it, and the
//! notifications its `team` channel received. Plain HTML that refreshes itself; no script.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use backout_model::render::escape;

use super::{BROKEN_RATE, DEPLOYED, HEALTHY_RATE, Target};

pub(super) async fn show(State(target): State<Arc<Target>>) -> Response {
    let state = target.state().clone();
    let healthy = state.error_rate <= 0.01;
    let mut notices = String::new();
    for notice in state.inbox.iter().rev() {
        let _ = write!(
            notices,
            "<tr><td>{}</td><td><b>{}</b></td><td>{}</td></tr>",
            escape(&notice.at),
            escape(&notice.event),
            escape(&notice.summary)
        );
    }
    if notices.is_empty() {
        notices.push_str("<tr><td colspan=3>nothing yet</td></tr>");
    }
    let page = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="3">
<title>demo-checkout {version}</title>
<style>
body {{ font: 16px/1.4 system-ui, sans-serif; margin: 1rem auto; max-width: 44rem; padding: 0 1rem; }}
.rate {{ font-size: 2.2rem; font-weight: 700; }}
.ok {{ color: #176f2c; }} .bad {{ color: #b3261e; }}
form {{ display: inline-block; margin: .25rem .5rem .25rem 0; }}
button {{ font-size: 1rem; padding: .6rem 1rem; border-radius: .4rem; border: 1px solid #888; }}
table {{ border-collapse: collapse; width: 100%; font-size: .9rem; }}
td {{ border-top: 1px solid #ddd; padding: .3rem .4rem; vertical-align: top; }}
code {{ background: #f3f3f3; padding: 0 .2rem; }}
</style></head>
<body>
<h1>demo-checkout <small>{version}</small></h1>
<p>A pretend checkout service served by <code>backout serve --demo</code>. The demo plan's
criterion <code>error-rate</code> reads <a href="/demo/health">/demo/health</a> every 2 s and
trips after two readings above 5%.</p>
<p class="rate {class}">error rate {percent:.1}%</p>
<form method="post" action="/demo/error-rate?value={broken}"><button>Break it: {broken_percent:.0}% errors</button></form>
<form method="post" action="/demo/error-rate?value={healthy}"><button>Heal it</button></form>
<form method="post" action="/demo/deploy?version={deployed}"><button>Deploy {deployed} again</button></form>
<p>Or from a terminal: <code>curl -X POST 'http://HOST/demo/error-rate?value=0.2'</code>.
The rollback's step <code>rollback-app</code> deploys the previous version here, which heals it.</p>
<h2>What the team channel received</h2>
<p>{count} notification(s), {duplicates} repeat(s) dropped by idempotency key; health checks answered: {checks}.</p>
<table>{notices}</table>
</body></html>"#,
        version = escape(&state.version),
        class = if healthy { "ok" } else { "bad" },
        percent = state.error_rate * 100.0,
        broken = BROKEN_RATE,
        broken_percent = BROKEN_RATE * 100.0,
        healthy = HEALTHY_RATE,
        deployed = DEPLOYED,
        count = state.inbox.len(),
        duplicates = state.duplicates,
        checks = state.checks,
    );
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
            ),
        ],
        page,
    )
        .into_response()
}
