//! The services of one deployment in one process. This is the one place that knows their
//! start-up order: each starts after those it calls, and is told where they listen (its
//! `services.*_url`); they stop in reverse. `cezone serve`, the test kit and the benchmarks
//! all start services through [`Stack::start`].

use std::sync::Arc;

use cezone_bus::Bus;
use cezone_platform::ApiError;
use cezone_platform::settings::Settings;

/// One of the processes a deployment runs, in the order they start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    Registry,
    Evidence,
    Surveys,
    Scoring,
    Scheduler,
    Web,
}

impl Part {
    /// Every part, in start-up order: the registry first (every other service reads it),
    /// scoring after the services it rebuilds from, the scheduler and the page last.
    pub const ALL: [Part; 6] = [
        Part::Registry,
        Part::Evidence,
        Part::Surveys,
        Part::Scoring,
        Part::Scheduler,
        Part::Web,
    ];

    /// The four services a district's facts pass through (what tests and benchmarks start).
    pub const CORE: [Part; 4] = [Part::Registry, Part::Evidence, Part::Surveys, Part::Scoring];

    /// The part a name (`Part::name`) names.
    pub fn parse(name: &str) -> Option<Part> {
        Part::ALL.into_iter().find(|p| p.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Part::Registry => "registry",
            Part::Evidence => "evidence",
            Part::Surveys => "surveys",
            Part::Scoring => "scoring",
            Part::Scheduler => "scheduler",
            Part::Web => "web",
        }
    }
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("starting the {part}: {source}")]
    Service {
        part: Part,
        #[source]
        source: ApiError,
    },
    #[error("starting the web server: {0}")]
    Web(#[source] cezone_web::WebError),
}

/// The parts of one deployment running in this process; a part not started is `None`.
#[derive(Debug)]
pub struct Stack {
    /// The settings given, with the `services.*_url` of every started part.
    pub settings: Settings,
    pub registry: Option<cezone_registry::Application>,
    pub evidence: Option<cezone_evidence::Application>,
    pub surveys: Option<cezone_surveys::Application>,
    pub scoring: Option<cezone_scoring::Application>,
    pub scheduler: Option<cezone_scheduler::Application>,
    pub web: Option<cezone_web::Application>,
}

impl Stack {
    /// Starts `parts` (in start-up order, whatever order they are given in) on `settings` and
    /// one `bus`; ports 0 pick free ones. When one cannot start, those started are stopped.
    pub async fn start(
        settings: &Settings,
        bus: Arc<dyn Bus>,
        parts: &[Part],
    ) -> Result<Stack, StackError> {
        let mut stack = Stack {
            settings: settings.clone(),
            registry: None,
            evidence: None,
            surveys: None,
            scoring: None,
            scheduler: None,
            web: None,
        };
        for part in Part::ALL.into_iter().filter(|p| parts.contains(p)) {
            if let Err(e) = stack.start_part(part, &bus).await {
                stack.stop().await;
                return Err(e);
            }
        }
        Ok(stack)
    }

    async fn start_part(&mut self, part: Part, bus: &Arc<dyn Bus>) -> Result<(), StackError> {
        let failed = |source| StackError::Service { part, source };
        let s = &mut self.settings;
        // Each service is built on the settings so far and its address recorded for the next.
        macro_rules! service {
            ($field:ident, $url:ident, $built:expr) => {{
                let app = $built.await.map_err(failed)?;
                s.services.$url = app.url();
                self.$field = Some(app);
            }};
        }
        match part {
            Part::Registry => service!(
                registry,
                registry_url,
                cezone_registry::Application::build(s, bus.clone())
            ),
            Part::Evidence => service!(
                evidence,
                evidence_url,
                cezone_evidence::Application::build(s, bus.clone())
            ),
            Part::Surveys => service!(
                surveys,
                surveys_url,
                cezone_surveys::Application::build(s, bus.clone())
            ),
            Part::Scoring => service!(
                scoring,
                scoring_url,
                cezone_scoring::Application::build(s, bus.clone())
            ),
            Part::Scheduler => service!(
                scheduler,
                scheduler_url,
                cezone_scheduler::Application::build(s, Arc::new(cezone_scheduler::SystemClock))
            ),
            Part::Web => {
                let app = cezone_web::Application::build(s)
                    .await
                    .map_err(StackError::Web)?;
                self.web = Some(app);
            }
        }
        Ok(())
    }

    /// Where each started part listens, in start-up order.
    pub fn listening(&self) -> Vec<(Part, String)> {
        let s = &self.settings.services;
        [
            (Part::Registry, self.registry.is_some(), &s.registry_url),
            (Part::Evidence, self.evidence.is_some(), &s.evidence_url),
            (Part::Surveys, self.surveys.is_some(), &s.surveys_url),
            (Part::Scoring, self.scoring.is_some(), &s.scoring_url),
            (Part::Scheduler, self.scheduler.is_some(), &s.scheduler_url),
        ]
        .into_iter()
        .filter(|(_, on, _)| *on)
        .map(|(part, _, url)| (part, url.clone()))
        .chain(self.web.as_ref().map(|w| (Part::Web, w.url())))
        .collect()
    }

    /// Waits until every event the started services committed so far is published.
    pub async fn flush_events(&self) {
        let services = [
            self.registry.as_deref(),
            self.evidence.as_deref(),
            self.surveys.as_deref(),
            self.scoring.as_deref(),
        ];
        for service in services.into_iter().flatten() {
            service.flush_events().await;
        }
    }

    /// Stops every started part, in reverse order of start.
    pub async fn stop(self) {
        macro_rules! stop {
            ($($field:ident),*) => {$(
                if let Some(app) = self.$field {
                    app.stop().await;
                }
            )*};
        }
        stop!(web, scheduler, scoring, surveys, evidence, registry);
    }
}
