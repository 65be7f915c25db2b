//! The `cezone` command as an operator runs it.

use std::process::{Command, Output};

mod chaos;
mod files;
mod frameworks;
mod processes;

fn cezone(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cezone"))
        .args(args)
        .output()
        .expect("cezone runs")
}

fn repo(path: &str) -> String {
    format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn validating_the_seed_table_reports_its_defects_and_succeeds() {
    let o = cezone(&[
        "framework",
        "validate",
        &repo("data/guangdong-2013/indicators.csv"),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = stdout(&o);
    assert!(out.contains("group 3.2 declares 7 points but its 3 children add up to 8"));
    assert!(out.contains("'2014年2月30日'"));
    // Calendar and manifest findings name the path and line, like the table's.
    let invalid = out.lines().find(|l| l.contains("'2014年2月30日'")).unwrap();
    assert!(
        invalid.contains("data/guangdong-2013/calendar.toml, line "),
        "{invalid}"
    );
    let total = out.lines().find(|l| l.contains("total_mismatch")).unwrap();
    assert!(
        total.contains("data/guangdong-2013/framework.toml, line 6")
            && total.contains("criteria add up to 101"),
        "{total}"
    );
    assert!(
        out.ends_with("0 error(s), 13 warning(s), 0 note(s)\n"),
        "{out}"
    );
}

#[test]
fn show_interpretations_lists_every_choice_the_document_leaves_open() {
    let o = cezone(&["framework", "show", "--interpretations"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = stdout(&o);
    assert!(
        out.contains("南海区创建广东省社区教育实验区评价指标分工表"),
        "{out}"
    );
    let band = out
        .split("\n\n")
        .find(|b| b.contains("3.2.2") && b.contains("tolerance band"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        band.contains("文件 document: 学习型党政机关创建率达70%左右"),
        "{band}"
    );
    assert!(band.contains("65%–70%"), "{band}");
    assert!(band.contains("rules.toml [rules.\"3.2.2\"]"), "{band}");

    let o = cezone(&["framework", "show", "--interpretations", "--format", "json"]);
    assert!(o.status.success());
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let list = list.as_array().unwrap();
    let deadline: Vec<&serde_json::Value> =
        list.iter().filter(|i| i["topic"] == "deadline").collect();
    assert_eq!(
        deadline.len(),
        3,
        "the three '…前' checkpoints: {deadline:#?}"
    );
    assert!(
        deadline
            .iter()
            .all(|i| i["setting"] == "calendar.toml deadline_before")
    );
    assert!(
        list.iter()
            .any(|i| i["topic"] == "total" && i["document"].as_str().unwrap().contains("101"))
    );

    // The tree lists the checkpoints with their reading of "…前".
    let o = cezone(&["framework", "show"]);
    let out = stdout(&o);
    assert!(
        out.contains("key-unit-inspection") && out.contains("2014-04-10 截止（含当日）"),
        "{out}"
    );
}

#[test]
fn validation_exits_1_on_errors_and_json_names_each_finding() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "一级指标,二级指标,三级指标,分值,提供材料,负责单位\n1.甲（2分）,1.1乙（2分）,1.1.1丙,2分,材料,区体育局\n").unwrap();
    let o = cezone(&[
        "framework",
        "validate",
        bad.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let findings: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let unknown = findings
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "unknown_unit")
        .expect("unknown unit reported");
    assert_eq!(unknown["severity"], "error");
    assert_eq!(unknown["location"]["row"], 2);
    assert_eq!(unknown["location"]["item"], "1.1.1");
}

#[test]
fn import_writes_the_framework_document_and_refuses_a_broken_table() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fw.json");
    let o = cezone(&[
        "framework",
        "import",
        &repo("data/guangdong-2013/indicators.csv"),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(doc["format"], "cezone.framework.v1");
    assert_eq!(doc["items"].as_array().unwrap().len(), 5);
    // The document validates on its own.
    let o = cezone(&["framework", "validate", out.to_str().unwrap()]);
    assert!(o.status.success());

    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "一级指标,分值,提供材料,负责单位\n").unwrap();
    let target = dir.path().join("never.json");
    let o = cezone(&[
        "framework",
        "import",
        bad.to_str().unwrap(),
        "--out",
        target.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!target.exists(), "nothing is written for a broken table");
}

#[test]
fn demo_prints_the_district_scoreboard_and_stable_json() {
    let o = cezone(&["demo"]);
    assert!(o.status.success());
    let text = stdout(&o);
    for needle in [
        "南海区",
        "TOTAL",
        "AREAS",
        "桂城街道",
        "KEY CRITERIA (★)",
        "WEAK LINKS",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
    let o = cezone(&["demo", "--format", "json"]);
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["format"], "cezone.summary.v1");
    assert_eq!(s["max_points"], "100");
    assert_eq!(s["areas"].as_array().unwrap().len(), 5);
    assert_eq!(s["children"].as_array().unwrap().len(), 7);
    assert_eq!(s["key_criteria"].as_array().unwrap().len(), 9);
    // Same seed, same numbers.
    let again: serde_json::Value =
        serde_json::from_slice(&cezone(&["demo", "--format", "json"]).stdout).unwrap();
    assert_eq!(s, again);
}

#[test]
fn demo_refuses_impossible_sizes() {
    let o = cezone(&["demo", "--towns", "5", "--communities", "2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--communities"));
}

/// `cezone serve --all --demo` on a fresh directory: all four services in one process, the demo
/// district loaded through their APIs, the scoreboard printed, and a clean stop on SIGTERM.
#[test]
fn serve_all_with_demo_prints_the_scoreboard_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cezone"))
        .args(["serve", "--all", "--demo"])
        .current_dir(dir.path())
        .env("CEZONE__REGISTRY__PORT", "0")
        .env("CEZONE__EVIDENCE__PORT", "0")
        .env("CEZONE__SURVEYS__PORT", "0")
        .env("CEZONE__SCORING__PORT", "0")
        .env("CEZONE__SCHEDULER__PORT", "0")
        .env("CEZONE__WEB__PORT", "0")
        .env("CEZONE__LOG__FILTER", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut text = String::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        text.push_str(&line);
        text.push('\n');
        if line.starts_with("Press Ctrl-C") {
            break;
        }
    }
    // The same district, scored through the services, as `cezone demo` scores it in-process.
    let offline = stdout_of(&cezone(&["demo"]));
    let total = offline.lines().find(|l| l.starts_with("TOTAL")).unwrap();
    assert!(text.contains(total), "{text}");
    assert!(
        text.contains("loaded 298 org units, 17400 survey responses"),
        "{text}"
    );
    assert!(
        text.contains("scoreboard page: http://127.0.0.1:"),
        "the page's address is printed: {text}"
    );
    // The workbench's address and an account for each role a person can have.
    assert!(text.contains("/work/"), "{text}");
    assert!(
        text.contains("demo accounts (password cezone-demo-2013):"),
        "{text}"
    );
    for (login, role) in [
        ("office", "evaluation_office"),
        ("admin", "district_admin"),
        ("inspector", "inspector"),
        ("department", "responsible_unit"),
        ("town", "town"),
    ] {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(login) && l.contains(role)),
            "{login} {role}: {text}"
        );
    }
    assert!(dir.path().join("var/cezone-scoring.db").exists());
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");

    // Every change the demo load made is in the audit logs, and the chains hold …
    let verify = || {
        Command::new(env!("CARGO_BIN_EXE_cezone"))
            .args(["audit", "verify"])
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let out = verify();
    let report = stdout_of(&out);
    assert!(out.status.success(), "{report}");
    for service in ["registry", "evidence", "surveys", "scoring", "scheduler"] {
        assert!(
            report
                .lines()
                .any(|l| l.starts_with(service) && l.contains("intact")),
            "{report}"
        );
    }
    // … until someone edits a past entry behind the service's back.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        use sea_orm::ConnectionTrait;
        let url = format!(
            "sqlite://{}?mode=rw",
            dir.path().join("var/cezone-evidence.db").display()
        );
        let db = sea_orm::Database::connect(url).await.unwrap();
        db.execute_unprepared("UPDATE evidence_audit SET details = '{}' WHERE seq = 3")
            .await
            .unwrap();
    });
    let out = verify();
    let report = stdout_of(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("evidence") && report.contains("BROKEN    at entry 3"),
        "{report}"
    );
}

#[test]
fn token_issue_signs_a_token_the_services_accept_and_refuses_an_incomplete_scope() {
    let dir = tempfile::tempdir().unwrap();
    let secret = cezone_platform::testing::random_secret();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_cezone"))
            .args(args)
            .current_dir(dir.path())
            .env("CEZONE__AUTH__SECRET", &secret)
            .output()
            .unwrap()
    };
    // No registry has run here: there is no key to sign with, and the command says where.
    let out = run(&["token", "issue", "--subject", "x", "--role", "inspector"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("auth.signing_keys_file"),
        "{}",
        stderr(&out)
    );
    // `keys rotate` on a fresh machine makes the first key; at once with --activate-in 0.
    let out = run(&["keys", "rotate", "--activate-in", "0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout_of(&out).contains("new key"), "{}", stdout_of(&out));
    let out = run(&["keys", "rotate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = stdout_of(&run(&["keys", "list"]));
    assert_eq!(listed.matches("签发中 signing").count(), 1, "{listed}");
    assert_eq!(listed.matches("待启用 next").count(), 1, "{listed}");
    assert!(listed.contains("+08:00"), "{listed}");
    let jwks: serde_json::Value =
        serde_json::from_str(&stdout_of(&run(&["keys", "public"]))).expect("a JSON Web Key Set");
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2, "{jwks}");
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert!(jwks["keys"][0].get("private_key").is_none(), "{jwks}");
    let bad = run(&["keys", "rotate", "--activate-in", "99999"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("--activate-in"), "{}", stderr(&bad));

    let out = run(&[
        "token",
        "issue",
        "--subject",
        "guicheng-office",
        "--role",
        "town",
        "--unit",
        "towns",
        "--org-unit",
        "nanhai.guicheng",
        "--minutes",
        "30",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let token = stdout_of(&out).trim().to_string();
    let mut settings = cezone_platform::Settings::defaults();
    settings.auth.signing_keys_file = dir.path().join(&settings.auth.signing_keys_file);
    let who = cezone_platform::access::auth::Keys::load_existing(&settings.auth)
        .unwrap()
        .verify(&token)
        .unwrap();
    assert_eq!(who.subject, "guicheng-office");
    assert_eq!(who.role, cezone_domain::access::Role::Town);
    assert_eq!(who.org_unit.unwrap().as_str(), "nanhai.guicheng");

    for (args, says) in [
        (
            vec![
                "token",
                "issue",
                "--subject",
                "x",
                "--role",
                "town",
                "--unit",
                "towns",
            ],
            "needs a unit and an org unit",
        ),
        (
            vec!["token", "issue", "--subject", "x", "--role", "root"],
            "'root' is not a role",
        ),
        (
            vec![
                "token",
                "issue",
                "--subject",
                "x",
                "--role",
                "inspector",
                "--minutes",
                "0",
            ],
            "--minutes 0",
        ),
    ] {
        let out = run(&args);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    // Without a key of its own the command creates none: it has nothing to sign with.
    assert!(!dir.path().join("var/cezone.key").exists());
}

fn stdout_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
