//! The workbench in a real browser, through a whole cycle: a town signs in and sees what it
//! owes, uploads a document; the evaluation office returns it with a comment; the town sees the
//! comment and uploads a revision; the office accepts it; the open scoreboard's total moves
//! without a reload. And the refusals: a town cannot open another town's upload screen or the
//! review screens, a form without its token is refused, an idle session goes back to sign-in.
//! The four services and the web server run in-process on SQLite; Debian's Chromium is driven
//! headless. Screenshots of each screen go to `target/test-artifacts/workbench-*.png`.

use std::time::Duration;

use cezone_domain::guangdong;
use cezone_proto::scoring::v1 as ps;
use fantoccini::{Client, Locator};
use serde_json::Value;

mod support;
use support::*;

const PASSWORD: &str = cezone_client::demo::DEMO_PASSWORD;

async fn sign_in(browser: &Client, base: &str, login: &str) {
    browser.goto(&format!("{base}work/")).await.unwrap();
    // Not signed in: the workbench sends the browser to its sign-in page.
    eventually("the sign-in page", || async {
        browser
            .current_url()
            .await
            .ok()
            .filter(|u| u.path() == "/work/login")
    })
    .await;
    type_into(browser, "#login", login).await;
    type_into(browser, "#password", PASSWORD).await;
    click_and_load(browser, "#sign-in").await;
    appears(browser, "#who").await;
}

async fn path(browser: &Client) -> String {
    let u = browser.current_url().await.unwrap();
    match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    }
}

/// Drops a file on the upload form as a person drags one from their desktop: `body` as its
/// text, or `size` zero bytes.
async fn drop_file(browser: &Client, name: &str, body: Option<&str>, size: u64) {
    browser
        .execute(
            "const [name, body, size] = arguments;
             const dt = new DataTransfer();
             const content = body === null ? [new Uint8Array(size)] : [body];
             dt.items.add(new File(content, name, { type: name.endsWith('.pdf') ? 'application/pdf' : '' }));
             document.getElementById('drop').dispatchEvent(
               new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));",
            vec![
                serde_json::json!(name),
                serde_json::json!(body),
                serde_json::json!(size),
            ],
        )
        .await
        .unwrap();
}

/// Chooses `file` in the upload form and sends it; waits for the record's page.
async fn upload(browser: &Client, file: &std::path::Path) -> String {
    type_into(browser, "#file", file.to_str().unwrap()).await;
    click(browser, "#send").await;
    eventually("the uploaded record's page", || async {
        let p = path(browser).await;
        (p.starts_with("/work/evidence/") && !p.starts_with("/work/evidence/new"))
            .then(|| p.trim_start_matches("/work/evidence/").to_string())
    })
    .await
}

/// A slot of `town` under `unit` that is missing or returned and whose acceptance must raise
/// the district total: its criterion is scored on evidence alone and neither it nor any group
/// above it is at full marks.
async fn slot_that_moves_the_total(
    scoring: &mut cezone_proto::scoring::v1::scoring_service_client::ScoringServiceClient<
        cezone_platform::access::auth::AuthChannel,
    >,
    unit: &str,
    town: &str,
) -> String {
    let items = scoring
        .get_scores(ps::GetScoresRequest {
            explain: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .items;
    // A missing slot first: the town's upload is then the slot's only record.
    for wanted in ["missing", "returned"] {
        let open = |s: &Value| s["unit"] == unit && s["org_unit"] == town && s["status"] == wanted;
        if let Some(item) = items
            .iter()
            .find(|i| acceptance_moves_the_total(&items, i, open))
        {
            return item.code.clone();
        }
    }
    panic!("the district has no open slot of {town} whose acceptance moves the total");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_town_and_the_office_work_a_document_through_return_revision_and_acceptance() {
    require_browser();
    let stack = Stack::start().await;
    let (services, web) = (&stack.services, &stack.web);
    // A second page server whose sessions end after a second unused.
    let mut short = services.settings.clone();
    short.web.session_idle_seconds = 1;
    let short_web = cezone_web::Application::build(&short).await.unwrap();
    let (district, _, town) = district_with_accounts(services).await;
    let other_town = district
        .units
        .iter()
        .find(|u| u.level == cezone_domain::org::OrgLevel::Town && u.id.as_str() != town.org_unit)
        .unwrap()
        .id
        .to_string();
    let mut scoring = services.scores().await.unwrap();
    scoring
        .recompute(ps::RecomputeRequest::default())
        .await
        .unwrap();
    let criterion = slot_that_moves_the_total(&mut scoring, &town.unit, &town.org_unit).await;

    let files = tempfile::tempdir().unwrap();
    let first = files.path().join("领导小组成立文件.pdf");
    std::fs::write(&first, b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n").unwrap();
    let revision = files.path().join("领导小组成立文件-修改稿.pdf");
    std::fs::write(
        &revision,
        b"%PDF-1.4\n1 0 obj<<>>endobj\n% with the minutes\ntrailer<<>>\n%%EOF\n",
    )
    .unwrap();

    let driver = start_chromedriver().await;
    let base = web.url();

    // The town signs in and sees what it owes.
    let town_browser = open_browser(&driver).await;
    sign_in(&town_browser, &base, "town").await;
    let who = text(&town_browser, "#who").await;
    assert!(who.contains("镇街 Town"), "{who}");
    assert!(who.contains(&town.org_unit), "{who}");
    let row = format!(
        "#slots tr[data-criterion='{criterion}'][data-org-unit='{}']",
        town.org_unit
    );
    let before = text(&town_browser, &row).await;
    assert!(
        before.contains("未提交 Missing") || before.contains("已退回 Returned"),
        "{before}"
    );
    assert!(!text(&town_browser, "#deadline").await.is_empty());
    town_browser
        .find(Locator::Css("#statistics"))
        .await
        .expect("the statistics its return must hold");
    // ★ criteria come first.
    let stars = town_browser
        .execute(
            "return Array.from(document.querySelectorAll('#slots tr.slot')).map(r => r.querySelector('.star') ? 1 : 0)",
            vec![],
        )
        .await
        .unwrap();
    let stars: Vec<u8> = serde_json::from_value(stars).unwrap();
    assert!(stars.windows(2).all(|w| w[0] >= w[1]), "{stars:?}");
    screenshot(&town_browser, "workbench-tasks").await;
    // On a phone's screen the page still fits its width: tables scroll inside their frame.
    town_browser.set_window_size(390, 844).await.unwrap();
    let overflow = town_browser
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        overflow.as_i64(),
        Some(0),
        "no sideways scrolling of the page"
    );
    screenshot(&town_browser, "workbench-tasks-phone").await;
    town_browser.set_window_size(1400, 2200).await.unwrap();

    // It uploads a document to the criterion.
    click_and_load(&town_browser, &format!("{row} a.upload")).await;
    appears(&town_browser, "#upload-form").await;
    // A program is refused before anything is sent.
    let program = files.path().join("setup.exe");
    std::fs::write(&program, b"MZ....").unwrap();
    type_into(&town_browser, "#file", program.to_str().unwrap()).await;
    let problem = eventually("the program to be refused", || async {
        let t = text(&town_browser, "#file-problem").await;
        t.contains("program").then_some(t)
    })
    .await;
    assert!(problem.contains("setup.exe"), "{problem}");
    screenshot(&town_browser, "workbench-upload-refused").await;
    town_browser.refresh().await.unwrap();
    appears(&town_browser, "#drop").await;
    // So is a file over the size limit, dropped on the form.
    let max = services.settings.evidence.max_file_bytes;
    drop_file(&town_browser, "扫描件.pdf", None, max + 1).await;
    let problem = eventually("the large file to be refused", || async {
        let t = text(&town_browser, "#file-problem").await;
        t.contains("larger than the limit").then_some(t)
    })
    .await;
    assert!(problem.contains("扫描件.pdf"), "{problem}");
    // A document dropped on the form goes up with the progress bar and lands on its page.
    let pdf = std::fs::read_to_string(&first).unwrap();
    drop_file(&town_browser, "领导小组成立文件.pdf", Some(&pdf), 0).await;
    assert!(
        text(&town_browser, "#chosen")
            .await
            .contains("领导小组成立文件.pdf")
    );
    click(&town_browser, "#send").await;
    let id = eventually("the uploaded record's page", || async {
        let p = path(&town_browser).await;
        (p.starts_with("/work/evidence/") && !p.starts_with("/work/evidence/new"))
            .then(|| p.trim_start_matches("/work/evidence/").to_string())
    })
    .await;
    assert!(
        text(&town_browser, "#history")
            .await
            .contains("领导小组成立文件.pdf")
    );
    assert!(text(&town_browser, "#state").await.contains("待审核"));
    screenshot(&town_browser, "workbench-evidence").await;

    // The town may not open another town's upload screen, nor the review screens.
    town_browser
        .goto(&format!(
            "{base}work/evidence/new?criterion={criterion}&org_unit={other_town}&unit={}",
            town.unit
        ))
        .await
        .unwrap();
    let refused = text(&town_browser, "#error-title").await;
    assert!(refused.contains("无权操作"), "{refused}");
    assert!(
        text(&town_browser, "#error-detail")
            .await
            .contains(&other_town)
    );
    screenshot(&town_browser, "workbench-forbidden").await;
    for screen in ["work/review".to_string(), format!("work/review/{id}")] {
        town_browser.goto(&format!("{base}{screen}")).await.unwrap();
        assert!(
            text(&town_browser, "#error-title")
                .await
                .contains("无权操作"),
            "{screen}"
        );
    }

    // The scoreboard is open before any review.
    let board = open_browser(&driver).await;
    board.goto(&base).await.unwrap();
    let loaded_at = scoreboard_drawn(&board).await;
    let total_before: f64 = text(&board, "#total").await.parse().unwrap();

    // The office finds it in its queue and returns it with a comment.
    let office = open_browser(&driver).await;
    sign_in(&office, &base, "office").await;
    office
        .goto(&format!(
            "{base}work/review?criterion={criterion}&org_unit={}",
            town.org_unit
        ))
        .await
        .unwrap();
    screenshot(&office, "workbench-queue").await;
    // The document is in the office's queue.
    click_and_load(&office, &format!("a.queue-item[data-id='{id}']")).await;
    appears(&office, "#return-form").await;
    office
        .find(Locator::Css("#document"))
        .await
        .expect("the document shown in the page");
    screenshot(&office, "workbench-review").await;
    // A form without its token is refused, and changes nothing.
    office
        .execute(
            "document.querySelector('#return-form input[name=csrf]').remove()",
            vec![],
        )
        .await
        .unwrap();
    type_into(&office, "#comment", "no token").await;
    click_and_load(&office, "#return").await;
    eventually("the refusal of a form without its token", || async {
        let t = text(&office, "#error-title").await;
        t.contains("表单已失效").then_some(())
    })
    .await;
    office
        .goto(&format!(
            "{base}work/review/{id}?criterion={criterion}&org_unit={}",
            town.org_unit
        ))
        .await
        .unwrap();
    assert!(text(&office, "#state").await.contains("待审核"));
    let comment = "缺少会议记录，请补充 <missing minutes>";
    // The keyboard takes the reviewer to the comment.
    type_into(&office, "body", "r").await;
    let focused = office
        .execute("return document.activeElement.id", vec![])
        .await
        .unwrap();
    assert_eq!(focused, "comment");
    type_into(&office, "#comment", comment).await;
    click_and_load(&office, "#return").await;
    eventually("the office back on its queue", || async {
        let p = path(&office).await;
        (!p.starts_with(&format!("/work/review/{id}"))).then_some(())
    })
    .await;

    // The town sees the comment and uploads a revision.
    town_browser.goto(&format!("{base}work/")).await.unwrap();
    let row_now = text(&town_browser, &row).await;
    assert!(row_now.contains("已退回 Returned"), "{row_now}");
    assert!(row_now.contains(comment), "{row_now}");
    screenshot(&town_browser, "workbench-returned").await;
    click_and_load(&town_browser, &format!("{row} a.revise")).await;
    let revised = upload(&town_browser, &revision).await;
    assert_eq!(revised, id, "a revision is the next version of the record");
    let history = text(&town_browser, "#history").await;
    assert!(
        history.contains("v2") && history.contains("v1"),
        "{history}"
    );
    assert!(history.contains(comment), "{history}");

    // The office accepts it.
    office
        .goto(&format!(
            "{base}work/review/{id}?criterion={criterion}&org_unit={}",
            town.org_unit
        ))
        .await
        .unwrap();
    let grade = office.find(Locator::Id("grade")).await.unwrap();
    grade.clear().await.unwrap();
    grade.send_keys("100").await.unwrap();
    click_and_load(&office, "#accept").await;
    eventually("the office back on its queue", || async {
        let p = path(&office).await;
        (!p.starts_with(&format!("/work/review/{id}"))).then_some(())
    })
    .await;
    town_browser
        .goto(&format!("{base}work/evidence/{id}"))
        .await
        .unwrap();
    assert!(text(&town_browser, "#state").await.contains("已通过"));
    assert_eq!(text(&town_browser, "#grade").await, "100");

    // The scoreboard follows without a reload.
    let total_after = eventually("the scoreboard's total to move", || async {
        let t: f64 = text(&board, "#total").await.parse().ok()?;
        (t > total_before).then_some(t)
    })
    .await;
    assert!(total_after > total_before);
    let still = board
        .execute("return window.cezoneLoadedAt", vec![])
        .await
        .unwrap();
    assert_eq!(still, loaded_at, "the scoreboard was updated in place");
    screenshot(&board, "workbench-scoreboard").await;
    // Every area, town cell and ★ criterion on the scoreboard opens its explanation.
    let explain_links = board
        .find_all(Locator::Css("#areas a[href^='/work/explain/'], #heatmap a[href^='/work/explain/'], #key-criteria a[href^='/work/explain/']"))
        .await
        .unwrap();
    let keys = board
        .find_all(Locator::Css("#key-criteria li"))
        .await
        .unwrap()
        .len();
    assert!(keys > 0);
    assert_eq!(
        explain_links.len(),
        5 + 2 * 5 + keys,
        "5 areas, 2 towns × 5, ★"
    );

    // The town opens the criterion's explanation from its obligations: the accepted document
    // is in it, and the score is the scoring service's.
    town_browser.goto(&format!("{base}work/")).await.unwrap();
    click_and_load(&town_browser, &format!("{row} a.explain")).await;
    appears(&town_browser, "#rule").await;
    let slots = text(&town_browser, "#slots").await;
    assert!(slots.contains("已通过 Accepted"), "{slots}");
    let cell = scoring
        .get_scores(ps::GetScoresRequest {
            org_unit: town.org_unit.clone(),
            items: vec![criterion.clone()],
            explain: false,
        })
        .await
        .unwrap()
        .into_inner();
    let confirmed = cell.items[0].score.clone().unwrap().confirmed;
    assert_eq!(text(&town_browser, "#confirmed").await, confirmed);
    screenshot(&town_browser, "workbench-explain").await;

    // Several documents go up to a criterion at once, each its own record.
    let count = || async {
        use cezone_proto::evidence::v1 as pe;
        pe::evidence_service_client::EvidenceServiceClient::new(services.channels.evidence.clone())
            .list_evidence(pe::ListEvidenceRequest {
                criterion: criterion.clone(),
                org_unit: town.org_unit.clone(),
                page: Some(cezone_proto::common::v1::PageRequest {
                    page_size: 1000,
                    page_token: String::new(),
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .evidence
            .len()
    };
    let records = count().await;
    town_browser
        .goto(&format!(
            "{base}work/evidence/new?criterion={criterion}&org_unit={}&unit={}",
            town.org_unit, town.unit
        ))
        .await
        .unwrap();
    appears(&town_browser, "#drop").await;
    let minutes = files.path().join("会议记录.pdf");
    std::fs::write(&minutes, b"%PDF-1.4\n% minutes\ntrailer<<>>\n%%EOF\n").unwrap();
    let roster = files.path().join("成员名册.pdf");
    std::fs::write(&roster, b"%PDF-1.4\n% roster\ntrailer<<>>\n%%EOF\n").unwrap();
    type_into(
        &town_browser,
        "#file",
        &format!("{}\n{}", minutes.display(), roster.display()),
    )
    .await;
    click(&town_browser, "#send").await;
    eventually("the obligations page after two uploads", || async {
        (path(&town_browser).await == "/work/?uploaded=2").then_some(())
    })
    .await;
    assert_eq!(count().await, records + 2);
    assert!(text(&town_browser, "#uploaded").await.contains("2"));

    // Signing out ends the session: the workbench asks to sign in again.
    town_browser.goto(&format!("{base}work/")).await.unwrap();
    click_and_load(&town_browser, "#logout").await;
    eventually("the sign-in page after signing out", || async {
        (path(&town_browser).await == "/work/login").then_some(())
    })
    .await;
    town_browser.goto(&format!("{base}work/")).await.unwrap();
    assert_eq!(path(&town_browser).await, "/work/login?next=/work/");
    // And its refresh token is revoked at the registry, by the person signing out.
    let logouts = cezone_proto::registry::v1::registry_service_client::RegistryServiceClient::new(
        services.channels.registry.clone(),
    )
    .list_audit(cezone_proto::common::v1::ListAuditRequest {
        action: "account.logout".into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .entries;
    assert_eq!(logouts.len(), 1, "{logouts:?}");
    assert!(logouts[0].actor.contains("town"), "{:?}", logouts[0]);

    // An idle session ends: the next page is the sign-in page, and back after signing in.
    let idle = open_browser(&driver).await;
    sign_in(&idle, &short_web.url(), "town").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    idle.goto(&format!("{}work/review", short_web.url()))
        .await
        .unwrap();
    assert_eq!(path(&idle).await, "/work/login?next=/work/review");
    idle.find(Locator::Id("login-form"))
        .await
        .expect("the sign-in form");
    screenshot(&idle, "workbench-signin").await;

    for b in [town_browser, office, board, idle] {
        b.close().await.unwrap();
    }
    let mut driver = driver;
    let _ = driver.child.kill().await;
    short_web.stop().await;
    stack.stop().await;
}

/// A small demo district loaded through the services, with the demo accounts; returns the
/// district, its framework and the town's account.
async fn district_with_accounts(
    services: &cezone_testkit::Services,
) -> (
    cezone_domain::demo::DemoDistrict,
    cezone_domain::framework::Framework,
    cezone_client::demo::DemoAccount,
) {
    let district = cezone_testkit::district(2, 12, 10, 7);
    services.load(&district).await.unwrap();
    let (fw, _) = guangdong::framework();
    let accounts =
        cezone_client::demo::create_accounts(services.channels.registry.clone(), &fw, &district)
            .await
            .unwrap();
    let town = accounts.iter().find(|a| a.role == "town").unwrap().clone();
    (district, fw, town)
}

/// A cell's text as the figure it stands for.
fn def_value(def: &cezone_domain::rules::MetricDef, text: &str) -> i64 {
    cezone_client::files::returns::parse_value(def, text).unwrap()
}

/// The latest filing of (org unit, metric) for the test's period, as the surveys service has it.
async fn latest_statistic(
    services: &cezone_testkit::Services,
    org_unit: &str,
    metric: &str,
) -> cezone_proto::surveys::v1::StatisticReturn {
    use cezone_proto::surveys::v1 as psv;
    let mut surveys =
        psv::survey_service_client::SurveyServiceClient::new(services.channels.surveys.clone());
    surveys
        .list_statistics(psv::ListStatisticsRequest {
            org_unit: org_unit.into(),
            metric: metric.into(),
            period: services.settings.scoring.period,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .statistics
        .into_iter()
        .max_by_key(|s| s.version)
        .unwrap_or_else(|| panic!("no filing of {org_unit} {metric}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_town_files_its_return_in_the_grid_and_from_the_template() {
    require_browser();
    let stack = Stack::start().await;
    let (services, web) = (&stack.services, &stack.web);
    let (district, fw, town) = district_with_accounts(services).await;
    let base = web.url();
    let driver = start_chromedriver().await;
    let browser = open_browser(&driver).await;
    sign_in(&browser, &base, "town").await;
    click_and_load(&browser, "a[href='/work/statistics']").await;
    appears(&browser, "#grid-form").await;
    screenshot(&browser, "workbench-statistics").await;

    // The first cell the return owes.
    let cells = browser
        .execute(
            "return Array.from(document.querySelectorAll('#grid td.cell input')).map(i => [i.name, i.value])",
            vec![],
        )
        .await
        .unwrap();
    let cells: Vec<(String, String)> = serde_json::from_value(cells).unwrap();
    assert!(!cells.is_empty(), "the town's return owes figures");
    let (key, shown) = cells[0].clone();
    // Small figures: within every bound a metric has, whatever the org unit's population.
    let good: &'static str = if shown == "12" || shown == "12.00" {
        "14"
    } else {
        "12"
    };
    let (_, rest) = key.split_once(':').unwrap();
    let (org_unit, metric) = rest.split_once(':').unwrap();
    assert!(
        org_unit == town.org_unit || org_unit.starts_with(&format!("{}.", town.org_unit)),
        "{org_unit} is in the town's scope"
    );
    let before = latest_statistic(services, org_unit, metric).await;
    let input = format!("#grid input[name='{key}']");
    let set = |text: &'static str| {
        let b = browser.clone();
        let input = input.clone();
        async move {
            let el = b.find(Locator::Css(&input)).await.unwrap();
            el.clear().await.unwrap();
            el.send_keys(text).await.unwrap();
        }
    };

    // A bad figure is shown in its cell and nothing is saved.
    set("十二").await;
    click_and_load(&browser, "#check").await;
    appears(&browser, "#grid-error").await;
    let invalid = browser
        .find(Locator::Css(&format!("{input}[aria-invalid='true']")))
        .await
        .expect("the bad cell marked in place");
    let described = invalid.attr("aria-describedby").await.unwrap().unwrap();
    let why = text(&browser, &format!("[id='{described}']")).await;
    assert!(why.contains("十二"), "{why}");
    screenshot(&browser, "workbench-statistics-invalid").await;
    set("not a number").await;
    click_and_load(&browser, "#submit-return").await;
    appears(&browser, "#grid-error").await;
    assert_eq!(
        latest_statistic(services, org_unit, metric).await.version,
        before.version,
        "nothing was saved"
    );

    // A good one: the check lists the change, the submission files it, pending review.
    set(good).await;
    click_and_load(&browser, "#check").await;
    appears(&browser, "#changes").await;
    let changes = text(&browser, "#changes").await;
    assert!(changes.contains(good), "{changes}");
    assert_eq!(
        latest_statistic(services, org_unit, metric).await.version,
        before.version,
        "a check stores nothing"
    );
    click_and_load(&browser, "#submit-return").await;
    appears(&browser, "#saved").await;
    let after = latest_statistic(services, org_unit, metric).await;
    assert_eq!(after.version, before.version + 1);
    let def = fw
        .catalog
        .metrics
        .iter()
        .find(|m| m.id.as_str() == metric)
        .unwrap();
    assert_eq!(
        after.value,
        cezone_client::files::returns::parse_value(def, good).unwrap()
    );
    assert_eq!(
        after.state,
        cezone_proto::surveys::v1::StatisticState::Pending as i32,
        "a town's figure waits for review"
    );

    // The template comes pre-filled; filled in and uploaded back, its figures fill the grid.
    let got = browser
        .execute(
            "return fetch('/work/statistics/template.xlsx').then(r => r.arrayBuffer().then(b => [r.status, r.headers.get('content-type'), Array.from(new Uint8Array(b).slice(0, 2))]))",
            vec![],
        )
        .await
        .unwrap();
    let (status, kind, magic): (u16, String, Vec<u8>) = serde_json::from_value(got).unwrap();
    assert_eq!(status, 200);
    assert!(kind.contains("spreadsheetml"), "{kind}");
    assert_eq!(magic, b"PK", "an XLSX file");
    let tree = cezone_domain::org::OrgTree::build(district.units.clone()).unwrap();
    let period = services.settings.scoring.period;
    let mut current = cezone_client::files::returns::Current::new();
    current.insert(
        (org_unit.to_string(), metric.to_string(), period),
        cezone_client::files::returns::parse_value(def, "23").unwrap(),
    );
    let unit = cezone_domain::units::UnitId::parse(&town.unit).unwrap();
    let scope = cezone_domain::org::OrgUnitId::parse(&town.org_unit).unwrap();
    let bytes =
        cezone_client::files::returns::template(&fw, &tree, &unit, period, Some(&scope), &current)
            .unwrap();
    let files = tempfile::tempdir().unwrap();
    let path = files.path().join("return.xlsx");
    std::fs::write(&path, bytes).unwrap();
    type_into(&browser, "#return-file", path.to_str().unwrap()).await;
    click_and_load(&browser, "#read-file").await;
    appears(&browser, "#changes").await;
    let changes = text(&browser, "#changes").await;
    assert!(changes.contains("→ 23"), "{changes}");
    screenshot(&browser, "workbench-statistics-upload").await;
    click_and_load(&browser, "#submit-return").await;
    appears(&browser, "#saved").await;
    let last = latest_statistic(services, org_unit, metric).await;
    assert_eq!(last.version, after.version + 1);

    // Nobody approves their own filing: the town does not see it waiting …
    browser
        .goto(&format!("{base}work/statistics/review"))
        .await
        .unwrap();
    appears(&browser, "#waiting").await;
    let own = browser
        .find_all(Locator::Css(&format!(
            "input[name='k:{org_unit}:{metric}:{}']",
            last.version
        )))
        .await
        .unwrap();
    assert!(
        own.is_empty(),
        "the town's own filing is not for it to approve"
    );
    // … the evaluation office does, and accepts the whole return at once.
    let office = open_browser(&driver).await;
    sign_in(&office, &base, "office").await;
    click_and_load(&office, "a[href='/work/statistics/review']").await;
    let section = format!("[id='return-{org_unit}']");
    appears(&office, &section).await;
    office
        .find(Locator::Css(&format!(
            "{section} input[name='k:{org_unit}:{metric}:{}']",
            last.version
        )))
        .await
        .expect("the town's figure waits for the office");
    screenshot(&office, "workbench-approve").await;
    click_and_load(&office, &format!("{section} button.accept-whole")).await;
    appears(&office, "#decided").await;
    assert_eq!(
        latest_statistic(services, org_unit, metric).await.state,
        cezone_proto::surveys::v1::StatisticState::Accepted as i32
    );
    // The office opens the town's return from its own chooser and sees the figure filed.
    click_and_load(&office, "a[href='/work/statistics']").await;
    appears(&office, "#choose-return").await;
    click(
        &office,
        &format!("#choose-unit option[value='{}']", town.unit),
    )
    .await;
    click(
        &office,
        &format!("#choose-org option[value='{}']", town.org_unit),
    )
    .await;
    click_and_load(&office, "#open-return").await;
    appears(&office, "#grid-form").await;
    let filed = office
        .find(Locator::Css(&input))
        .await
        .expect("the town's cell in the office's view of its return")
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert_eq!(
        def_value(def, &filed),
        last.value,
        "the office sees the figure as filed"
    );
    office.close().await.unwrap();

    browser.close().await.unwrap();
    let mut driver = driver;
    let _ = driver.child.kill().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_office_manages_accounts_locks_runs_and_reports_from_its_tools() {
    require_browser();
    let stack = Stack::start().await;
    let (services, web) = (&stack.services, &stack.web);
    let (_, _, town) = district_with_accounts(services).await;
    let base = web.url();
    let driver = start_chromedriver().await;
    let office = open_browser(&driver).await;
    sign_in(&office, &base, "office").await;
    click_and_load(&office, "a[href='/work/office']").await;
    appears(&office, "#accounts").await;

    // A bad account is refused with the field named, and nothing is created.
    type_into(&office, "#new-login", "li.finance").await;
    type_into(&office, "#new-name", "区财政局 李科长").await;
    click(&office, "#new-role option[value='responsible_unit']").await;
    click(&office, "#new-unit option[value='finance']").await;
    // Nine characters: one short. The browser's own check is lifted to reach the service's.
    office
        .execute(
            "document.getElementById('new-password').removeAttribute('minlength')",
            vec![],
        )
        .await
        .unwrap();
    type_into(&office, "#new-password", "123456789").await;
    click_and_load(&office, "#create").await;
    appears(&office, "#office-error").await;
    let refused = text(&office, "#office-error").await;
    assert!(refused.contains("password"), "{refused}");
    assert!(
        office
            .find_all(Locator::Css("[id='account-li.finance']"))
            .await
            .unwrap()
            .is_empty()
    );
    type_into(&office, "#new-login", "li.finance").await;
    type_into(&office, "#new-name", "区财政局 李科长").await;
    click(&office, "#new-role option[value='responsible_unit']").await;
    click(&office, "#new-unit option[value='finance']").await;
    type_into(&office, "#new-password", "a-long-first-password").await;
    click_and_load(&office, "#create").await;
    appears(&office, "#done").await;
    let row = "[id='account-li.finance']";
    assert!(text(&office, row).await.contains("区直部门 Department"));
    // Disabled, it can no longer sign in.
    click_and_load(&office, &format!("{row} form button")).await;
    appears(&office, "#done").await;
    assert!(text(&office, row).await.contains("停用 Disabled"));

    // The period is locked, then one town unlocked for a correction.
    click_and_load(&office, "#lock-period").await;
    appears(&office, "#done").await;
    assert!(text(&office, "#lock-state").await.contains("已锁定"));
    type_into(&office, "#unlock-org", &town.org_unit).await;
    type_into(
        &office,
        "#unlock-reason",
        "更正社区教育经费 correct the funding",
    )
    .await;
    click_and_load(&office, "#lock form button").await;
    appears(&office, "#done").await;
    assert!(text(&office, "#lock").await.contains("correct the funding"));

    // A checkpoint run now freezes a snapshot.
    let before = office
        .find_all(Locator::Css("#snapshot-list li a"))
        .await
        .unwrap()
        .len();
    click_and_load(&office, "#run-now").await;
    appears(&office, "#done").await;
    let after = office
        .find_all(Locator::Css("#snapshot-list li a"))
        .await
        .unwrap()
        .len();
    assert_eq!(after, before + 1, "the run froze a snapshot");
    screenshot(&office, "workbench-office").await;

    // The self-score report downloads.
    let got = office
        .execute(
            "return fetch('/work/reports/self-score?format=xlsx').then(r => r.arrayBuffer().then(b => [r.status, Array.from(new Uint8Array(b).slice(0, 2))]))",
            vec![],
        )
        .await
        .unwrap();
    let (status, magic): (u16, Vec<u8>) = serde_json::from_value(got).unwrap();
    assert_eq!((status, magic.as_slice()), (200, &b"PK"[..]));

    // A town sees the reports, not the office's tools.
    let town_browser = open_browser(&driver).await;
    sign_in(&town_browser, &base, "town").await;
    town_browser
        .goto(&format!("{base}work/office"))
        .await
        .unwrap();
    appears(&town_browser, "#reports").await;
    for section in ["#accounts", "#lock", "#runs"] {
        assert!(
            town_browser
                .find_all(Locator::Css(section))
                .await
                .unwrap()
                .is_empty(),
            "{section}"
        );
    }

    for b in [office, town_browser] {
        b.close().await.unwrap();
    }
    let mut driver = driver;
    let _ = driver.child.kill().await;
    stack.stop().await;
}

/// Judged answers of `question` in `org_unit`, as the surveys service tallies them.
async fn tallied(services: &cezone_testkit::Services, org_unit: &str, question: &str) -> u64 {
    use cezone_proto::surveys::v1 as psv;
    let mut surveys =
        psv::survey_service_client::SurveyServiceClient::new(services.channels.surveys.clone());
    let mut token = String::new();
    let mut n = 0;
    loop {
        let page = surveys
            .list_tallies(psv::ListTalliesRequest {
                period: services.settings.scoring.period,
                page: Some(cezone_proto::common::v1::PageRequest {
                    page_size: 1000,
                    page_token: token,
                }),
            })
            .await
            .unwrap()
            .into_inner();
        n += page
            .tallies
            .iter()
            .filter(|t| t.org_unit == org_unit && t.question == question)
            .map(|t| t.responses)
            .sum::<u64>();
        token = page.page.map(|p| p.next_page_token).unwrap_or_default();
        if token.is_empty() {
            return n;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_town_maps_a_survey_export_once_previews_it_and_files_it() {
    use cezone_proto::surveys::v1 as psv;
    require_browser();
    let stack = Stack::start().await;
    let (services, web) = (&stack.services, &stack.web);
    let (district, _, town) = district_with_accounts(services).await;
    let period = services.settings.scoring.period;
    let survey_id = cezone_client::demo::survey_id(period);
    let survey =
        psv::survey_service_client::SurveyServiceClient::new(services.channels.surveys.clone())
            .get_survey(psv::GetSurveyRequest {
                id: survey_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
    let community = district
        .units
        .iter()
        .find(|u| {
            u.level == cezone_domain::org::OrgLevel::Community
                && u.id.as_str().starts_with(&format!("{}.", town.org_unit))
        })
        .unwrap()
        .id
        .to_string();
    // The first question under a header of the platform's own, with a label of its own.
    let q0 = survey.questions[0].clone();
    let yes = if q0.kind == psv::QuestionKind::YesNo as i32 {
        "是"
    } else {
        "满意"
    };
    let header = "您对社区教育的了解";
    let mut csv = format!("答卷编号,社区代码,{header}\n");
    csv.push_str(&format!("r1,{community},{yes}\n"));
    csv.push_str(&format!("r2,{community},听说过\n"));
    csv.push_str(&format!("r3,{community},{yes}\n"));
    let files = tempfile::tempdir().unwrap();
    let path = files.path().join("平台导出.csv");
    std::fs::write(&path, csv).unwrap();
    let before = tallied(services, &community, &q0.id).await;

    let base = web.url();
    let driver = start_chromedriver().await;
    let browser = open_browser(&driver).await;
    sign_in(&browser, &base, "town").await;
    click_and_load(&browser, "a[href='/work/surveys']").await;
    appears(&browser, "#survey-upload").await;
    type_into(&browser, "#export-file", path.to_str().unwrap()).await;
    click_and_load(&browser, "#upload-export").await;
    appears(&browser, "#mapping-form").await;
    // The respondent and community columns are found by their headers; the question is not.
    let chosen = |css: &'static str| {
        let b = browser.clone();
        async move {
            b.find(Locator::Css(css))
                .await
                .unwrap()
                .prop("value")
                .await
                .unwrap()
                .unwrap_or_default()
        }
    };
    assert_eq!(chosen("#map-respondent").await, "答卷编号");
    assert_eq!(chosen("#map-org").await, "社区代码");
    let q_select = format!("select[name='q:{}']", q0.id);
    click(&browser, &format!("{q_select} option[value='{header}']")).await;
    // Its own label is refused, by row and column, until it is given a code.
    click_and_load(&browser, "#preview").await;
    appears(&browser, "#problems").await;
    let problems = text(&browser, "#problems").await;
    assert!(
        problems.contains("听说过") && problems.contains("row 3"),
        "{problems}"
    );
    let label = format!("[id='l:{}:听说过']", q0.id);
    type_into(&browser, &label, "1").await;
    click_and_load(&browser, "#preview").await;
    appears(&browser, "#summary").await;
    let summary = text(&browser, "#summary").await;
    assert!(summary.contains("3 份答卷"), "{summary}");
    assert_eq!(
        tallied(services, &community, &q0.id).await,
        before,
        "a preview files nothing"
    );
    screenshot(&browser, "workbench-survey-mapping").await;
    click_and_load(&browser, "#ingest").await;
    appears(&browser, "#ingested").await;
    assert!(text(&browser, "#ingested").await.contains("3"));
    // A town's batch waits for review: in the tallies, as pending.
    appears(&browser, "#batch-pending").await;
    assert_eq!(tallied(services, &community, &q0.id).await, before + 3);

    // The next export maps itself: the column and the label are remembered.
    type_into(&browser, "#export-file", path.to_str().unwrap()).await;
    click_and_load(&browser, "#upload-export").await;
    appears(&browser, "#mapping-form").await;
    let q_css: &'static str = Box::leak(q_select.into_boxed_str());
    assert_eq!(chosen(q_css).await, header);
    let code = browser
        .find(Locator::Css(&label))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(code.as_deref(), Some("1"));

    // The department responsible for the survey's criteria accepts the batch on its approval
    // screen.
    click_and_load(&browser, "#logout").await;
    sign_in(&browser, &base, "department").await;
    browser
        .goto(&format!(
            "{}/work/statistics/review",
            base.trim_end_matches('/')
        ))
        .await
        .unwrap();
    appears(&browser, "#batches").await;
    assert_eq!(text(&browser, "#batches-waiting").await, "1");
    screenshot(&browser, "workbench-survey-batch").await;
    click_and_load(&browser, ".accept-batch").await;
    appears(&browser, "#batches-empty").await;
    assert_eq!(text(&browser, "#batches-waiting").await, "0");
    let accepted =
        psv::survey_service_client::SurveyServiceClient::new(services.channels.surveys.clone())
            .list_survey_batches(psv::ListSurveyBatchesRequest {
                survey_id: survey_id.clone(),
                state: psv::BatchState::Accepted as i32,
            })
            .await
            .unwrap()
            .into_inner()
            .batches;
    assert!(
        accepted
            .iter()
            .any(|b| b.filed_by == "town" && !b.reviewed_by.is_empty()),
        "{accepted:?}"
    );

    browser.close().await.unwrap();
    let mut driver = driver;
    let _ = driver.child.kill().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_town_sees_the_reminder_a_scheduled_run_sent_it() {
    require_browser();
    let at = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    // Before the first checkpoint's 72-hour run (2014-01-01 09:00 Beijing time).
    let clock = std::sync::Arc::new(cezone_scheduler::ManualClock::new(at(
        "2013-12-28T00:00:00Z",
    )));
    let stack = Stack::start_with_clock(clock.clone()).await;
    let (services, web) = (&stack.services, &stack.web);
    let (_, _, town) = district_with_accounts(services).await;
    let base = web.url();
    let driver = start_chromedriver().await;
    let browser = open_browser(&driver).await;
    sign_in(&browser, &base, "town").await;
    assert!(
        browser
            .find_all(Locator::Css("#reminders"))
            .await
            .unwrap()
            .is_empty(),
        "no run has reminded anyone yet"
    );
    clock.set(at("2013-12-29T01:00:05Z"));
    let reminded = eventually("the run's reminder on the town's obligations", || async {
        browser.goto(&format!("{base}work/")).await.ok()?;
        let found = browser.find(Locator::Css("#reminders")).await.ok()?;
        found.text().await.ok()
    })
    .await;
    assert!(
        reminded.contains("提醒") && reminded.contains(&town.org_unit),
        "{reminded}"
    );
    screenshot(&browser, "workbench-reminders").await;
    browser.close().await.unwrap();
    let mut driver = driver;
    let _ = driver.child.kill().await;
    stack.stop().await;
}
