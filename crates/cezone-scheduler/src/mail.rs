//! Reminders by e-mail. Each reminder the scheduler stores is sent once to the active accounts
//! of its unit that have an address (a town's to that town's accounts), through
//! `notify.smtp_url`. A reminder is claimed before it is sent, so two schedulers never both
//! send it, and marked sent after the server took it: a process that dies in between sends it
//! again after `CLAIM_EXPIRES` (at least once), and never a second time otherwise, whatever the
//! restarts.

use cezone_platform::ApiError;
use cezone_platform::settings::NotifySettings;
use cezone_platform::time::rfc3339;
use cezone_proto::registry::v1 as pr;
use chrono::{DateTime, Utc};
use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sea_orm::ConnectionTrait;

use crate::store;

/// A claim older than this was abandoned (its process died): the reminder is sent again.
pub const CLAIM_EXPIRES: chrono::Duration = chrono::Duration::minutes(10);

/// Attempts at one reminder before it is given up (each look tries once more).
pub const MAX_ATTEMPTS: i32 = 5;

/// The SMTP server and the sender.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// None when `notify.smtp_url` is empty.
    pub fn from_settings(n: &NotifySettings) -> Result<Option<Mailer>, ApiError> {
        let url = n.smtp_url.trim();
        if url.is_empty() {
            return Ok(None);
        }
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| ApiError::invalid("notify.smtp_url", e.to_string()))?
            .timeout(Some(std::time::Duration::from_secs(30)))
            .build();
        let from: Mailbox = n
            .from
            .parse()
            .map_err(|e| ApiError::invalid("notify.from", format!("{e}")))?;
        Ok(Some(Mailer { transport, from }))
    }

    async fn send(&self, to: &[pr::Recipient], subject: &str, body: &str) -> Result<(), String> {
        let mut message = Message::builder().from(self.from.clone()).subject(subject);
        for r in to {
            let address = r
                .email
                .parse()
                .map_err(|e| format!("{}'s address {:?}: {e}", r.login, r.email))?;
            message = message.to(Mailbox::new(Some(r.display_name.clone()), address));
        }
        let message = message
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_string())
            .map_err(|e| e.to_string())?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// The reminder as an e-mail: subject and body, Chinese first with English beside it.
pub fn compose(n: &store::PendingEmail) -> (String, String) {
    let subject = format!(
        "【社区教育实验区】评估提醒 Reminder: {} — {}（{}）",
        n.checkpoint, n.responsible_unit, n.org_unit
    );
    let body = format!(
        "{}\n\n请登录工作台「我的任务」查看每项所缺材料与统计数据。\n\
         Sign in to the workbench (我的任务 My obligations) for each material and statistic owed.\n\n\
         此邮件由评估系统在检查点前自动发送，请勿回复。\n\
         Sent by the evaluation system before the checkpoint; please do not reply.\n",
        n.text
    );
    (subject, body)
}

/// Sends every reminder waiting for its e-mail; how many were sent.
pub async fn send_pending(
    db: &impl ConnectionTrait,
    mailer: &Mailer,
    registry: &mut pr::registry_service_client::RegistryServiceClient<
        cezone_platform::access::auth::AuthChannel,
    >,
    now: DateTime<Utc>,
) -> Result<usize, ApiError> {
    let mut sent = 0;
    for n in store::pending_emails(db, &rfc3339(now - CLAIM_EXPIRES)).await? {
        if !store::claim_email(db, n.id, &rfc3339(now), &rfc3339(now - CLAIM_EXPIRES)).await? {
            continue;
        }
        // A town's reminder goes to that town's accounts, a department's to the department's.
        let org_unit = if n.responsible_unit == "towns" {
            n.org_unit.clone()
        } else {
            String::new()
        };
        let recipients = match registry
            .list_recipients(pr::ListRecipientsRequest {
                unit: n.responsible_unit.clone(),
                org_unit,
            })
            .await
        {
            Ok(r) => r.into_inner().recipients,
            Err(s) => {
                store::email_failed(db, n.id, &format!("registry: {}", s.message())).await?;
                tracing::warn!(reminder = n.id, reason = %s.message(), "reminder not e-mailed: recipients unknown");
                continue;
            }
        };
        if recipients.is_empty() {
            store::email_done(db, n.id, "no_recipient", "", &rfc3339(now)).await?;
            continue;
        }
        let (subject, body) = compose(&n);
        match mailer.send(&recipients, &subject, &body).await {
            Ok(()) => {
                let to: Vec<&str> = recipients.iter().map(|r| r.email.as_str()).collect();
                store::email_done(db, n.id, "sent", &to.join(", "), &rfc3339(now)).await?;
                tracing::info!(reminder = n.id, unit = %n.responsible_unit, org_unit = %n.org_unit, to = to.len(), "reminder e-mailed");
                sent += 1;
            }
            Err(e) => {
                store::email_failed(db, n.id, &e).await?;
                tracing::warn!(reminder = n.id, reason = %e, "reminder not e-mailed; tried again at the next look");
            }
        }
    }
    Ok(sent)
}
