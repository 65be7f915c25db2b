//! Who may change what. Roles come from the caller's token; the responsibility matrix decides
//! which criteria and statistics a department or a town may file for, and the org tree decides
//! which org units a town may touch. Reading is open to every authenticated caller: inspectors
//! and the public scoreboard see the same numbers the units see.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::code::ItemCode;
use crate::org::{OrgTree, OrgUnitId};
use crate::rules::MetricId;
use crate::units::UnitId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// District IT: org units, framework drafts, surveys, schedules. Files nothing itself.
    DistrictAdmin,
    /// The evaluation office (评估办公室): publishes frameworks, reviews evidence, files on
    /// behalf of any unit.
    EvaluationOffice,
    /// A department of the matrix (区财政局 …), scoped to the criteria it is responsible for.
    ResponsibleUnit,
    /// A town or street, scoped to its own subtree of org units and to the criteria the matrix
    /// gives towns.
    Town,
    /// Read-only: scores, snapshots, evidence.
    Inspector,
    /// A cezone service calling another one: reads, recomputation and snapshots.
    Service,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::DistrictAdmin,
        Role::EvaluationOffice,
        Role::ResponsibleUnit,
        Role::Town,
        Role::Inspector,
        Role::Service,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::DistrictAdmin => "district_admin",
            Role::EvaluationOffice => "evaluation_office",
            Role::ResponsibleUnit => "responsible_unit",
            Role::Town => "town",
            Role::Inspector => "inspector",
            Role::Service => "service",
        }
    }

    pub fn parse(text: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == text)
            .ok_or_else(|| {
                format!(
                    "'{text}' is not a role (one of {})",
                    Role::ALL.map(Role::as_str).join(", ")
                )
            })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// Who: a person's account or a service's name; recorded in the audit log.
    pub subject: String,
    pub role: Role,
    /// The responsible unit a department or town acts as (`finance`, `towns`).
    pub unit: Option<UnitId>,
    /// The org unit a town acts for; it may touch that unit and everything below it.
    pub org_unit: Option<OrgUnitId>,
}

impl Principal {
    /// Checks that the role has the scope it needs and no scope it cannot use.
    pub fn new(
        subject: &str,
        role: Role,
        unit: Option<UnitId>,
        org_unit: Option<OrgUnitId>,
    ) -> Result<Principal, String> {
        let subject = subject.trim();
        if subject.is_empty()
            || subject.chars().count() > 128
            || subject.chars().any(char::is_control)
        {
            return Err(format!(
                "subject {subject:?} must be 1 to 128 characters without control characters"
            ));
        }
        match role {
            Role::ResponsibleUnit if unit.is_none() => {
                return Err("a responsible_unit principal needs a unit".into());
            }
            Role::Town if unit.is_none() || org_unit.is_none() => {
                return Err("a town principal needs a unit and an org unit".into());
            }
            Role::ResponsibleUnit | Role::Town => {}
            _ if unit.is_some() || org_unit.is_some() => {
                return Err(format!(
                    "a {role} principal is not scoped to a unit or an org unit"
                ));
            }
            _ => {}
        }
        if role == Role::ResponsibleUnit && org_unit.is_some() {
            return Err("a responsible_unit principal acts district-wide; give no org unit".into());
        }
        Ok(Principal {
            subject: subject.to_string(),
            role,
            unit,
            org_unit,
        })
    }

    /// The name a change is recorded and shown under (submitted by, reviewed by, filed by,
    /// frozen by, requested by): the caller's own subject, whatever a request claims. Only a
    /// cezone service, acting for the person who called it, may name that person (`claimed`);
    /// its own name stands when it names nobody.
    pub fn acting_name(&self, claimed: &str) -> String {
        let claimed = claimed.trim();
        if self.role == Role::Service && !claimed.is_empty() {
            claimed.to_string()
        } else {
            self.subject.clone()
        }
    }

    /// How the audit log and denial messages name the caller: `alice (town nanhai.guicheng)`.
    pub fn describe(&self) -> String {
        let mut s = format!("{} ({}", self.subject, self.role);
        if let Some(u) = &self.unit {
            s.push_str(&format!(" {u}"));
        }
        if let Some(o) = &self.org_unit {
            s.push_str(&format!(" {o}"));
        }
        s.push(')');
        s
    }
}

/// A change a caller asks for, with the facts of the request the decision depends on.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    ImportFramework,
    PublishFramework,
    ManageOrgUnits,
    DefineSurvey,
    /// Survey responses of residents of `org_unit`.
    IngestResponses {
        org_unit: &'a OrgUnitId,
    },
    /// A statistic of `org_unit`; `responsible` are the units responsible for the criteria that
    /// read the metric.
    RecordStatistic {
        org_unit: &'a OrgUnitId,
        metric: &'a MetricId,
        responsible: &'a [UnitId],
    },
    /// Evidence for `criterion` at `org_unit`, filed under `unit`; `responsible` are the
    /// criterion's units.
    UploadEvidence {
        org_unit: &'a OrgUnitId,
        criterion: &'a ItemCode,
        unit: &'a UnitId,
        responsible: &'a [UnitId],
    },
    ReviewEvidence,
    /// Accept or return a pending statistic of `org_unit` filed by `filed_by`; `responsible`
    /// are the units responsible for the criteria that read the metric.
    ReviewStatistic {
        org_unit: &'a OrgUnitId,
        metric: &'a MetricId,
        responsible: &'a [UnitId],
        filed_by: &'a str,
    },
    /// Accept or return a pending survey batch of `survey` filed by `filed_by`; `responsible`
    /// are the units responsible for the criteria that read its questions.
    ReviewSurveyBatch {
        survey: &'a str,
        responsible: &'a [UnitId],
        filed_by: &'a str,
    },
    Recompute,
    FreezeSnapshot,
    RunSchedule,
    /// End the submission of evidence for a framework edition.
    CloseSubmissions,
    /// Lock a period's statistics and survey batches, or unlock one org unit for a correction.
    LockPeriod,
    /// Read a service's audit log.
    ReadAudit,
    /// Create, list, disable accounts of people and reset their passwords.
    ManageAccounts,
    /// Read the e-mail addresses of a unit's accounts, to send it reminders.
    ReadRecipients,
}

/// The actions that are about something (an org unit, a metric, a survey), named by kind: what
/// a service can ask about before it has read what a request is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scoped {
    IngestResponses,
    RecordStatistic,
    UploadEvidence,
    ReviewStatistic,
    ReviewSurveyBatch,
}

impl Scoped {
    /// The roles that may do it for some subject; any other role never may.
    pub fn roles(self) -> &'static [Role] {
        use Role::*;
        match self {
            Scoped::IngestResponses => &[EvaluationOffice, Town],
            Scoped::RecordStatistic | Scoped::UploadEvidence | Scoped::ReviewStatistic => {
                &[EvaluationOffice, ResponsibleUnit, Town]
            }
            Scoped::ReviewSurveyBatch => &[EvaluationOffice, ResponsibleUnit],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Scoped::IngestResponses => "file survey responses",
            Scoped::RecordStatistic => "file a statistic",
            Scoped::UploadEvidence => "upload evidence",
            Scoped::ReviewStatistic => "review a statistic",
            Scoped::ReviewSurveyBatch => "review a survey batch",
        }
    }
}

/// May `p`'s role ever do `kind`, whatever it is about? A role that never may is refused in
/// the words `authorize` would use; one that may for some subjects passes, and each subject is
/// then asked about with `authorize`.
pub fn may_ever(p: &Principal, kind: Scoped) -> Result<(), Denial> {
    if kind.roles().contains(&p.role) {
        Ok(())
    } else {
        Err(Denial(format!(
            "{} may not {}: {}",
            p.describe(),
            kind.name(),
            only_roles(kind.roles())
        )))
    }
}

/// "only a, b or c may".
fn only_roles(roles: &[Role]) -> String {
    let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => {
            format!("only {} or {last} may", rest.join(", "))
        }
        _ => format!("only {} may", names.join("")),
    }
}

impl Action<'_> {
    /// What the action is about, when it is about something.
    pub fn scoped(&self) -> Option<Scoped> {
        match self {
            Action::IngestResponses { .. } => Some(Scoped::IngestResponses),
            Action::RecordStatistic { .. } => Some(Scoped::RecordStatistic),
            Action::UploadEvidence { .. } => Some(Scoped::UploadEvidence),
            Action::ReviewStatistic { .. } => Some(Scoped::ReviewStatistic),
            Action::ReviewSurveyBatch { .. } => Some(Scoped::ReviewSurveyBatch),
            _ => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Action::ImportFramework => "import a framework",
            Action::PublishFramework => "publish a framework",
            Action::ManageOrgUnits => "change org units",
            Action::DefineSurvey => "define a survey",
            Action::ReviewEvidence => "review evidence",
            Action::Recompute => "recompute scores",
            Action::FreezeSnapshot => "freeze a snapshot",
            Action::RunSchedule => "run a scheduled checkpoint",
            Action::CloseSubmissions => "close submissions",
            Action::LockPeriod => "lock or unlock a period",
            Action::ReadAudit => "read the audit log",
            Action::ManageAccounts => "manage accounts",
            Action::ReadRecipients => "read the e-mail addresses of accounts",
            scoped => scoped.scoped().map_or("act", Scoped::name),
        }
    }
}

/// Why a caller may not do what it asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial(pub String);

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The decision. `tree` is needed only to place a town's target inside its subtree; without it
/// a town is denied anything scoped.
pub fn authorize(p: &Principal, action: &Action, tree: Option<&OrgTree>) -> Result<(), Denial> {
    use Role::*;
    let deny = |why: String| {
        Err(Denial(format!(
            "{} may not {}: {why}",
            p.describe(),
            action.name()
        )))
    };
    let only = |allowed: &[Role]| {
        if allowed.contains(&p.role) {
            Ok(())
        } else {
            deny(only_roles(allowed))
        }
    };
    // Nobody reviews their own filing, whatever their role (the office corrects its own
    // statistics); said first, as it is the reason that matters to the filer.
    match *action {
        Action::ReviewSurveyBatch { filed_by, .. } if p.subject == filed_by => {
            return deny(format!(
                "{filed_by} filed it, and nobody reviews their own filing"
            ));
        }
        Action::ReviewStatistic { filed_by, .. }
            if p.role != EvaluationOffice && p.subject == filed_by =>
        {
            return deny(format!(
                "{filed_by} filed it, and nobody reviews their own filing"
            ));
        }
        _ => {}
    }
    // A role that may never do a scoped action is refused before its subject is looked at.
    if let Some(kind) = action.scoped() {
        may_ever(p, kind)?;
    }
    match *action {
        Action::ImportFramework | Action::ManageOrgUnits | Action::DefineSurvey => {
            only(&[DistrictAdmin, EvaluationOffice])
        }
        Action::PublishFramework
        | Action::ReviewEvidence
        | Action::CloseSubmissions
        | Action::LockPeriod => only(&[EvaluationOffice]),
        Action::Recompute | Action::FreezeSnapshot => {
            only(&[DistrictAdmin, EvaluationOffice, Service])
        }
        Action::RunSchedule => only(&[DistrictAdmin, EvaluationOffice]),
        Action::ReadAudit => only(&[EvaluationOffice, Inspector, DistrictAdmin]),
        Action::ManageAccounts => only(&[EvaluationOffice, DistrictAdmin]),
        // The scheduler sends the reminders; the account managers may see whom it writes to.
        Action::ReadRecipients => only(&[Service, EvaluationOffice, DistrictAdmin]),
        Action::IngestResponses { org_unit } => match p.role {
            EvaluationOffice => Ok(()),
            Town => within_town(p, org_unit, tree).or_else(deny),
            _ => deny(only_roles(action.scoped().map_or(&[], Scoped::roles))),
        },
        Action::RecordStatistic {
            org_unit,
            metric,
            responsible,
        } => by_matrix(p, org_unit, responsible, tree, || {
            format!(
                "metric {metric} feeds only criteria of {}",
                list(responsible)
            )
        })
        .or_else(deny),
        // The towns gather the answers; the department responsible for the criteria the
        // survey feeds, or the evaluation office, checks a batch.
        Action::ReviewSurveyBatch {
            survey,
            responsible,
            ..
        } => match p.role {
            EvaluationOffice => Ok(()),
            ResponsibleUnit if is_responsible(p, responsible) => Ok(()),
            ResponsibleUnit => deny(format!(
                "survey {survey} feeds only criteria of {}",
                list(responsible)
            )),
            _ => deny(only_roles(action.scoped().map_or(&[], Scoped::roles))),
        },
        Action::ReviewStatistic {
            org_unit,
            metric,
            responsible,
            ..
        } => match p.role {
            EvaluationOffice => Ok(()),
            // A town checks its communities' figures.
            Town => within_town(p, org_unit, tree)
                .and_then(|()| match &p.org_unit {
                    Some(own) if own == org_unit => Err(format!(
                        "{org_unit} is the town itself; its return is checked by the \
                         department responsible for the metric or by the evaluation office"
                    )),
                    _ => Ok(()),
                })
                .or_else(deny),
            // The responsible department checks the towns' (and their communities') figures.
            ResponsibleUnit if !is_responsible(p, responsible) => deny(format!(
                "metric {metric} feeds only criteria of {}",
                list(responsible)
            )),
            ResponsibleUnit => match tree.and_then(|t| t.find(org_unit).map(|i| t.unit(i).level)) {
                Some(crate::org::OrgLevel::District) => deny(format!(
                    "{org_unit} is the district; its figures are checked by the evaluation office"
                )),
                Some(_) => Ok(()),
                None => deny(format!("org unit {org_unit} is not in the org tree")),
            },
            _ => deny(only_roles(action.scoped().map_or(&[], Scoped::roles))),
        },
        Action::UploadEvidence { unit, .. }
            if matches!(p.role, ResponsibleUnit | Town)
                && p.unit.as_ref().is_none_or(|own| own != unit) =>
        {
            deny(format!(
                "it files as {}, not as {unit}",
                p.unit.as_ref().map_or("no unit", |u| u.as_str())
            ))
        }
        Action::UploadEvidence {
            org_unit,
            criterion,
            responsible,
            ..
        } => by_matrix(p, org_unit, responsible, tree, || {
            format!(
                "criterion {criterion} is the responsibility of {}",
                list(responsible)
            )
        })
        .or_else(deny),
    }
}

/// Filing by the matrix: the evaluation office for anyone; a department or town only when it
/// is one of `responsible`, a town also only inside its own subtree.
fn by_matrix(
    p: &Principal,
    org_unit: &OrgUnitId,
    responsible: &[UnitId],
    tree: Option<&OrgTree>,
    not_responsible: impl FnOnce() -> String,
) -> Result<(), String> {
    match p.role {
        Role::EvaluationOffice => Ok(()),
        Role::ResponsibleUnit | Role::Town if !is_responsible(p, responsible) => {
            Err(not_responsible())
        }
        Role::ResponsibleUnit => Ok(()),
        Role::Town => within_town(p, org_unit, tree),
        _ => Err(only_roles(Scoped::RecordStatistic.roles())),
    }
}

fn is_responsible(p: &Principal, responsible: &[UnitId]) -> bool {
    p.unit.as_ref().is_some_and(|u| responsible.contains(u))
}

fn list(units: &[UnitId]) -> String {
    if units.is_empty() {
        return "no unit".into();
    }
    units
        .iter()
        .map(UnitId::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

fn within_town(p: &Principal, target: &OrgUnitId, tree: Option<&OrgTree>) -> Result<(), String> {
    let Some(own) = &p.org_unit else {
        return Err("the token names no org unit".into());
    };
    // A town token stands for a town: one whose org unit is the district (or a community)
    // would reach further (or elsewhere) than the role means.
    if let Some(t) = tree
        && let Some(i) = t.find(own)
        && t.unit(i).level != crate::org::OrgLevel::Town
    {
        return Err(format!(
            "a town token's org unit must be a town, and {own} is a {}",
            t.unit(i).level.as_str()
        ));
    }
    let inside = tree.and_then(|t| Some(t.contains(t.find(own)?, t.find(target)?)));
    match inside {
        Some(true) => Ok(()),
        _ => Err(format!("org unit {target} is outside {own}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::org::{CommunityType, OrgLevel, OrgUnit, RegionClass};
    use proptest::prelude::*;

    fn unit(s: &str) -> UnitId {
        UnitId::parse(s).unwrap()
    }

    fn org(s: &str) -> OrgUnitId {
        OrgUnitId::parse(s).unwrap()
    }

    fn metric(s: &str) -> MetricId {
        MetricId::parse(s).unwrap()
    }

    fn code(s: &str) -> ItemCode {
        ItemCode::parse(s).unwrap()
    }

    fn principal(role: Role) -> Principal {
        match role {
            Role::ResponsibleUnit => Principal::new("dept", role, Some(unit("finance")), None),
            Role::Town => Principal::new("town", role, Some(unit("towns")), Some(org("t1"))),
            _ => Principal::new("someone", role, None, None),
        }
        .unwrap()
    }

    /// d → t1 → c1, d → t2 → c2.
    fn tree() -> OrgTree {
        let u = |id: &str, level, parent: Option<&str>| OrgUnit {
            id: org(id),
            name: id.to_string(),
            level,
            parent: parent.map(org),
            community_type: (level == OrgLevel::Community).then_some(CommunityType::Urban),
            region: (level == OrgLevel::District).then_some(RegionClass::PearlRiverDelta),
            population: Default::default(),
        };
        OrgTree::build(vec![
            u("d", OrgLevel::District, None),
            u("t1", OrgLevel::Town, Some("d")),
            u("t2", OrgLevel::Town, Some("d")),
            u("c1", OrgLevel::Community, Some("t1")),
            u("c2", OrgLevel::Community, Some("t2")),
        ])
        .unwrap()
    }

    #[test]
    fn statistics_are_reviewed_one_level_up_and_never_by_their_filer() {
        let t = tree();
        let fin = [unit("finance")];
        let review = |p: &Principal, org_unit: &str, filed_by: &str| {
            let o = org(org_unit);
            authorize(
                p,
                &Action::ReviewStatistic {
                    org_unit: &o,
                    metric: &metric("funding"),
                    responsible: &fin,
                    filed_by,
                },
                Some(&t),
            )
        };
        let office = principal(Role::EvaluationOffice);
        let dept = principal(Role::ResponsibleUnit);
        let town = principal(Role::Town);
        let other_dept = Principal::new(
            "dept2",
            Role::ResponsibleUnit,
            Some(unit("education")),
            None,
        )
        .unwrap();
        // The office reviews anything.
        assert!(review(&office, "d", "dept").is_ok());
        // A town reviews its own communities, not itself, not another town's.
        assert!(review(&town, "c1", "dept").is_ok());
        let e = review(&town, "t1", "dept").unwrap_err().0;
        assert!(e.contains("the town itself"), "{e}");
        let e = review(&town, "c2", "dept").unwrap_err().0;
        assert!(e.contains("outside t1"), "{e}");
        // The responsible department reviews towns and communities, not the district.
        assert!(review(&dept, "t1", "town").is_ok());
        assert!(review(&dept, "c2", "town").is_ok());
        let e = review(&dept, "d", "town").unwrap_err().0;
        assert!(e.contains("evaluation office"), "{e}");
        let e = review(&other_dept, "t1", "town").unwrap_err().0;
        assert!(e.contains("feeds only criteria of finance"), "{e}");
        // Nobody but the office reviews their own filing.
        let e = review(&dept, "t1", "dept").unwrap_err().0;
        assert!(e.contains("own filing"), "{e}");
        let e = review(&town, "c1", "town").unwrap_err().0;
        assert!(e.contains("own filing"), "{e}");
        for role in [Role::Inspector, Role::DistrictAdmin, Role::Service] {
            assert!(review(&principal(role), "c1", "dept").is_err(), "{role}");
        }
    }

    #[test]
    fn roles_round_trip_and_unknown_roles_are_named() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Ok(r));
        }
        let e = Role::parse("root").unwrap_err();
        assert!(e.contains("'root'") && e.contains("inspector"), "{e}");
    }

    #[test]
    fn a_principal_must_carry_the_scope_its_role_needs() {
        assert!(Principal::new("x", Role::ResponsibleUnit, None, None).is_err());
        assert!(Principal::new("x", Role::Town, Some(unit("towns")), None).is_err());
        assert!(Principal::new("x", Role::Inspector, Some(unit("finance")), None).is_err());
        assert!(Principal::new("", Role::Inspector, None, None).is_err());
        assert!(Principal::new("a\u{7}b", Role::Inspector, None, None).is_err());
        // Characters, not bytes: a Chinese name of 128 characters is a subject.
        assert!(Principal::new(&"桂".repeat(128), Role::Inspector, None, None).is_ok());
        assert!(Principal::new(&"桂".repeat(129), Role::Inspector, None, None).is_err());
    }

    #[test]
    fn only_the_evaluation_office_reviews_and_publishes() {
        for r in Role::ALL {
            let p = principal(r);
            for a in [Action::ReviewEvidence, Action::PublishFramework] {
                assert_eq!(
                    authorize(&p, &a, None).is_ok(),
                    r == Role::EvaluationOffice,
                    "{r} {a:?}"
                );
            }
        }
    }

    #[test]
    fn the_audit_log_is_read_by_the_office_inspectors_and_district_it() {
        for r in Role::ALL {
            let allowed = authorize(&principal(r), &Action::ReadAudit, None);
            assert_eq!(
                allowed.is_ok(),
                matches!(
                    r,
                    Role::EvaluationOffice | Role::Inspector | Role::DistrictAdmin
                ),
                "{r}: {allowed:?}"
            );
        }
    }

    #[test]
    fn accounts_are_managed_by_the_office_and_district_it_only() {
        for r in Role::ALL {
            let allowed = authorize(&principal(r), &Action::ManageAccounts, None);
            assert_eq!(
                allowed.is_ok(),
                matches!(r, Role::EvaluationOffice | Role::DistrictAdmin),
                "{r}: {allowed:?}"
            );
            if let Err(e) = allowed {
                assert!(e.0.contains("manage accounts"), "{e}");
            }
        }
    }

    #[test]
    fn names_come_from_the_identity_not_the_request() {
        let town = principal(Role::Town);
        assert_eq!(town.acting_name("评估办公室"), "town");
        assert_eq!(town.acting_name(""), "town");
        let office = principal(Role::EvaluationOffice);
        assert_eq!(office.acting_name("someone else"), "someone");
        let scheduler = Principal::new("scheduler", Role::Service, None, None).unwrap();
        assert_eq!(scheduler.acting_name(" alice "), "alice");
        assert_eq!(scheduler.acting_name(""), "scheduler");
    }

    #[test]
    fn a_town_token_must_name_a_town() {
        let t = tree();
        let units = [unit("towns")];
        for (own, level) in [("d", "district"), ("c1", "community")] {
            let p =
                Principal::new("town", Role::Town, Some(unit("towns")), Some(org(own))).unwrap();
            for target in ["t1", "c1", "c2", "d"] {
                let target = org(target);
                for a in [
                    Action::IngestResponses { org_unit: &target },
                    Action::RecordStatistic {
                        org_unit: &target,
                        metric: &metric("m"),
                        responsible: &units,
                    },
                ] {
                    let e = authorize(&p, &a, Some(&t)).unwrap_err();
                    assert!(
                        e.0.contains("must be a town") && e.0.contains(level),
                        "{own} → {target}: {e}"
                    );
                }
            }
        }
        // A town's own token still reaches its subtree.
        let p = principal(Role::Town);
        let c1 = org("c1");
        assert!(authorize(&p, &Action::IngestResponses { org_unit: &c1 }, Some(&t)).is_ok());
    }

    #[test]
    fn inspectors_change_nothing() {
        let p = principal(Role::Inspector);
        let o = org("t1");
        let units = [unit("finance")];
        for a in [
            Action::ImportFramework,
            Action::PublishFramework,
            Action::ManageOrgUnits,
            Action::DefineSurvey,
            Action::IngestResponses { org_unit: &o },
            Action::RecordStatistic {
                org_unit: &o,
                metric: &metric("m"),
                responsible: &units,
            },
            Action::UploadEvidence {
                org_unit: &o,
                criterion: &code("1.1.1"),
                unit: &unit("finance"),
                responsible: &units,
            },
            Action::ReviewEvidence,
            Action::Recompute,
            Action::FreezeSnapshot,
            Action::RunSchedule,
            Action::CloseSubmissions,
        ] {
            let e = authorize(&p, &a, None).unwrap_err();
            assert!(e.0.contains("inspector"), "{e}");
        }
    }

    #[test]
    fn a_department_files_only_for_its_own_criteria() {
        let p = principal(Role::ResponsibleUnit);
        let o = org("anywhere");
        let mine = [unit("education"), unit("finance")];
        let theirs = [unit("education"), unit("towns")];
        let (criterion, finance) = (code("2.3.1"), unit("finance"));
        let up = |responsible| Action::UploadEvidence {
            org_unit: &o,
            criterion: &criterion,
            unit: &finance,
            responsible,
        };
        assert!(authorize(&p, &up(&mine), None).is_ok());
        let e = authorize(&p, &up(&theirs), None).unwrap_err();
        assert!(
            e.0.contains("2.3.1") && e.0.contains("education, towns"),
            "{e}"
        );
        let stat = Action::RecordStatistic {
            org_unit: &o,
            metric: &metric("funding"),
            responsible: &theirs,
        };
        assert!(
            authorize(&p, &stat, None)
                .unwrap_err()
                .0
                .contains("funding")
        );
    }

    #[test]
    fn a_town_touches_only_its_own_subtree() {
        let t = tree();
        let towns: Vec<_> = t
            .units()
            .iter()
            .filter(|u| u.level == OrgLevel::Town)
            .collect();
        let (mine, other) = (&towns[0], &towns[1]);
        let p = Principal::new(
            "town",
            Role::Town,
            Some(unit("towns")),
            Some(mine.id.clone()),
        )
        .unwrap();
        let responsible = [unit("towns")];
        let my_community = t
            .units()
            .iter()
            .find(|u| u.parent.as_ref() == Some(&mine.id))
            .unwrap();
        let their_community = t
            .units()
            .iter()
            .find(|u| u.parent.as_ref() == Some(&other.id))
            .unwrap();
        let (criterion, towns) = (code("3.1.1"), unit("towns"));
        let up = |o| Action::UploadEvidence {
            org_unit: o,
            criterion: &criterion,
            unit: &towns,
            responsible: &responsible,
        };
        assert!(authorize(&p, &up(&mine.id), Some(&t)).is_ok());
        assert!(authorize(&p, &up(&my_community.id), Some(&t)).is_ok());
        let e = authorize(&p, &up(&their_community.id), Some(&t)).unwrap_err();
        assert!(e.0.contains("outside"), "{e}");
        assert!(authorize(&p, &up(&t.unit(t.root()).id), Some(&t)).is_err());
        // Without the tree a town's reach cannot be shown, so it is refused.
        assert!(authorize(&p, &up(&mine.id), None).is_err());
        let ingest = Action::IngestResponses {
            org_unit: &their_community.id,
        };
        assert!(authorize(&p, &ingest, Some(&t)).is_err());
    }

    proptest! {
        /// Whatever the request, an inspector or a service never files or reviews anything,
        /// and the evaluation office is never refused.
        #[test]
        fn roles_bound_every_scoped_action(
            unit_ix in 0usize..4, responsible_mask in 0u8..16, org_ix in 0usize..3,
        ) {
            let units = ["education", "finance", "towns", "labour"].map(unit);
            let responsible: Vec<UnitId> = (0..4)
                .filter(|i| responsible_mask & (1 << i) != 0)
                .map(|i| units[i].clone())
                .collect();
            let t = tree();
            let o = t.units()[org_ix].id.clone();
            let dept = Principal::new("d", Role::ResponsibleUnit, Some(units[unit_ix].clone()), None).unwrap();
            for a in [
                Action::UploadEvidence { org_unit: &o, criterion: &code("1.1.1"), unit: &units[unit_ix], responsible: &responsible },
                Action::RecordStatistic { org_unit: &o, metric: &metric("m"), responsible: &responsible },
            ] {
                prop_assert!(authorize(&principal(Role::Inspector), &a, Some(&t)).is_err());
                prop_assert!(authorize(&principal(Role::Service), &a, Some(&t)).is_err());
                prop_assert!(authorize(&principal(Role::EvaluationOffice), &a, Some(&t)).is_ok());
                prop_assert_eq!(
                    authorize(&dept, &a, Some(&t)).is_ok(),
                    responsible.contains(&units[unit_ix])
                );
            }
        }
    }
}
