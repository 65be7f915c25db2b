//! What the file commands share: the services they call (with the command's credentials), a
//! refusal shown with every field it names, and progress bars on long work.

use anyhow::{Context, Result};
use cezone_platform::access::auth::{AuthChannel, Bearer};
use cezone_platform::error::violations;
use cezone_platform::settings::Settings;
use indicatif::{ProgressBar, ProgressStyle};

pub struct Services {
    pub settings: Settings,
    bearer: Bearer,
}

impl Services {
    pub fn load(config: Option<&std::path::Path>) -> Result<Services> {
        let settings = Settings::load(config)?;
        let bearer = super::access::credentials(&settings)?;
        Ok(Services { settings, bearer })
    }

    async fn channel(&self, url: &str, key: &str) -> Result<AuthChannel> {
        cezone_client::connect(url, &self.bearer)
            .await
            .with_context(|| format!("the service at {url} ({key})"))
    }

    pub async fn registry(&self) -> Result<cezone_client::registry::Registry> {
        let url = &self.settings.services.registry_url;
        Ok(cezone_client::registry::client(
            self.channel(url, "services.registry_url").await?,
        ))
    }

    pub async fn surveys(&self) -> Result<cezone_client::surveys::Surveys> {
        let url = &self.settings.services.surveys_url;
        Ok(cezone_client::surveys::client(
            self.channel(url, "services.surveys_url").await?,
        ))
    }

    pub async fn evidence(&self) -> Result<cezone_client::evidence::Evidence> {
        let url = &self.settings.services.evidence_url;
        Ok(cezone_client::evidence::client(
            self.channel(url, "services.evidence_url").await?,
        ))
    }

    pub async fn scheduler(
        &self,
    ) -> Result<
        cezone_proto::scheduler::v1::scheduler_service_client::SchedulerServiceClient<AuthChannel>,
    > {
        let url = &self.settings.services.scheduler_url;
        Ok(
            cezone_proto::scheduler::v1::scheduler_service_client::SchedulerServiceClient::new(
                self.channel(url, "services.scheduler_url").await?,
            ),
        )
    }

    pub async fn scoring(
        &self,
    ) -> Result<cezone_proto::scoring::v1::scoring_service_client::ScoringServiceClient<AuthChannel>>
    {
        let url = &self.settings.services.scoring_url;
        Ok(
            cezone_proto::scoring::v1::scoring_service_client::ScoringServiceClient::new(
                self.channel(url, "services.scoring_url").await?,
            )
            .max_decoding_message_size(cezone_client::MAX_MESSAGE_BYTES),
        )
    }
}

/// A service's refusal as a person reads it: the code, the message and each field named.
pub fn describe(status: &tonic::Status) -> String {
    let mut s = format!("{:?}: {}", status.code(), status.message());
    let v = violations(status);
    if v.len() > 1 {
        for (field, why) in v {
            s.push_str(&format!("\n  {field}: {why}"));
        }
    }
    s
}

/// A refusal as an error of the command.
pub fn refused(call: &str, status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{call} was refused: {}", describe(&status))
}

/// A bar on standard error for `len` steps of `what` (hidden when standard error is not a
/// terminal, so scripts and logs stay clean).
pub fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({elapsed})")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// `units[3].parent_id` with prefix `units` → (3, `parent_id`).
pub fn indexed<'a>(field: &'a str, prefix: &str) -> Option<(usize, &'a str)> {
    let rest = field.strip_prefix(prefix)?.strip_prefix('[')?;
    let (i, rest) = rest.split_once(']')?;
    Some((i.parse().ok()?, rest.trim_start_matches('.')))
}

/// A file the service refused as a whole (InvalidArgument): each field it names shown where
/// the person finds it in the file (`place` turns `units[3].parent_id` into `row 5, parent_id`).
/// Exit status 1. Any other failure is an error of the command.
pub fn file_refused(
    file: &str,
    call: &str,
    status: tonic::Status,
    place: impl Fn(&str) -> String,
) -> Result<std::process::ExitCode> {
    if status.code() != tonic::Code::InvalidArgument {
        anyhow::bail!("{call}: {}", describe(&status));
    }
    eprintln!("{file}: refused; nothing was stored");
    let v = violations(&status);
    if v.is_empty() {
        eprintln!("  {}", place(status.message()));
    }
    for (field, why) in v {
        // Services number rows of their own ("row 3: …"); the file's place replaces them.
        let why = match why.split_once(": ") {
            Some((head, rest)) if head.starts_with("row ") => rest.to_string(),
            _ => why,
        };
        eprintln!("  {}: {why}", place(&field));
    }
    Ok(std::process::ExitCode::from(1))
}
