//! The survey service over real gRPC with a real registry, on SQLite and PostgreSQL.

use cezone_client::registry as reg;
use cezone_client::surveys::{self as sv, Surveys};
use cezone_domain::demo::{DemoParams, generate, tally};
use cezone_domain::guangdong;
use cezone_domain::org::{OrgLevel, OrgTree};
use cezone_platform::error::violations;
use cezone_platform::testing::{Backend, TestEnv, test_env};
use cezone_proto::common::v1::PageRequest;
use cezone_proto::surveys::v1 as psv;
use tonic::Code;

struct Stack {
    registry: cezone_registry::Application,
    surveys: cezone_surveys::Application,
    sv: Surveys,
    district: cezone_domain::demo::DemoDistrict,
    _env: TestEnv,
}

/// A small demo district (2 towns, 6 communities) registered, and a survey defined.
async fn spawn(backend: Backend) -> Stack {
    let mut env = test_env(backend).await;
    let bus = cezone_bus::connect(&cezone_platform::testing::in_process_bus(
        &cezone_platform::testing::fresh_bus_prefix(),
    ))
    .await
    .unwrap();
    // Small write batches, so a failing call has already written some before it fails.
    env.settings.surveys.write_batch_rows = 25;
    let registry = cezone_registry::Application::build(&env.settings, bus.clone())
        .await
        .unwrap();
    env.settings.services.registry_url = registry.url();
    // The smallest pool a deployment may configure: a call the unique index refuses still
    // names its row (regression: the lookup waited for the connection its own call held).
    env.settings.database.max_connections = 1;
    let surveys = cezone_surveys::Application::build(&env.settings, bus.clone())
        .await
        .unwrap();
    let (fw, _) = guangdong::framework();
    let district = generate(
        &fw,
        &DemoParams {
            towns: 2,
            communities: 6,
            responses_per_community: 40,
            ..DemoParams::nanhai(5)
        },
    );
    let mut r = reg::client(
        cezone_client::connect(&registry.url(), &cezone_platform::testing::office())
            .await
            .unwrap(),
    );
    reg::import_and_publish(&mut r, reg::guangdong_source())
        .await
        .unwrap();
    reg::create_org_units(&mut r, &reg::parents_first(&district.units))
        .await
        .unwrap();
    let mut sv = sv::client(
        cezone_client::connect(&surveys.url(), &cezone_platform::testing::office())
            .await
            .unwrap(),
    );
    sv.define_survey(sv::survey_for(
        &fw.catalog,
        "resident-2013",
        "2013年社区教育居民调查",
        2013,
    ))
    .await
    .unwrap();
    Stack {
        registry,
        surveys,
        sv,
        district,
        _env: env,
    }
}

impl Stack {
    async fn stop(self) {
        self.surveys.stop().await;
        self.registry.stop().await;
    }

    fn responses(&self) -> Vec<psv::Response> {
        let (fw, _) = guangdong::framework();
        self.district
            .responses(&fw.catalog)
            .map(|r| sv::response(&r))
            .collect()
    }

    async fn tallies(&mut self) -> Vec<psv::Tally> {
        self.sv
            .list_tallies(psv::ListTalliesRequest {
                period: 2013,
                page: None,
            })
            .await
            .unwrap()
            .into_inner()
            .tallies
    }

    /// The district's first town.
    fn first_town(&self) -> String {
        self.district
            .units
            .iter()
            .find(|u| u.level == OrgLevel::Town)
            .unwrap()
            .id
            .to_string()
    }

    /// The survey service's database, as an inspector with access to it reads it.
    async fn db(&self) -> sea_orm::DatabaseConnection {
        cezone_platform::db::connect(&self._env.settings.database, "surveys")
            .await
            .unwrap()
    }

    /// The `statistic.imported` events in the outbox, oldest first.
    async fn imported_events(&self) -> Vec<cezone_proto::events::v1::StatisticsImported> {
        use prost::Message;
        use sea_orm::ConnectionTrait;
        let db = self.db().await;
        let rows = db
            .query_all(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT envelope FROM surveys_outbox WHERE event_type = 'statistic.imported' \
                 ORDER BY id",
            ))
            .await
            .unwrap();
        db.close().await.unwrap();
        rows.iter()
            .map(|r| {
                let bytes: Vec<u8> = r.try_get("", "envelope").unwrap();
                let env = cezone_bus::decode(&bytes).unwrap();
                cezone_proto::events::v1::StatisticsImported::decode(env.payload.as_slice())
                    .unwrap()
            })
            .collect()
    }

    /// The newest entry of the service's audit log: action, target, details.
    async fn last_audit_entry(&self) -> (String, String, serde_json::Value) {
        use sea_orm::ConnectionTrait;
        let db = self.db().await;
        let row = db
            .query_one(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT action, target, details FROM surveys_audit ORDER BY seq DESC LIMIT 1",
            ))
            .await
            .unwrap()
            .unwrap();
        db.close().await.unwrap();
        let details: String = row.try_get("", "details").unwrap();
        (
            row.try_get("", "action").unwrap(),
            row.try_get("", "target").unwrap(),
            serde_json::from_str(&details).unwrap(),
        )
    }

    /// Every statistic through ListStatistics (the latest, or every version), in the order
    /// filed.
    async fn listed_statistics(
        &mut self,
        all_versions: bool,
        page_size: i32,
    ) -> Vec<psv::StatisticReturn> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .sv
                .list_statistics(psv::ListStatisticsRequest {
                    all_versions,
                    page: Some(PageRequest {
                        page_size,
                        page_token: token,
                    }),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            out.extend(page.statistics);
            token = page.page.unwrap().next_page_token;
            if token.is_empty() {
                return out;
            }
        }
    }

    /// The responses stored for the survey: the rows in the table, which GetSurvey reports.
    async fn stored(&mut self) -> u64 {
        use sea_orm::ConnectionTrait;
        let reported = self
            .sv
            .get_survey(psv::GetSurveyRequest {
                id: "resident-2013".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .responses;
        let db = self.db().await;
        let row = db
            .query_one(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM surveys_responses \
                 WHERE survey_id = 'resident-2013'",
            ))
            .await
            .unwrap()
            .unwrap();
        let rows = row.try_get::<i64>("", "n").unwrap() as u64;
        db.close().await.unwrap();
        assert_eq!(reported, rows, "GetSurvey counts the stored rows");
        rows
    }
}

async fn survey_definitions_are_checked(backend: Backend) {
    let mut s = spawn(backend).await;
    let (fw, _) = guangdong::framework();
    let err =
        s.sv.define_survey(sv::survey_for(&fw.catalog, "resident-2013", "again", 2013))
            .await
            .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    let mut bad = sv::survey_for(&fw.catalog, "x", "x", 2013);
    bad.questions[2].satisfied_from = 7;
    assert_eq!(
        violations(&s.sv.define_survey(bad).await.unwrap_err())[0].0,
        "questions[2].satisfied_from"
    );
    let mut bad = sv::survey_for(&fw.catalog, "x", "x", 2013);
    bad.questions[1].id = bad.questions[0].id.clone();
    assert_eq!(
        violations(&s.sv.define_survey(bad).await.unwrap_err())[0].0,
        "questions[1].id"
    );
    let bad = psv::Survey {
        questions: vec![],
        ..sv::survey_for(&fw.catalog, "x", "x", 2013)
    };
    assert_eq!(
        violations(&s.sv.define_survey(bad).await.unwrap_err())[0].0,
        "questions"
    );
    let bad = sv::survey_for(&fw.catalog, "Bad Id", "x", 2013);
    assert_eq!(
        violations(&s.sv.define_survey(bad).await.unwrap_err())[0].0,
        "id"
    );
    s.stop().await;
}

async fn bulk_responses_are_stored_and_tallied(backend: Backend) {
    let mut s = spawn(backend).await;
    let all = s.responses();
    assert_eq!(all.len(), 240);
    // Two calls: the second adds its counts to the tallies the first stored.
    let first = sv::ingest(&mut s.sv, "resident-2013", all[..100].to_vec())
        .await
        .unwrap();
    assert_eq!(first.accepted, 100);
    let summary = sv::ingest(&mut s.sv, "resident-2013", all[100..].to_vec())
        .await
        .unwrap();
    assert_eq!(summary.accepted, 140);
    assert_eq!(s.stored().await, 240);
    let units = |rs: &[psv::Response]| {
        rs.iter()
            .map(|r| r.org_unit.clone())
            .collect::<std::collections::BTreeSet<_>>()
    };
    let (early, late) = (units(&all[..100]), units(&all[100..]));
    assert_eq!(u64::from(summary.org_units), late.len() as u64);
    assert_eq!(early.union(&late).count(), 6);
    let (fw, _) = guangdong::framework();
    let expected = tally(s.district.responses(&fw.catalog), &fw.catalog);
    let got = s.tallies().await;
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(
            (
                g.org_unit.as_str(),
                g.question.as_str(),
                g.responses,
                g.positive
            ),
            (
                e.org_unit.as_str(),
                e.question.as_str(),
                e.responses,
                e.positive
            )
        );
        // A tally both calls counted into has its second version.
        let both = early.contains(&g.org_unit) && late.contains(&g.org_unit);
        assert_eq!(g.version, if both { 2 } else { 1 }, "{g:?}");
    }
    s.stop().await;
}

/// Spoils one response of a good batch.
type Damage = Box<dyn Fn(&mut psv::Response)>;

async fn a_bad_row_rejects_the_whole_call_with_its_row_number(backend: Backend) {
    let mut s = spawn(backend).await;
    let good = s.responses();
    let cases: Vec<(usize, Damage, &str)> = vec![
        (
            123,
            Box::new(|r| r.answers[2].value = 7),
            "answer 7 to 'satisfaction' is out of range",
        ),
        (
            200,
            Box::new(|r| r.answers[0].value = 2),
            "yes/no answer is 0 or 1",
        ),
        (
            77,
            Box::new(|r| r.org_unit = "nanhai.nowhere.c001".into()),
            "not a known community",
        ),
        (
            50,
            Box::new(|r| r.org_unit = "nanhai".into()),
            "not a known community",
        ),
        (
            90,
            Box::new(|r| {
                r.answers.push(psv::Answer {
                    question: "mood".into(),
                    value: 1,
                })
            }),
            "'mood' is not a question",
        ),
        (
            31,
            Box::new(|r| r.respondent_id = String::new()),
            "not a respondent id",
        ),
        (40, Box::new(|r| r.answers.clear()), "no answers"),
    ];
    for (row, damage, needle) in cases {
        let mut batch = good.clone();
        damage(&mut batch[row - 1]);
        let err = sv::ingest(&mut s.sv, "resident-2013", batch)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        let v = violations(&err);
        assert!(v[0].0.starts_with(&format!("responses[{row}].")), "{v:?}");
        assert!(
            v[0].1.starts_with(&format!("row {row}: ")) && v[0].1.contains(needle),
            "{v:?}"
        );
    }
    // A respondent twice in one call.
    let mut batch = good.clone();
    batch[150].respondent_id = batch[10].respondent_id.clone();
    let err = sv::ingest(&mut s.sv, "resident-2013", batch)
        .await
        .unwrap_err();
    assert!(
        violations(&err)[0].1.starts_with("row 151: ")
            && err
                .message()
                .contains("appears twice in this upload (first in row 11)"),
        "{err:?}"
    );
    assert_eq!(s.stored().await, 0, "a rejected call stores nothing");
    assert!(s.tallies().await.is_empty());

    // Accepted once; the same respondents again are refused, and still nothing more is stored.
    sv::ingest(&mut s.sv, "resident-2013", good[..100].to_vec())
        .await
        .unwrap();
    let err = sv::ingest(&mut s.sv, "resident-2013", good[90..].to_vec())
        .await
        .unwrap_err();
    assert!(err.message().contains("already answered"), "{err:?}");
    assert!(
        violations(&err)[0].0.starts_with("responses[1]."),
        "{err:?}"
    );
    assert_eq!(s.stored().await, 100);
    // The earlier row's error is the one reported, though its chunk (25 rows) is written while
    // later rows are read: here row 1 answered already, and row 60 has no answers.
    let mut late = good[90..].to_vec();
    late[59].answers.clear();
    let err = sv::ingest(&mut s.sv, "resident-2013", late)
        .await
        .unwrap_err();
    assert!(err.message().contains("already answered"), "{err:?}");
    assert_eq!(s.stored().await, 100);
    let err = sv::ingest(&mut s.sv, "no-such-survey", good.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = sv::ingest(&mut s.sv, "resident-2013", Vec::new())
        .await
        .unwrap_err();
    assert_eq!(violations(&err)[0].0, "batch");
    s.stop().await;
}

/// A client that goes away in the middle of an upload (its connection closes while its stream
/// is still open) leaves nothing stored, and the service's one pooled connection (see `spawn`)
/// comes back usable: the same rows then go in whole.
async fn an_upload_cut_off_midway_stores_nothing(backend: Backend) {
    let mut s = spawn(backend).await;
    let good = s.responses();
    let (tx, rx) = tokio::sync::mpsc::channel::<psv::IngestRequest>(16);
    tx.send(psv::IngestRequest {
        part: Some(psv::ingest_request::Part::SurveyId("resident-2013".into())),
    })
    .await
    .unwrap();
    for part in good[..100].chunks(20) {
        tx.send(psv::IngestRequest {
            part: Some(psv::ingest_request::Part::Batch(psv::ResponseBatch {
                responses: part.to_vec(),
            })),
        })
        .await
        .unwrap();
    }
    // A connection of its own, closed with the call: the stream never ends cleanly (`tx`
    // lives until the end), as when a client process dies.
    let mut client = sv::client(
        cezone_client::connect(&s.surveys.url(), &cezone_platform::testing::office())
            .await
            .unwrap(),
    );
    let call = tokio::spawn(async move {
        client
            .ingest_responses(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    // The service has read the first rows and written some (chunks of 25) when the client
    // goes away.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    call.abort();
    let _ = call.await;

    let summary = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        sv::ingest(&mut s.sv, "resident-2013", good.clone()),
    )
    .await
    .expect("the service took the next upload")
    .unwrap();
    assert_eq!(summary.accepted, good.len() as u64);
    assert_eq!(s.stored().await, good.len() as u64);
    drop(tx);
    s.stop().await;
}

async fn statistics_are_versioned_and_checked(backend: Backend) {
    let mut s = spawn(backend).await;
    let town = s.first_town();
    let stat = |value: i64| psv::StatisticReturn {
        org_unit: town.clone(),
        metric: "staff_trained".into(),
        period: 2013,
        value,
        filed_by: "区教育局".into(),
        ..Default::default()
    };
    let v1 = s.sv.record_statistic(stat(12)).await.unwrap().into_inner();
    assert_eq!(v1.version, 1);
    let v2 = s.sv.record_statistic(stat(14)).await.unwrap().into_inner();
    assert_eq!(v2.version, 2);
    let latest =
        s.sv.list_statistics(psv::ListStatisticsRequest {
            org_unit: town.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(latest.statistics.len(), 1);
    assert_eq!(latest.statistics[0].value, 14);
    let all =
        s.sv.list_statistics(psv::ListStatisticsRequest {
            org_unit: town.clone(),
            all_versions: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.statistics.len(), 2);

    let err = s.sv.record_statistic(stat(-1)).await.unwrap_err();
    assert_eq!(violations(&err)[0].0, "value");
    let err =
        s.sv.record_statistic(psv::StatisticReturn {
            metric: "staff_trainned".into(),
            ..stat(1)
        })
        .await
        .unwrap_err();
    assert!(
        violations(&err)[0].1.contains("staff_trainned")
            && violations(&err)[0].1.contains("staff_trained")
    );
    let err =
        s.sv.record_statistic(psv::StatisticReturn {
            org_unit: "nanhai.x".into(),
            ..stat(1)
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&err)[0].0, "org_unit");
    let err =
        s.sv.record_statistic(psv::StatisticReturn {
            period: 20130,
            ..stat(1)
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&err)[0].0, "period");

    // Keyset pages over many returns.
    for (i, f) in s
        .district
        .statistics
        .iter()
        .filter(|f| f.period == 2013)
        .take(25)
        .enumerate()
    {
        sv::record(&mut s.sv, f, &format!("filer {i}"))
            .await
            .unwrap();
    }
    // Pages of 7: every latest value once.
    let seen = s.listed_statistics(false, 7).await.len();
    // The 25th return is a third version of the town's staff_trained: 25 latest values in all.
    assert_eq!(seen, 25);
    s.stop().await;
}

/// An import's audit digest as an inspector recomputes it from the versions it stored (in the
/// order filed): SHA-256 over `org_unit \t metric \t period \t version \t value \t filed_by \n`.
fn digest(stored: &[psv::StatisticReturn]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for x in stored {
        h.update(
            format!(
                "{}\t{}\t{}\t{}\t{}\t{}\n",
                x.org_unit, x.metric, x.period, x.version, x.value, x.filed_by
            )
            .as_bytes(),
        );
    }
    hex::encode(h.finalize())
}

/// A return of any size streamed in parts is stored all or nothing: a bad value in the last part
/// refuses everything, named by its place in the whole stream; a dry run stores nothing.
async fn a_streamed_import_is_stored_all_or_nothing(backend: Backend) {
    let mut s = spawn(backend).await;
    let all: Vec<psv::StatisticReturn> = s
        .district
        .statistics
        .iter()
        .map(|f| sv::statistic(f, "区统计局"))
        .collect();
    assert!(all.len() > 100, "{}", all.len());
    let parts = |stats: &[psv::StatisticReturn], dry_run: bool| {
        let parts: Vec<psv::RecordStatisticsRequest> = stats
            .chunks(40)
            .map(|c| psv::RecordStatisticsRequest {
                statistics: c.to_vec(),
                dry_run,
            })
            .collect();
        tokio_stream::iter(parts)
    };
    let stored = |sv: &mut sv::Surveys| {
        let mut sv = sv.clone();
        async move {
            sv.list_statistics(psv::ListStatisticsRequest {
                page: Some(PageRequest {
                    page_size: 5000,
                    page_token: String::new(),
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .statistics
            .len()
        }
    };

    let mut bad = all.clone();
    let last = bad.len() - 1;
    bad[last].value = -5;
    let err =
        s.sv.import_statistics(parts(&bad, false))
            .await
            .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(violations(&err)[0].0, format!("statistics[{last}].value"));
    assert_eq!(
        stored(&mut s.sv).await,
        0,
        "nothing of the earlier parts was stored"
    );

    let dry =
        s.sv.import_statistics(parts(&all, true))
            .await
            .unwrap()
            .into_inner();
    assert!(dry.dry_run);
    assert_eq!(dry.recorded, all.len() as u64);
    assert_eq!(stored(&mut s.sv).await, 0, "a dry run stores nothing");

    let done =
        s.sv.import_statistics(parts(&all, false))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(
        (done.recorded, done.first_filings),
        (all.len() as u64, all.len() as u64)
    );
    assert_eq!(stored(&mut s.sv).await, all.len());
    // Announced in one `statistic.imported` event (fewer than 5,000) and audited as one entry
    // whose digest an inspector recomputes from the stored versions, in the order filed.
    let announced = s.imported_events().await;
    assert_eq!(announced.len(), 1);
    assert_eq!(announced[0].import_id, done.import_id);
    assert_eq!((announced[0].part, announced[0].parts), (1, 1));
    assert_eq!(announced[0].statistics.len(), all.len());
    assert!(announced[0].statistics.iter().all(|x| x.version == 1));
    let listed = s.listed_statistics(false, 1000).await;
    let (action, target, details) = s.last_audit_entry().await;
    assert_eq!(
        (action.as_str(), target.as_str()),
        ("statistics.imported", done.import_id.as_str())
    );
    assert_eq!(details["statistics"], all.len());
    assert_eq!(details["first_filings"], all.len());
    assert_eq!(details["digest"], digest(&listed), "{details}");
    // Corrections of a few: the next version of each, no first filings; the earlier versions
    // are superseded, the new ones the latest.
    let mut corrected = all[..3].to_vec();
    for x in &mut corrected {
        x.value += 1;
    }
    let again =
        s.sv.import_statistics(parts(&corrected, false))
            .await
            .unwrap()
            .into_inner();
    assert_eq!((again.recorded, again.first_filings), (3, 0));
    assert_ne!(again.import_id, done.import_id);
    let announced = s.imported_events().await;
    assert_eq!(announced.len(), 2);
    let versions: Vec<(i64, u64)> = announced[1]
        .statistics
        .iter()
        .map(|x| (x.value, x.version))
        .collect();
    assert_eq!(
        versions,
        corrected.iter().map(|x| (x.value, 2)).collect::<Vec<_>>()
    );
    let everything = s.listed_statistics(true, 1000).await;
    assert_eq!(everything.len(), all.len() + 3);
    for x in &corrected {
        let of_key: Vec<(u64, i64, i32)> = everything
            .iter()
            .filter(|y| (&y.org_unit, &y.metric, y.period) == (&x.org_unit, &x.metric, x.period))
            .map(|y| (y.version, y.value, y.state))
            .collect();
        assert_eq!(
            of_key,
            vec![
                (1, x.value - 1, psv::StatisticState::Superseded as i32),
                (2, x.value, psv::StatisticState::Accepted as i32)
            ]
        );
    }
    assert_eq!(
        stored(&mut s.sv).await,
        all.len(),
        "one latest version per key"
    );
    let (_, target, details) = s.last_audit_entry().await;
    assert_eq!(target, again.import_id);
    assert_eq!(details["changed"], 3);
    let newest: Vec<psv::StatisticReturn> = everything
        .iter()
        .filter(|y| y.version == 2)
        .cloned()
        .collect();
    assert_eq!(details["digest"], digest(&newest));

    // A return with more keys than PostgreSQL's shared lock table holds locks (6,400 by
    // default): every (org unit, metric) over a century and a half of periods, in one import.
    let mut pairs: Vec<(String, String, i64)> = all
        .iter()
        .map(|x| (x.org_unit.clone(), x.metric.clone(), x.value))
        .collect();
    pairs.sort();
    pairs.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    let wide: Vec<psv::StatisticReturn> = (1950..2100)
        .flat_map(|period| {
            pairs.iter().map(move |(o, m, v)| psv::StatisticReturn {
                org_unit: o.clone(),
                metric: m.clone(),
                period,
                value: *v,
                ..Default::default()
            })
        })
        .collect();
    assert!(wide.len() > 6_400, "{}", wide.len());
    let wide_parts: Vec<psv::RecordStatisticsRequest> = wide
        .chunks(5_000)
        .map(|c| psv::RecordStatisticsRequest {
            statistics: c.to_vec(),
            dry_run: false,
        })
        .collect();
    let done =
        s.sv.import_statistics(tokio_stream::iter(wide_parts))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(done.recorded, wide.len() as u64);
    let announced = s.imported_events().await;
    let parts_of_wide: Vec<(u32, u32, usize)> = announced
        .iter()
        .filter(|e| e.import_id == done.import_id)
        .map(|e| (e.part, e.parts, e.statistics.len()))
        .collect();
    let n = wide.len().div_ceil(5_000) as u32;
    assert_eq!(parts_of_wide.len(), n as usize);
    assert_eq!(
        parts_of_wide.iter().map(|p| p.2).sum::<usize>(),
        wide.len(),
        "every statistic announced once"
    );
    assert!(
        parts_of_wide
            .iter()
            .enumerate()
            .all(|(i, p)| (p.0, p.1) == (i as u32 + 1, n))
    );

    let err =
        s.sv.import_statistics(tokio_stream::iter(
            Vec::<psv::RecordStatisticsRequest>::new(),
        ))
        .await
        .unwrap_err();
    assert_eq!(violations(&err)[0].0, "statistics");
    s.stop().await;
}

async fn aggregates_are_population_weighted_with_wilson_intervals(backend: Backend) {
    let mut s = spawn(backend).await;
    let all = s.responses();
    sv::ingest(&mut s.sv, "resident-2013", all).await.unwrap();
    let agg =
        s.sv.get_aggregates(psv::GetAggregatesRequest {
            org_unit: String::new(),
            period: 2013,
            include_children: true,
            target: 0.7,
        })
        .await
        .unwrap()
        .into_inner();
    let total = agg.total.unwrap();
    assert_eq!(total.org_unit, "nanhai");
    assert_eq!(agg.children.len(), 2);
    let aware = total
        .questions
        .iter()
        .find(|q| q.question == "awareness")
        .unwrap();
    assert_eq!(aware.responses, 240);
    // The same rate the domain computes from the same tallies and populations.
    let (fw, _) = guangdong::framework();
    let tree = OrgTree::build(s.district.units.clone()).unwrap();
    let tallies = tally(s.district.responses(&fw.catalog), &fw.catalog);
    let domain = cezone_domain::engine::Aggregates::build(&tree, &[], &tallies, &[2013]);
    let expected = domain
        .survey(&"awareness".parse_question(), 2013)
        .unwrap()
        .sum[0][0];
    assert!((aware.rate.unwrap() - expected.rate().unwrap()).abs() < 1e-12);
    assert!(aware.wilson_low < aware.rate.unwrap() && aware.rate.unwrap() < aware.wilson_high);
    assert!(aware.effective_n > 0.0 && aware.effective_n <= 240.0);
    let err =
        s.sv.get_aggregates(psv::GetAggregatesRequest {
            org_unit: "nowhere".into(),
            period: 2013,
            include_children: false,
            target: 0.0,
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&err)[0].0, "org_unit");
    s.stop().await;
}

trait ParseQuestion {
    fn parse_question(&self) -> cezone_domain::rules::QuestionId;
}

impl ParseQuestion for &str {
    fn parse_question(&self) -> cezone_domain::rules::QuestionId {
        cezone_domain::rules::QuestionId::parse(self).unwrap()
    }
}

/// A filing checked while the period is being locked waits for the lock and is then refused:
/// the lock's transaction is played by hand and held open (the period's exclusive guard and
/// the lock row, as `LockPeriod` writes them), the filing's check passes (the lock is not
/// committed), its write waits on the period, and once the lock commits nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filing_racing_a_period_lock_is_refused_not_stored() {
    use sea_orm::{ConnectionTrait, Statement, TransactionTrait};
    let mut s = spawn(Backend::Postgres).await;
    let town = s.first_town();
    // Two connections of their own (the settings' pool holds one): the lock's transaction,
    // and a look at who waits.
    let (db, watcher) = (s.db().await, s.db().await);
    let pg = sea_orm::DatabaseBackend::Postgres;
    let locking = db.begin().await.unwrap();
    locking
        .execute(Statement::from_string(
            pg,
            format!(
                "SELECT pg_advisory_xact_lock({})",
                cezone_surveys::period_guard(2013)
            ),
        ))
        .await
        .unwrap();
    locking
        .execute(Statement::from_string(
            pg,
            "INSERT INTO surveys_period_locks (period, reason, locked_by, locked_at, revision) \
             VALUES (2013, '材料已上交 handed in', 'office', '2026-12-07T20:00:00+08:00', 1)",
        ))
        .await
        .unwrap();

    let mut sv = s.sv.clone();
    let filing = tokio::spawn(async move {
        sv.record_statistic(psv::StatisticReturn {
            org_unit: town,
            metric: "staff_trained".into(),
            period: 2013,
            value: 3,
            ..Default::default()
        })
        .await
    });
    // The filing's write waits on the period's guard (and must not have finished).
    let waiting = "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM pg_locks \
                   WHERE locktype = 'advisory' AND NOT granted";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        assert!(
            !filing.is_finished(),
            "the filing went through while the period was being locked: {:?}",
            filing.await
        );
        let n: i64 = watcher
            .query_one(Statement::from_string(pg, waiting))
            .await
            .unwrap()
            .unwrap()
            .try_get("", "n")
            .unwrap();
        if n > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the filing never waited"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    locking.commit().await.unwrap();
    let err = filing.await.unwrap().unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("period 2013 is locked"),
        "{}",
        err.message()
    );
    assert!(
        s.listed_statistics(true, 100).await.is_empty(),
        "nothing was stored"
    );
    db.close().await.unwrap();
    s.stop().await;
}

cezone_platform::contract_tests!(
    survey_definitions_are_checked,
    bulk_responses_are_stored_and_tallied,
    a_bad_row_rejects_the_whole_call_with_its_row_number,
    an_upload_cut_off_midway_stores_nothing,
    statistics_are_versioned_and_checked,
    aggregates_are_population_weighted_with_wilson_intervals,
    a_streamed_import_is_stored_all_or_nothing,
);
