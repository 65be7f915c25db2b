//! The HTTP/JSON API against the running services (in-process, real gRPC, SQLite and
//! PostgreSQL), called with a plain HTTP client: reads with and without a token, bad input
//! (400 naming the field, nothing changed), paging, a write read back, evidence uploaded and
//! downloaded as streamed bodies, a report, survey lines, score changes as lines; and the
//! OpenAPI document, validated by a real validator and matching what the port serves.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use cezone_domain::access::{Principal, Role};
use cezone_platform::testing::{Backend, TestEnv, test_env};
use cezone_proto::surveys::v1 as psv;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Http {
    client: Client<HttpConnector, Body>,
    base: String,
    token: Option<String>,
}

struct Answer {
    status: u16,
    headers: axum::http::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl Http {
    fn new(web: &cezone_web::Application, token: Option<String>) -> Http {
        Http {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: format!("http://127.0.0.1:{}", web.port()),
            token,
        }
    }

    fn as_(&self, token: Option<String>) -> Http {
        Http {
            client: self.client.clone(),
            base: self.base.clone(),
            token,
        }
    }

    async fn send(&self, method: &str, path: &str, content_type: &str, body: Body) -> Answer {
        let mut req = axum::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if !content_type.is_empty() {
            req = req.header("content-type", content_type);
        }
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let res = self
            .client
            .request(req.body(body).unwrap())
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send("GET", path, "", Body::empty()).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(
            "POST",
            path,
            "application/json",
            Body::from(body.to_string()),
        )
        .await
    }

    /// POSTs `parts` as a chunked body, one frame each.
    async fn post_stream(&self, path: &str, content_type: &str, parts: Vec<Bytes>) -> Answer {
        let frames = futures::stream::iter(parts.into_iter().map(Ok::<_, Infallible>));
        self.send("POST", path, content_type, Body::from_stream(frames))
            .await
    }
}

fn token(env: &TestEnv, role: Role) -> String {
    let who = Principal::new(&format!("http-{role}"), role, None, None).unwrap();
    env.keys().issue(&who, 600).unwrap()
}

struct Stack {
    env: TestEnv,
    services: cezone_testkit::Services,
    web: cezone_web::Application,
    bus: std::sync::Arc<dyn cezone_bus::Bus>,
    /// The demo district's period.
    period: i32,
}

async fn stack(backend: Backend) -> Stack {
    let bus = cezone_bus::connect(&cezone_platform::testing::in_process_bus(
        &cezone_platform::testing::fresh_bus_prefix(),
    ))
    .await
    .unwrap();
    let env = test_env(backend).await;
    let services = cezone_testkit::Services::start(&env.settings, bus.clone())
        .await
        .unwrap();
    let district = cezone_testkit::district(2, 6, 5, 17);
    services.load(&district).await.unwrap();
    let web = cezone_web::Application::build(&services.settings)
        .await
        .unwrap();
    Stack {
        env,
        services,
        web,
        bus,
        period: district.params.period,
    }
}

impl Stack {
    async fn stop(self) {
        self.web.stop().await;
        self.services.stop().await;
        self.bus.close().await;
        drop(self.env);
    }
}

/// Every error answer has the JSON body with the code, and bad input names its fields.
fn assert_error(a: &Answer, status: u16, code: &str) -> Value {
    assert_eq!(a.status, status, "{}", String::from_utf8_lossy(&a.body));
    assert!(
        a.header("content-type").starts_with("application/json"),
        "{:?}",
        a.headers
    );
    let body = a.json();
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body
}

fn fields(error: &Value) -> Vec<String> {
    error["fieldViolations"]
        .as_array()
        .map(|v| {
            v.iter()
                .map(|f| f["field"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

async fn reads_need_a_token_and_answer_as_grpc_does(backend: Backend) {
    let s = stack(backend).await;
    let office = Http::new(&s.web, Some(token(&s.env, Role::EvaluationOffice)));
    let mut scoring = s.services.scores().await.unwrap();
    scoring
        .recompute(cezone_proto::scoring::v1::RecomputeRequest::default())
        .await
        .unwrap();
    let grpc = scoring
        .get_scores(cezone_proto::scoring::v1::GetScoresRequest::default())
        .await
        .unwrap()
        .into_inner();

    // The same numbers as gRPC, in proto3 JSON (lowerCamelCase).
    let a = office.get("/api/v1/scores").await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.header("content-type"), "application/json");
    let scores = a.json();
    assert_eq!(scores["orgUnit"], json!(grpc.org_unit));
    assert_eq!(
        scores["total"]["confirmed"],
        json!(grpc.total.as_ref().unwrap().confirmed)
    );
    assert_eq!(scores["items"].as_array().unwrap().len(), grpc.items.len());
    // The per-RPC GET and POST say the same.
    let by_get = office
        .get("/api/v1/scoring/GetScores?items=1&items=2")
        .await;
    assert_eq!(by_get.json()["items"].as_array().unwrap().len(), 2);
    let by_post = office
        .post("/api/v1/scoring/GetScores", json!({ "items": ["1", "2"] }))
        .await;
    assert_eq!(by_post.json(), by_get.json());
    // A town by the path.
    let units = office
        .get("/api/v1/registry/ListOrgUnits?page.pageSize=1000")
        .await
        .json();
    let town = units["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["level"] == "ORG_LEVEL_TOWN")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let a = office.get(&format!("/api/v1/scores/{town}")).await;
    assert_eq!(a.json()["orgUnit"], json!(town));

    // Without a token, with a forged one, with an expired one: 401, and the reason.
    let anonymous = office.as_(None);
    let a = anonymous.get("/api/v1/scores").await;
    assert_error(&a, 401, "UNAUTHENTICATED");
    assert!(a.header("www-authenticate").starts_with("Bearer"));
    assert_error(
        &office
            .as_(Some("not.a.token".into()))
            .get("/api/v1/scores")
            .await,
        401,
        "UNAUTHENTICATED",
    );
    let expired = s
        .env
        .keys()
        .issue(
            &Principal::new("late", Role::EvaluationOffice, None, None).unwrap(),
            -3600,
        )
        .unwrap();
    assert_error(
        &office
            .as_(Some(expired))
            .post("/api/v1/scoring/GetSummary", json!({}))
            .await,
        401,
        "UNAUTHENTICATED",
    );
    // An inspector reads but may not write.
    let inspector = office.as_(Some(token(&s.env, Role::Inspector)));
    assert_eq!(inspector.get("/api/v1/scores").await.status, 200);
    assert_error(
        &inspector
            .post(
                "/api/v1/scoring/FreezeSnapshot",
                json!({ "checkpoint": "materials-complete", "label": "x" }),
            )
            .await,
        403,
        "PERMISSION_DENIED",
    );
    // The audit log over HTTP: the office and inspectors read it, filtered, newest first.
    let a = inspector
        .get("/api/v1/registry/ListAudit?action=org_unit.&page.pageSize=3")
        .await;
    assert_eq!(a.status, 200, "{:?}", a.json());
    let entries = a.json()["entries"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 3, "{entries:?}");
    assert!(
        entries
            .iter()
            .all(|e| e["action"].as_str().unwrap().starts_with("org_unit."))
    );
    assert!(
        entries[0]["seq"].as_str().unwrap().parse::<i64>().unwrap()
            > entries[1]["seq"].as_str().unwrap().parse::<i64>().unwrap()
    );
    let a = inspector
        .get("/api/v1/evidence/ListAudit?since=yesterday")
        .await;
    let body = assert_error(&a, 400, "INVALID_ARGUMENT");
    assert!(body.to_string().contains("since"), "{body}");
    // Not found, and a service that is not running (the scheduler is not started here).
    assert_error(
        &office.get("/api/v1/evidence/GetEvidence?id=nope").await,
        404,
        "NOT_FOUND",
    );
    // A path that is no route: 404 in JSON too.
    assert_error(&office.get("/api/v1/scoring/Nope").await, 404, "NOT_FOUND");
    let a = office.get("/api/v1/scheduler/ListRuns").await;
    let body = assert_error(&a, 503, "UNAVAILABLE");
    assert!(
        !body["message"].as_str().unwrap().contains("127.0.0.1"),
        "no addresses in answers: {body}"
    );
    s.stop().await;
}

async fn bad_input_is_refused_by_field_and_changes_nothing(backend: Backend) {
    let s = stack(backend).await;
    let office = Http::new(&s.web, Some(token(&s.env, Role::EvaluationOffice)));
    let listed = office
        .get("/api/v1/surveys/ListStatistics?page.pageSize=1")
        .await;
    let stat = listed.json()["statistics"][0].clone();
    let query = format!(
        "/api/v1/surveys/ListStatistics?orgUnit={}&metric={}&period={}&allVersions=true",
        stat["orgUnit"].as_str().unwrap(),
        stat["metric"].as_str().unwrap(),
        stat["period"]
    );
    let before = office.get(&query).await.json();

    // The service's own check: one bad row refuses the whole batch, naming it.
    let mut good = stat.clone();
    good["value"] = json!("777");
    for k in ["version", "filedAt", "filedBy"] {
        good.as_object_mut().unwrap().remove(k);
    }
    let mut bad = good.clone();
    bad["metric"] = json!("no_such_metric");
    let a = office
        .post(
            "/api/v1/surveys/RecordStatistics",
            json!({ "statistics": [good, bad] }),
        )
        .await;
    let e = assert_error(&a, 400, "INVALID_ARGUMENT");
    assert!(
        fields(&e).iter().any(|f| f.contains("metric")),
        "the field is named: {e}"
    );
    // The gateway's own checks: a misspelt field, a value of the wrong type, an unknown
    // query parameter, a boolean that is not one, broken JSON.
    let e = assert_error(
        &office
            .post(
                "/api/v1/surveys/RecordStatistics",
                json!({ "statistics": [{ "orgUnitt": "x" }] }),
            )
            .await,
        400,
        "INVALID_ARGUMENT",
    );
    assert_eq!(fields(&e), vec!["statistics[0].orgUnitt"]);
    let e = assert_error(
        &office
            .post(
                "/api/v1/surveys/RecordStatistics",
                json!({ "statistics": [{ "period": "soon" }] }),
            )
            .await,
        400,
        "INVALID_ARGUMENT",
    );
    assert_eq!(fields(&e), vec!["statistics[0].period"]);
    let e = assert_error(
        &office.get("/api/v1/surveys/ListStatistics?orgunit=x").await,
        400,
        "INVALID_ARGUMENT",
    );
    assert_eq!(fields(&e), vec!["orgunit"]);
    let e = assert_error(
        &office
            .get("/api/v1/surveys/ListStatistics?allVersions=maybe")
            .await,
        400,
        "INVALID_ARGUMENT",
    );
    assert_eq!(fields(&e), vec!["allVersions"]);
    let a = office
        .send(
            "POST",
            "/api/v1/surveys/RecordStatistics",
            "application/json",
            Body::from("{\"statistics\": ["),
        )
        .await;
    assert_error(&a, 400, "INVALID_ARGUMENT");

    assert_eq!(office.get(&query).await.json(), before, "nothing changed");
    s.stop().await;
}

async fn lists_page_and_writes_read_back(backend: Backend) {
    let s = stack(backend).await;
    let office = Http::new(&s.web, Some(token(&s.env, Role::EvaluationOffice)));

    // Paging: pages of 3 until the token runs out, every unit once.
    let all = office
        .get("/api/v1/registry/ListOrgUnits?page.pageSize=1000")
        .await
        .json();
    let want = all["units"].as_array().unwrap().len();
    assert!(want > 6, "{all}");
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let a = office
            .get(&format!(
                "/api/v1/registry/ListOrgUnits?page.pageSize=3&page.pageToken={token}"
            ))
            .await;
        let page = a.json();
        let units = page["units"].as_array().unwrap();
        assert!(units.len() <= 3);
        seen.extend(units.iter().map(|u| u["id"].as_str().unwrap().to_string()));
        match page["page"]["nextPageToken"].as_str() {
            Some(t) if !t.is_empty() => token = t.to_string(),
            _ => break,
        }
    }
    assert_eq!(seen.len(), want);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), want, "no unit twice");
    // The same by POST with the page in the body.
    let a = office
        .post(
            "/api/v1/registry/ListOrgUnits",
            json!({ "page": { "pageSize": 2 } }),
        )
        .await
        .json();
    assert_eq!(a["units"].as_array().unwrap().len(), 2);
    assert!(!a["page"]["nextPageToken"].as_str().unwrap().is_empty());

    // A write, then read back.
    let stat = office
        .get("/api/v1/surveys/ListStatistics?page.pageSize=1")
        .await
        .json()["statistics"][0]
        .clone();
    let a = office
        .post(
            "/api/v1/surveys/RecordStatistics",
            json!({ "statistics": [{
                "orgUnit": stat["orgUnit"], "metric": stat["metric"], "period": stat["period"],
                "value": "4242", "filedBy": "http test", "note": "经 HTTP 填报",
            }] }),
        )
        .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let stored = a.json();
    assert_eq!(
        stored["statistics"][0]["value"], "4242",
        "int64 as a string"
    );
    assert_eq!(stored["eventIds"].as_array().unwrap().len(), 1);
    let back = office
        .get(&format!(
            "/api/v1/surveys/ListStatistics?orgUnit={}&metric={}&period={}",
            stat["orgUnit"].as_str().unwrap(),
            stat["metric"].as_str().unwrap(),
            stat["period"]
        ))
        .await
        .json();
    let latest = &back["statistics"][0];
    assert_eq!(latest["value"], "4242");
    assert_eq!(latest["note"], "经 HTTP 填报");
    assert_eq!(latest["version"], stored["statistics"][0]["version"]);

    // Survey responses as lines: two batches, counted once each.
    let survey_id = format!("resident-{}", s.period);
    let survey = office
        .get(&format!("/api/v1/surveys/GetSurvey?id={survey_id}"))
        .await
        .json();
    let before: u64 = survey["responses"].as_str().unwrap_or("0").parse().unwrap();
    let answers: Vec<Value> = survey["questions"]
        .as_array()
        .unwrap_or_else(|| panic!("{survey}"))
        .iter()
        .map(|q| json!({ "question": q["id"], "value": 1 }))
        .collect();
    let community = all["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["level"] == "ORG_LEVEL_COMMUNITY")
        .unwrap()["id"]
        .clone();
    let line = |n: usize| {
        let r: Vec<Value> = (0..n)
            .map(|i| {
                json!({ "respondentId": format!("http-{n}-{i}"), "orgUnit": community,
                             "answers": answers })
            })
            .collect();
        Bytes::from(format!("{}\n", json!({ "responses": r })))
    };
    let a = office
        .post_stream(
            &format!("/api/v1/surveys/IngestResponses?surveyId={survey_id}"),
            "application/x-ndjson",
            vec![line(2), line(3)],
        )
        .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["accepted"], "5");
    let after = office
        .get(&format!("/api/v1/surveys/GetSurvey?id={survey_id}"))
        .await
        .json();
    assert_eq!(
        after["responses"].as_str().unwrap().parse::<u64>().unwrap(),
        before + 5
    );
    // A bad line is named by its number, and nothing of the stream is kept.
    let a = office
        .post_stream(
            &format!("/api/v1/surveys/IngestResponses?surveyId={survey_id}"),
            "application/x-ndjson",
            vec![
                line(2),
                Bytes::from_static(b"{\"responses\": [{\"answerz\": []}]}\n"),
            ],
        )
        .await;
    let e = assert_error(&a, 400, "INVALID_ARGUMENT");
    assert_eq!(fields(&e), vec!["line 2: responses[0].answerz"]);
    let again = office
        .get(&format!("/api/v1/surveys/GetSurvey?id={survey_id}"))
        .await
        .json();
    assert_eq!(again["responses"], after["responses"]);

    // A return streamed as lines of parts: a bad value in the second part refuses the whole
    // import, named by its place in the stream; a good one is stored all at once.
    let town = all["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["level"] == "ORG_LEVEL_TOWN")
        .unwrap()["id"]
        .clone();
    let part = |metric: &str, value: i64| {
        Bytes::from(format!(
            "{}\n",
            json!({ "statistics": [{ "orgUnit": town, "metric": metric, "period": 2013,
                                      "value": value.to_string() }] })
        ))
    };
    let latest = |v: &Value| {
        v["statistics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["metric"] == "staff_trained")
            .map(|x| x["value"].clone())
    };
    let read_back = format!(
        "/api/v1/surveys/ListStatistics?orgUnit={}&period=2013",
        town.as_str().unwrap()
    );
    let before = latest(&office.get(&read_back).await.json());
    let a = office
        .post_stream(
            "/api/v1/surveys/ImportStatistics",
            "application/x-ndjson",
            vec![part("staff_trained", 41), part("staff_fulltime", -1)],
        )
        .await;
    let e = assert_error(&a, 400, "INVALID_ARGUMENT");
    assert_eq!(fields(&e), vec!["statistics[1].value"]);
    assert_eq!(latest(&office.get(&read_back).await.json()), before);
    let a = office
        .post_stream(
            "/api/v1/surveys/ImportStatistics",
            "application/x-ndjson",
            vec![part("staff_trained", 41), part("staff_fulltime", 9)],
        )
        .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["recorded"], "2");
    let now = office.get(&read_back).await.json();
    assert_eq!(latest(&now), Some(json!("41")), "{now}");

    // An org list in one call: a dry run of the loaded tree changes nothing.
    let a = office
        .post(
            "/api/v1/registry/ImportOrgUnits",
            json!({ "units": all["units"], "dryRun": true }),
        )
        .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(
        a.json()["unchanged"].as_u64(),
        Some(all["units"].as_array().unwrap().len() as u64)
    );
    s.stop().await;
}

async fn files_are_streamed_up_and_down(backend: Backend) {
    let s = stack(backend).await;
    let office = Http::new(&s.web, Some(token(&s.env, Role::EvaluationOffice)));
    let template = office
        .get("/api/v1/evidence/ListEvidence?page.pageSize=1")
        .await
        .json()["evidence"][0]
        .clone();
    let count = |v: &Value| v["evidence"].as_array().map_or(0, Vec::len);
    let everything = "/api/v1/evidence/ListEvidence?page.pageSize=1000";
    let before = count(&office.get(everything).await.json());

    // About 300 KB in frames of 10 KB: several chunks on the gRPC side.
    let text: String = (0..6000)
        .map(|i| format!("第{i}行 社区教育台帐 line {i}\n"))
        .collect();
    let bytes = Bytes::from(text.into_bytes());
    let parts: Vec<Bytes> = bytes.chunks(10_000).map(Bytes::copy_from_slice).collect();
    let upload = format!(
        "/api/v1/evidence/Upload?frameworkId={}&criterion={}&orgUnit={}&responsibleUnit={}\
         &period={}&title=%E5%8F%B0%E5%B8%90&fileName=%E5%8F%B0%E5%B8%90.txt",
        template["frameworkId"].as_str().unwrap(),
        template["criterion"].as_str().unwrap(),
        template["orgUnit"].as_str().unwrap(),
        template["responsibleUnit"].as_str().unwrap(),
        template["period"],
    );
    let a = office.post_stream(&upload, "text/plain", parts).await;
    assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.body));
    let record = a.json();
    let sha = hex(&sha2::Sha256::digest(&bytes));
    assert_eq!(record["current"]["sha256"], json!(sha));
    assert_eq!(record["current"]["size"], json!(bytes.len().to_string()));
    assert_eq!(record["current"]["fileName"], "台帐.txt");
    let id = record["id"].as_str().unwrap();

    // Down again, byte for byte, by both addresses.
    for path in [
        format!("/api/v1/evidence/{id}/content"),
        format!("/api/v1/evidence/Download?id={id}&version=1"),
    ] {
        let a = office.get(&path).await;
        assert_eq!(
            a.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&a.body)
        );
        assert_eq!(a.body, bytes, "{path}");
        assert_eq!(a.header("content-type"), "text/plain");
        assert_eq!(a.header("content-length"), bytes.len().to_string());
        assert_eq!(a.header("x-cezone-sha256"), sha);
        assert!(
            a.header("content-disposition")
                .contains("filename*=UTF-8''%E5%8F%B0%E5%B8%90.txt"),
            "{:?}",
            a.headers
        );
    }
    assert_error(
        &office
            .as_(None)
            .get(&format!("/api/v1/evidence/{id}/content"))
            .await,
        401,
        "UNAUTHENTICATED",
    );
    assert_error(
        &office.get("/api/v1/evidence/nope/content").await,
        404,
        "NOT_FOUND",
    );
    // Bad metadata is refused by field; an upload cut short stores nothing.
    let e = assert_error(
        &office
            .post_stream(
                &upload.replace("period=", "period=x"),
                "text/plain",
                vec![Bytes::from_static(b"x")],
            )
            .await,
        400,
        "INVALID_ARGUMENT",
    );
    assert_eq!(fields(&e), vec!["period"]);
    cut_short(&s.web, &office, &upload).await;
    assert_eq!(count(&office.get(everything).await.json()), before + 1);

    // A report, streamed with its name and type.
    let a = office
        .get("/api/v1/scoring/ExportReport?kind=self-score&format=html")
        .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert!(
        a.header("content-type").starts_with("text/html"),
        "{:?}",
        a.headers
    );
    assert_eq!(a.header("content-length"), a.body.len().to_string());
    assert!(String::from_utf8_lossy(&a.body).contains("<html"));

    // Score changes as lines: the first comes at once.
    let res = office
        .client
        .request(
            axum::http::Request::get(format!("{}/api/v1/scoring/WatchScores", office.base))
                .header(
                    "authorization",
                    format!("Bearer {}", office.token.clone().unwrap()),
                )
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    let mut body = res.into_body();
    let mut got = Vec::new();
    while !got.contains(&b'\n') {
        let frame = tokio::time::timeout(Duration::from_secs(30), body.frame())
            .await
            .expect("the first update within 30 s")
            .expect("the stream stays open")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            got.extend_from_slice(&data);
        }
    }
    let first: Value = serde_json::from_slice(got.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert!(first["unit"]["total"]["confirmed"].is_string(), "{first}");
    drop(body);
    s.stop().await;
}

/// Announces a body of 100 000 bytes, sends 1 000 and hangs up: nothing is stored.
async fn cut_short(web: &cezone_web::Application, office: &Http, upload: &str) {
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", web.port()))
        .await
        .unwrap();
    let head = format!(
        "POST {upload} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: text/plain\r\nContent-Length: 100000\r\n\r\n",
        office.token.as_ref().unwrap()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&[b'a'; 1000]).await.unwrap();
    tcp.shutdown().await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer)).await;
    // Whatever the client may still read, the service must not have kept a partial file.
    tokio::time::sleep(Duration::from_millis(300)).await;
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A person signs in over HTTP without a token, calls with the access token, and renews it
/// with the refresh token, which then stops working; everything else still needs a token.
async fn people_sign_in_use_their_token_and_refresh(backend: Backend) {
    let s = stack(backend).await;
    let office = Http::new(&s.web, Some(token(&s.env, Role::EvaluationOffice)));
    let anonymous = office.as_(None);
    let a = office
        .post(
            "/api/v1/registry/CreateAccount",
            json!({ "login": "li.wei", "displayName": "李伟", "role": "inspector",
                    "password": "a long passphrase" }),
        )
        .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["displayName"], "李伟");
    let text = String::from_utf8_lossy(&a.body);
    assert!(
        !text.contains("passphrase") && !text.contains("argon2"),
        "{text}"
    );

    let a = anonymous
        .post(
            "/api/v1/registry/Login",
            json!({ "login": "li.wei", "password": "a long passphrase" }),
        )
        .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let pair = a.json();
    assert_eq!(pair["account"]["role"], "inspector");
    let access = pair["accessToken"].as_str().unwrap().to_string();
    let refresh = pair["refreshToken"].as_str().unwrap().to_string();
    assert!(!pair["expiresAt"].as_str().unwrap().is_empty());

    // Signed by the registry's key, whose public half anyone may fetch: as the API's answer
    // and as a JSON Web Key Set for systems that verify our tokens themselves.
    let kid = {
        use base64::Engine as _;
        let head = access.split('.').next().unwrap();
        let head: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(head)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(head["alg"], "EdDSA");
        head["kid"].as_str().unwrap().to_string()
    };
    let keys = anonymous.get("/api/v1/registry/GetSigningKeys").await;
    assert_eq!(keys.status, 200, "{}", String::from_utf8_lossy(&keys.body));
    assert_eq!(keys.json()["keys"][0]["kid"], kid.as_str());
    let jwks = anonymous.get("/.well-known/jwks.json").await;
    assert_eq!(jwks.status, 200, "{}", String::from_utf8_lossy(&jwks.body));
    assert_eq!(jwks.headers["content-type"], "application/jwk-set+json");
    let set = jwks.json();
    assert_eq!(set["keys"][0]["kid"], kid.as_str());
    assert_eq!(set["keys"][0]["kty"], "OKP");
    assert_eq!(set["keys"][0]["crv"], "Ed25519");
    assert_eq!(set["keys"][0]["x"], keys.json()["keys"][0]["publicKey"]);

    // The token is good on the other services' reads, and carries the account's role.
    let me = office.as_(Some(access.clone()));
    let a = me.get("/api/v1/registry/ListOrgUnits").await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let a = me.get("/api/v1/evidence/ListEvidence").await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_error(
        &me.post(
            "/api/v1/registry/CreateAccount",
            json!({ "login": "x.y", "displayName": "x", "role": "inspector",
                    "password": "a long passphrase" }),
        )
        .await,
        403,
        "PERMISSION_DENIED",
    );

    // A wrong password and an unknown login: the same answer.
    let wrong = assert_error(
        &anonymous
            .post(
                "/api/v1/registry/Login",
                json!({ "login": "li.wei", "password": "not the passphrase" }),
            )
            .await,
        401,
        "UNAUTHENTICATED",
    );
    let unknown = assert_error(
        &anonymous
            .post(
                "/api/v1/registry/Login",
                json!({ "login": "nobody", "password": "not the passphrase" }),
            )
            .await,
        401,
        "UNAUTHENTICATED",
    );
    assert_eq!(wrong["message"], unknown["message"]);

    // Refresh without a token: a new pair; the old refresh token is refused after.
    let a = anonymous
        .post(
            "/api/v1/registry/Refresh",
            json!({ "refreshToken": refresh }),
        )
        .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let renewed = a.json();
    let next = renewed["refreshToken"].as_str().unwrap().to_string();
    assert_ne!(next, refresh);
    let a = office
        .as_(Some(renewed["accessToken"].as_str().unwrap().to_string()))
        .get("/api/v1/registry/ListOrgUnits")
        .await;
    assert_eq!(a.status, 200);
    assert_error(
        &anonymous
            .post(
                "/api/v1/registry/Refresh",
                json!({ "refreshToken": refresh }),
            )
            .await,
        401,
        "UNAUTHENTICATED",
    );
    // Everything else still needs a token, signing out included.
    assert_error(
        &anonymous.get("/api/v1/registry/ListAccounts").await,
        401,
        "UNAUTHENTICATED",
    );
    assert_error(
        &anonymous
            .post("/api/v1/registry/Logout", json!({ "refreshToken": next }))
            .await,
        401,
        "UNAUTHENTICATED",
    );
    let a = me
        .post("/api/v1/registry/Logout", json!({ "refreshToken": next }))
        .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["revoked"], true);
    s.stop().await;
}

cezone_platform::contract_tests!(
    reads_need_a_token_and_answer_as_grpc_does,
    bad_input_is_refused_by_field_and_changes_nothing,
    lists_page_and_writes_read_back,
    files_are_streamed_up_and_down,
    people_sign_in_use_their_token_and_refresh,
);

/// The page's data gives the times people read in the district's zone with the offset
/// (`scheduler.utc_offset_hours`, UTC+8 unless set), beside the RFC 3339 ones; the live events
/// too; and the script formats with that offset, never the browser's zone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scoreboard_shows_times_in_the_districts_zone() {
    use cezone_platform::time::local;
    use cezone_proto::scoring::v1 as ps;
    let s = stack(Backend::Sqlite).await;
    let mut scoring = s.services.scores().await.unwrap();
    scoring
        .recompute(ps::RecomputeRequest::default())
        .await
        .unwrap();
    scoring
        .freeze_snapshot(ps::FreezeSnapshotRequest {
            checkpoint: "materials-complete".into(),
            label: "创建完成".into(),
            frozen_by: "test".into(),
            close_submissions: false,
        })
        .await
        .unwrap();

    let check = |data: &Value, hours: i32, offset: &str, before: chrono::DateTime<chrono::Utc>| {
        assert_eq!(data["utc_offset_hours"], json!(hours), "{data}");
        assert_eq!(data["zone"], json!(format!("UTC{offset}")));
        let updated = data["updated_at"].as_str().unwrap();
        assert!(
            updated.ends_with('Z'),
            "the RFC 3339 time stays UTC: {updated}"
        );
        let shown = data["updated_at_local"].as_str().unwrap();
        assert_eq!(shown, local(updated, hours));
        assert!(shown.ends_with(&format!(" {offset}")), "{shown}");
        let snapshot = &data["snapshots"][0];
        let frozen = snapshot["frozen_at"].as_str().unwrap();
        assert_eq!(snapshot["frozen_at_local"], json!(local(frozen, hours)));
        assert!(
            snapshot["frozen_at_local"]
                .as_str()
                .unwrap()
                .ends_with(&format!(" {offset}")),
            "{snapshot}"
        );
        // The district's date, not the server's (UTC) one.
        let zone = chrono::FixedOffset::east_opt(hours * 3600).unwrap();
        let day = |t: chrono::DateTime<chrono::Utc>| {
            t.with_timezone(&zone).format("%Y-%m-%d").to_string()
        };
        let today = data["calendar"]["today"].as_str().unwrap();
        assert!(
            [day(before), day(chrono::Utc::now())].contains(&today.to_string()),
            "{today}"
        );
        let checkpoints = data["calendar"]["checkpoints"].as_array().unwrap();
        assert!(!checkpoints.is_empty());
        for c in checkpoints {
            assert_eq!(
                c["deadline"],
                json!(format!("{}T23:59:59{offset}", c["due"].as_str().unwrap())),
                "{c}"
            );
        }
    };
    let page = Http::new(&s.web, None);
    let before = chrono::Utc::now();
    let a = page.get("/api/scoreboard").await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    check(&a.json(), 8, "+08:00", before);

    // A district three hours west of UTC.
    let mut settings = s.services.settings.clone();
    settings.scheduler.utc_offset_hours = -3;
    settings.web.port = 0;
    let west = cezone_web::Application::build(&settings).await.unwrap();
    let before = chrono::Utc::now();
    let a = Http::new(&west, None).get("/api/scoreboard").await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    check(&a.json(), -3, "-03:00", before);
    west.stop().await;

    // The live events carry the time of each change as people read it.
    let mut events = tokio::net::TcpStream::connect(("127.0.0.1", s.web.port()))
        .await
        .unwrap();
    events
        .write_all(b"GET /api/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    let line = tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = [0u8; 4096];
        loop {
            let n = events.read(&mut buf).await.unwrap();
            assert!(n > 0, "the events stream ended");
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen).to_string();
            if let Some(l) = text
                .lines()
                .find(|l| l.starts_with("data: {") && l.contains("computed_at_local"))
            {
                return l.trim_start_matches("data: ").to_string();
            }
        }
    })
    .await
    .expect("a scores event within 30 s");
    let update: Value = serde_json::from_str(&line).unwrap();
    let at = update["computed_at"].as_str().unwrap();
    assert_eq!(update["computed_at_local"], json!(local(at, 8)), "{update}");
    assert!(
        update["computed_at_local"]
            .as_str()
            .unwrap()
            .ends_with(" +08:00")
    );
    drop(events);

    // The script shows the data's times and formats its own with the data's offset.
    let js = String::from_utf8(page.get("/scoreboard.js").await.body.to_vec()).unwrap();
    for used in [
        "updated_at_local",
        "frozen_at_local",
        "computed_at_local",
        "utc_offset_hours",
        "deadline",
    ] {
        assert!(js.contains(used), "the script does not use {used}");
    }
    assert!(
        !js.contains("toLocale") && !js.contains("T23:59:59+08:00"),
        "the script must not use the browser's zone or a fixed one"
    );
    s.stop().await;
}

/// The web port with no service behind it: every call answers 503, which is enough to show
/// what the routes themselves answer.
async fn without_services() -> cezone_web::Application {
    let mut settings = cezone_platform::settings::Settings::defaults();
    settings.web.port = 0;
    settings.auth.secret =
        cezone_platform::settings::Secret::new(cezone_platform::testing::random_secret());
    for url in [
        &mut settings.services.registry_url,
        &mut settings.services.evidence_url,
        &mut settings.services.surveys_url,
        &mut settings.services.scoring_url,
        &mut settings.services.scheduler_url,
    ] {
        *url = "http://127.0.0.1:9".into();
    }
    cezone_web::Application::build(&settings).await.unwrap()
}

/// A method a route does not take, and a path that is no route, answer with the API's JSON
/// error body like every other refusal: 405 with the methods in `Allow`, and 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_methods_and_unknown_paths_answer_in_json() {
    let web = without_services().await;
    let http = Http::new(&web, Some("x".into()));
    for (method, path, allow) in [
        // A streamed upload takes POST only.
        ("GET", "/api/v1/surveys/ImportStatistics", "POST"),
        ("PUT", "/api/v1/surveys/ImportStatistics", "POST"),
        // A read by path takes GET only.
        ("POST", "/api/v1/scores", "GET, HEAD"),
        ("DELETE", "/api/v1/scores/nanhai", "GET, HEAD"),
        // A unary read takes both.
        ("DELETE", "/api/v1/scoring/GetScores", "GET, HEAD, POST"),
        ("POST", "/api/v1/openapi.json", "GET, HEAD"),
    ] {
        let a = http
            .send(method, path, "application/json", Body::from("{}"))
            .await;
        let body = assert_error(&a, 405, "UNIMPLEMENTED");
        assert_eq!(a.header("allow"), allow, "{method} {path}");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("{method} is not allowed on {path}; use {allow}")),
            "{message}"
        );
        assert_eq!(a.header("x-content-type-options"), "nosniff");
    }
    for (method, path) in [
        ("GET", "/api/v1/nothing"),
        ("POST", "/api/v1/scoring/NoSuchMethod"),
        ("GET", "/api/v1/scores/nanhai/extra"),
        ("DELETE", "/api/v1/"),
        ("GET", "/api/v1"),
    ] {
        let a = http.send(method, path, "", Body::empty()).await;
        let body = assert_error(&a, 404, "NOT_FOUND");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("/api/v1/openapi.json"),
            "{method} {path}: {body}"
        );
        assert_eq!(a.header("allow"), "", "{method} {path}");
    }
    // The right method still reaches the route (here: the service is down, 503).
    let a = http.get("/api/v1/scores").await;
    assert_error(&a, 503, "UNAVAILABLE");
    web.stop().await;
}

/// The document at /api/v1/openapi.json: valid by `openapi-spec-validator`, and every path and
/// verb in it is served (none answers 404 or 405).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_validates_and_matches_the_routes() {
    let web = without_services().await;
    let http = Http::new(&web, Some("x".into()));
    let a = http.get("/api/v1/openapi.json").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("content-type"), "application/json");
    let doc = a.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));

    let dir = tempfile_dir();
    let file = dir.join("openapi.json");
    std::fs::write(&file, &a.body).unwrap();
    let out = std::process::Command::new(validator())
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "openapi-spec-validator cannot run ({e}): this test needs it \
                 (pip install openapi-spec-validator; tests/run installs it into target/tools/openapi)"
            )
        });
    assert!(
        out.status.success(),
        "the document does not validate:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() > 40, "{}", paths.len());
    for (path, ops) in paths {
        let concrete = path.replace("{org_unit}", "nanhai").replace("{id}", "x");
        for verb in ops.as_object().unwrap().keys() {
            let a = http
                .send(
                    &verb.to_uppercase(),
                    &concrete,
                    "application/json",
                    Body::empty(),
                )
                .await;
            assert!(
                ![404, 405].contains(&a.status),
                "{verb} {path} is documented but answers {}",
                a.status
            );
        }
    }
    web.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// `openapi-spec-validator` on PATH, or where tests/run installs it.
fn validator() -> std::path::PathBuf {
    let installed = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/tools/openapi/bin/openapi-spec-validator");
    let on_path = std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| d.join("openapi-spec-validator").is_file())
    });
    if on_path || !installed.is_file() {
        "openapi-spec-validator".into()
    } else {
        installed
    }
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cezone-openapi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn survey_lines_are_proto3_json() {
    // The shape the NDJSON lines above are written in is the generated one.
    let b: psv::ResponseBatch =
        serde_json::from_value(json!({ "responses": [{ "respondentId": "r", "orgUnit": "o",
            "answers": [{ "question": "q", "value": 1 }] }] }))
        .unwrap();
    assert_eq!(b.responses[0].answers[0].value, 1);
}
