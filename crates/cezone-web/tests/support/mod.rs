//! What the browser tests share: Debian's Chromium driven headless through chromedriver, and
//! waiting for a page or a service to show a change.
#![allow(dead_code)]

use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long the page or the services may take to show a change before the test gives up.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub fn require_browser() {
    for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
        assert!(
            std::path::Path::new(path).exists(),
            "{path} is missing: this test needs Debian's {package} \
             (apt-get install -y chromium chromium-driver; tests/run installs them as root)"
        );
    }
}

/// Polls `check` until it yields a value, for at most `PATIENCE`.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub struct Driver {
    pub child: tokio::process::Child,
    pub url: String,
}

pub async fn start_chromedriver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = tokio::process::Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
    eventually("chromedriver to listen", || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

pub async fn open_browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,2200", "--lang=zh-CN"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a headless Chromium session")
}

pub async fn text(browser: &Client, css: &str) -> String {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} is not on the page: {e}"))
        .text()
        .await
        .unwrap()
        .trim()
        .to_string()
}

/// Keeps a screenshot of what the browser shows as `target/test-artifacts/{name}.png`.
pub async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), &png).unwrap();
}

/// Clicks the element `css` finds.
pub async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} is not on the page: {e}"))
        .click()
        .await
        .unwrap();
}

/// Types `keys` into the element `css` finds.
pub async fn type_into(browser: &Client, css: &str, keys: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} is not on the page: {e}"))
        .send_keys(keys)
        .await
        .unwrap();
}

/// Waits until the scoreboard page has drawn its data once; returns the moment it loaded
/// (`window.cezoneLoadedAt`), which stays the same while the page updates in place.
pub async fn scoreboard_drawn(browser: &Client) -> serde_json::Value {
    eventually("the scoreboard to draw its data", || {
        let b = browser.clone();
        async move {
            let n = b
                .execute("return Number(document.body.dataset.renders || 0)", vec![])
                .await
                .ok()?;
            (n.as_u64()? >= 1).then_some(())
        }
    })
    .await;
    browser
        .execute("return window.cezoneLoadedAt", vec![])
        .await
        .unwrap()
}

/// Whether accepting a document for an evidence slot of `item` that `slot` picks out must
/// raise the district total: the criterion is scored on evidence alone, such a slot exists, and
/// neither the criterion nor any group above it is at full marks.
pub fn acceptance_moves_the_total(
    items: &[cezone_proto::scoring::v1::ItemScore],
    item: &cezone_proto::scoring::v1::ItemScore,
    slot: impl Fn(&serde_json::Value) -> bool,
) -> bool {
    if item.explanation_json.is_empty() {
        return false;
    }
    let x: serde_json::Value = serde_json::from_str(&item.explanation_json).unwrap();
    if x["rule"]["rule"] != "evidence" {
        return false;
    }
    let has_slot = x["rule"]["evidence"]
        .as_array()
        .is_some_and(|slots| slots.iter().any(&slot));
    let short = |code: &str| {
        items
            .iter()
            .find(|i| i.code == code)
            .is_some_and(|i| i.lost.parse::<f64>().unwrap() > 0.0)
    };
    let segments: Vec<&str> = item.code.split('.').collect();
    has_slot && (1..=segments.len()).all(|n| short(&segments[..n].join(".")))
}

/// Waits until `css` finds an element (a page that has just been asked for).
pub async fn appears(browser: &Client, css: &str) {
    let what = format!("{css} to appear");
    eventually(&what, || async {
        browser.find(Locator::Css(css)).await.ok().map(|_| ())
    })
    .await;
}

/// The services (the scheduler too) and the web server in-process on SQLite, on an
/// in-process bus.
pub struct Stack {
    pub bus: std::sync::Arc<dyn cezone_bus::Bus>,
    pub env: cezone_platform::testing::TestEnv,
    pub services: cezone_testkit::Services,
    pub scheduler: cezone_scheduler::Application,
    pub web: cezone_web::Application,
}

impl Stack {
    pub async fn start() -> Stack {
        Stack::start_with_clock(std::sync::Arc::new(cezone_scheduler::SystemClock)).await
    }

    /// With the scheduler's time given by `clock`.
    pub async fn start_with_clock(clock: std::sync::Arc<dyn cezone_scheduler::Clock>) -> Stack {
        let bus = cezone_bus::connect(&cezone_platform::testing::in_process_bus(
            &cezone_platform::testing::fresh_bus_prefix(),
        ))
        .await
        .unwrap();
        let env =
            cezone_platform::testing::test_env(cezone_platform::testing::Backend::Sqlite).await;
        let mut services = cezone_testkit::Services::start(&env.settings, bus.clone())
            .await
            .unwrap();
        let scheduler = cezone_scheduler::Application::build(&services.settings, clock)
            .await
            .unwrap();
        services.settings.services.scheduler_url = scheduler.url();
        let web = cezone_web::Application::build(&services.settings)
            .await
            .unwrap();
        assert_ne!(web.port(), 0);
        Stack {
            bus,
            env,
            services,
            scheduler,
            web,
        }
    }

    pub async fn stop(self) {
        self.web.stop().await;
        self.scheduler.stop().await;
        self.services.stop().await;
        self.bus.close().await;
        drop(self.env);
    }
}

/// Clicks what `css` finds and waits for the page it leads to: the document it was clicked on
/// is marked, and the wait ends when a document without the mark has loaded.
pub async fn click_and_load(browser: &Client, css: &str) {
    browser
        .execute("document.documentElement.dataset.left = '1'", vec![])
        .await
        .unwrap();
    click(browser, css).await;
    let what = format!("the page after clicking {css}");
    eventually(&what, || async {
        let v = browser
            .execute(
                "return document.readyState === 'complete' && !document.documentElement.dataset.left",
                vec![],
            )
            .await
            .ok()?;
        (v == serde_json::Value::Bool(true)).then_some(())
    })
    .await;
}
