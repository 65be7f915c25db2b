//! Reminders by e-mail through a real SMTP server (aiosmtpd, started here on 127.0.0.1, which
//! keeps every message it takes in a Maildir): each reminder reaches the active accounts of its
//! unit that have an address, once, whatever the restarts; a unit with none gets no mail.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use cezone_domain::access::{Principal, Role};
use cezone_proto::registry::v1 as pr;
use cezone_proto::registry::v1::registry_service_client::RegistryServiceClient;

use super::*;

/// An SMTP server on a free port, stopped when dropped.
struct Smtp {
    child: Child,
    port: u16,
    maildir: tempfile::TempDir,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Smtp {
    async fn start() -> Smtp {
        let maildir = tempfile::tempdir().unwrap();
        let port = cezone_platform::testing::unused_port().unwrap();
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            // A path that does not exist yet: the Maildir is made with its tmp/new/cur there.
            .arg(maildir.path().join("mail"))
            .stdout(Stdio::null())
            .spawn()
            .expect("python3 with aiosmtpd (tests/run installs it)");
        let smtp = Smtp {
            child,
            port,
            maildir,
        };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return smtp;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "aiosmtpd did not listen on {port} within 10 s (is it installed? tests/run installs it)"
        );
    }

    /// Every message taken so far, read by Python's own e-mail parser: envelope recipients,
    /// sender, decoded subject and body.
    fn messages(&self) -> Vec<serde_json::Value> {
        messages_in(&self.maildir.path().join("mail"))
    }
}

fn messages_in(maildir: &Path) -> Vec<serde_json::Value> {
    let script = r#"
import json, mailbox, sys
from email.header import decode_header, make_header
out = []
for m in mailbox.Maildir(sys.argv[1], factory=None, create=False):
    body = m.get_payload(decode=True).decode(m.get_content_charset() or 'utf-8')
    out.append({
        'rcpt': sorted(a.strip() for a in m['X-RcptTo'].split(',')),
        'from': str(make_header(decode_header(m['From']))),
        'to': str(make_header(decode_header(m['To']))),
        'subject': str(make_header(decode_header(m['Subject']))),
        'body': body,
    })
print(json.dumps(out))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(maildir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
}

async fn account(
    registry: &mut RegistryServiceClient<Channel>,
    login: &str,
    role: Role,
    unit: &str,
    org_unit: &str,
    email: &str,
) {
    registry
        .create_account(pr::CreateAccountRequest {
            login: login.into(),
            display_name: format!("{login} 同志"),
            role: role.as_str().into(),
            unit: unit.into(),
            org_unit: org_unit.into(),
            password: "a long passphrase".into(),
            email: email.into(),
        })
        .await
        .unwrap();
}

/// Waits until no reminder's e-mail is pending or being sent.
async fn settled(s: &Stack, url: &str) -> Vec<psch::Notification> {
    let office = Principal::new("office", Role::EvaluationOffice, None, None).unwrap();
    for _ in 0..300 {
        let list = notifications(s, url, &office).await;
        if list
            .iter()
            .all(|n| n.email_state != "pending" && n.email_state != "sending")
        {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("reminders still waiting for their e-mail after 30 s");
}

pub async fn reminders_are_emailed_once_to_the_accounts_of_each_unit(backend: Backend) {
    let smtp = Smtp::start().await;
    let mut s = spawn(backend).await;
    s.env.settings.notify.smtp_url = format!("smtp://127.0.0.1:{}", smtp.port);
    let office = cezone_platform::testing::office();
    let mut registry = RegistryServiceClient::new(
        cezone_client::connect(&s.services.registry.url(), &office)
            .await
            .unwrap(),
    );
    let towns: Vec<String> = registry
        .list_org_units(pr::ListOrgUnitsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .units
        .into_iter()
        .filter(|u| u.level == cezone_proto::common::v1::OrgLevel::Town as i32)
        .map(|u| u.id)
        .collect();
    assert!(towns.len() >= 2, "{towns:?}");
    // The first town: one account with an address, one disabled with one, one without.
    account(
        &mut registry,
        "first.town",
        Role::Town,
        "towns",
        &towns[0],
        "first@town.example",
    )
    .await;
    account(
        &mut registry,
        "gone.town",
        Role::Town,
        "towns",
        &towns[0],
        "gone@town.example",
    )
    .await;
    registry
        .disable_account(pr::DisableAccountRequest {
            login: "gone.town".into(),
        })
        .await
        .unwrap();
    account(
        &mut registry,
        "quiet.town",
        Role::Town,
        "towns",
        &towns[0],
        "",
    )
    .await;
    // The second town: no address at all, so no mail.
    account(
        &mut registry,
        "second.town",
        Role::Town,
        "towns",
        &towns[1],
        "",
    )
    .await;
    // Every department, with an address; the office too, which is reminded of nothing.
    let (fw, _) = cezone_domain::guangdong::framework();
    let departments: Vec<String> = fw
        .units
        .units
        .iter()
        .map(|u| u.id.to_string())
        .filter(|u| u != "towns")
        .collect();
    for d in &departments {
        account(
            &mut registry,
            &format!("{d}.dept"),
            Role::ResponsibleUnit,
            d,
            "",
            &format!("{d}@dept.example"),
        )
        .await;
    }
    account(
        &mut registry,
        "the.office",
        Role::EvaluationOffice,
        "",
        "",
        "office@example.org",
    )
    .await;
    // An address is changed with UpdateAccount; a bad one is refused by name and changes nothing.
    let bad = registry
        .update_account(pr::UpdateAccountRequest {
            login: "quiet.town".into(),
            display_name: None,
            email: Some("not an address".into()),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    assert_eq!(violations(&bad)[0].0, "email", "{bad:?}");
    let moved = registry
        .update_account(pr::UpdateAccountRequest {
            login: "first.town".into(),
            display_name: None,
            email: Some("first@guicheng.example".into()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.email, "first@guicheng.example");
    // Whom a unit's reminders reach: the scheduler, the office and district IT may ask; a town
    // may not.
    let reach = registry
        .list_recipients(pr::ListRecipientsRequest {
            unit: "towns".into(),
            org_unit: towns[0].clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .recipients;
    assert_eq!(
        reach.iter().map(|r| r.email.as_str()).collect::<Vec<_>>(),
        ["first@guicheng.example"]
    );
    let town_token = cezone_platform::access::auth::Bearer::minted(
        s.env.keys(),
        Principal::new(
            "first.town",
            Role::Town,
            Some(cezone_domain::units::UnitId::parse("towns").unwrap()),
            Some(cezone_domain::org::OrgUnitId::parse(&towns[0]).unwrap()),
        )
        .unwrap(),
    );
    let denied = RegistryServiceClient::new(
        cezone_client::connect(&s.services.registry.url(), &town_token)
            .await
            .unwrap(),
    )
    .list_recipients(pr::ListRecipientsRequest {
        unit: "towns".into(),
        org_unit: towns[0].clone(),
    })
    .await
    .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");

    let clock = Arc::new(ManualClock::new(at("2013-12-28T00:00:00Z")));
    let (app, mut client) = s.scheduler(&clock).await;
    clock.set(at("2013-12-29T01:00:05Z"));
    wait_done(&mut client, T72).await;
    let reminded = settled(&s, &app.url()).await;
    assert!(!reminded.is_empty());

    // What each reminder should reach.
    let expected = |n: &psch::Notification| -> BTreeSet<String> {
        if n.responsible_unit == "towns" {
            if n.org_unit == towns[0] {
                BTreeSet::from(["first@guicheng.example".to_string()])
            } else {
                BTreeSet::new()
            }
        } else {
            BTreeSet::from([format!("{}@dept.example", n.responsible_unit)])
        }
    };
    let mail = smtp.messages();
    let mut by_recipients: BTreeMap<Vec<String>, Vec<&serde_json::Value>> = BTreeMap::new();
    for m in &mail {
        let rcpt: Vec<String> = serde_json::from_value(m["rcpt"].clone()).unwrap();
        by_recipients.entry(rcpt).or_default().push(m);
    }
    let mut mailed = 0;
    for n in &reminded {
        let want = expected(n);
        if want.is_empty() {
            assert_eq!(n.email_state, "no_recipient", "{n:?}");
            continue;
        }
        mailed += 1;
        assert_eq!(n.email_state, "sent", "{n:?}");
        assert_eq!(
            n.emailed_to
                .split(", ")
                .map(String::from)
                .collect::<BTreeSet<_>>(),
            want
        );
        let key: Vec<String> = want.into_iter().collect();
        let got = by_recipients
            .get(&key)
            .unwrap_or_else(|| panic!("no mail to {key:?}: {mail:?}"));
        let m = got
            .iter()
            .find(|m| m["body"].as_str().unwrap().contains(&n.text))
            .unwrap_or_else(|| panic!("no mail to {key:?} says {:?}: {got:?}", n.text));
        let subject = m["subject"].as_str().unwrap();
        assert!(
            subject.starts_with("【社区教育实验区】")
                && subject.contains("Reminder: materials-complete"),
            "{subject}"
        );
        assert!(
            m["from"].as_str().unwrap().contains("cezone@localhost"),
            "{m}"
        );
        assert!(
            m["body"]
                .as_str()
                .unwrap()
                .contains("我的任务 My obligations"),
            "{m}"
        );
    }
    assert!(
        mailed > 0,
        "some unit with an address owes something: {reminded:?}"
    );
    assert_eq!(
        mail.len(),
        mailed,
        "one message per reminder with recipients: {mail:?}"
    );
    let everyone: BTreeSet<String> = by_recipients.keys().flatten().cloned().collect();
    for never in [
        "gone@town.example",
        "office@example.org",
        "first@town.example",
    ] {
        assert!(!everyone.contains(never), "{never} was mailed");
    }

    // A restart sends nothing again.
    app.stop().await;
    let (app, mut client) = s.scheduler(&clock).await;
    app.scheduler.look().await.unwrap();
    assert_eq!(app.scheduler.send_reminders().await.unwrap(), 0);
    settled(&s, &app.url()).await;
    assert_eq!(
        smtp.messages().len(),
        mailed,
        "mailed once, whatever the restarts"
    );

    // The next lead time mails again.
    clock.set(at("2013-12-31T02:00:00Z"));
    wait_done(&mut client, T24).await;
    let again = settled(&s, &app.url()).await;
    let now_mailed = again.iter().filter(|n| n.email_state == "sent").count();
    assert!(now_mailed > mailed, "{again:?}");
    assert_eq!(smtp.messages().len(), now_mailed);
    app.stop().await;
    s.stop().await;
}
