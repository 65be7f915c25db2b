//! Importing tables (CSV and XLSX, as offices keep them) and exporting them back.

use cezone_domain::export;
use cezone_domain::findings::{FindingKind, Severity};
use cezone_domain::framework::{Framework, FrameworkDocument};
use cezone_domain::guangdong;
use cezone_domain::import::read_csv_rows;
use cezone_domain::package::read_table;
use rust_xlsxwriter::{Format, Workbook};

fn import_csv(text: &str) -> (Framework, cezone_domain::Findings) {
    guangdong::parts()
        .with_table("t.csv", read_csv_rows(text.as_bytes()).unwrap())
        .build()
}

/// The Guangdong units and calendar, but no rules: for tables of another shape.
fn import_csv_without_rules(text: &str) -> (Framework, cezone_domain::Findings) {
    let mut parts = guangdong::parts().with_table("t.csv", read_csv_rows(text.as_bytes()).unwrap());
    parts.rules = cezone_domain::rules::RulesFile::default();
    parts.build()
}

/// The seed table written as an XLSX workbook with merged level cells, as offices print it.
fn seed_as_xlsx() -> Vec<u8> {
    let rows = read_csv_rows(guangdong::TABLE.as_bytes()).unwrap();
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    let merge = Format::new();
    // A title line above the header, as printed tables have.
    sheet
        .write_string(0, 0, "南海区创建广东省社区教育实验区评价指标分工表")
        .unwrap();
    for (r, row) in rows.iter().enumerate() {
        for (c, cell) in row.cells.iter().enumerate() {
            if !cell.is_empty() {
                sheet.write_string(r as u32 + 1, c as u16, cell).unwrap();
            }
        }
    }
    // Merge the level-1 cell of area 1 over its rows (rows 2..8 of the table, +1 for the title).
    sheet
        .merge_range(2, 0, 8, 0, &rows[1].cells[0], &merge)
        .unwrap();
    book.save_to_buffer().unwrap()
}

#[test]
fn xlsx_import_reads_the_same_framework_as_csv_with_source_rows() {
    let bytes = seed_as_xlsx();
    let rows = read_table("分工表.xlsx", &bytes).unwrap();
    let (fw, findings) = guangdong::parts().with_table("分工表.xlsx", rows).build();
    let (seed, seed_findings) = guangdong::framework();
    assert_eq!(fw.items().len(), seed.items().len());
    for (a, b) in fw.items().iter().zip(seed.items()) {
        assert_eq!(
            (
                &a.code,
                &a.title,
                a.points,
                a.key,
                &a.materials,
                &a.responsible
            ),
            (
                &b.code,
                &b.title,
                b.points,
                b.key,
                &b.materials,
                &b.responsible
            )
        );
        // One extra title row above the header shifts every source row by one.
        assert_eq!(a.source_row.map(|r| r - 1), b.source_row);
    }
    assert_eq!(findings.len(), seed_findings.len());
    let m = findings
        .of_kind(FindingKind::PointsMismatch)
        .next()
        .unwrap();
    assert_eq!(m.location.file.as_deref(), Some("分工表.xlsx"));
    assert_eq!(m.location.row, Some(28));
}

#[test]
fn a_file_that_is_not_xlsx_is_refused_with_its_name() {
    let err = read_table("x.xlsx", b"not a zip").unwrap_err().to_string();
    assert!(err.starts_with("x.xlsx:"), "{err}");
    let err = read_table("x.pdf", b"").unwrap_err().to_string();
    assert!(err.contains(".csv or .xlsx"), "{err}");
}

#[test]
fn csv_export_reimports_to_the_same_framework_without_findings() {
    let (fw, _) = guangdong::framework();
    let csv = export::to_csv(&fw);
    assert!(csv.starts_with("一级指标,二级指标,三级指标,分值,提供材料,负责单位\n"));
    assert!(
        !csv.contains("同上"),
        "same-as-above cells are written out resolved"
    );
    let (again, findings) = import_csv(&csv);
    let table_findings: Vec<_> = findings
        .iter()
        .filter(|f| {
            matches!(
                f.kind,
                FindingKind::SameAsAbove
                    | FindingKind::UnitAlias
                    | FindingKind::UnknownUnit
                    | FindingKind::MalformedCode
            )
        })
        .collect();
    assert!(table_findings.is_empty(), "{table_findings:#?}");
    for (a, b) in again.items().iter().zip(fw.items()) {
        assert_eq!(
            (
                &a.code,
                &a.title,
                a.points,
                a.key,
                &a.materials,
                &a.responsible,
                &a.rule
            ),
            (
                &b.code,
                &b.title,
                b.points,
                b.key,
                &b.materials,
                &b.responsible,
                &b.rule
            )
        );
    }
}

#[test]
fn json_export_round_trips() {
    let (fw, _) = guangdong::framework();
    let json = export::to_json(&fw);
    let doc: FrameworkDocument = serde_json::from_str(&json).unwrap();
    assert_eq!(doc.format, "cezone.framework.v1");
    let (back, findings) = Framework::from_document(doc);
    assert!(!findings.has_errors());
    assert_eq!(back.items(), fw.items());
    assert_eq!(back.calendar, fw.calendar);
}

const HEADER: &str = "一级指标,二级指标,三级指标,分值,提供材料,负责单位\n";

#[test]
fn broken_sums_duplicate_codes_and_orphans_are_reported_where_they_are() {
    let table = format!(
        "{HEADER}\
1.领导（5分）,1.1认知（2分）,1.1.1认识,2分,文件,区教育局\n\
,1.2规划（2分）,1.2.1规划,3分,文件,区教育局\n\
,,1.2.1规划again,1分,文件,区教育局\n\
,,1.3.1无主,1分,文件,区教育局\n"
    );
    let (fw, f) = import_csv_without_rules(&table);
    let dup = f
        .of_kind(FindingKind::DuplicateCode)
        .next()
        .expect("duplicate");
    assert_eq!(
        (dup.location.row, dup.location.item.as_deref()),
        (Some(4), Some("1.2.1"))
    );
    assert!(dup.message.contains("row 3"));
    // 1.3.1 stands under 1.2 in the table and has no 1.3 parent.
    assert_eq!(
        f.of_kind(FindingKind::CodeOutOfPlace)
            .next()
            .unwrap()
            .location
            .row,
        Some(5)
    );
    assert_eq!(
        f.of_kind(FindingKind::OrphanItem)
            .next()
            .unwrap()
            .location
            .item
            .as_deref(),
        Some("1.3.1")
    );
    let sums: Vec<String> = f
        .of_kind(FindingKind::PointsMismatch)
        .map(|x| x.message.clone())
        .collect();
    assert!(
        sums.iter()
            .any(|m| m.contains("group 1.2 declares 2 points") && m.contains("add up to 3")),
        "{sums:?}"
    );
    assert!(
        sums.iter()
            .any(|m| m.contains("group 1 declares 5 points") && m.contains("add up to 4")),
        "{sums:?}"
    );
    assert!(
        fw.find(&crate::support::code("1.3.1")).is_none(),
        "orphans are left out"
    );
    let total = f.of_kind(FindingKind::TotalMismatch).next().unwrap();
    assert!(
        total.message.contains("100") && total.message.contains('5'),
        "{}",
        total.message
    );
}

#[test]
fn unknown_units_empty_fields_and_bad_points_are_errors_naming_the_value() {
    let table = format!(
        "{HEADER}\
1.领导（4分）,1.1认知（4分）,1.1.1认识,两分,,区体育局\n\
,,1.1.2规划,2分,同上,同上\n"
    );
    let (_, f) = import_csv(&table);
    let unknown = f.of_kind(FindingKind::UnknownUnit).next().unwrap();
    assert_eq!(unknown.severity, Severity::Error);
    assert!(unknown.message.contains("区体育局"));
    assert!(
        f.of_kind(FindingKind::MalformedPoints)
            .next()
            .unwrap()
            .message
            .contains("两分")
    );
    let empty: Vec<_> = f
        .of_kind(FindingKind::EmptyField)
        .filter(|x| x.severity == Severity::Error)
        .collect();
    assert!(
        empty
            .iter()
            .any(|x| x.location.column.as_deref() == Some("materials")
                && x.location.item.as_deref() == Some("1.1.1")),
        "{empty:#?}"
    );
    assert!(f.has_errors());
}

#[test]
fn a_table_without_the_units_column_is_refused() {
    let (fw, f) = import_csv("一级指标,二级指标,分值,提供材料\n1.a（1分）,1.1b,1分,x\n");
    assert!(fw.is_empty());
    let h = f.of_kind(FindingKind::MalformedHeader).next().unwrap();
    assert!(h.message.contains("负责单位"));
}

#[test]
fn a_deeper_tree_without_group_points_imports() {
    let table = "一级指标,二级指标,三级指标,四级指标,分值,提供材料,负责单位\n\
1 甲,1.1 乙,1.1.1 丙,1.1.1.1 丁,1.5,材料,区教育局\n\
,,,1.1.1.2 戊,0.5,材料,区教育局\n";
    let (fw, f) = import_csv_without_rules(table);
    assert!(!f.has_errors(), "{f:#?}");
    assert_eq!(fw.items().iter().map(|i| i.code.depth()).max(), Some(4));
    assert_eq!(fw.item(fw.roots()[0]).points.to_string(), "2");
    assert!(
        f.of_kind(FindingKind::PointsMismatch)
            .any(|x| x.severity == Severity::Info)
    );
}
