//! Reports streamed over gRPC: the self-score explanation and the checklist of any org unit,
//! from the current scores or a snapshot, and bad requests refused by field.

use std::io::Cursor;

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use cezone_platform::error::violations;
use cezone_platform::testing::Backend;
use cezone_proto::scoring::v1 as ps;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tonic::Code;

use super::spawn;

async fn fetch(
    client: &mut ps::scoring_service_client::ScoringServiceClient<
        cezone_platform::access::auth::AuthChannel,
    >,
    req: ps::ExportReportRequest,
) -> Result<(ps::ReportInfo, Vec<u8>), tonic::Status> {
    let mut stream = client.export_report(req).await?.into_inner();
    let mut info = None;
    let mut bytes = Vec::new();
    while let Some(msg) = stream.next().await {
        match msg?.part {
            Some(ps::report_chunk::Part::Info(i)) => info = Some(i),
            Some(ps::report_chunk::Part::Chunk(c)) => bytes.extend_from_slice(&c),
            None => {}
        }
    }
    Ok((
        info.expect("the stream starts with the report's description"),
        bytes,
    ))
}

fn request(kind: &str, format: &str) -> ps::ExportReportRequest {
    ps::ExportReportRequest {
        kind: kind.into(),
        format: format.into(),
        ..Default::default()
    }
}

pub async fn reports_stream_for_any_unit_and_snapshot(backend: Backend) {
    let mut s = spawn(backend).await;
    s.load().await;
    s.recompute().await;
    let summary = s
        .client
        .get_summary(ps::GetSummaryRequest::default())
        .await
        .unwrap()
        .into_inner();
    let total = summary.total.unwrap().confirmed;

    // The district's self-score explanation as a workbook: the file is whole and its total is
    // the scoring query's.
    let (info, bytes) = fetch(&mut s.client, request("self-score", "xlsx"))
        .await
        .unwrap();
    assert_eq!(info.size as usize, bytes.len());
    assert_eq!(info.sha256, hex::encode(Sha256::digest(&bytes)));
    assert_eq!(info.file_name, "nanhai-self-score-2013.xlsx");
    assert_eq!(info.total.as_ref().unwrap().confirmed, total);
    let mut wb: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).unwrap();
    assert_eq!(
        wb.sheet_names().len(),
        7,
        "a summary, five areas and the interpretations"
    );
    let sheet = wb.worksheet_range("汇总 Summary").unwrap();
    let row = sheet
        .rows()
        .find(|r| r[0] == Data::String("自评总分 Total".into()))
        .unwrap();
    assert_eq!(row[2], Data::Float(total.parse::<f64>().unwrap()));

    // A town's explanation as HTML, with evidence titles and hashes from the evidence service.
    let town = s
        .district
        .units
        .iter()
        .find(|u| u.parent.is_some())
        .unwrap();
    let (info, bytes) = fetch(
        &mut s.client,
        ps::ExportReportRequest {
            org_unit: town.id.to_string(),
            ..request("self-score", "html")
        },
    )
    .await
    .unwrap();
    assert_eq!(info.content_type, "text/html; charset=utf-8");
    let html = String::from_utf8(bytes).unwrap();
    assert!(html.contains(&format!("{} 评估指标体系自评分说明", town.name)));
    assert!(html.contains("id=\"item-4.1.1\""));
    assert!(html.contains("class=\"hash\">") && html.contains("已通过 accepted"));
    // People read the report's times in the district's zone, with the offset.
    assert!(html.contains(" +08:00"), "{html}");

    // The checklist of a frozen snapshot.
    let snap = s
        .client
        .freeze_snapshot(ps::FreezeSnapshotRequest {
            checkpoint: "materials-submitted".into(),
            label: "送审前".into(),
            frozen_by: "test".into(),
            close_submissions: false,
        })
        .await
        .unwrap()
        .into_inner();
    let (info, bytes) = fetch(
        &mut s.client,
        ps::ExportReportRequest {
            snapshot_id: snap.id.clone(),
            as_of: "2014-03-01".into(),
            ..request("checklist", "html")
        },
    )
    .await
    .unwrap();
    assert_eq!(info.snapshot_id, snap.id);
    let html = String::from_utf8(bytes).unwrap();
    assert!(html.contains("责任单位材料清单") && html.contains(&snap.id));
    assert!(
        html.contains("逾期 late"),
        "missing materials are late after the deadline"
    );

    // Bad requests name their fields.
    let err = fetch(&mut s.client, request("self-score", "pdf"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violations(&err)[0].0, "format");
    let err = fetch(&mut s.client, request("everything", "doc"))
        .await
        .unwrap_err();
    let fields: Vec<String> = violations(&err).into_iter().map(|v| v.0).collect();
    assert_eq!(fields, vec!["kind", "format"]);
    let err = fetch(
        &mut s.client,
        ps::ExportReportRequest {
            org_unit: "nanhai.nowhere".into(),
            ..request("self-score", "html")
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violations(&err)[0].0, "org_unit");
    let err = fetch(
        &mut s.client,
        ps::ExportReportRequest {
            snapshot_id: "no-such-snapshot".into(),
            ..request("checklist", "xlsx")
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(violations(&err)[0].0, "snapshot_id");
    let err = fetch(
        &mut s.client,
        ps::ExportReportRequest {
            checkpoint: "someday".into(),
            ..request("checklist", "xlsx")
        },
    )
    .await
    .unwrap_err();
    assert_eq!(violations(&err)[0].0, "checkpoint");
    s.stop().await;
}

cezone_platform::contract_tests!(reports_stream_for_any_unit_and_snapshot);
