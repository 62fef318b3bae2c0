//! A small W3C WebDriver client for the browser test: ChromeDriver on a free loopback port
//! starting Debian's headless Chromium with a temporary profile, and the few commands a story
//! needs (navigate, find, click, type, read text, attributes and cookies). Plain HTTP with
//! `reqwest` and `serde_json`; no browser download, no extra crate.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C name of an element reference in WebDriver JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long any one wait may take.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// ChromeDriver and the Chromium it starts. Both carry a marker in their environment; dropping
/// the driver (at the end, or while a failed test unwinds) kills every process that has it.
pub struct Driver {
    child: Child,
    base: String,
    marker: String,
    profile: tempfile::TempDir,
}

impl Driver {
    pub fn start() -> Driver {
        for (path, what) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromedriver")] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: the browser test needs Debian's {what} \
                 (`apt-get install -y chromium chromium-driver`, as scripts/test does)"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let profile = tempfile::tempdir().expect("a profile directory");
        let marker = format!("BACKOUT_BROWSER_TEST={}", profile.path().display());
        let (name, value) = marker.split_once('=').expect("a marker");
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .env(name, value)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{CHROMEDRIVER} does not start: {e}"));
        Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            marker,
            profile,
        }
    }

    fn profile(&self) -> &Path {
        self.profile.path()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let pids = marked(&self.marker);
        if !pids.is_empty() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .args(pids.iter().map(u32::to_string))
                .status();
        }
    }
}

/// Live processes whose environment holds `mark` (`NAME=value`).
fn marked(mark: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == mark.as_bytes()))
        })
        .collect()
}

/// One WebDriver session: the few W3C commands the story needs.
pub struct Browser {
    http: reqwest::Client,
    session: String,
    driver: String,
}

impl Browser {
    pub async fn open(driver: &Driver) -> Browser {
        let http = client(true);
        let start = Instant::now();
        loop {
            let ready = http
                .get(format!("{}/status", driver.base))
                .send()
                .await
                .ok()
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ready {
                break;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "chromedriver did not answer on {}",
                driver.base
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run",
                    "--disable-dev-shm-usage", "--window-size=420,900",
                    format!("--user-data-dir={}", driver.profile().display()),
                ],
            },
        }}});
        let response = http
            .post(format!("{}/session", driver.base))
            .json(&capabilities)
            .send()
            .await
            .expect("chromedriver answers");
        let body: Value = response.json().await.expect("JSON from chromedriver");
        let session = body["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {body:#}"))
            .to_string();
        Browser {
            http,
            session,
            driver: driver.base.clone(),
        }
    }

    /// One command; `Err((error, message))` when WebDriver reports an error.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, (String, String)> {
        let url = format!("{}/session/{}{path}", self.driver, self.session);
        let request = match method {
            "GET" => self.http.get(url),
            "POST" => self.http.post(url).json(&body.unwrap_or_else(|| json!({}))),
            "DELETE" => self.http.delete(url),
            other => panic!("method {other}"),
        };
        let response = request.send().await.expect("chromedriver answers");
        let value: Value = response.json().await.expect("JSON from chromedriver");
        match value["value"]["error"].as_str() {
            Some(error) => Err((
                error.to_string(),
                value["value"]["message"].as_str().unwrap_or("").to_string(),
            )),
            None => Ok(value["value"].clone()),
        }
    }

    pub async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, path, body)
            .await
            .unwrap_or_else(|(error, message)| panic!("{method} {path}: {error}: {message}"))
    }

    pub async fn goto(&self, url: &str) {
        self.ok("POST", "/url", Some(json!({ "url": url }))).await;
    }

    pub async fn url(&self) -> String {
        self.ok("GET", "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn source(&self) -> String {
        self.ok("GET", "/source", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The element matching `css`, if any.
    pub async fn find(&self, css: &str) -> Option<String> {
        let found = self
            .call(
                "POST",
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        match found {
            Ok(value) => value[ELEMENT].as_str().map(str::to_string),
            Err((error, _)) if error == "no such element" => None,
            Err((error, message)) => panic!("find {css}: {error}: {message}"),
        }
    }

    /// The element matching `css`, waiting for it to appear (a page may still be loading).
    pub async fn get(&self, css: &str) -> String {
        let start = Instant::now();
        loop {
            if let Some(element) = self.find(css).await {
                return element;
            }
            if start.elapsed() > PATIENCE {
                panic!(
                    "no element {css} on {}:\n{}",
                    self.url().await,
                    self.source().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn click(&self, css: &str) {
        let element = self.get(css).await;
        self.ok("POST", &format!("/element/{element}/click"), None)
            .await;
    }

    /// Clicks what submits a form or follows a link, and waits until the next page replaced
    /// this one.
    pub async fn click_through(&self, css: &str) {
        let page = self.get("html").await;
        self.click(css).await;
        self.wait_stale(&page, &format!("the page after clicking {css}"))
            .await;
        self.get("body").await;
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.get(css).await;
        self.ok("POST", &format!("/element/{element}/clear"), None)
            .await;
        self.ok(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// An element's `textContent` (hidden text included), or `Err` when it went stale.
    pub async fn text_of(&self, element: &str) -> Result<String, (String, String)> {
        self.call(
            "GET",
            &format!("/element/{element}/property/textContent"),
            None,
        )
        .await
        .map(|v| v.as_str().unwrap_or_default().trim().to_string())
    }

    pub async fn text(&self, css: &str) -> String {
        let element = self.get(css).await;
        self.text_of(&element)
            .await
            .unwrap_or_else(|(e, m)| panic!("text of {css}: {e}: {m}"))
    }

    pub async fn attribute(&self, css: &str, name: &str) -> String {
        let element = self.get(css).await;
        self.ok("GET", &format!("/element/{element}/attribute/{name}"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits, without navigating, until `css` exists and its text satisfies `ready`.
    pub async fn wait_text(&self, css: &str, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            if let Some(element) = self.find(css).await
                && let Ok(text) = self.text_of(&element).await
                && ready(&text)
            {
                return text;
            }
            if start.elapsed() > PATIENCE {
                panic!(
                    "timed out waiting for {what} ({css}) on {}:\n{}",
                    self.url().await,
                    self.source().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `element` is gone with its page (a form's post loaded the next one).
    pub async fn wait_stale(&self, element: &str, what: &str) {
        let start = Instant::now();
        while self.text_of(element).await.is_ok() {
            assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Saves a PNG of the page as `<dir>/<name>.png` when `BACKOUT_BROWSER_SCREENSHOTS=<dir>`
    /// is set (to look at the pages as a phone shows them); does nothing otherwise.
    pub async fn screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("BACKOUT_BROWSER_SCREENSHOTS") else {
            return;
        };
        let data = self.ok("GET", "/screenshot", None).await;
        let encoded = data.as_str().unwrap_or_default();
        let path = Path::new(&dir).join(format!("{name}.png"));
        let decoded = base64_decode(encoded);
        std::fs::write(&path, decoded).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    pub async fn close(self) {
        let _ = self.call("DELETE", "", None).await;
    }
}

/// A client with the ring provider installed (reqwest is built without one); `follow` decides
/// whether it follows redirects.
pub fn client(follow: bool) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let policy = if follow {
        reqwest::redirect::Policy::default()
    } else {
        reqwest::redirect::Policy::none()
    };
    reqwest::Client::builder()
        .redirect(policy)
        .build()
        .expect("an HTTP client")
}

/// Standard base64 (WebDriver's screenshots), without a crate for it.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let digits: Vec<u8> = text.bytes().filter_map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, d)| n | (u32::from(*d) << (18 - 6 * i)));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}
