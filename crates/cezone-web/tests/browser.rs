//! The scoreboard in a real browser: the four services and the web page in-process on SQLite,
//! the demo district loaded through the APIs, Debian's Chromium driven headless through
//! chromedriver. The numbers on the page must be the scoring service's, and an evidence review
//! must show up on the open page without reloading it.

use std::path::PathBuf;

use cezone_platform::access::auth::AuthChannel as Channel;
use cezone_proto::common::v1::PageRequest;
use cezone_proto::evidence::v1 as pe;
use cezone_proto::scoring::v1 as ps;
use cezone_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use fantoccini::Locator;

mod support;
use serde_json::{Value, json};
use support::*;

async fn summary(scoring: &mut ScoringServiceClient<Channel>) -> Value {
    let s = scoring
        .get_summary(ps::GetSummaryRequest::default())
        .await
        .unwrap()
        .into_inner();
    serde_json::from_str(&s.summary_json).unwrap()
}

/// A submitted record whose acceptance must raise the district total: its slot is pending, its
/// criterion is scored on evidence alone, and neither it nor any group above it is at full marks.
async fn record_that_moves_the_total(
    scoring: &mut ScoringServiceClient<Channel>,
    evidence: Channel,
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
    let pending = pe::evidence_service_client::EvidenceServiceClient::new(evidence)
        .list_evidence(pe::ListEvidenceRequest {
            state: pe::ReviewState::Submitted as i32,
            page: Some(PageRequest {
                page_size: 1000,
                page_token: String::new(),
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .evidence;
    for record in pending {
        let Some(item) = items.iter().find(|i| i.code == record.criterion) else {
            continue;
        };
        let holds_it = |s: &Value| {
            s["status"] == "pending"
                && s["evidence_ids"]
                    .as_array()
                    .is_some_and(|ids| ids.iter().any(|id| id == &json!(record.id)))
        };
        if acceptance_moves_the_total(&items, item, holds_it) {
            return record.id;
        }
    }
    panic!("the demo district has no pending evidence whose acceptance moves the total");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scoreboard_shows_the_scoring_numbers_and_follows_a_review_live() {
    require_browser();
    let stack = Stack::start().await;
    let (services, web) = (&stack.services, &stack.web);
    let channels = services.channels.clone();
    services
        .load(&cezone_testkit::district(2, 12, 10, 7))
        .await
        .unwrap();
    let mut scoring_client = services.scores().await.unwrap();
    scoring_client
        .recompute(ps::RecomputeRequest::default())
        .await
        .unwrap();
    scoring_client
        .freeze_snapshot(ps::FreezeSnapshotRequest {
            checkpoint: "materials-complete".into(),
            label: "创建完成".into(),
            frozen_by: "test".into(),
            close_submissions: false,
        })
        .await
        .unwrap();

    let driver = start_chromedriver().await;
    let browser = open_browser(&driver).await;
    browser.goto(&web.url()).await.unwrap();
    let loaded_at = scoreboard_drawn(&browser).await;

    // The numbers shown are the scoring service's.
    let before = summary(&mut scoring_client).await;
    let scores = scoring_client
        .get_scores(ps::GetScoresRequest::default())
        .await
        .unwrap()
        .into_inner();
    let total = scores.total.unwrap().confirmed;
    assert_eq!(before["total"]["confirmed"], json!(total));
    assert_eq!(text(&browser, "#total").await, total);
    assert_eq!(text(&browser, "#max-points").await, "100");
    let areas = before["areas"].as_array().unwrap();
    assert_eq!(areas.len(), 5);
    for a in areas {
        let code = a["code"].as_str().unwrap();
        let shown = text(&browser, &format!("#area-{code} .score")).await;
        let item = scores.items.iter().find(|i| i.code == code).unwrap();
        assert_eq!(shown, item.score.as_ref().unwrap().confirmed, "area {code}");
        assert_eq!(shown, a["confirmed"].as_str().unwrap());
    }
    for town in before["children"].as_array().unwrap() {
        let id = town["org_unit"].as_str().unwrap().replace('.', "\\.");
        let row = text(&browser, &format!("#town-{id}")).await;
        assert!(row.contains(town["name"].as_str().unwrap()), "{row}");
        assert!(
            row.contains(town["total"]["confirmed"].as_str().unwrap()),
            "{row}"
        );
    }
    let keys = browser
        .find_all(Locator::Css("#key-criteria li"))
        .await
        .unwrap();
    assert_eq!(keys.len(), before["key_criteria"].as_array().unwrap().len());
    // The demo calendar is in 2013–2014: every checkpoint is past, and the page says so.
    assert!(
        text(&browser, "#countdown")
            .await
            .contains("Every checkpoint is past")
    );
    assert!(text(&browser, "#completeness").await.contains("区教育局"));
    let points = browser
        .find_all(Locator::Css("#chart circle"))
        .await
        .unwrap();
    assert_eq!(points.len(), 2, "the snapshot and the current score");

    // A review moves the score; the open page follows without reloading.
    let id = record_that_moves_the_total(&mut scoring_client, channels.evidence.clone()).await;
    let mut ev = cezone_client::evidence::client(channels.evidence.clone());
    cezone_client::evidence::review(&mut ev, &id, pe::Decision::Accept, 100, "")
        .await
        .unwrap();
    let new_total = eventually("scoring to follow the review", || {
        let mut c = scoring_client.clone();
        let old = total.clone();
        async move {
            let t = summary(&mut c).await["total"]["confirmed"]
                .as_str()
                .unwrap()
                .to_string();
            (t != old).then_some(t)
        }
    })
    .await;
    assert!(new_total.parse::<f64>().unwrap() > total.parse::<f64>().unwrap());
    eventually("the page to show the new total", || {
        let b = browser.clone();
        let want = new_total.clone();
        async move { (text(&b, "#total").await == want).then_some(()) }
    })
    .await;
    let still = browser
        .execute("return window.cezoneLoadedAt", vec![])
        .await
        .unwrap();
    assert_eq!(
        still, loaded_at,
        "the page was updated in place, not reloaded"
    );

    let png = browser.screenshot().await.unwrap();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("scoreboard.png"), &png).unwrap();
    assert!(png.starts_with(b"\x89PNG"));

    browser.close().await.unwrap();
    let mut driver = driver;
    let _ = driver.child.kill().await;
    stack.stop().await;
}
