//! A headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`), for
//! the admin console's tests: each browser has its own ChromeDriver, port and profile, and is
//! killed with them on drop, even when its test fails. Every wait is bounded and, when it runs
//! out, fails with the page's text, so that a console that shows the wrong thing says what it
//! showed.

use fantoccini::elements::Element;
use fantoccini::{Client, Locator};
use serde_json::{Value, json};
use session::{BrowserLog, connect};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod session;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a wait for the page lasts: each is for one API call and a render on loopback.
const WAIT: Duration = Duration::from_secs(10);

/// A browser of its own.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    driver: Child,
    profile: PathBuf,
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium behind it, logging what the page's scripts
    /// report. Panics, naming the packages, when they are not installed.
    pub async fn start() -> Self {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(binary).exists(),
                "{binary} is missing: the console's tests need Debian's chromium and \
                 chromium-driver (deploy/local/test.sh installs them)"
            );
        }
        let profile = crate::private::temp_dir("aic-browser");
        let port = crate::private::free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let browser = Self {
            client: connect(port, &profile).await,
            driver,
            profile,
        };
        browser.client.set_window_size(1280, 1000).await.ok();
        browser
    }

    /// A browser at the console of the API at `api`, showing its sign-in form.
    pub async fn console(api: &str) -> Self {
        let browser = Self::start().await;
        browser.open(&format!("{api}/console")).await;
        browser
    }

    /// Signs in to the console with `token`.
    pub async fn sign_in(&self, token: &str) {
        self.fill("API token", token).await;
        self.click("", "Sign in").await;
    }

    /// Opens the editor of the automation titled `name`, from the Automations page.
    pub async fn edit_automation(&self, name: &str) {
        self.click("//nav", "Automations").await;
        self.click(&tile(name), "Edit").await;
    }

    /// The part of the page's address after `#`: the console's view and its arguments.
    pub async fn fragment(&self) -> String {
        let url = self.client.current_url().await.expect("the page's address");
        url.fragment().unwrap_or_default().to_string()
    }

    /// Opens `url` and waits for its scripts to have run.
    pub async fn open(&self, url: &str) {
        self.client.goto(url).await.expect("the page opens");
        self.wait_until("the page's scripts ran", async |b| {
            b.client
                .execute("return document.readyState === 'complete'", vec![])
                .await
                .ok()
                .and_then(|v| v.as_bool())
                .unwrap_or(false)
        })
        .await;
    }

    /// The value of `script`'s `return`, in the page.
    pub async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .expect("the script runs")
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Waits for `ready` to hold; fails with `what` and the page's text when it does not
    /// within ten seconds.
    pub async fn wait_until(&self, what: &str, ready: impl AsyncFn(&Self) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !ready(self).await {
            self.not_after(deadline, what).await;
        }
    }

    /// Fails with `what` and the page's text past `deadline`; sleeps a little before it.
    async fn not_after(&self, deadline: Instant, what: &str) {
        if Instant::now() >= deadline {
            let said = match self.client.find(Locator::Id("flash")).await {
                Ok(flash) => flash.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            panic!(
                "waited {WAIT:?} for {what}; the console says {said:?}; the page shows:\n{}",
                self.text().await
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    /// Waits for the page to show `needle`; the page's text.
    pub async fn wait_for_text(&self, needle: &str) -> String {
        self.wait_until(&format!("the text {needle:?}"), async |b| {
            b.text().await.contains(needle)
        })
        .await;
        self.text().await
    }

    /// The displayed element `xpath` finds, waited for; not one of a page still being drawn
    /// (its `main` busy), which is about to be replaced.
    pub async fn element(&self, xpath: &str) -> Element {
        let deadline = Instant::now() + WAIT;
        loop {
            for e in self
                .client
                .find_all(Locator::XPath(xpath))
                .await
                .unwrap_or_default()
            {
                let settled = self
                    .client
                    .execute(
                        "return arguments[0].closest('main[aria-busy]') === null",
                        vec![json!(e)],
                    )
                    .await
                    .ok()
                    .and_then(|v| v.as_bool());
                if settled == Some(true) && e.is_displayed().await.unwrap_or(false) {
                    return e;
                }
            }
            self.not_after(deadline, &format!("an element at {xpath}"))
                .await;
        }
    }

    /// Clicks the displayed button labelled `label` (within `scope`, an XPath, or anywhere
    /// with `//`).
    pub async fn click(&self, scope: &str, label: &str) {
        let button = self
            .element(&format!(
                "{scope}//button[normalize-space()={}]",
                quoted(label)
            ))
            .await;
        button.click().await.expect("the button takes the click");
    }

    /// Double-clicks the displayed button labelled `label` (within `scope`): both clicks in
    /// one sequence of pointer actions, as a mouse sends them.
    pub async fn double_click(&self, scope: &str, label: &str) {
        use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
        let element = self
            .element(&format!(
                "{scope}//button[normalize-space()={}]",
                quoted(label)
            ))
            .await;
        let (down, up) = (
            PointerAction::Down {
                button: MOUSE_BUTTON_LEFT,
            },
            PointerAction::Up {
                button: MOUSE_BUTTON_LEFT,
            },
        );
        let mouse = MouseActions::new("mouse".into())
            .then(PointerAction::MoveToElement {
                element,
                duration: None,
                x: 0.0,
                y: 0.0,
            })
            .then(down.clone())
            .then(up.clone())
            .then(down)
            .then(up);
        self.client
            .perform_actions(mouse)
            .await
            .expect("double-clicked");
    }

    /// The input (or select, or text area) of the form field labelled `label`, emptied and
    /// given `value`.
    pub async fn fill(&self, label: &str, value: &str) {
        let input = self.field(label).await;
        input.clear().await.expect("the field clears");
        input.send_keys(value).await.expect("the field takes keys");
    }

    /// The input of the form field labelled `label`: through its label's `for`, or named by
    /// its `aria-label`.
    pub async fn field(&self, label: &str) -> Element {
        self.element(&format!(
            "//*[@id=//label[normalize-space()={0}]/@for] | //*[@aria-label={0}]",
            quoted(label)
        ))
        .await
    }

    /// What the form field labelled `label` holds.
    pub async fn value(&self, label: &str) -> Option<String> {
        let field = self.field(label).await;
        field.prop("value").await.expect("the field's value reads")
    }

    /// Chooses `value` in the select labelled `label`.
    pub async fn choose(&self, label: &str, value: &str) {
        let option = Locator::XPath(&format!("./option[@value={}]", quoted(value)));
        let select = self.field(label).await;
        let option = select.find(option).await.expect("the option");
        option.click().await.expect("chosen");
    }

    /// Waits for the console's message to say `needle`; the message, and whether it is an
    /// error.
    pub async fn flash_saying(&self, needle: &str) -> (String, bool) {
        let shown = self
            .element(&format!(
                "//div[@id='flash']/div[contains(., {})]",
                quoted(needle)
            ))
            .await;
        let error = shown.attr("class").await.expect("reads").as_deref() == Some("error");
        (shown.text().await.expect("text"), error)
    }

    /// Accepts the page's `confirm` or `prompt`, answering a prompt with `answer`; what it
    /// asked.
    pub async fn accept_dialog(&self, answer: Option<&str>) -> String {
        let asked = self.dialog().await;
        if let Some(text) = answer {
            self.client.send_alert_text(text).await.expect("typed");
        }
        self.client.accept_alert().await.expect("accepted");
        asked
    }

    /// Dismisses the page's `confirm` or `prompt` (its Cancel); what it asked.
    pub async fn dismiss_dialog(&self) -> String {
        let asked = self.dialog().await;
        self.client.dismiss_alert().await.expect("dismissed");
        asked
    }

    /// The text of the dialog the page opened, waited for.
    async fn dialog(&self) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(asked) = self.client.get_alert_text().await {
                return asked;
            }
            assert!(Instant::now() < deadline, "waited {WAIT:?} for a dialog");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the page's scripts reported as errors — uncaught exceptions, refusals by the
    /// content security policy, `console.error` — since the last call, each once. Failed API calls
    /// (the network's own entries) are left out: a test checks what the page made of them.
    pub async fn problems(&self) -> Vec<String> {
        let logged = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("chromedriver gives the browser's log");
        logged
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE" && e["source"] != "network")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// Ends the session; the browser and its driver are gone after.
    pub async fn close(self) {
        let problems = self.problems().await;
        self.client.clone().close().await.ok();
        assert!(
            problems.is_empty(),
            "the page's scripts reported {problems:?}"
        );
    }
}

/// `text` as an XPath string literal (XPath 1.0 has no escapes: a text holding both quote
/// marks is joined with `concat`).
pub fn quoted(text: &str) -> String {
    if !text.contains('\'') {
        format!("'{text}'")
    } else if !text.contains('"') {
        format!("\"{text}\"")
    } else {
        let parts: Vec<String> = text.split('\'').map(|p| format!("'{p}'")).collect();
        format!("concat({})", parts.join(", \"'\", "))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        // Chromium's processes name their profile: none outlives the test.
        let _ = Command::new("pkill")
            .args(["-KILL", "-f", &self.profile.to_string_lossy()])
            .status();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The console's tile titled `title`, as an XPath scope.
pub fn tile(title: &str) -> String {
    format!(
        "//div[@class='tile'][h4[normalize-space()={}]]",
        quoted(title)
    )
}

/// A status tag (`connected`, `succeeded`, `live`…) within the XPath scope `scope`.
pub fn status(scope: &str, status: &str) -> String {
    format!("{scope}//span[contains(@class, 'tag') and normalize-space()='{status}']")
}
