//! Every screen of the workbench, and the scoreboard, audited in headless Chromium by axe-core
//! (the WCAG rules it checks automatically: labels, names, contrast, landmarks, ARIA use …):
//! no violation of any impact. `tests/run` installs axe-core into `target/tools/axe`; without it
//! the test fails and says how to get it.

use fantoccini::Client;
use serde_json::Value;

mod support;
use support::*;

fn axe_source() -> String {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/tools/axe/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{} is missing ({e}): this test needs axe-core \
             (npm install --prefix target/tools/axe axe-core@4; tests/run installs it)",
            path.display()
        )
    })
}

/// The violations axe finds on the page the browser shows: (impact, rule, where).
async fn violations(browser: &Client, axe: &str) -> Vec<Value> {
    browser
        .execute(&format!("{axe}\n;return 1;"), vec![])
        .await
        .unwrap();
    let found = browser
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { resultTypes: ['violations'] }).then(r => done(
               r.violations.map(v => [v.impact, v.id, v.nodes.map(n => n.target.join(' '))])));",
            vec![],
        )
        .await
        .unwrap();
    found.as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_screen_passes_the_automatic_accessibility_rules() {
    require_browser();
    let axe = axe_source();
    let stack = Stack::start().await;
    let district = cezone_testkit::district(2, 12, 10, 7);
    stack.services.load(&district).await.unwrap();
    let (fw, _) = cezone_domain::guangdong::framework();
    cezone_client::demo::create_accounts(stack.services.channels.registry.clone(), &fw, &district)
        .await
        .unwrap();
    let base = stack.web.url();
    let driver = start_chromedriver().await;
    let mut found = Vec::new();
    let mut check = async |b: &Client, screen: &str| {
        let v = violations(b, &axe).await;
        if !v.is_empty() {
            found.push(format!("{screen}: {}", serde_json::to_string(&v).unwrap()));
        }
    };

    let town = open_browser(&driver).await;
    town.goto(&format!("{base}work/login")).await.unwrap();
    check(&town, "sign-in").await;
    type_into(&town, "#login", "town").await;
    type_into(&town, "#password", cezone_client::demo::DEMO_PASSWORD).await;
    click_and_load(&town, "#sign-in").await;
    for screen in [
        "work/",
        "work/statistics",
        "work/surveys",
        "work/office",
        "work/explain/5.2.1",
        "work/explain/5",
    ] {
        town.goto(&format!("{base}{screen}")).await.unwrap();
        check(&town, screen).await;
    }
    town.goto(&format!("{base}work/")).await.unwrap();
    click_and_load(&town, "#slots a.upload").await;
    check(&town, "upload").await;
    town.goto(&format!("{base}work/review")).await.unwrap();
    check(&town, "refusal").await;

    let office = open_browser(&driver).await;
    office.goto(&format!("{base}work/login")).await.unwrap();
    type_into(&office, "#login", "office").await;
    type_into(&office, "#password", cezone_client::demo::DEMO_PASSWORD).await;
    click_and_load(&office, "#sign-in").await;
    for screen in [
        "work/",
        "work/review",
        "work/statistics",
        "work/statistics/review",
        "work/office",
    ] {
        office.goto(&format!("{base}{screen}")).await.unwrap();
        check(&office, screen).await;
    }
    office.goto(&format!("{base}work/review")).await.unwrap();
    click_and_load(&office, "a.queue-item").await;
    check(&office, "review a record").await;
    let record = office.current_url().await.unwrap();
    let id = record
        .path()
        .trim_start_matches("/work/review/")
        .to_string();
    office
        .goto(&format!("{base}work/evidence/{id}"))
        .await
        .unwrap();
    check(&office, "a record's page").await;
    office.goto(&base).await.unwrap();
    scoreboard_drawn(&office).await;
    check(&office, "scoreboard").await;

    assert!(
        found.is_empty(),
        "accessibility violations:\n{}",
        found.join("\n")
    );
    for b in [town, office] {
        b.close().await.unwrap();
    }
    let mut driver = driver;
    let _ = driver.child.kill().await;
    stack.stop().await;
}
