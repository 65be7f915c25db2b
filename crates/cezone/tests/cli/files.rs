//! A district loaded from its own files with the `cezone` commands, as district IT does it:
//! the framework published, the org list imported (and corrected), a unit's return template
//! written, filled in and imported, a survey platform's export loaded, evidence uploaded,
//! reviewed and downloaded, and the scores exported. Bad files are refused cell by cell and
//! change nothing. One `cezone serve --all` process on SQLite, the embedded default.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cezone_client::files::{Table, returns};
use cezone_domain::guangdong;

struct District {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    server: Child,
}

fn free_port() -> u16 {
    cezone_platform::testing::unused_port().expect("a free port")
}

impl District {
    fn start() -> District {
        let dir = tempfile::tempdir().unwrap();
        let mut env = vec![
            (
                "CEZONE__AUTH__SECRET".to_string(),
                cezone_platform::testing::random_secret(),
            ),
            ("CEZONE__LOG__FILTER".to_string(), "warn".to_string()),
            ("CEZONE__WEB__PORT".to_string(), "0".to_string()),
        ];
        for s in ["registry", "evidence", "surveys", "scoring", "scheduler"] {
            let port = free_port();
            let key = s.to_uppercase();
            env.push((format!("CEZONE__{key}__PORT"), port.to_string()));
            env.push((
                format!("CEZONE__SERVICES__{key}_URL"),
                format!("http://127.0.0.1:{port}"),
            ));
        }
        let server = Command::new(env!("CARGO_BIN_EXE_cezone"))
            .args(["serve", "--all"])
            .envs(env.iter().cloned())
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut d = District { dir, env, server };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !d
            .cezone(&[
                "health",
                "--services",
                "registry,evidence,surveys,scoring,scheduler",
            ])
            .0
        {
            assert!(Instant::now() < deadline, "not healthy within 60 s");
            std::thread::sleep(Duration::from_millis(200));
        }
        // The evaluation office's token, as the README has the office sign in.
        let (ok, token) = d.cezone(&[
            "token",
            "issue",
            "--subject",
            "评估办公室",
            "--role",
            "evaluation_office",
        ]);
        assert!(ok, "{token}");
        let token = token.lines().next().unwrap().trim().to_string();
        d.env.push(("CEZONE_TOKEN".into(), token));
        d
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> String {
        std::fs::write(self.path(name), text).unwrap();
        self.path(name).display().to_string()
    }

    /// Writes CSV text as a workbook whose only sheet is `sheet`, every cell as text.
    fn write_xlsx(&self, name: &str, sheet: &str, csv: &str) -> String {
        let mut book = rust_xlsxwriter::Workbook::new();
        let ws = book.add_worksheet();
        ws.set_name(sheet).unwrap();
        for (r, line) in csv.lines().enumerate() {
            for (c, v) in line.split(',').enumerate() {
                ws.write_string(r as u32, c as u16, v).unwrap();
            }
        }
        book.save(self.path(name)).unwrap();
        self.path(name).display().to_string()
    }

    /// Runs a command; (success, standard output then standard error).
    fn cezone(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_cezone"))
            .args(args)
            .envs(self.env.iter().cloned())
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, text) = self.cezone(args);
        assert!(ok, "cezone {}: {text}", args.join(" "));
        text
    }

    fn refused(&self, args: &[&str]) -> String {
        let (ok, text) = self.cezone(args);
        assert!(!ok, "cezone {} should be refused: {text}", args.join(" "));
        text
    }

    fn with_token(&self, token: &str, args: &[&str]) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_cezone"))
            .args(args)
            .envs(self.env.iter().cloned())
            .env("CEZONE_TOKEN", token)
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }
}

impl Drop for District {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

fn repo(path: &str) -> String {
    format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"))
}

const ORG_LIST: &str = "\u{feff}代码,名称,上级,层级,社区类型,区域类别,2013年常住人口\n\
nanhai,南海区,,区,,珠三角,\"2,600,000\"\n\
nanhai.guicheng,桂城街道,nanhai,镇街,,,400000\n\
nanhai.jiujiang,九江镇,nanhai,镇街,,,120000\n\
nanhai.guicheng.pingzhou,平洲社区,nanhai.guicheng,社区,城市社区,,12000\n\
nanhai.guicheng.xiabei,夏北社区,nanhai.guicheng,社区,城市社区,,9000\n\
nanhai.jiujiang.nanfang,南方村,nanhai.jiujiang,社区,农村社区,,3000\n\
nanhai.jiujiang.hudong,沙口社区,nanhai.guicheng,社区,农村社区,,2500\n";

fn org_units_in(d: &District) -> Vec<String> {
    let csv = d.ok(&["org-units", "export"]);
    let t = Table::read("export.csv", csv.as_bytes()).unwrap();
    t.rows.iter().map(|(_, c)| c[0].clone()).collect()
}

#[test]
fn a_district_is_loaded_from_its_own_files_and_its_scores_exported() {
    let d = District::start();

    // The framework: a table with errors is refused with its findings; the package publishes.
    let bad = d.write(
        "bad.csv",
        "一级指标,二级指标,三级指标,分值,提供材料,负责单位\n1.甲（2分）,1.1乙（2分）,1.1.1丙,2分,材料,区体育局\n",
    );
    let out = d.refused(&["framework", "publish", &bad]);
    assert!(
        out.contains("error(s); nothing was sent to the registry"),
        "{out}"
    );
    let out = d.ok(&[
        "framework",
        "publish",
        &repo("data/guangdong-2013/framework.toml"),
    ]);
    assert!(out.contains("published gd-community-education"), "{out}");
    let out = d.refused(&[
        "framework",
        "publish",
        &repo("data/guangdong-2013/framework.toml"),
    ]);
    assert!(out.contains("already published"), "{out}");

    // The org list: every bad cell named, nothing stored.
    let bad = d.write(
        "bad-list.csv",
        "code,name,parent,level,community_type,population_2013\n\
         nanhai,南海区,,district,,many\n\
         nanhai.x,,nanhai,village,,5\n",
    );
    let out = d.refused(&["org-units", "import", &bad]);
    assert!(
        out.contains("row 2, column F (population_2013): 'many' is not a number of residents"),
        "{out}"
    );
    assert!(out.contains("row 3, column B (name): is empty"), "{out}");
    assert!(
        out.contains("row 3, column D (level): 'village' is not a level"),
        "{out}"
    );
    assert!(!out.contains("sheet "), "a CSV file has no sheets: {out}");
    // The same list as a workbook: each cell named by its sheet too.
    let bad = d.write_xlsx(
        "bad-list.xlsx",
        "组织机构",
        "code,name,parent,level,community_type,population_2013\n\
         nanhai,南海区,,district,,many\n\
         nanhai.x,,nanhai,village,,5\n",
    );
    let out = d.refused(&["org-units", "import", &bad]);
    assert!(
        out.contains("sheet 组织机构, row 2, column F (population_2013): 'many' is not"),
        "{out}"
    );
    assert!(
        out.contains("sheet 组织机构, row 3, column D (level): 'village' is not a level"),
        "{out}"
    );
    assert!(org_units_in(&d).is_empty());

    // A tree the registry refuses as a whole (a community under a community): the row named.
    let broken = d.write(
        "broken.csv",
        "code,name,parent,level,community_type\n\
         nanhai,南海区,,district,\n\
         nanhai.a,甲社区,nanhai,community,urban\n\
         nanhai.a.b,乙社区,nanhai.a,community,urban\n",
    );
    let out = d.refused(&["org-units", "import", &broken]);
    assert!(out.contains("refused; nothing was stored"), "{out}");
    assert!(out.contains("row 4, parent_id"), "{out}");
    assert!(org_units_in(&d).is_empty());

    // A dry run shows the changes and stores nothing; then the list goes in.
    let list = d.write("org-list.csv", ORG_LIST);
    let out = d.ok(&["org-units", "import", &list, "--dry-run"]);
    assert!(
        out.contains("dry run, nothing stored — 7 org units: 7 created"),
        "{out}"
    );
    assert!(org_units_in(&d).is_empty());
    let out = d.ok(&["org-units", "import", &list]);
    assert!(
        out.contains("7 org units: 7 created, 0 updated, 0 moved, 0 unchanged"),
        "{out}"
    );
    // The same file again changes nothing; a corrected one (沙口 belongs to 九江, and 平洲's
    // population was wrong) updates and moves exactly those.
    let out = d.ok(&["org-units", "import", &list]);
    assert!(
        out.contains("0 created, 0 updated, 0 moved, 7 unchanged"),
        "{out}"
    );
    let corrected = ORG_LIST
        .replace(
            "nanhai.jiujiang.hudong,沙口社区,nanhai.guicheng",
            "nanhai.jiujiang.hudong,沙口社区,nanhai.jiujiang",
        )
        .replace("城市社区,,12000", "城市社区,,12500");
    let corrected = d.write("org-list-2.csv", &corrected);
    let out = d.ok(&["org-units", "import", &corrected]);
    assert!(
        out.contains("0 created, 1 updated, 1 moved, 5 unchanged"),
        "{out}"
    );
    assert!(
        out.contains("~ nanhai.guicheng.pingzhou 平洲社区: updated (population:2013)"),
        "{out}"
    );
    // The export reads back as the corrected list.
    let exported = d.ok(&["org-units", "export"]);
    let again = cezone_client::files::org_list::read("x.csv", exported.as_bytes()).unwrap();
    let want = cezone_client::files::org_list::read(
        "y.csv",
        &std::fs::read(d.path("org-list-2.csv")).unwrap(),
    )
    .unwrap();
    let key = |u: &cezone_proto::registry::v1::OrgUnit| u.id.clone();
    let mut again = again;
    let mut want = want;
    again.sort_by_key(key);
    want.sort_by_key(key);
    assert_eq!(again, want);

    // The return template of the first unit the matrix gives statistics.
    let (fw, _) = guangdong::framework();
    let unit = fw
        .units
        .units
        .iter()
        .find(|u| !returns::metrics_of(&fw, &u.id).is_empty())
        .expect("some unit files statistics")
        .id
        .clone();
    let metrics = returns::metrics_of(&fw, &unit);
    let template = d.path("return.xlsx").display().to_string();
    let out = d.ok(&[
        "statistics",
        "template",
        "--unit",
        unit.as_str(),
        "--period",
        "2013",
        "--out",
        &template,
    ]);
    assert!(
        out.contains(&format!("{} metric(s)", metrics.len())),
        "{out}"
    );
    let t = Table::read(&template, &std::fs::read(&template).unwrap()).unwrap();
    assert_eq!(t.rows.len(), 7, "one row per org unit");
    assert_eq!(t.headers.len(), 3 + metrics.len());
    for m in &metrics {
        let h = returns::metric_header(m);
        assert!(t.headers.contains(&h), "{h} in {:?}", t.headers);
    }
    let m0 = metrics[0];
    let c0 = t
        .headers
        .iter()
        .position(|h| h == &returns::metric_header(m0))
        .unwrap();

    // Filled in with a bad cell and a duplicate row: each named, nothing stored.
    let mut csv = t.headers.join(",") + "\n";
    csv += &format!(
        "nanhai.guicheng,桂城街道,2013,{}\n",
        vec!["12"; metrics.len()].join(",")
    );
    csv += &format!(
        "nanhai.jiujiang,九江镇,2013,{}\n",
        vec!["-3"; metrics.len()].join(",")
    );
    csv += &format!(
        "nanhai.guicheng,桂城街道,2013,{}\n",
        vec!["1"; metrics.len()].join(",")
    );
    let bad = d.write("bad-return.csv", &csv);
    let out = d.refused(&["statistics", "import", &bad]);
    let col = |c: usize| cezone_client::files::column_letter(c);
    assert!(
        out.contains(&format!(
            "row 3, column {} ({}): '-3' is not",
            col(c0),
            returns::metric_header(m0)
        )),
        "{out}"
    );
    assert!(out.contains("row 2 already gives"), "{out}");
    assert!(!out.contains("sheet "), "a CSV file has no sheets: {out}");
    // The same return as a workbook: the sheet is named with the row and column.
    let bad = d.write_xlsx("bad-return.xlsx", "统计表", &csv);
    let out = d.refused(&["statistics", "import", &bad]);
    assert!(
        out.contains(&format!(
            "sheet 统计表, row 3, column {} ({}): '-3' is not",
            col(c0),
            returns::metric_header(m0)
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "sheet 统计表, row 4, column {} ({}): row 2 already gives",
            col(c0),
            returns::metric_header(m0)
        )),
        "the duplicate row too: {out}"
    );
    let listed = d.ok(&[
        "statistics",
        "template",
        "--unit",
        unit.as_str(),
        "--period",
        "2013",
        "--out",
        &d.path("check.xlsx").display().to_string(),
    ]);
    assert!(!listed.is_empty());
    let check = Table::read("check.xlsx", &std::fs::read(d.path("check.xlsx")).unwrap()).unwrap();
    assert!(
        check
            .rows
            .iter()
            .all(|(_, cells)| cells[3..].iter().all(|c| c.is_empty())),
        "nothing was stored: {:?}",
        check.rows
    );

    // A good return: shown against the current values, then stored all at once.
    let mut csv = t.headers.join(",") + "\n";
    csv += &format!(
        "nanhai.guicheng,桂城街道,2013,{}\n",
        vec!["12"; metrics.len()].join(",")
    );
    csv += &format!(
        "nanhai.jiujiang,九江镇,2013,{}\n",
        vec!["7"; metrics.len()].join(",")
    );
    let good = d.write("return.csv", &csv);
    let out = d.ok(&["statistics", "import", &good, "--dry-run"]);
    assert!(out.contains("dry run, nothing stored"), "{out}");
    let out = d.ok(&["statistics", "import", &good]);
    let n = 2 * metrics.len();
    assert!(
        out.contains(&format!(
            "{n} value(s) read, {n} stored ({n} first filings, 0 corrections), 0 unchanged"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("row 2: nanhai.guicheng {} 2013: — → ", m0.name)),
        "{out}"
    );
    // The import is one entry of the audit log, found by the id the command prints.
    let import_id = out
        .lines()
        .find_map(|l| l.strip_prefix("导入编号 import id: "))
        .unwrap_or_else(|| panic!("no import id in {out}"));
    let entries = d.ok(&[
        "audit",
        "list",
        "--services",
        "surveys",
        "--target",
        import_id,
        "--format",
        "json",
    ]);
    let entries: serde_json::Value = serde_json::from_str(&entries).unwrap();
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["action"], "statistics.imported");
    assert_eq!(entries[0]["details"]["statistics"], n, "{entries:?}");
    assert_eq!(entries[0]["details"]["first_filings"], n, "{entries:?}");
    // The template now carries the values; the same file again stores nothing.
    d.ok(&[
        "statistics",
        "template",
        "--unit",
        unit.as_str(),
        "--period",
        "2013",
        "--out",
        &template,
    ]);
    let t = Table::read(&template, &std::fs::read(&template).unwrap()).unwrap();
    let guicheng = t
        .rows
        .iter()
        .find(|(_, c)| c[0] == "nanhai.guicheng")
        .unwrap();
    assert_eq!(
        guicheng.1[c0],
        returns::shown(m0, returns::parse_value(m0, "12").unwrap()).replace(".00", "")
    );
    let out = d.ok(&["statistics", "import", &good]);
    assert!(out.contains("none differs from what is filed"), "{out}");

    // A town may not file another town's return: the service refuses, nothing stored.
    let (ok, token) = d.cezone(&[
        "token",
        "issue",
        "--subject",
        "九江镇",
        "--role",
        "town",
        "--unit",
        "towns",
        "--org-unit",
        "nanhai.jiujiang",
    ]);
    assert!(ok, "{token}");
    let town = token.lines().next().unwrap().trim().to_string();
    let mut csv = t.headers.join(",") + "\n";
    csv += &format!(
        "nanhai.guicheng,桂城街道,2013,{}\n",
        vec!["99"; metrics.len()].join(",")
    );
    let other = d.write("other-town.csv", &csv);
    let (ok, out) = d.with_token(&town, &["statistics", "import", &other]);
    assert!(!ok, "{out}");
    assert!(out.contains("may not file a statistic"), "{out}");

    // The town files its own return: it waits for review; the office lists it, checks the
    // decision with a dry run and accepts the whole return.
    let towns_template = d.path("jiujiang.xlsx").display().to_string();
    d.with_token(
        &town,
        &[
            "statistics",
            "template",
            "--unit",
            "towns",
            "--period",
            "2013",
            "--org-unit",
            "nanhai.jiujiang",
            "--out",
            &towns_template,
        ],
    );
    let tt = Table::read(&towns_template, &std::fs::read(&towns_template).unwrap()).unwrap();
    let row = tt
        .rows
        .iter()
        .find(|(_, c)| c[0] == "nanhai.jiujiang")
        .expect("the town's own row");
    // The town's own row with every metric at `value`, as a CSV return.
    let town_return = |name: &str, value: &str| {
        let csv = format!(
            "{}\n{},{},{},{}\n",
            tt.headers.join(","),
            row.1[0],
            row.1[1],
            row.1[2],
            vec![value; tt.headers.len() - 3].join(",")
        );
        d.write(name, &csv)
    };
    let own = town_return("jiujiang.csv", "8");
    let (ok, out) = d.with_token(&town, &["statistics", "import", &own]);
    assert!(ok, "{out}");
    let filed = tt.headers.len() - 3;
    let listed = d.ok(&[
        "statistics",
        "list",
        "--org-unit",
        "nanhai.jiujiang",
        "--period",
        "2013",
    ]);
    assert!(
        listed.contains(&format!("{filed} statistic(s)"))
            && listed.contains("pending 待审核")
            && listed.contains("九江镇"),
        "{listed}"
    );
    let out = d.refused(&[
        "statistics",
        "review",
        "--return-of",
        "nanhai.jiujiang",
        "--period",
        "2013",
        "--return",
        " ",
    ]);
    assert!(out.contains("--return: say what is wrong"), "{out}");
    let out = d.ok(&[
        "statistics",
        "review",
        "--return-of",
        "nanhai.jiujiang",
        "--period",
        "2013",
        "--accept",
        "--dry-run",
    ]);
    assert!(
        out.contains(&format!(
            "dry run, nothing recorded — {filed} statistic(s) would be accepted"
        )),
        "{out}"
    );
    let out = d.ok(&[
        "statistics",
        "review",
        "--return-of",
        "nanhai.jiujiang",
        "--period",
        "2013",
        "--accept",
    ]);
    assert!(
        out.contains(&format!("{filed} statistic(s) accepted 已通过")),
        "{out}"
    );
    let listed = d.ok(&[
        "statistics",
        "list",
        "--org-unit",
        "nanhai.jiujiang",
        "--period",
        "2013",
    ]);
    assert!(
        listed.contains("0 statistic(s)"),
        "none left pending: {listed}"
    );
    let out = d.refused(&[
        "statistics",
        "review",
        "--return-of",
        "nanhai.jiujiang",
        "--period",
        "2013",
        "--accept",
    ]);
    assert!(
        out.contains("nothing under nanhai.jiujiang in 2013 is pending review"),
        "{out}"
    );

    // The resident survey, and a survey platform's export through a mapping. A dry run checks
    // the definition and defines nothing (the real definition after it would be refused if it
    // had).
    let out = d.ok(&[
        "surveys",
        "define",
        "--id",
        "resident-2013",
        "--period",
        "2013",
        "--dry-run",
    ]);
    assert!(
        out.contains("dry run, nothing defined — survey resident-2013"),
        "{out}"
    );
    assert!(out.contains("awareness"), "the questions are listed: {out}");
    let out = d.refused(&["surveys", "define", "--id", "Resident 2013", "--dry-run"]);
    assert!(
        out.contains("--id: 'Resident 2013' is not an id") && out.contains("nothing was defined"),
        "{out}"
    );
    let out = d.refused(&[
        "surveys",
        "define",
        "--id",
        "resident-1800",
        "--period",
        "1800",
        "--dry-run",
    ]);
    assert!(
        out.contains("--period: 1800 is not a plausible year"),
        "{out}"
    );
    let out = d.ok(&[
        "surveys",
        "define",
        "--id",
        "resident-2013",
        "--period",
        "2013",
    ]);
    assert!(out.contains("defined survey resident-2013"), "{out}");
    let out = d.refused(&["surveys", "define", "--id", "resident-2013", "--dry-run"]);
    assert!(
        out.contains("--id: survey 'resident-2013' already exists"),
        "{out}"
    );
    let mapping = d.write(
        "mapping.toml",
        "respondent = \"答卷编号\"\norg_unit = \"所在社区\"\n\
         [questions.awareness]\ncolumn = \"Q1 知道社区教育吗\"\n\
         [questions.satisfaction]\ncolumn = \"Q3 满意度\"\nlabels = { \"满意\" = 4, \"一般般\" = 3 }\n",
    );
    let export = d.write(
        "platform.csv",
        "答卷编号,所在社区,Q1 知道社区教育吗,Q3 满意度\n\
         r1,nanhai.guicheng.pingzhou,是,满意\n\
         r2,nanhai.guicheng.pingzhou,否,一般般\n\
         r3,nanhai.jiujiang.nanfang,是,很满意\n",
    );
    let bad = d.write(
        "platform-bad.csv",
        "答卷编号,所在社区,Q1 知道社区教育吗,Q3 满意度\nr1,nanhai.guicheng.pingzhou,也许,满意\n",
    );
    let out = d.refused(&[
        "surveys",
        "import",
        &bad,
        "--survey",
        "resident-2013",
        "--mapping",
        &mapping,
    ]);
    assert!(
        out.contains("row 2, column C (Q1 知道社区教育吗): '也许' is not an answer"),
        "{out}"
    );
    let bad = d.write_xlsx(
        "platform-bad.xlsx",
        "问卷",
        "答卷编号,所在社区,Q1 知道社区教育吗,Q3 满意度\nr1,nanhai.guicheng.pingzhou,也许,满意\n",
    );
    let out = d.refused(&[
        "surveys",
        "import",
        &bad,
        "--survey",
        "resident-2013",
        "--mapping",
        &mapping,
    ]);
    assert!(
        out.contains("sheet 问卷, row 2, column C (Q1 知道社区教育吗): '也许' is not an answer"),
        "{out}"
    );
    let unknown = d.write(
        "platform-unknown.csv",
        "答卷编号,所在社区,Q1 知道社区教育吗,Q3 满意度\nr9,nanhai.nowhere,是,满意\n",
    );
    let out = d.refused(&[
        "surveys",
        "import",
        &unknown,
        "--survey",
        "resident-2013",
        "--mapping",
        &mapping,
    ]);
    assert!(out.contains("row 2, org_unit"), "{out}");
    // Refused by the service, placed on the workbook's sheet and row.
    let unknown = d.write_xlsx(
        "platform-unknown.xlsx",
        "问卷",
        "答卷编号,所在社区,Q1 知道社区教育吗,Q3 满意度\nr9,nanhai.nowhere,是,满意\n",
    );
    let out = d.refused(&[
        "surveys",
        "import",
        &unknown,
        "--survey",
        "resident-2013",
        "--mapping",
        &mapping,
    ]);
    assert!(out.contains("sheet 问卷, row 2, org_unit"), "{out}");
    let out = d.ok(&[
        "surveys",
        "import",
        &export,
        "--survey",
        "resident-2013",
        "--mapping",
        &mapping,
    ]);
    assert!(
        out.contains("3 response(s) to survey resident-2013 stored"),
        "{out}"
    );

    // A town's export waits for review; the town cannot accept it, the office can.
    let (ok, guicheng_token) = d.cezone(&[
        "token",
        "issue",
        "--subject",
        "桂城街道",
        "--role",
        "town",
        "--unit",
        "towns",
        "--org-unit",
        "nanhai.guicheng",
    ]);
    assert!(ok, "{guicheng_token}");
    let guicheng_token = guicheng_token.lines().next().unwrap().trim().to_string();
    let from_town = d.write(
        "platform-town.csv",
        "答卷编号,所在社区,Q1 知道社区教育吗,Q3 满意度
t1,nanhai.guicheng.pingzhou,是,满意
",
    );
    let (ok, out) = d.with_token(
        &guicheng_token,
        &[
            "surveys",
            "import",
            &from_town,
            "--survey",
            "resident-2013",
            "--mapping",
            &mapping,
        ],
    );
    assert!(ok, "{out}");
    let listed = d.ok(&["surveys", "batches", "--state", "pending"]);
    assert!(
        listed.contains("待审核 pending")
            && listed.contains("桂城街道")
            && listed.contains("1 batch(es)"),
        "{listed}"
    );
    let batch = listed
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    let out = d.refused(&["surveys", "review", &batch, "--return", " "]);
    assert!(out.contains("comment is empty"), "{out}");
    let (ok, out) = d.with_token(&guicheng_token, &["surveys", "review", &batch, "--accept"]);
    assert!(!ok && out.contains("nobody reviews their own"), "{out}");
    let out = d.ok(&["surveys", "review", &batch, "--accept"]);
    assert!(
        out.contains("已通过 accepted") && out.contains(&batch),
        "{out}"
    );
    let listed = d.ok(&["surveys", "batches", "--state", "pending"]);
    assert!(listed.contains("0 batch(es)"), "{listed}");

    // Evidence: two files uploaded, one accepted, one returned, and downloaded intact.
    let criterion = fw
        .leaves()
        .map(|i| fw.item(i))
        .find(|it| it.responsible.contains(&unit))
        .expect("the unit answers some criterion")
        .code
        .to_string();
    let a = d.write("会议纪要.txt", "社区教育工作会议纪要\n");
    let b = d.write("plan.pdf", "%PDF-1.4\n% plan\n");
    let empty = d.write("empty.txt", "");
    let out = d.refused(&[
        "evidence",
        "upload",
        &a,
        &empty,
        "--criterion",
        &criterion,
        "--unit",
        unit.as_str(),
        "--org-unit",
        "nanhai",
    ]);
    assert!(out.contains("empty.txt: the file is empty"), "{out}");
    assert!(d.ok(&["evidence", "list"]).contains("0 record(s)"));
    let out = d.ok(&[
        "evidence",
        "upload",
        &a,
        &b,
        "--criterion",
        &criterion,
        "--unit",
        unit.as_str(),
        "--org-unit",
        "nanhai",
    ]);
    assert!(out.contains("2 uploaded, 0 refused"), "{out}");
    let ids: Vec<String> = out
        .lines()
        .filter_map(|l| l.split(" → ").nth(1))
        .map(|r| r.split_whitespace().next().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2, "{out}");
    // A dry run of a review checks it and records nothing: the record still awaits review.
    let out = d.ok(&["evidence", "review", &ids[0], "--accept", "90", "--dry-run"]);
    assert!(
        out.contains("dry run, nothing recorded") && out.contains("would be accepted, grade 90"),
        "{out}"
    );
    let out = d.ok(&[
        "evidence",
        "review",
        &ids[1],
        "--return",
        "缺少盖章页",
        "--dry-run",
    ]);
    assert!(out.contains("would be returned: 缺少盖章页"), "{out}");
    let pending = d.ok(&["evidence", "list", "--state", "submitted"]);
    assert!(
        pending.contains(&ids[0]) && pending.contains(&ids[1]) && pending.contains("2 record(s)"),
        "{pending}"
    );
    let out = d.refused(&[
        "evidence",
        "review",
        &ids[0],
        "--accept",
        "101",
        "--dry-run",
    ]);
    assert!(out.contains("--accept: 101 is not a grade"), "{out}");
    let out = d.refused(&["evidence", "review", &ids[0], "--return", " ", "--dry-run"]);
    assert!(out.contains("--return: say what is wrong"), "{out}");
    let long = "缺".repeat(2001);
    let out = d.refused(&[
        "evidence",
        "review",
        &ids[0],
        "--return",
        &long,
        "--dry-run",
    ]);
    assert!(
        out.contains("the comment has 2001 characters; at most 2000"),
        "{out}"
    );
    let out = d.refused(&[
        "evidence",
        "review",
        "no-such-record",
        "--accept",
        "90",
        "--dry-run",
    ]);
    assert!(out.contains("NotFound"), "{out}");
    let out = d.ok(&["evidence", "review", &ids[0], "--accept", "90"]);
    assert!(out.contains("accepted, grade 90"), "{out}");
    // Reviewed once, it is no longer reviewable: the dry run says so.
    let out = d.refused(&["evidence", "review", &ids[0], "--return", "x", "--dry-run"]);
    assert!(out.contains("only submitted evidence is reviewed"), "{out}");
    let out = d.ok(&["evidence", "review", &ids[1], "--return", "缺少盖章页"]);
    assert!(out.contains("returned: 缺少盖章页"), "{out}");
    let out = d.refused(&["evidence", "review", &ids[1], "--accept", "101"]);
    assert!(out.contains("not a grade"), "{out}");
    let list = d.ok(&["evidence", "list", "--state", "returned"]);
    assert!(
        list.contains(&ids[1]) && list.contains("1 record(s)") && list.contains("+08:00"),
        "{list}"
    );
    let got = d.path("got.txt");
    let out = d.ok(&[
        "evidence",
        "download",
        &ids[0],
        "--out",
        &got.display().to_string(),
    ]);
    assert!(out.contains("checked"), "{out}");
    assert_eq!(
        std::fs::read(&got).unwrap(),
        std::fs::read(d.path("会议纪要.txt")).unwrap()
    );

    // The scores, once the events have reached scoring, in the three formats.
    let deadline = Instant::now() + Duration::from_secs(60);
    let scores = loop {
        let json = d.ok(&["scores", "export", "--format", "json"]);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        if v["org_unit"] == "nanhai" && v["confirmed"] != "0" {
            break v;
        }
        assert!(Instant::now() < deadline, "no score after 60 s: {json}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(scores["items"].as_array().unwrap().len(), fw.len());
    let csv = d.ok(&[
        "scores",
        "export",
        "--format",
        "csv",
        "--org-unit",
        "nanhai.guicheng",
    ]);
    let t = Table::read("scores.csv", csv.as_bytes()).unwrap();
    assert_eq!(t.headers[0], "代码 code");
    assert_eq!(
        t.rows.len(),
        fw.len() + 1,
        "a total row and one row per item"
    );
    assert!(
        t.rows[0].1[1].starts_with("nanhai.guicheng 桂城街道"),
        "{csv}"
    );
    let xlsx = d.path("scores.xlsx");
    d.ok(&[
        "scores",
        "export",
        "--format",
        "xlsx",
        "--out",
        &xlsx.display().to_string(),
    ]);
    assert!(Path::new(&xlsx).exists());
    let out = d.refused(&["scores", "export", "--format", "xlsx"]);
    assert!(out.contains("needs --out"), "{out}");

    // Who did all that, as the office reads it: newest first, across the services, times in
    // the district's zone; filtered by action prefix and target; bad filters named.
    let log = d.ok(&["audit", "list", "--limit", "5"]);
    assert!(log.contains("时间 time") && log.contains("+08:00"), "{log}");
    assert!(log.contains("5 entries (newest first)"), "{log}");
    let reviews = d.ok(&[
        "audit",
        "list",
        "--services",
        "evidence",
        "--action",
        "evidence.reviewed",
        "--format",
        "json",
    ]);
    let reviews: serde_json::Value = serde_json::from_str(&reviews).unwrap();
    let reviews = reviews.as_array().unwrap();
    assert_eq!(reviews.len(), 2, "{reviews:?}");
    assert_eq!(reviews[0]["target"], ids[1].as_str(), "the newest first");
    assert!(
        reviews[0]["actor"].as_str().unwrap().contains("评估办公室"),
        "{reviews:?}"
    );
    assert_eq!(
        reviews[0]["details"]["comment"], "缺少盖章页",
        "{reviews:?}"
    );
    let units = d.ok(&[
        "audit",
        "list",
        "--services",
        "registry",
        "--action",
        "org_unit.",
        "--target",
        "nanhai.guicheng",
        "--format",
        "json",
    ]);
    let units: serde_json::Value = serde_json::from_str(&units).unwrap();
    assert!(
        units.as_array().unwrap().iter().all(|e| e["target"]
            .as_str()
            .unwrap()
            .contains("nanhai.guicheng")
            && e["action"].as_str().unwrap().starts_with("org_unit.")),
        "{units}"
    );
    let out = d.refused(&["audit", "list", "--since", "yesterday"]);
    assert!(out.contains("since: 'yesterday'"), "{out}");

    // What the town still owes: its accepted return leaves nothing pending.
    let (ok, out) = d.with_token(
        &town,
        &["obligations", "--period", "2013", "--as-of", "2099-01-01"],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("towns @ nanhai.jiujiang")
            && out.contains("台帐资料 materials:")
            && out.contains("统计数据 statistics:")
            && out.contains(" 0 pending"),
        "{out}"
    );
    let out = d.refused(&["obligations", "--period", "2013"]);
    assert!(
        out.contains("responsible_unit"),
        "the office names the unit: {out}"
    );

    // The office locks the year: the town's next import is refused; unlocked, it goes in.
    let out = d.refused(&["period", "lock", "--period", "2013", "--reason", " "]);
    assert!(out.contains("--reason: say why"), "{out}");
    let out = d.ok(&[
        "period",
        "lock",
        "--period",
        "2013",
        "--reason",
        "材料已报送",
    ]);
    assert!(
        out.contains("2013 已锁定 locked since") && out.contains("材料已报送"),
        "{out}"
    );
    let correction = town_return("jiujiang-2.csv", "9");
    let (ok, out) = d.with_token(&town, &["statistics", "import", &correction]);
    assert!(!ok && out.contains("period 2013 is locked"), "{out}");
    let (ok, out) = d.with_token(
        &town,
        &[
            "period",
            "unlock",
            "--period",
            "2013",
            "--org-unit",
            "nanhai.jiujiang",
            "--reason",
            "x",
        ],
    );
    assert!(
        !ok && out.contains("may not lock or unlock a period"),
        "{out}"
    );
    let out = d.ok(&[
        "period",
        "unlock",
        "--period",
        "2013",
        "--org-unit",
        "nanhai.jiujiang",
        "--reason",
        "更正服务人数",
    ]);
    assert!(
        out.contains("nanhai.jiujiang 已解锁更正 unlocked for a correction"),
        "{out}"
    );
    let (ok, out) = d.with_token(&town, &["statistics", "import", &correction]);
    assert!(ok, "{out}");
    let out = d.ok(&["period", "show", "--period", "2013"]);
    assert!(
        out.contains("已锁定") && out.contains("更正服务人数"),
        "{out}"
    );
    d.ok(&["period", "lock", "--period", "2013", "--reason", "更正完毕"]);
    assert!(
        d.ok(&["period", "show", "--period", "2014"])
            .contains("2014 未锁定 not locked")
    );
}

impl District {
    /// Runs a command with `stdin` as its standard input, as `token` (or, without one, with
    /// the credentials the deployment's key gives the operator); (success, stdout, stderr).
    fn piped(&self, args: &[&str], stdin: &str, token: Option<&str>) -> (bool, String, String) {
        use std::io::Write;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cezone"));
        cmd.args(args)
            .envs(self.env.iter().cloned())
            .env_remove("CEZONE_TOKEN")
            .current_dir(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(t) = token {
            cmd.env("CEZONE_TOKEN", t);
        }
        let mut child = cmd.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// The first account on an empty system is made on the operator's machine with the
/// deployment's key (no token); that person signs in with `cezone login`, and the token it
/// prints is good for the other commands, with the account's role.
#[test]
fn the_first_admin_is_added_with_the_key_signs_in_and_adds_people() {
    let d = District::start();
    let (ok, out, err) = d.piped(
        &[
            "user",
            "add",
            "--login",
            "it.admin",
            "--name",
            "区教育局信息科",
            "--role",
            "district_admin",
            "--password-stdin",
        ],
        "first admin passphrase\n",
        None,
    );
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("added it.admin (区教育局信息科, district_admin)"),
        "{out}"
    );

    let (ok, token, err) = d.piped(
        &["login", "it.admin", "--password-stdin"],
        "first admin passphrase\n",
        None,
    );
    assert!(ok, "{err}");
    let admin = token.trim().to_string();
    assert_eq!(
        admin.lines().count(),
        1,
        "only the token on stdout: {token}"
    );
    assert!(err.contains("signed in as it.admin"), "{err}");

    // The admin's token adds a department's account and lists the accounts.
    let (ok, out, err) = d.piped(
        &[
            "user",
            "add",
            "--login",
            "li.wei",
            "--name",
            "李伟",
            "--role",
            "responsible_unit",
            "--unit",
            "finance",
            "--password-stdin",
        ],
        "li wei's passphrase\n",
        Some(&admin),
    );
    assert!(ok, "{out}{err}");
    let (ok, out, err) = d.piped(&["user", "list"], "", Some(&admin));
    assert!(ok, "{err}");
    assert!(out.contains("it.admin") && out.contains("li.wei"), "{out}");
    assert!(
        out.contains("responsible_unit") && out.contains("finance"),
        "{out}"
    );
    // Bad input is named by field and stores nothing.
    let (ok, _, err) = d.piped(
        &[
            "user",
            "add",
            "--login",
            "x.y",
            "--name",
            "x",
            "--role",
            "inspector",
            "--password-stdin",
        ],
        "short\n",
        Some(&admin),
    );
    assert!(!ok);
    assert!(
        err.contains("password: has 5 characters; at least 10"),
        "{err}"
    );

    // The department signs in; its token works on another service, and carries its role.
    let (ok, token, err) = d.piped(
        &["login", "li.wei", "--password-stdin"],
        "li wei's passphrase\n",
        None,
    );
    assert!(ok, "{err}");
    let dept = token.trim().to_string();
    let (ok, out, err) = d.piped(&["evidence", "list"], "", Some(&dept));
    assert!(ok, "{out}{err}");
    let (ok, _, err) = d.piped(&["user", "list"], "", Some(&dept));
    assert!(!ok);
    assert!(err.contains("PermissionDenied"), "{err}");

    // A wrong password, an unknown login: one answer. A disabled account cannot sign in.
    let (ok, _, wrong) = d.piped(
        &["login", "li.wei", "--password-stdin"],
        "guess guess guess\n",
        None,
    );
    assert!(!ok);
    assert!(
        wrong.contains("the login or the password is wrong"),
        "{wrong}"
    );
    let (ok, _, unknown) = d.piped(
        &["login", "nobody", "--password-stdin"],
        "guess guess guess\n",
        None,
    );
    assert!(!ok);
    assert!(
        unknown.contains("the login or the password is wrong"),
        "{unknown}"
    );
    let (ok, out, err) = d.piped(&["user", "disable", "li.wei"], "", Some(&admin));
    assert!(ok, "{out}{err}");
    let (ok, _, err) = d.piped(
        &["login", "li.wei", "--password-stdin"],
        "li wei's passphrase\n",
        None,
    );
    assert!(!ok);
    assert!(err.contains("disabled"), "{err}");
    // And a reset sets a new password (the account stays disabled).
    let (ok, out, err) = d.piped(
        &["user", "reset-password", "li.wei", "--password-stdin"],
        "a new passphrase\n",
        Some(&admin),
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("new password set for li.wei"), "{out}");
    // Enabled again, it signs in with that password.
    let (ok, out, err) = d.piped(&["user", "enable", "li.wei"], "", Some(&admin));
    assert!(ok && out.contains("enabled li.wei"), "{out}{err}");
    let (ok, out, err) = d.piped(
        &["login", "li.wei", "--password-stdin"],
        "a new passphrase\n",
        None,
    );
    assert!(ok, "{out}{err}");
}
