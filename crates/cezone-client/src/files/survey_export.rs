//! A survey platform's export: one row per respondent (respondent id, community, answers in
//! columns). A mapping file says which column answers which question and how its labels map to
//! answer codes; without one, columns are matched by question id and answers read as codes or
//! the usual labels (是/否, 非常满意 … 非常不满意).

use std::collections::BTreeMap;

use cezone_proto::surveys::v1 as psv;
use serde::Deserialize;

use super::{CellError, FileErrors, Table};

/// Headers a respondent id column goes by.
pub const RESPONDENT: &[&str] = &["respondent", "respondent_id", "答卷编号", "编号", "序号"];
/// Headers a community code column goes by.
pub const ORG_UNIT: &[&str] = &["org_unit", "community", "社区代码", "代码"];

/// `--mapping FILE.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Header of the respondent id column.
    pub respondent: Option<String>,
    /// Header of the org unit (community code) column.
    pub org_unit: Option<String>,
    /// Question id → its column and labels.
    #[serde(default)]
    pub questions: BTreeMap<String, QuestionColumn>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuestionColumn {
    pub column: String,
    /// Label as the platform writes it → answer code.
    #[serde(default)]
    pub labels: BTreeMap<String, i32>,
}

impl Mapping {
    pub fn parse(text: &str) -> Result<Mapping, String> {
        toml::from_str(text).map_err(|e| format!("the mapping is not valid: {e}"))
    }
}

/// The answer code a label means without a mapping (是/否, 非常满意 … 非常不满意, or the code).
pub fn default_label(kind: psv::QuestionKind, text: &str) -> Option<i32> {
    match kind {
        psv::QuestionKind::YesNo => match text.to_lowercase().as_str() {
            "1" | "是" | "有" | "知道" | "参加过" | "yes" | "y" => Some(1),
            "0" | "否" | "没有" | "不知道" | "未参加" | "no" | "n" => Some(0),
            _ => None,
        },
        _ => match text {
            "5" | "非常满意" | "很满意" => Some(5),
            "4" | "满意" | "比较满意" => Some(4),
            "3" | "一般" => Some(3),
            "2" | "不满意" | "不太满意" => Some(2),
            "1" | "非常不满意" | "很不满意" => Some(1),
            _ => None,
        },
    }
}

/// A question's column, the question, and the labels the mapping gives it.
type Answered<'a> = (usize, &'a psv::Question, Option<&'a BTreeMap<String, i32>>);

/// An export's responses, each with the spreadsheet row it came from.
#[derive(Debug, Clone)]
pub struct Responses {
    /// The worksheet (XLSX); none for CSV.
    pub sheet: Option<String>,
    pub rows: Vec<(u32, psv::Response)>,
}

impl Responses {
    /// `sheet 问卷, row 3` (XLSX) or `row 3` (CSV).
    pub fn at(&self, row: u32) -> String {
        super::at(self.sheet.as_deref(), row)
    }
}

/// Reads the export against the survey's questions; every bad cell is reported and nothing is
/// returned while any is. Each response keeps the spreadsheet row it came from.
pub fn read(
    file: &str,
    bytes: &[u8],
    survey: &psv::Survey,
    mapping: &Mapping,
) -> Result<Responses, FileErrors> {
    let t = Table::read(file, bytes)?;
    let mut errors = Vec::new();
    let exact = |h: &str| t.headers.iter().position(|x| x == h);
    let mut find = |given: &Option<String>, aliases: &[&str], what: &str| {
        let c = match given {
            Some(h) => exact(h),
            None => t.column(aliases),
        };
        if c.is_none() {
            errors.push(CellError {
                row: 1,
                column: String::new(),
                message: match given {
                    Some(h) => {
                        format!("the mapping names '{h}' as the {what} column; no such header")
                    }
                    None => format!("no {what} column (a header such as '{}')", aliases[0]),
                },
            });
        }
        c
    };
    let resp_c = find(&mapping.respondent, RESPONDENT, "respondent");
    let org_c = find(&mapping.org_unit, ORG_UNIT, "org unit");
    let mut questions: Vec<Answered<'_>> = Vec::new();
    for (id, qc) in &mapping.questions {
        let Some(q) = survey.questions.iter().find(|q| &q.id == id) else {
            errors.push(CellError {
                row: 0,
                column: String::new(),
                message: format!(
                    "the mapping names question '{id}', which survey {} does not ask",
                    survey.id
                ),
            });
            continue;
        };
        match exact(&qc.column) {
            Some(c) => questions.push((c, q, Some(&qc.labels))),
            None => errors.push(CellError {
                row: 1,
                column: String::new(),
                message: format!(
                    "the mapping puts question '{id}' in column '{}'; no such header",
                    qc.column
                ),
            }),
        }
    }
    if mapping.questions.is_empty() {
        for q in &survey.questions {
            if let Some(c) = t.column(&[q.id.as_str()]) {
                questions.push((c, q, None));
            }
        }
        if questions.is_empty() {
            errors.push(CellError {
                row: 1,
                column: String::new(),
                message: format!(
                    "no column answers a question of survey {} (headers carry the question id, or give --mapping)",
                    survey.id
                ),
            });
        }
    }
    let (Some(resp_c), Some(org_c)) = (resp_c, org_c) else {
        return Err(t.refused(errors));
    };
    if !errors.is_empty() {
        return Err(t.refused(errors));
    }
    let mut out = Vec::with_capacity(t.rows.len());
    for (row, cells) in &t.rows {
        let mut bad = |col: usize, message: String| {
            errors.push(CellError {
                row: *row,
                column: t.place(col),
                message,
            })
        };
        let respondent = t.cell(cells, resp_c);
        if respondent.is_empty() {
            bad(
                resp_c,
                "is empty; every response needs its respondent id".into(),
            );
        }
        let org = t.cell(cells, org_c);
        if org.is_empty() {
            bad(
                org_c,
                "is empty; every response needs the community it was given in".into(),
            );
        }
        let mut answers = Vec::new();
        for (c, q, labels) in &questions {
            let text = t.cell(cells, *c);
            if text.is_empty() {
                continue;
            }
            let kind = psv::QuestionKind::try_from(q.kind).unwrap_or_default();
            let code = labels
                .and_then(|l| l.get(text).copied())
                .or_else(|| default_label(kind, text));
            match code {
                Some(value) => answers.push(psv::Answer {
                    question: q.id.clone(),
                    value,
                }),
                None => bad(
                    *c,
                    format!(
                        "'{text}' is not an answer to question {} ({}); map it under [questions.{}.labels]",
                        q.id,
                        match kind {
                            psv::QuestionKind::YesNo => "是/否, 1/0",
                            _ => "1–5, 非常不满意 … 非常满意",
                        },
                        q.id
                    ),
                ),
            }
        }
        out.push((
            *row,
            psv::Response {
                respondent_id: respondent.to_string(),
                org_unit: org.to_string(),
                answers,
            },
        ));
    }
    if errors.is_empty() {
        Ok(Responses {
            sheet: t.sheet.clone(),
            rows: out,
        })
    } else {
        Err(t.refused(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn survey() -> psv::Survey {
        psv::Survey {
            id: "resident-2013".into(),
            questions: vec![
                psv::Question {
                    id: "aware".into(),
                    kind: psv::QuestionKind::YesNo as i32,
                    ..Default::default()
                },
                psv::Question {
                    id: "satisfied".into(),
                    kind: psv::QuestionKind::Likert5 as i32,
                    satisfied_from: 4,
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn a_platform_export_is_read_through_its_mapping() {
        let csv = "答卷编号,所在社区,1. 您知道社区学校吗？,2. 满意度\n\
                   r1,nanhai.t1.c1,知道,很满意\n\
                   r2,nanhai.t1.c1,不知道,\n";
        let mapping = Mapping::parse(
            r#"
respondent = "答卷编号"
org_unit = "所在社区"
[questions.aware]
column = "1. 您知道社区学校吗？"
[questions.satisfied]
column = "2. 满意度"
labels = { "很满意" = 5, "还行" = 3 }
"#,
        )
        .unwrap();
        let rows = read("export.csv", csv.as_bytes(), &survey(), &mapping)
            .unwrap()
            .rows;
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0, 2);
        assert_eq!(rows[0].1.answers.len(), 2);
        assert_eq!(rows[0].1.answers[1].value, 5);
        assert_eq!(rows[1].1.answers.len(), 1, "an empty cell answers nothing");
        assert_eq!(rows[1].1.answers[0].value, 0);
    }

    #[test]
    fn an_unknown_label_is_named_with_its_cell() {
        let csv = "respondent,org_unit,aware\nr1,c1,maybe\n";
        let e = read("e.csv", csv.as_bytes(), &survey(), &Mapping::default()).unwrap_err();
        assert_eq!(e.errors.len(), 1);
        assert!(
            e.errors[0]
                .to_string()
                .starts_with("row 2, column C (aware): 'maybe' is not an answer to question aware"),
            "{e}"
        );
    }
}
