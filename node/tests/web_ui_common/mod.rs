//! A small WebDriver client for the web UI's browser tests: Debian's chromium, headless, driven
//! by chromedriver over the W3C WebDriver protocol (JSON over HTTP on loopback). Every process
//! it starts runs in its own process group and is killed when the [`Browser`] is dropped.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "chromedriver";
/// How long a page may take to show what a test waits for.
pub const PAGE_DEADLINE: Duration = Duration::from_secs(60);

/// Whether chromium and chromedriver are installed; when they are not, the browser tests skip
/// with a message, unless STRATA_REQUIRE_BROWSER is set (CI), where they fail.
pub fn available() -> bool {
    let has = |bin: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {bin}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let found = Path::new(CHROMIUM).exists() && has(CHROMEDRIVER);
    if !found {
        assert!(
            std::env::var_os("STRATA_REQUIRE_BROWSER").is_none(),
            "STRATA_REQUIRE_BROWSER is set but {CHROMIUM} or {CHROMEDRIVER} is missing \
             (apt-get install chromium chromium-driver)"
        );
        eprintln!(
            "SKIPPED: the web UI browser tests need Debian's chromium and chromium-driver \
             ({CHROMIUM}, {CHROMEDRIVER}); install them or run .ci/run"
        );
    }
    found
}

/// Where screenshots go: `<target>/ui-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("ui-screenshots")
}

/// One headless chromium session.
pub struct Browser {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    driver: Option<Child>,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a session with a fresh profile.
    pub fn start() -> Browser {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let port = free_port();
        let log = std::env::temp_dir().join(format!("chromedriver-{port}.log"));
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("starting chromedriver");
        let profile = tempfile::tempdir().expect("profile dir");
        let mut b = Browser {
            rt,
            http: reqwest::Client::new(),
            driver: Some(driver),
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            _profile: profile,
        };
        b.wait_until("chromedriver ready", Duration::from_secs(30), |b| {
            b.call("GET", "/status", None)
                .is_ok_and(|v| v["ready"] == true)
        });
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {"binary": CHROMIUM, "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--window-size=1280,1000",
                format!("--user-data-dir={}", b._profile.path().display()),
            ]},
        }}});
        let v = b
            .call("POST", "/session", Some(caps))
            .unwrap_or_else(|e| panic!("opening a chromium session: {e}"));
        b.session = v["sessionId"].as_str().expect("sessionId").to_string();
        b
    }

    /// One WebDriver command; the `value` of its answer, or the driver's error.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self
                .http
                .post(url)
                .header("Content-Type", "application/json")
                .body(body.unwrap_or(json!({})).to_string()),
        };
        let text = self.rt.block_on(async {
            let resp = req
                .timeout(Duration::from_secs(120))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            resp.text().await.map_err(|e| e.to_string())
        })?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        if v["value"].get("error").is_some() {
            return Err(format!(
                "{}: {}",
                v["value"]["error"], v["value"]["message"]
            ));
        }
        Ok(v["value"].clone())
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    /// Opens `url` and waits for it to load.
    pub fn goto(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({ "url": url })))
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    /// Runs `script` (a function body; `return` gives the value) in the page.
    pub fn eval(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .unwrap_or_else(|e| panic!("running {script}: {e}"))
    }

    /// Polls `script` until it returns something other than null or false; returns that. On
    /// timeout, panics with `what` and the page's text.
    pub fn wait_for(&self, what: &str, script: &str) -> Value {
        let start = Instant::now();
        loop {
            let v = self.eval(script);
            if !v.is_null() && v != false {
                return v;
            }
            if start.elapsed() > PAGE_DEADLINE {
                let text = self.eval("return document.body ? document.body.innerText : ''");
                let console = self
                    .session_call("POST", "/se/log", Some(json!({"type": "browser"})))
                    .unwrap_or_else(Value::String);
                panic!(
                    "timed out after {PAGE_DEADLINE:?} waiting for {what}; the page shows:\n{text}\n\
                     browser console: {console}"
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The element matching `css` (its WebDriver reference).
    fn element(&self, css: &str) -> String {
        let v = self
            .session_call(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .unwrap_or_else(|e| panic!("finding {css}: {e}"));
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element reference for {css}: {v}"))
            .to_string()
    }

    /// Clicks the element matching `css`, as a user would.
    pub fn click(&self, css: &str) {
        let id = self.element(css);
        self.session_call("POST", &format!("/element/{id}/click"), None)
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    /// Types `text` into the element matching `css`, key by key.
    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.session_call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .unwrap_or_else(|e| panic!("typing into {css}: {e}"));
    }

    /// Empties the input matching `css`.
    pub fn clear(&self, css: &str) {
        let id = self.element(css);
        self.session_call("POST", &format!("/element/{id}/clear"), None)
            .unwrap_or_else(|e| panic!("clearing {css}: {e}"));
    }

    /// Saves a PNG of the page as `<screenshot_dir>/<name>.png`.
    pub fn screenshot(&self, name: &str) {
        let v = self
            .session_call("GET", "/screenshot", None)
            .unwrap_or_else(|e| panic!("screenshot: {e}"));
        let png = base64_decode(v.as_str().expect("base64 PNG"));
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("writing screenshot");
    }

    fn wait_until(&mut self, what: &str, deadline: Duration, cond: impl Fn(&Self) -> bool) {
        let start = Instant::now();
        while !cond(self) {
            if let Some(Ok(Some(status))) = self.driver.as_mut().map(Child::try_wait) {
                panic!("chromedriver exited with {status} before {what}");
            }
            assert!(
                start.elapsed() < deadline,
                "{what} not reached within {deadline:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.session_call("DELETE", "", None);
        }
        if let Some(mut d) = self.driver.take() {
            // chromedriver and the chromium it started share its process group.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", d.id())])
                .status();
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Standard base64 (what WebDriver's screenshot returns).
fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for v in s.bytes().filter_map(val) {
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
