//! Headless Chromium driven over WebDriver: a private chromedriver on a free port,
//! killed (with the browser it started) on drop.

use std::{
    future::Future,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use fantoccini::{elements::Element, error::CmdError, Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use nix::{
    sys::signal::{killpg, Signal},
    unistd::Pid,
};
use serde_json::{json, Value};

use crate::helpers::{eventually, try_eventually, WAIT};

const INSTALL_HINT: &str = "the browser test needs Debian's chromium and chromedriver: \
     apt-get install -y --no-install-recommends chromium chromium-driver \
     (.ci/run installs them; CHROME_BIN and CHROMEDRIVER override the paths)";

fn tool(var: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    assert!(
        path.exists(),
        "{} not found: {INSTALL_HINT}",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// chromedriver in a process group of its own, so that dropping it also ends the
/// Chromium it launched, even when a failed test never closed the session.
struct ChromeDriver {
    child: Child,
    port: u16,
}

impl ChromeDriver {
    fn start() -> Self {
        let binary = tool("CHROMEDRIVER", "/usr/bin/chromedriver");
        let port = free_port();
        let child = Command::new(&binary)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}; {INSTALL_HINT}", binary.display()));
        Self { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The group id is chromedriver's own pid (process_group(0) above).
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

pub struct Browser {
    pub client: Client,
    /// Where a failed wait leaves a screenshot of the page.
    artifacts: PathBuf,
    _driver: ChromeDriver,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn launch(artifacts: &Path) -> Self {
        let chromium = tool("CHROME_BIN", "/usr/bin/chromium");
        let driver = ChromeDriver::start();
        let profile = tempfile::tempdir().expect("browser profile dir");
        let status = reqwest::Client::new();
        eventually(WAIT, "chromedriver to be ready", || async {
            let resp = status
                .get(format!("{}/status", driver.url()))
                .send()
                .await
                .ok()?;
            let body: Value = resp.json().await.ok()?;
            body["value"]["ready"].as_bool().filter(|r| *r)
        })
        .await;
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-crash-reporter".to_owned(),
            "--lang=en-US".to_owned(),
            "--window-size=1440,900".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.display().to_string(),
                "args": args,
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url())
            .await
            .unwrap_or_else(|e| {
                panic!("chromedriver could not start Chromium: {e}; {INSTALL_HINT}")
            });
        Self {
            client,
            artifacts: artifacts.to_owned(),
            _driver: driver,
            _profile: profile,
        }
    }

    /// End the WebDriver session (Chromium exits); the driver goes on drop.
    pub async fn close(self) {
        let Self {
            client,
            _driver,
            _profile,
            ..
        } = self;
        let _ = client.close().await;
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// Poll the page until `check` gives `Some`; on timeout save a screenshot and
    /// fail with what the page showed. WebDriver errors (an element not there yet,
    /// or replaced by a refresh) count as "not yet".
    pub async fn until<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, CmdError>>,
    {
        let seen = try_eventually(WAIT, || {
            let attempt = check();
            async move { attempt.await.ok().flatten() }
        })
        .await;
        match seen {
            Ok(v) => v,
            Err(_) => {
                let page = self
                    .client
                    .execute("return document.body.innerText", vec![])
                    .await
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                let shot = self.artifacts.join("ui-failure.png");
                if let Ok(png) = self.client.screenshot().await {
                    let _ = std::fs::write(&shot, png);
                }
                panic!(
                    "timed out after {WAIT:?} waiting for {what}\n--- page text ---\n{page}\n\
                     --- screenshot: {} ---",
                    shot.display()
                );
            }
        }
    }

    /// The element for `css`, once it is displayed.
    pub async fn visible(&self, css: &str) -> Element {
        self.until(&format!("{css} to be displayed"), || async {
            let e = self.client.find(Locator::Css(css)).await?;
            Ok(e.is_displayed().await?.then_some(e))
        })
        .await
    }

    /// Wait until `css` matches nothing displayed.
    pub async fn gone(&self, css: &str) {
        self.until(&format!("{css} to disappear"), || async {
            for e in self.client.find_all(Locator::Css(css)).await? {
                if e.is_displayed().await? {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        })
        .await
    }

    /// Whether anything displayed matches `css` right now.
    pub async fn shows(&self, css: &str) -> bool {
        for e in self
            .client
            .find_all(Locator::Css(css))
            .await
            .expect("query")
        {
            if e.is_displayed().await.unwrap_or(false) {
                return true;
            }
        }
        false
    }

    /// The text content of the first match of `css`, `None` when there is none.
    pub async fn text(&self, css: &str) -> Result<Option<String>, CmdError> {
        let v = self
            .client
            .execute(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
                vec![json!(css)],
            )
            .await?;
        Ok(v.as_str().map(str::to_owned))
    }

    /// Wait until the text of `css` is exactly `expected`.
    pub async fn text_is(&self, css: &str, expected: &str) {
        self.until(&format!("{css} to read {expected:?}"), || async {
            Ok(self.text(css).await?.filter(|t| t == expected).map(|_| ()))
        })
        .await
    }

    /// Wait until the text of `css` satisfies `ok`, and return it.
    pub async fn text_where(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        self.until(what, || async {
            Ok(self.text(css).await?.filter(|t| ok(t)))
        })
        .await
    }

    pub async fn click(&self, css: &str) {
        self.visible(css).await.click().await.expect("click");
    }

    /// Replace the value of the input `css` by typing `text` into it.
    pub async fn fill(&self, css: &str, text: &str) {
        let input = self.visible(css).await;
        input.clear().await.expect("clear input");
        if !text.is_empty() {
            input.send_keys(text).await.expect("type");
        }
    }

    pub async fn screenshot(&self, path: &Path) {
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(path, png).expect("write screenshot");
    }
}
