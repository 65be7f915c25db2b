//! `framework show|validate|import` and `demo` with packages other than the embedded one: every
//! option does what it says or is refused by name, and codes are shown as the table writes them.

use super::{cezone, repo, stdout};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const LETTERED: &str = "data/example-lettered/framework.toml";
const CHINESE: &str = "data/example-chinese/framework.toml";

#[test]
fn show_with_a_package_shows_that_package_with_its_codes_as_written() {
    let o = cezone(&["framework", "show", "--package", &repo(LETTERED)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with("example-lettered — 社区教育示范区评估指标（字母编号示例）"),
        "{out}"
    );
    for code in ["A1 组织领导", "  A1.2 经费保障", "★A1.1.1 ", "B2.2.2 "] {
        assert!(out.contains(code), "{code} in\n{out}");
    }
    assert!(!out.contains("南海区"), "{out}");

    let o = cezone(&[
        "framework",
        "show",
        "--package",
        &repo(CHINESE),
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["id"], "example-chinese");
    let first = &doc["items"][0];
    assert_eq!(first["code"], "一");
    assert_eq!(first["children"][0]["code"], "一.（一）");
    assert_eq!(first["children"][0]["children"][0]["code"], "一.（一）.1");

    // A table shown with the package's units and rules.
    let o = cezone(&[
        "framework",
        "show",
        "--file",
        &repo("data/example-chinese/indicators.csv"),
        "--package",
        &repo(CHINESE),
        "--format",
        "csv",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o)
            .contains("二、教育培训（10分）,（一）培训覆盖（6分）,1.登记失业人员培训率达60%以上。"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn options_that_cannot_apply_are_refused_by_name() {
    // --package names a manifest, not a table.
    let o = cezone(&[
        "framework",
        "show",
        "--package",
        &repo("data/example-lettered/indicators.csv"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--package") && stderr(&o).contains("framework.toml"),
        "{}",
        stderr(&o)
    );
    // A manifest or a framework document carries its own units, rules and calendar.
    for command in ["show", "validate", "import"] {
        let mut args = vec!["framework", command];
        let file = repo(LETTERED);
        let package = repo(CHINESE);
        if command == "show" {
            args.push("--file");
        }
        args.extend([file.as_str(), "--package", package.as_str()]);
        let o = cezone(&args);
        assert_eq!(o.status.code(), Some(2), "{command}: {}", stdout(&o));
        assert!(
            stderr(&o).contains("only applies to a bare table"),
            "{command}: {}",
            stderr(&o)
        );
    }
    // serve --package belongs to --demo.
    let o = cezone(&["serve", "--package", &repo(LETTERED)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--demo"), "{}", stderr(&o));
}

#[test]
fn other_shapes_validate_and_import_with_their_codes() {
    for (manifest, table) in [
        (LETTERED, "data/example-lettered/indicators.csv"),
        (CHINESE, "data/example-chinese/indicators.csv"),
    ] {
        let o = cezone(&["framework", "validate", &repo(manifest)]);
        assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
        assert!(stdout(&o).contains("0 error(s)"), "{}", stdout(&o));
        let o = cezone(&[
            "framework",
            "validate",
            &repo(table),
            "--package",
            &repo(manifest),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    }
    // Imported with its package, the table keeps its codes and its rules.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fw.json");
    let o = cezone(&[
        "framework",
        "import",
        &repo("data/example-chinese/indicators.csv"),
        "--package",
        &repo(CHINESE),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(doc["items"][1]["code"], "二");
    assert_eq!(
        doc["items"][1]["children"][1]["children"][0]["rule"]["kind"],
        "survey_rate"
    );
    // The document it wrote shows again with the same codes.
    let o = cezone(&["framework", "show", "--file", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("二.（二）.1 "), "{}", stdout(&o));
}

#[test]
fn the_demo_scores_another_package_with_its_codes_as_written() {
    let o = cezone(&[
        "demo",
        "--package",
        &repo(LETTERED),
        "--towns",
        "3",
        "--communities",
        "30",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("example-lettered (example)"), "{out}");
    assert!(out.contains("TOTAL  confirmed"), "{out}");
    assert!(out.contains("\n  A1 组织领导"), "{out}");
    assert!(out.contains("\n  B2 教育活动"), "{out}");
    assert!(out.contains("A1.1.1") && out.contains("B2.2.1"), "{out}");

    let o = cezone(&[
        "demo",
        "--file",
        &repo("data/example-chinese/indicators.csv"),
        "--package",
        &repo(CHINESE),
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["framework"], "example-chinese");
    let areas: Vec<&str> = s["areas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["code"].as_str().unwrap())
        .collect();
    assert_eq!(areas, ["一", "二"]);
    let keys: Vec<&str> = s["key_criteria"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["code"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["一.（一）.1", "二.（二）.1"]);
    assert!(s["total"]["projected"].as_str().unwrap() != "0");

    // A table with errors is refused with its findings.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "一级指标,二级指标,三级指标,分值,提供材料,负责单位\n甲、领导（2分）,,,,材料,区教育局\n",
    )
    .unwrap();
    let o = cezone(&["demo", "--file", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("malformed_code"), "{}", stderr(&o));
    assert!(stderr(&o).contains("error(s)"), "{}", stderr(&o));
}
