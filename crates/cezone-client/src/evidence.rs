//! Evidence through the evidence service's API: streamed uploads and downloads, reviews.

use cezone_platform::access::auth::AuthChannel;
use cezone_proto::evidence::v1 as pe;
use cezone_proto::evidence::v1::evidence_service_client::EvidenceServiceClient;
use tokio_stream::StreamExt;

use crate::{ClientError, MAX_MESSAGE_BYTES};

pub type Evidence = EvidenceServiceClient<AuthChannel>;

pub const UPLOAD_CHUNK: usize = 256 * 1024;

pub fn client(channel: AuthChannel) -> Evidence {
    EvidenceServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// Streams metadata then the content in chunks.
pub async fn upload(
    client: &mut Evidence,
    meta: pe::UploadMetadata,
    content: Vec<u8>,
) -> Result<pe::Evidence, tonic::Status> {
    let messages = || {
        let mut msgs = vec![pe::UploadRequest {
            part: Some(pe::upload_request::Part::Metadata(meta.clone())),
        }];
        for chunk in content.chunks(UPLOAD_CHUNK) {
            msgs.push(pe::UploadRequest {
                part: Some(pe::upload_request::Part::Chunk(chunk.to_vec())),
            });
        }
        msgs
    };
    // Refused for backpressure, an upload stored nothing: it is sent again after the hint.
    crate::backpressure::patiently(|| {
        let mut c = client.clone();
        let msgs = messages();
        async move { c.upload(tokio_stream::iter(msgs)).await }
    })
    .await
    .map(|r| r.into_inner())
}

/// The record and the whole file.
pub async fn download(
    client: &mut Evidence,
    id: &str,
    version: u32,
) -> Result<(pe::Evidence, Vec<u8>), tonic::Status> {
    let mut stream = client
        .download(pe::DownloadRequest {
            id: id.to_string(),
            version,
        })
        .await?
        .into_inner();
    let mut record = None;
    let mut data = Vec::new();
    while let Some(msg) = stream.next().await {
        match msg?.part {
            Some(pe::download_response::Part::Evidence(e)) => record = Some(e),
            Some(pe::download_response::Part::Chunk(c)) => data.extend_from_slice(&c),
            None => {}
        }
    }
    let record = record.ok_or_else(|| tonic::Status::internal("the download carried no record"))?;
    Ok((record, data))
}

pub async fn review(
    client: &mut Evidence,
    id: &str,
    decision: pe::Decision,
    grade: u32,
    comment: &str,
) -> Result<pe::Evidence, ClientError> {
    let request = pe::ReviewRequest {
        id: id.to_string(),
        decision: decision as i32,
        grade,
        comment: comment.to_string(),
        reviewer: "评估办公室".to_string(),
    };
    crate::backpressure::patiently(|| {
        let mut c = client.clone();
        let request = request.clone();
        async move { c.review(request).await }
    })
    .await
    .map(|r| r.into_inner())
    .map_err(|s| ClientError::call("Review", s))
}
