//! A server you can deploy: `serve --tls-cert/--tls-key` answers https with a certificate made
//! here by `openssl` (a client trusting it gets through, one that does not is refused, plain
//! http is not served); the session cookie's `Secure` follows the scheme the browser used;
//! `BACKOUT_LOG_FORMAT=json` logs one JSON object a line; `--version` names the commit; the
//! systemd units in `contrib/systemd/` pass `systemd-analyze verify` (when installed) and have
//! the keys the README promises.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, SET_COOKIE};
use serde_json::Value;
use support::server::{Server, token};
use support::{Sandbox, assert_code, stderr, stdout};

/// A self-signed certificate for `backout.test` and 127.0.0.1, or `None` (said) without openssl.
fn certificate(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=backout.test"])
        .args(["-addext", "subjectAltName=DNS:backout.test,IP:127.0.0.1"])
        // A server certificate, not a CA (webpki refuses a CA used as the end entity).
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    match made {
        Ok(out) if out.status.success() => Some((cert, key)),
        Ok(out) => panic!(
            "openssl req failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => {
            eprintln!("SKIPPED: no openssl binary to make a test certificate ({e})");
            None
        }
    }
}

fn addr(base: &str) -> SocketAddr {
    base.split("://")
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("an address in {base}"))
}

fn builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
}

/// Signs in to the web UI with `token`; the session cookie set, if any.
async fn sign_in(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    headers: &[(&str, &str)],
) -> Option<String> {
    let mut request = client
        .post(url)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("token={token}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("the server answers");
    assert_eq!(response.status().as_u16(), 303, "signed in: {response:?}");
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("backout_session="))
        .map(String::from)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_https_to_a_client_that_trusts_the_certificate() {
    let sandbox = Sandbox::new();
    let Some((cert, key)) = certificate(sandbox.path()) else {
        return;
    };
    let erin = token(&sandbox, "erin@example.com", "performer");
    let server = Server::with_args(
        sandbox.command(),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "{}",
        server.base
    );
    let at = addr(&server.base);
    let pem = std::fs::read(&cert).unwrap();
    let trusting = builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .resolve("backout.test", at)
        .build()
        .unwrap();
    let base = format!("https://backout.test:{}", at.port());

    let health = trusting
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("https answers a client that trusts the certificate");
    assert_eq!(health.status().as_u16(), 200);

    // Over TLS to a named host the session cookie is Secure (and still HttpOnly, Strict).
    let cookie = sign_in(&trusting, &format!("{base}/ui/login"), &erin, &[])
        .await
        .expect("a session cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly; SameSite=Strict"), "{cookie}");

    // A client that does not trust the certificate is refused by its own verification.
    let untrusting = builder()
        .tls_certs_only(Vec::new())
        .resolve("backout.test", at)
        .build()
        .unwrap();
    let refused = untrusting.get(format!("{base}/healthz")).send().await;
    assert!(
        refused.is_err(),
        "an unknown issuer must not verify: {refused:?}"
    );

    // Plain http to the TLS port gets no answer as HTTP (the handshake fails, the connection
    // closes), and the server goes on serving.
    let plain = builder().build().unwrap();
    let answered = plain
        .get(format!("http://127.0.0.1:{}/healthz", at.port()))
        .send()
        .await;
    assert!(
        answered
            .as_ref()
            .map_or(true, |r| r.status().as_u16() != 200),
        "plain http must not be served on the TLS port: {answered:?}"
    );
    let again = trusting.get(format!("{base}/healthz")).send().await;
    assert_eq!(again.expect("still serving").status().as_u16(), 200);

    let (code, log) = server.terminate(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("listening on https://"), "{log}");
}

#[test]
fn tls_files_that_do_not_fit_are_refused_with_the_file_named() {
    let sandbox = Sandbox::new();
    let missing = sandbox.run(&["serve", "--listen", "127.0.0.1:0", "--tls-cert", "nope.pem"]);
    assert_code(&missing, 2, "--tls-cert without --tls-key");
    let not_pem = sandbox.write("cert.pem", "not a certificate\n");
    let out = sandbox.run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        not_pem.to_str().unwrap(),
        "--tls-key",
        not_pem.to_str().unwrap(),
    ]);
    assert_code(&out, 2, "a certificate file without a certificate");
    assert!(
        stderr(&out).contains("--tls-cert") && stderr(&out).contains("cert.pem"),
        "{}",
        stderr(&out)
    );
    let Some((cert, _)) = certificate(sandbox.path()) else {
        return;
    };
    // The certificate as its own key: no private key in it.
    let out = sandbox.run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        cert.to_str().unwrap(),
    ]);
    assert_code(&out, 2, "a key file without a key");
    assert!(stderr(&out).contains("--tls-key"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cookie_is_secure_when_the_browser_used_https() {
    let sandbox = Sandbox::new();
    let erin = token(&sandbox, "erin@example.com", "performer");
    let server = Server::start(&sandbox);
    let at = addr(&server.base);
    let client = builder()
        .resolve("backout.example.com", at)
        .build()
        .unwrap();
    let named = format!("http://backout.example.com:{}/ui/login", at.port());

    // Plain http to a named host: a Secure cookie would be refused by the browser.
    let cookie = sign_in(&client, &named, &erin, &[]).await.expect("cookie");
    assert!(!cookie.contains("Secure"), "{cookie}");
    // Behind a proxy that terminated TLS.
    for forwarded in [
        ("X-Forwarded-Proto", "https"),
        ("Forwarded", "for=192.0.2.60;proto=https"),
    ] {
        let cookie = sign_in(&client, &named, &erin, &[forwarded])
            .await
            .expect("cookie");
        assert!(cookie.contains("; Secure"), "{forwarded:?}: {cookie}");
    }
    // Loopback: browsers keep Secure cookies over http there, so they stay Secure.
    let cookie = sign_in(&client, &server.url("/ui/login"), &erin, &[])
        .await
        .expect("cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");
    drop(server);

    // An https public URL: the proxy in front speaks https whatever it forwards.
    let mut command = sandbox.command();
    command.env("BACKOUT_PUBLIC_URL", "https://backout.example.com");
    let server = Server::from_command(command);
    let at = addr(&server.base);
    let client = builder()
        .resolve("backout.example.com", at)
        .build()
        .unwrap();
    let named = format!("http://backout.example.com:{}/ui/login", at.port());
    let cookie = sign_in(&client, &named, &erin, &[]).await.expect("cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_a_line() {
    let sandbox = Sandbox::new();
    let mut command = sandbox.command();
    command.env("BACKOUT_LOG_FORMAT", "json");
    let server = Server::from_command(command);
    let response = builder()
        .build()
        .unwrap()
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status().as_u16(), 200);
    let (code, log) = server.terminate(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{log}");
    let mut messages = Vec::new();
    for line in log.lines() {
        // The one plain line for people and scripts that look for the port.
        if line.starts_with("backout serve: listening on ") {
            continue;
        }
        let json: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}\n{log}"));
        assert!(json["timestamp"].is_string(), "{line}");
        assert!(json["level"].is_string(), "{line}");
        messages.push(json["fields"]["message"].as_str().unwrap_or("").to_string());
    }
    assert!(messages.iter().any(|m| m == "listening"), "{messages:?}");
    assert!(
        messages.iter().any(|m| m == "SIGTERM received"),
        "{messages:?}"
    );

    let out = sandbox
        .command()
        .env("BACKOUT_LOG_FORMAT", "xml")
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .expect("runs");
    assert_code(&out, 2, "an unknown log format");
    assert!(
        stderr(&out).contains("BACKOUT_LOG_FORMAT=xml"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn version_names_the_commit() {
    let out = Command::new(assert_cmd::cargo::cargo_bin("backout"))
        .arg("--version")
        .output()
        .expect("runs");
    assert_code(&out, 0, "--version");
    let version = stdout(&out);
    let head = Command::new("git")
        .args(["rev-parse", "--short=9", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let expected = std::env::var("BACKOUT_COMMIT")
        .ok()
        .or(head)
        .unwrap_or_else(|| "unknown".into());
    assert_eq!(
        version.trim(),
        format!("backout {} (commit {expected})", env!("CARGO_PKG_VERSION"))
    );
}

/// `KEY=VALUE` lines of a unit's `[section]`.
fn keys(unit: &str, section: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == format!("[{section}]");
        } else if inside
            && !line.starts_with('#')
            && let Some((k, v)) = line.split_once('=')
        {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

fn value<'a>(keys: &'a [(String, String)], key: &str) -> Option<&'a str> {
    keys.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[test]
fn systemd_units_verify_and_have_their_keys() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/systemd");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect(name);
    let serve = read("backout.service");
    let send = read("backout-deliveries.service");
    let timer = read("backout-deliveries.timer");

    let service = keys(&serve, "Service");
    let exec = value(&service, "ExecStart").expect("ExecStart");
    assert!(
        exec.contains(" serve ") && exec.contains("--run-as "),
        "{exec}"
    );
    for (key, expected) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("PrivateTmp", "yes"),
        ("Restart", "on-failure"),
        ("KillSignal", "SIGTERM"),
    ] {
        assert_eq!(
            value(&service, key),
            Some(expected),
            "backout.service {key}"
        );
    }
    assert_eq!(
        value(&keys(&serve, "Install"), "WantedBy"),
        Some("multi-user.target")
    );
    let oneshot = keys(&send, "Service");
    assert_eq!(value(&oneshot, "Type"), Some("oneshot"));
    assert_eq!(value(&oneshot, "User"), Some("backout"));
    assert!(
        value(&oneshot, "ExecStart").is_some_and(|e| e.ends_with(" deliveries --send")),
        "{oneshot:?}"
    );
    let schedule = keys(&timer, "Timer");
    assert_eq!(value(&schedule, "Unit"), Some("backout-deliveries.service"));
    assert!(
        value(&schedule, "OnUnitActiveSec").is_some(),
        "{schedule:?}"
    );
    assert_eq!(
        value(&keys(&timer, "Install"), "WantedBy"),
        Some("timers.target")
    );

    // systemd's own check, where it is installed, with ExecStart pointing at the built binary
    // (verify wants the executable to exist). A warning (an unknown key, a bad value) fails too.
    let probe = Command::new("systemd-analyze").arg("--version").output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!(
            "SKIPPED systemd-analyze verify: not installed; the keys were checked by parsing"
        );
        return;
    }
    let sandbox = Sandbox::new();
    let binary = assert_cmd::cargo::cargo_bin("backout");
    let mut units = Vec::new();
    for (name, text) in [
        ("backout.service", &serve),
        ("backout-deliveries.service", &send),
        ("backout-deliveries.timer", &timer),
    ] {
        let text = text.replace("/usr/local/bin/backout", binary.to_str().unwrap());
        units.push(sandbox.write(name, &text));
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&units)
        .output()
        .expect("systemd-analyze runs");
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify:\n{said}"
    );
}
