//! The checks each section of the settings makes of itself, run at start: the first invalid
//! setting fails the start, naming its key, the value given (secrets masked) and the reason.

use super::*;

type Checked = Result<(), SettingsError>;

fn bad(key: &'static str, value: &dyn std::fmt::Display, reason: &str) -> SettingsError {
    SettingsError::Invalid {
        key,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// `value` within `range`, or the error naming `key` with `reason`.
fn within<T: PartialOrd + std::fmt::Display>(
    key: &'static str,
    value: T,
    range: std::ops::RangeInclusive<T>,
    reason: &str,
) -> Checked {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(bad(key, &value, reason))
    }
}

impl Settings {
    pub fn validate(&self) -> Checked {
        self.database.check()?;
        self.web.check()?;
        self.grpc.check()?;
        self.evidence.check(&self.grpc)?;
        within(
            "surveys.write_batch_rows",
            self.surveys.write_batch_rows,
            1..=50_000,
            "must be between 1 and 50000",
        )?;
        within(
            "scoring.period",
            self.scoring.period,
            1900..=2200,
            "must be a year between 1900 and 2200",
        )?;
        self.services.check()?;
        self.bus.check()?;
        self.scheduler.check()?;
        self.notify.check()?;
        self.auth.check()
    }
}

impl DatabaseSettings {
    fn check(&self) -> Checked {
        let url = &self.url;
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(bad(
                "database.url",
                &mask_url_password(url),
                "must start with sqlite: or postgres://",
            ));
        }
        within(
            "database.max_connections",
            self.max_connections,
            1..=u32::MAX,
            "must be at least 1",
        )
    }
}

impl WebSettings {
    fn check(&self) -> Checked {
        within(
            "web.header_read_seconds",
            self.header_read_seconds,
            1..=600,
            "must be between 1 and 600",
        )?;
        within(
            "web.session_idle_seconds",
            self.session_idle_seconds,
            1..=86_400,
            "must be between 1 and 86400 (a day)",
        )
    }
}

impl GrpcSettings {
    fn check(&self) -> Checked {
        within(
            "grpc.stream_idle_seconds",
            self.stream_idle_seconds,
            1..=86_400,
            "must be between 1 and 86400",
        )?;
        within(
            "grpc.stream_total_seconds",
            self.stream_total_seconds,
            self.stream_idle_seconds..=604_800,
            "must be between grpc.stream_idle_seconds and 604800 (a week)",
        )?;
        within(
            "grpc.max_connections",
            self.max_connections,
            1..=1_000_000,
            "must be between 1 and 1000000",
        )?;
        within(
            "grpc.max_message_bytes",
            self.max_message_bytes,
            64 * 1024..=usize::MAX,
            "must be at least 65536",
        )?;
        self.check_tls()
    }

    /// Mutual TLS is all three files or none.
    fn check_tls(&self) -> Checked {
        let tls = [
            ("grpc.tls_cert_file", &self.tls_cert_file),
            ("grpc.tls_key_file", &self.tls_key_file),
            ("grpc.tls_ca_file", &self.tls_ca_file),
        ];
        let given = tls
            .iter()
            .filter(|(_, p)| !p.as_os_str().is_empty())
            .count();
        if given != 0 && given != 3 {
            let (key, path) = tls
                .iter()
                .find(|(_, p)| p.as_os_str().is_empty())
                .expect("one is missing");
            return Err(bad(
                key,
                &path.display(),
                "mutual TLS needs grpc.tls_cert_file, grpc.tls_key_file and grpc.tls_ca_file together",
            ));
        }
        Ok(())
    }
}

impl EvidenceSettings {
    fn check(&self, grpc: &GrpcSettings) -> Checked {
        within(
            "evidence.max_file_bytes",
            self.max_file_bytes,
            1..=u64::MAX,
            "must be at least 1",
        )?;
        within(
            "evidence.chunk_bytes",
            self.chunk_bytes,
            1024..=grpc.max_message_bytes / 2,
            "must be between 1024 and half of grpc.max_message_bytes",
        )
    }
}

impl ServiceUrls {
    fn check(&self) -> Checked {
        for (key, v) in [
            ("services.registry_url", &self.registry_url),
            ("services.evidence_url", &self.evidence_url),
            ("services.surveys_url", &self.surveys_url),
            ("services.scoring_url", &self.scoring_url),
            ("services.scheduler_url", &self.scheduler_url),
        ] {
            if v.parse::<http::Uri>()
                .map(|u| u.scheme().is_none() || u.host().is_none())
                .unwrap_or(true)
            {
                return Err(bad(
                    key,
                    v,
                    "must be an absolute URL such as http://127.0.0.1:50051",
                ));
            }
        }
        Ok(())
    }
}

impl BusSettings {
    fn check(&self) -> Checked {
        let url = &self.amqp_url;
        if !url.is_empty() && !url.starts_with("amqp://") {
            return Err(bad(
                "bus.amqp_url",
                &mask_url_password(url),
                "must be empty (in-process) or start with amqp://",
            ));
        }
        let p = &self.prefix;
        if p.is_empty()
            || p.len() > 64
            || !p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(bad(
                "bus.prefix",
                p,
                "must be 1 to 64 letters, digits, '-', '_' or '.'",
            ));
        }
        let at_least_one = [
            (
                "bus.prefetch",
                u64::from(self.prefetch),
                "must be at least 1",
            ),
            (
                "bus.delivery_limit",
                u64::from(self.delivery_limit),
                "must be at least 1",
            ),
            (
                "bus.outbox_backlog_limit",
                self.outbox_backlog_limit,
                "must be at least 1",
            ),
            (
                "bus.retention_hours",
                u64::from(self.retention_hours),
                "must be at least 1 (hours a record is kept)",
            ),
        ];
        for (key, value, reason) in at_least_one {
            within(key, value, 1..=u64::MAX, reason)?;
        }
        within(
            "bus.publish_window",
            u64::from(self.publish_window),
            1..=10_000,
            "must be 1 to 10000",
        )
    }
}

impl SchedulerSettings {
    fn check(&self) -> Checked {
        if let Err(reason) =
            cezone_domain::schedule::SchedulePolicy::utc_offset(self.utc_offset_hours)
        {
            return Err(bad(
                "scheduler.utc_offset_hours",
                &self.utc_offset_hours,
                &reason,
            ));
        }
        within(
            "scheduler.poll_seconds",
            self.poll_seconds,
            1..=86_400,
            "must be between 1 and 86400",
        )
    }
}

impl NotifySettings {
    fn check(&self) -> Checked {
        let smtp = self.smtp_url.trim();
        if !smtp.is_empty() && !smtp.starts_with("smtp://") && !smtp.starts_with("smtps://") {
            return Err(bad(
                "notify.smtp_url",
                &mask_url_password(smtp),
                "must start with smtp:// or smtps:// (or be empty: no e-mail)",
            ));
        }
        if !smtp.is_empty() && !self.from.contains('@') {
            return Err(bad(
                "notify.from",
                &self.from,
                "must be an address, or a name with <address>",
            ));
        }
        Ok(())
    }
}

impl AuthSettings {
    fn check(&self) -> Checked {
        if !self.secret.is_empty()
            && self.secret.expose().len() < crate::access::auth::MIN_SECRET_BYTES
        {
            return Err(bad(
                "auth.secret",
                &"***",
                "must be at least 32 bytes, or empty to use auth.secret_file",
            ));
        }
        within(
            "auth.keys_refresh_seconds",
            self.keys_refresh_seconds,
            1..=86_400,
            "must be between 1 and 86400 (a day)",
        )?;
        if self.signing_keys_file.as_os_str().is_empty() {
            return Err(bad(
                "auth.signing_keys_file",
                &"",
                "must name the registry's signing key file",
            ));
        }
        within(
            "auth.max_token_minutes",
            self.max_token_minutes,
            1..=525_600,
            "must be between 1 and 525600 (a year)",
        )?;
        within(
            "auth.token_minutes",
            self.token_minutes,
            1..=self.max_token_minutes,
            &format!(
                "must be between 1 and auth.max_token_minutes ({})",
                self.max_token_minutes
            ),
        )?;
        if self.issuer.trim().is_empty() {
            return Err(bad("auth.issuer", &"", "must not be empty"));
        }
        Ok(())
    }
}
