//! The streaming operations over HTTP: an evidence file uploaded as the raw request body and
//! downloaded as the raw answer body, a report downloaded the same way, survey responses sent
//! as JSON lines, and score changes received as JSON lines. Bodies are passed on chunk by
//! chunk as they come; nothing is held whole in memory.

use std::collections::VecDeque;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cezone_proto::evidence::v1 as pe;
use cezone_proto::scoring::v1 as ps;
use cezone_proto::surveys::v1 as psv;
use futures::{Stream, StreamExt};
use tokio::sync::oneshot;

use super::errors::{ErrorBody, GatewayError, code_name};
use super::routes::{Api, Shape, pairs, proto_name};
use super::{Gateway, Service, json};

type Pairs = Vec<(String, String)>;
type QueryResult = Result<Query<Pairs>, axum::extract::rejection::QueryRejection>;

/// The largest chunk sent to a service in one message.
const CHUNK: usize = 64 * 1024;

/// The SHA-256 of a downloaded file (hex), as the service stored and checked it.
pub const SHA256_HEADER: &str = "x-cezone-sha256";

pub(super) fn evidence(a: &mut Api) {
    a.add_stream::<pe::UploadRequest, pe::Evidence>(
        "/api/v1/evidence/Upload",
        Service::Evidence,
        "Upload",
        Shape::UploadFile,
        Some(proto_name::<pe::UploadMetadata>()),
        None,
        axum::routing::post(upload),
    );
    a.add_stream::<pe::DownloadRequest, pe::DownloadResponse>(
        "/api/v1/evidence/Download",
        Service::Evidence,
        "Download",
        Shape::DownloadFile,
        Some(proto_name::<pe::DownloadRequest>()),
        None,
        axum::routing::get(
            |State(g): State<Gateway>, headers: HeaderMap, q: QueryResult| async move {
                download(g, headers, pairs(q)).await
            },
        ),
    );
    a.add_stream::<pe::DownloadRequest, pe::DownloadResponse>(
        "/api/v1/evidence/{id}/content",
        Service::Evidence,
        "Download",
        Shape::DownloadFile,
        Some(proto_name::<pe::DownloadRequest>()),
        None,
        axum::routing::get(
            |State(g): State<Gateway>,
             headers: HeaderMap,
             Path(id): Path<String>,
             q: QueryResult| async move {
                let q = pairs(q).map(|mut p| {
                    p.push(("id".to_string(), id));
                    p
                });
                download(g, headers, q).await
            },
        ),
    );
}

pub(super) fn surveys(a: &mut Api) {
    a.add_stream::<psv::IngestRequest, psv::IngestSummary>(
        "/api/v1/surveys/IngestResponses",
        Service::Surveys,
        "IngestResponses",
        Shape::NdjsonIn,
        Some(proto_name::<psv::IngestRequest>()),
        Some(proto_name::<psv::ResponseBatch>()),
        axum::routing::post(ingest),
    );
    a.add_stream::<psv::RecordStatisticsRequest, psv::ImportStatisticsResponse>(
        "/api/v1/surveys/ImportStatistics",
        Service::Surveys,
        "ImportStatistics",
        Shape::NdjsonIn,
        None,
        Some(proto_name::<psv::RecordStatisticsRequest>()),
        axum::routing::post(import_statistics),
    );
}

/// `POST /api/v1/surveys/ImportStatistics` with one `RecordStatisticsRequest` (a part of at
/// most 10,000 statistics) per line; stored all or nothing once the body ends.
async fn import_statistics(State(g): State<Gateway>, headers: HeaderMap, body: Body) -> Response {
    respond(
        async {
            let (failed_tx, failed_rx) = oneshot::channel();
            let parts = lines::<psv::RecordStatisticsRequest>(body, failed_tx);
            let call = g.client_stream::<_, psv::ImportStatisticsResponse, _>(
                Service::Surveys,
                "ImportStatistics",
                &headers,
                parts,
            );
            tokio::select! {
                answer = call => answer.map(|s| json::answer(&s)),
                Ok(e) = failed_rx => Err(e),
            }
        }
        .await,
    )
}

pub(super) fn scoring(a: &mut Api) {
    a.add_stream::<ps::ExportReportRequest, ps::ReportChunk>(
        "/api/v1/scoring/ExportReport",
        Service::Scoring,
        "ExportReport",
        Shape::DownloadFile,
        Some(proto_name::<ps::ExportReportRequest>()),
        None,
        axum::routing::get(export_report),
    );
    a.add_stream::<ps::WatchScoresRequest, ps::ScoresUpdate>(
        "/api/v1/scoring/WatchScores",
        Service::Scoring,
        "WatchScores",
        Shape::NdjsonOut,
        Some(proto_name::<ps::WatchScoresRequest>()),
        None,
        axum::routing::get(watch_scores),
    );
}

fn respond(r: Result<Response, GatewayError>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

/// Splits a body frame into messages no larger than `CHUNK`.
fn pieces(mut b: Bytes) -> impl Stream<Item = Bytes> {
    let mut out = Vec::with_capacity(b.len() / CHUNK + 1);
    while b.len() > CHUNK {
        out.push(b.split_to(CHUNK));
    }
    if !b.is_empty() {
        out.push(b);
    }
    futures::stream::iter(out)
}

/// The body's data, split into pieces; when reading the body fails (the client went away, or
/// sent less than it announced) the reason goes to `failed` and the stream never ends, so the
/// call is abandoned rather than finished with part of the file.
fn body_pieces(body: Body, failed: oneshot::Sender<String>) -> impl Stream<Item = Bytes> {
    futures::stream::unfold(
        (body.into_data_stream(), Some(failed)),
        |(mut data, mut failed)| async move {
            match data.next().await {
                Some(Ok(b)) => Some((pieces(b), (data, failed))),
                None => None,
                Some(Err(e)) => {
                    if let Some(tx) = failed.take() {
                        let _ = tx.send(e.to_string());
                    }
                    futures::future::pending().await
                }
            }
        },
    )
    .flatten()
}

/// `POST /api/v1/evidence/Upload?frameworkId=…&criterion=…&orgUnit=…&responsibleUnit=…
/// &period=…&title=…&fileName=…` with the file as the body. The body's `Content-Type` is the
/// file's unless `contentType` is given.
async fn upload(
    State(g): State<Gateway>,
    headers: HeaderMap,
    q: QueryResult,
    body: Body,
) -> Response {
    respond(
        async {
            let query = json::query_object(proto_name::<pe::UploadMetadata>(), &pairs(q)?)?;
            let mut metadata: pe::UploadMetadata = json::from_value(query)?;
            if metadata.content_type.is_empty()
                && let Some(ct) = headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
            {
                metadata.content_type = ct.to_string();
            }
            let (failed_tx, failed_rx) = oneshot::channel();
            let first = pe::UploadRequest {
                part: Some(pe::upload_request::Part::Metadata(metadata)),
            };
            let messages = futures::stream::once(async { first }).chain(
                body_pieces(body, failed_tx).map(|b| pe::UploadRequest {
                    part: Some(pe::upload_request::Part::Chunk(b.to_vec())),
                }),
            );
            let call = g.client_stream::<_, pe::Evidence, _>(
                Service::Evidence,
                "Upload",
                &headers,
                messages,
            );
            tokio::select! {
                answer = call => answer.map(|e| {
                    let mut res = json::answer(&e);
                    *res.status_mut() = StatusCode::CREATED;
                    res
                }),
                Ok(why) = failed_rx => Err(GatewayError::bad(
                    "body",
                    format!("the file was not received whole ({why}); nothing was stored"),
                )),
            }
        }
        .await,
    )
}

/// A file's answer headers: its type, length, name and checksum.
/// The headers of a file answer; `inline` files are shown by the browser, others downloaded.
pub(crate) fn file_headers(
    content_type: &str,
    size: u64,
    file_name: &str,
    sha256: &str,
    inline: bool,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut h = vec![
        (
            header::CONTENT_TYPE,
            HeaderValue::from_str(if content_type.is_empty() {
                "application/octet-stream"
            } else {
                content_type
            })
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
        ),
        (header::CONTENT_LENGTH, HeaderValue::from(size)),
        (
            header::CONTENT_DISPOSITION,
            HeaderValue::from_str(&content_disposition(file_name, inline))
                .unwrap_or(HeaderValue::from_static("attachment")),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ];
    if let Ok(v) = HeaderValue::from_str(sha256) {
        h.push((HeaderName::from_static(SHA256_HEADER), v));
    }
    h
}

/// `attachment; filename="…"; filename*=UTF-8''…` (or `inline; …`): an ASCII fallback and the
/// name as it is.
fn content_disposition(name: &str, inline: bool) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let kind = if inline { "inline" } else { "attachment" };
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// The rest of a file's chunks as the answer body; a failure midway (the stored file no longer
/// matches its checksum) breaks the body, so the client never takes a part for the whole.
fn chunk_body<M, F>(service: Service, rest: tonic::Streaming<M>, chunk: F) -> Body
where
    M: Send + 'static,
    F: Fn(M) -> Option<Vec<u8>> + Send + 'static,
{
    Body::from_stream(rest.map(move |m| match m {
        Ok(m) => chunk(m).ok_or_else(|| {
            tracing::warn!(
                service = service.segment(),
                "a file stream sent a second header"
            );
            std::io::Error::other("unexpected message in a file stream")
        }),
        Err(status) => {
            tracing::warn!(
                service = service.segment(),
                code = ?status.code(),
                message = status.message(),
                "file stream broken off"
            );
            Err(std::io::Error::other(status.message().to_string()))
        }
    }))
}

fn no_header(service: Service) -> GatewayError {
    tracing::error!(
        service = service.segment(),
        "a file stream did not begin with its description"
    );
    GatewayError::status(service.segment(), tonic::Status::internal("internal error"))
}

/// An evidence file as the evidence service streams it: the version asked for (0: the current
/// one) and its bytes as a body that breaks off if the stored file fails its checksum.
pub(crate) async fn evidence_file(
    g: &Gateway,
    headers: &HeaderMap,
    request: pe::DownloadRequest,
) -> Result<(pe::Version, Body), GatewayError> {
    let wanted = request.version;
    let mut stream = g
        .server_stream::<_, pe::DownloadResponse>(Service::Evidence, "Download", headers, request)
        .await?;
    let first = stream
        .message()
        .await
        .map_err(|s| GatewayError::status("evidence", s))?;
    let Some(pe::DownloadResponse {
        part: Some(pe::download_response::Part::Evidence(record)),
    }) = first
    else {
        return Err(no_header(Service::Evidence));
    };
    let version = if wanted == 0 {
        record.current.clone()
    } else {
        record.history.iter().find(|v| v.version == wanted).cloned()
    }
    .ok_or_else(|| no_header(Service::Evidence))?;
    let body = chunk_body(
        Service::Evidence,
        stream,
        |m: pe::DownloadResponse| match m.part {
            Some(pe::download_response::Part::Chunk(c)) => Some(c),
            _ => None,
        },
    );
    Ok((version, body))
}

async fn download(g: Gateway, headers: HeaderMap, q: Result<Pairs, GatewayError>) -> Response {
    respond(
        async {
            let query = json::query_object(proto_name::<pe::DownloadRequest>(), &q?)?;
            let request: pe::DownloadRequest = json::from_value(query)?;
            let (version, body) = evidence_file(&g, &headers, request).await?;
            let mut res = Response::new(body);
            for (k, v) in file_headers(
                &version.content_type,
                version.size,
                &version.file_name,
                &version.sha256,
                false,
            ) {
                res.headers_mut().insert(k, v);
            }
            Ok(res)
        }
        .await,
    )
}

/// A report as the scoring service streams it: its description and its bytes as a body.
pub(crate) async fn report_file(
    g: &Gateway,
    headers: &HeaderMap,
    request: ps::ExportReportRequest,
) -> Result<(ps::ReportInfo, Body), GatewayError> {
    let mut stream = g
        .server_stream::<_, ps::ReportChunk>(Service::Scoring, "ExportReport", headers, request)
        .await?;
    let first = stream
        .message()
        .await
        .map_err(|s| GatewayError::status("scoring", s))?;
    let Some(ps::ReportChunk {
        part: Some(ps::report_chunk::Part::Info(info)),
    }) = first
    else {
        return Err(no_header(Service::Scoring));
    };
    let body = chunk_body(Service::Scoring, stream, |m: ps::ReportChunk| {
        match m.part {
            Some(ps::report_chunk::Part::Chunk(c)) => Some(c),
            _ => None,
        }
    });
    Ok((info, body))
}

/// `GET /api/v1/scoring/ExportReport?kind=self-score&format=xlsx`: the report file.
async fn export_report(State(g): State<Gateway>, headers: HeaderMap, q: QueryResult) -> Response {
    respond(
        async {
            let query = json::query_object(proto_name::<ps::ExportReportRequest>(), &pairs(q)?)?;
            let request: ps::ExportReportRequest = json::from_value(query)?;
            let (info, body) = report_file(&g, &headers, request).await?;
            let mut res = Response::new(body);
            for (k, v) in file_headers(
                &info.content_type,
                info.size,
                &info.file_name,
                &info.sha256,
                false,
            ) {
                res.headers_mut().insert(k, v);
            }
            Ok(res)
        }
        .await,
    )
}

/// `GET /api/v1/scoring/WatchScores?orgUnit=…`: one `ScoresUpdate` per line as scores change,
/// first the current ones. A failure after the first line ends the stream with one line
/// `{"error": {…}}`.
async fn watch_scores(State(g): State<Gateway>, headers: HeaderMap, q: QueryResult) -> Response {
    respond(
        async {
            let query = json::query_object(proto_name::<ps::WatchScoresRequest>(), &pairs(q)?)?;
            let request: ps::WatchScoresRequest = json::from_value(query)?;
            let stream = g
                .server_stream::<_, ps::ScoresUpdate>(
                    Service::Scoring,
                    "WatchScores",
                    &headers,
                    request,
                )
                .await?;
            let lines = stream
                .scan(false, |ended, m| {
                    if *ended {
                        return futures::future::ready(None);
                    }
                    let mut line = match m {
                        Ok(update) => serde_json::to_vec(&update),
                        Err(status) => {
                            *ended = true;
                            serde_json::to_vec(&serde_json::json!({ "error": ErrorBody {
                                code: code_name(status.code()),
                                message: status.message().to_string(),
                                field_violations: Vec::new(),
                                retry_after_seconds: None,
                            }}))
                        }
                    }
                    .unwrap_or_default();
                    line.push(b'\n');
                    futures::future::ready(Some(Ok::<_, std::io::Error>(line)))
                })
                .take_until(g.shutdown.clone().cancelled_owned());
            Ok((
                [
                    (header::CONTENT_TYPE, "application/x-ndjson"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                Body::from_stream(lines),
            )
                .into_response())
        }
        .await,
    )
}

/// Lines of a body, parsed one by one as `T` messages (`ResponseBatch`, `RecordStatisticsRequest`);
/// a line that is not one sends its line number and field to `failed` and the stream never ends
/// (see `body_pieces`).
fn lines<T: serde::de::DeserializeOwned + Send + 'static>(
    body: Body,
    failed: oneshot::Sender<GatewayError>,
) -> impl Stream<Item = T> {
    struct Lines<S, T> {
        data: S,
        buffer: Vec<u8>,
        ready: VecDeque<T>,
        line: usize,
        done: bool,
        /// A bad line, reported once the lines before it are passed on.
        error: Option<GatewayError>,
        failed: Option<oneshot::Sender<GatewayError>>,
    }
    impl<S, T: serde::de::DeserializeOwned> Lines<S, T> {
        /// Parses the complete lines in the buffer (all of it at the end of the body).
        fn take_lines(&mut self, at_end: bool) -> Result<(), GatewayError> {
            while let Some(pos) = self.buffer.iter().position(|&b| b == b'\n').or(
                if at_end && !self.buffer.is_empty() {
                    Some(self.buffer.len())
                } else {
                    None
                },
            ) {
                let rest = self.buffer.split_off((pos + 1).min(self.buffer.len()));
                let line = std::mem::replace(&mut self.buffer, rest);
                self.line += 1;
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let batch: T = json::from_body(&line).map_err(|e| match e {
                    GatewayError::BadRequest { field, description } => {
                        GatewayError::bad(format!("line {}: {field}", self.line), description)
                    }
                    other => other,
                })?;
                self.ready.push_back(batch);
            }
            Ok(())
        }
    }
    let state = Lines {
        data: body.into_data_stream(),
        buffer: Vec::new(),
        ready: VecDeque::new(),
        line: 0,
        done: false,
        error: None,
        failed: Some(failed),
    };
    futures::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(b) = s.ready.pop_front() {
                return Some((b, s));
            }
            if let Some(e) = s.error.take() {
                if let Some(tx) = s.failed.take() {
                    let _ = tx.send(e);
                }
                return futures::future::pending().await;
            }
            if s.done {
                return None;
            }
            let step = match s.data.next().await {
                Some(Ok(bytes)) => {
                    s.buffer.extend_from_slice(&bytes);
                    s.take_lines(false)
                }
                Some(Err(e)) => Err(GatewayError::bad(
                    "body",
                    format!("the lines were not received whole ({e}); nothing was stored"),
                )),
                None => {
                    s.done = true;
                    s.take_lines(true)
                }
            };
            if let Err(e) = step {
                s.error = Some(e);
            }
        }
    })
}

/// `POST /api/v1/surveys/IngestResponses?surveyId=…` with one `ResponseBatch` per line.
async fn ingest(
    State(g): State<Gateway>,
    headers: HeaderMap,
    q: QueryResult,
    body: Body,
) -> Response {
    respond(
        async {
            let query = json::query_object(proto_name::<psv::IngestRequest>(), &pairs(q)?)?;
            let opening: psv::IngestRequest = json::from_value(query)?;
            let (failed_tx, failed_rx) = oneshot::channel();
            let messages =
                futures::stream::once(async { opening }).chain(lines(body, failed_tx).map(|b| {
                    psv::IngestRequest {
                        part: Some(psv::ingest_request::Part::Batch(b)),
                    }
                }));
            let call = g.client_stream::<_, psv::IngestSummary, _>(
                Service::Surveys,
                "IngestResponses",
                &headers,
                messages,
            );
            tokio::select! {
                answer = call => answer.map(|s| json::answer(&s)),
                Ok(e) = failed_rx => Err(e),
            }
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_given_as_written_and_in_ascii() {
        assert_eq!(
            content_disposition("自评 报告.xlsx", false),
            "attachment; filename=\"__ __.xlsx\"; \
             filename*=UTF-8''%E8%87%AA%E8%AF%84%20%E6%8A%A5%E5%91%8A.xlsx"
        );
    }

    #[tokio::test]
    async fn lines_become_batches_and_a_bad_line_is_named() {
        let (tx, _rx) = oneshot::channel();
        let body = Body::from("{\"responses\":[]}\n\n{\"responses\":[]}");
        let got: Vec<_> = lines::<psv::ResponseBatch>(body, tx).collect().await;
        assert_eq!(got.len(), 2);

        let (tx, rx) = oneshot::channel();
        let body = Body::from("{\"responses\":[]}\n{\"responses\":[{\"nope\":1}]}\n");
        let mut s = Box::pin(lines::<psv::ResponseBatch>(body, tx));
        assert!(s.next().await.is_some());
        let next = tokio::time::timeout(std::time::Duration::from_millis(200), s.next()).await;
        assert!(next.is_err(), "the stream does not end on a bad line");
        match rx.await.unwrap() {
            GatewayError::BadRequest { field, .. } => {
                assert_eq!(field, "line 2: responses[0].nope")
            }
            other => panic!("{other:?}"),
        }
    }
}
