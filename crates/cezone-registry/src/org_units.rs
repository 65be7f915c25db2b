//! Org units: create, update population per year, move, read. The tree's rules (one root,
//! levels strictly deeper downwards, communities typed, no cycles) are checked on every change.

use cezone_domain::access::Principal;
use std::collections::{BTreeMap, HashMap};

use cezone_domain::org::{CommunityType, OrgLevel, OrgTree, OrgUnit, OrgUnitId, RegionClass};
use cezone_platform::ApiError;
use cezone_platform::time::now_rfc3339;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    Set, TransactionTrait,
};

use crate::entities::org_unit as ou;

pub fn to_domain(m: &ou::Model) -> Result<OrgUnit, ApiError> {
    let bad =
        |what: &str| ApiError::internal_msg(format!("stored org unit {} has a bad {what}", m.id));
    let populations: BTreeMap<String, u64> =
        serde_json::from_str(&m.populations_json).map_err(|_| bad("population"))?;
    Ok(OrgUnit {
        id: OrgUnitId::parse(&m.id).map_err(|_| bad("id"))?,
        name: m.name.clone(),
        level: OrgLevel::parse(&m.level).map_err(|_| bad("level"))?,
        parent: m
            .parent_id
            .as_deref()
            .map(OrgUnitId::parse)
            .transpose()
            .map_err(|_| bad("parent"))?,
        community_type: m
            .community_type
            .as_deref()
            .map(CommunityType::parse)
            .transpose()
            .map_err(|_| bad("type"))?,
        region: m
            .region
            .as_deref()
            .map(RegionClass::parse)
            .transpose()
            .map_err(|_| bad("region"))?,
        population: populations
            .into_iter()
            .map(|(y, p)| y.parse::<i32>().map(|y| (y, p)))
            .collect::<Result<_, _>>()
            .map_err(|_| bad("population year"))?,
    })
}

fn populations_json(u: &OrgUnit) -> String {
    let m: BTreeMap<String, u64> = u
        .population
        .iter()
        .map(|(y, p)| (y.to_string(), *p))
        .collect();
    serde_json::to_string(&m).unwrap_or_else(|_| "{}".into())
}

fn active(u: &OrgUnit, revision: i64) -> ou::ActiveModel {
    ou::ActiveModel {
        id: Set(u.id.to_string()),
        name: Set(u.name.clone()),
        level: Set(u.level.as_str().to_string()),
        parent_id: Set(u.parent.as_ref().map(ToString::to_string)),
        community_type: Set(u.community_type.map(|t| t.as_str().to_string())),
        region: Set(u.region.map(|r| r.as_str().to_string())),
        populations_json: Set(populations_json(u)),
        revision: Set(revision),
        updated_at: Set(now_rfc3339()),
    }
}

/// The event and the audit entry of an org unit change, in the change's transaction.
async fn announce(
    txn: &impl ConnectionTrait,
    who: &Principal,
    event_type: &str,
    unit: &OrgUnit,
    revision: i64,
) -> Result<(), ApiError> {
    cezone_platform::access::audit::append(
        txn,
        "registry",
        cezone_platform::access::audit::Entry {
            actor: who,
            action: event_type,
            target: unit.id.as_str(),
            details: serde_json::json!({ "revision": revision, "after": unit }),
        },
    )
    .await?;
    let payload = cezone_proto::events::v1::OrgUnitChanged {
        unit: Some(cezone_platform::glue::convert::org_unit_to_proto(
            unit,
            revision as u64,
        )),
    };
    cezone_bus::outbox::enqueue(
        txn,
        crate::OUTBOX,
        &cezone_bus::envelope(event_type, "registry", &payload, None),
    )
    .await?;
    Ok(())
}

async fn get_model(db: &impl ConnectionTrait, id: &str) -> Result<Option<ou::Model>, ApiError> {
    Ok(ou::Entity::find_by_id(id.to_string()).one(db).await?)
}

pub async fn create(
    db: &DatabaseConnection,
    who: &Principal,
    unit: OrgUnit,
) -> Result<(OrgUnit, u64), ApiError> {
    let txn = db.begin().await?;
    if get_model(&txn, unit.id.as_str()).await?.is_some() {
        return Err(ApiError::already_exists(format!(
            "org unit '{}' already exists",
            unit.id
        )));
    }
    match &unit.parent {
        Some(p) => {
            let Some(parent) = get_model(&txn, p.as_str()).await? else {
                return Err(ApiError::invalid(
                    "parent_id",
                    format!("'{p}' is not an existing org unit"),
                ));
            };
            let parent_level = OrgLevel::parse(&parent.level).map_err(ApiError::internal_msg)?;
            if parent_level >= unit.level {
                return Err(ApiError::invalid(
                    "level",
                    format!(
                        "a {} cannot sit under '{p}', a {}",
                        unit.level.as_str(),
                        parent_level.as_str()
                    ),
                ));
            }
        }
        None => {
            if let Some(root) = ou::Entity::find()
                .filter(ou::Column::ParentId.is_null())
                .one(&txn)
                .await?
            {
                return Err(ApiError::invalid(
                    "parent_id",
                    format!(
                        "is empty, but the tree already has its root '{}'; name a parent",
                        root.id
                    ),
                ));
            }
        }
    }
    active(&unit, 1)
        .insert(&txn)
        .await
        .map_err(|e| match e.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => {
                ApiError::already_exists(format!("org unit '{}' already exists", unit.id))
            }
            _ => ApiError::from(e),
        })?;
    announce(&txn, who, "org_unit.created", &unit, 1).await?;
    txn.commit().await?;
    Ok((unit, 1))
}

pub async fn get(db: &DatabaseConnection, id: &str) -> Result<(OrgUnit, u64), ApiError> {
    let m = get_model(db, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("org unit '{id}' does not exist")))?;
    Ok((to_domain(&m)?, m.revision as u64))
}

pub async fn update_population(
    db: &DatabaseConnection,
    who: &Principal,
    id: &str,
    year: i32,
    residents: u64,
) -> Result<(OrgUnit, u64), ApiError> {
    if !(1900..=2200).contains(&year) {
        return Err(ApiError::invalid(
            "year",
            format!("{year} is not a plausible year"),
        ));
    }
    if residents > 200_000_000 {
        return Err(ApiError::invalid(
            "residents",
            format!("{residents} is more than any org unit holds"),
        ));
    }
    let txn = db.begin().await?;
    let m = get_model(&txn, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("org unit '{id}' does not exist")))?;
    let mut unit = to_domain(&m)?;
    unit.population.insert(year, residents);
    let revision = m.revision + 1;
    active(&unit, revision).update(&txn).await?;
    announce(&txn, who, "org_unit.population_updated", &unit, revision).await?;
    txn.commit().await?;
    Ok((unit, revision as u64))
}

pub async fn move_unit(
    db: &DatabaseConnection,
    who: &Principal,
    id: &str,
    new_parent: &str,
) -> Result<(OrgUnit, u64), ApiError> {
    let new_parent_id =
        OrgUnitId::parse(new_parent).map_err(|e| ApiError::invalid("new_parent_id", e))?;
    let txn = db.begin().await?;
    let all = ou::Entity::find().all(&txn).await?;
    let by_id: HashMap<&str, &ou::Model> = all.iter().map(|m| (m.id.as_str(), m)).collect();
    let Some(m) = by_id.get(id) else {
        return Err(ApiError::not_found(format!(
            "org unit '{id}' does not exist"
        )));
    };
    let Some(p) = by_id.get(new_parent) else {
        return Err(ApiError::invalid(
            "new_parent_id",
            format!("'{new_parent}' is not an existing org unit"),
        ));
    };
    // The new parent must not lie inside the unit's own subtree.
    let mut cursor = Some(p.id.as_str());
    while let Some(c) = cursor {
        if c == id {
            return Err(ApiError::invalid(
                "new_parent_id",
                format!(
                    "'{new_parent}' is inside the subtree of '{id}'; a unit cannot move under itself"
                ),
            ));
        }
        cursor = by_id.get(c).and_then(|x| x.parent_id.as_deref());
    }
    let mut unit = to_domain(m)?;
    let parent_level = OrgLevel::parse(&p.level).map_err(ApiError::internal_msg)?;
    if parent_level >= unit.level {
        return Err(ApiError::invalid(
            "new_parent_id",
            format!(
                "a {} cannot sit under '{new_parent}', a {}",
                unit.level.as_str(),
                parent_level.as_str()
            ),
        ));
    }
    unit.parent = Some(new_parent_id);
    let revision = m.revision + 1;
    active(&unit, revision).update(&txn).await?;
    announce(&txn, who, "org_unit.moved", &unit, revision).await?;
    txn.commit().await?;
    Ok((unit, revision as u64))
}

/// The subtree under `root` (everything when empty) in preorder, with revisions.
pub async fn subtree(db: &DatabaseConnection, root: &str) -> Result<Vec<(OrgUnit, u64)>, ApiError> {
    let all = ou::Entity::find().all(db).await?;
    if all.is_empty() {
        if root.is_empty() {
            return Ok(Vec::new());
        }
        return Err(ApiError::not_found(format!(
            "org unit '{root}' does not exist"
        )));
    }
    let revisions: HashMap<String, u64> = all
        .iter()
        .map(|m| (m.id.clone(), m.revision as u64))
        .collect();
    let units = all.iter().map(to_domain).collect::<Result<Vec<_>, _>>()?;
    let tree = OrgTree::build(units)
        .map_err(|e| ApiError::internal_msg(format!("stored org tree is broken: {e}")))?;
    let range = if root.is_empty() {
        tree.subtree(tree.root())
    } else {
        let id = OrgUnitId::parse(root).map_err(|e| ApiError::invalid("root_id", e))?;
        let i = tree
            .find(&id)
            .ok_or_else(|| ApiError::not_found(format!("org unit '{root}' does not exist")))?;
        tree.subtree(i)
    };
    Ok(range
        .map(|i| {
            let u = tree.unit(i).clone();
            let rev = revisions.get(u.id.as_str()).copied().unwrap_or(0);
            (u, rev)
        })
        .collect())
}

/// One unit's change in an import.
#[derive(Debug, Clone)]
pub struct Change {
    pub kind: &'static str,
    pub fields: Vec<String>,
    pub unit: OrgUnit,
    pub revision: u64,
}

/// What an import did (or would do).
#[derive(Debug, Default)]
pub struct Imported {
    pub created: u32,
    pub updated: u32,
    pub moved: u32,
    pub unchanged: u32,
    pub changes: Vec<Change>,
}

/// Loads an org list all or nothing. `units[i]` are checked one by one, then the tree they make
/// with the units already stored is checked as a whole; only then is anything written, in one
/// transaction with each change's event and audit entry.
pub async fn import(
    db: &DatabaseConnection,
    who: &Principal,
    units: Vec<OrgUnit>,
    dry_run: bool,
) -> Result<Imported, ApiError> {
    let txn = db.begin().await?;
    let stored = ou::Entity::find().all(&txn).await?;
    let mut by_id: BTreeMap<String, (OrgUnit, i64)> = BTreeMap::new();
    let mut order: Vec<String> = Vec::with_capacity(stored.len() + units.len());
    for m in &stored {
        by_id.insert(m.id.clone(), (to_domain(m)?, m.revision));
        order.push(m.id.clone());
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut refused: Vec<(String, String)> = Vec::new();
    let mut plan: Vec<(usize, Change)> = Vec::new();
    let mut result = Imported::default();
    for (i, new) in units.into_iter().enumerate() {
        let key = new.id.to_string();
        if let Some(first) = seen.insert(key.clone(), i) {
            refused.push((
                format!("units[{i}].id"),
                format!("'{key}' is already given in units[{first}]; one row per org unit"),
            ));
            continue;
        }
        match by_id.get(&key) {
            None => {
                plan.push((
                    i,
                    Change {
                        kind: "created",
                        fields: Vec::new(),
                        unit: new.clone(),
                        revision: 1,
                    },
                ));
                by_id.insert(key.clone(), (new, 0));
                order.push(key);
            }
            Some((old, revision)) => {
                if old.level != new.level {
                    refused.push((
                        format!("units[{i}].level"),
                        format!(
                            "'{key}' is a {}; a unit's level never changes (create a new unit)",
                            old.level.as_str()
                        ),
                    ));
                    continue;
                }
                let mut after = old.clone();
                let mut fields = Vec::new();
                if old.name != new.name {
                    fields.push("name".to_string());
                    after.name = new.name.clone();
                }
                if old.community_type != new.community_type {
                    fields.push("community_type".to_string());
                    after.community_type = new.community_type;
                }
                if old.region != new.region {
                    fields.push("region".to_string());
                    after.region = new.region;
                }
                // Populations given are set; years not in the file keep their value.
                for (year, residents) in &new.population {
                    if old.population.get(year) != Some(residents) {
                        fields.push(format!("population:{year}"));
                        after.population.insert(*year, *residents);
                    }
                }
                let moved = old.parent != new.parent;
                if moved {
                    fields.push("parent".to_string());
                    after.parent = new.parent.clone();
                }
                if fields.is_empty() {
                    result.unchanged += 1;
                    continue;
                }
                let revision = *revision;
                plan.push((
                    i,
                    Change {
                        kind: if moved { "moved" } else { "updated" },
                        fields,
                        unit: after.clone(),
                        revision: revision as u64 + 1,
                    },
                ));
                by_id.insert(key, (after, revision));
            }
        }
    }
    if refused.is_empty() {
        // The whole tree as it would be: one root, levels downwards, communities typed, every
        // parent known, no cycles. The error names the row of the unit it is about.
        let row_of: HashMap<String, usize> = plan
            .iter()
            .map(|(i, c)| (c.unit.id.to_string(), *i))
            .collect();
        let all: Vec<OrgUnit> = order.iter().map(|id| by_id[id].0.clone()).collect();
        if let Err(e) = OrgTree::build(all) {
            let (id, field) = match &e {
                cezone_domain::org::OrgError::Duplicate(id) => (id.to_string(), "id"),
                cezone_domain::org::OrgError::UnknownParent { id, .. }
                | cezone_domain::org::OrgError::LevelOrder { id, .. }
                | cezone_domain::org::OrgError::Cycle { id, .. } => (id.to_string(), "parent_id"),
                cezone_domain::org::OrgError::SecondRoot(id, _) => (id.to_string(), "parent_id"),
                cezone_domain::org::OrgError::MissingCommunityType(id)
                | cezone_domain::org::OrgError::NotFound(id) => (id.to_string(), "community_type"),
                cezone_domain::org::OrgError::Empty => (String::new(), "units"),
            };
            let field = match row_of.get(&id) {
                Some(i) => format!("units[{i}].{field}"),
                None => "units".to_string(),
            };
            refused.push((field, e.to_string()));
        }
    }
    if !refused.is_empty() {
        return Err(match refused.len() {
            1 => ApiError::invalid(&refused[0].0, refused[0].1.clone()),
            n => ApiError::invalid_many(
                format!("{n} org units are refused; nothing was stored"),
                refused,
            ),
        });
    }
    for (_, c) in &plan {
        match c.kind {
            "created" => result.created += 1,
            "moved" => result.moved += 1,
            _ => result.updated += 1,
        }
    }
    if !dry_run {
        // Parents are written (and announced) before their children whatever the file's order.
        let mut writes: Vec<&Change> = plan.iter().map(|(_, c)| c).collect();
        writes.sort_by_key(|c| c.unit.level);
        for c in writes {
            let revision = c.revision as i64;
            if c.kind == "created" {
                active(&c.unit, revision).insert(&txn).await?;
            } else {
                active(&c.unit, revision).update(&txn).await?;
            }
            let event = match c.kind {
                "created" => "org_unit.created",
                "moved" => "org_unit.moved",
                _ if c.fields.iter().all(|f| f.starts_with("population:")) => {
                    "org_unit.population_updated"
                }
                _ => "org_unit.updated",
            };
            announce(&txn, who, event, &c.unit, revision).await?;
        }
        txn.commit().await?;
    }
    result.changes = plan.into_iter().map(|(_, c)| c).collect();
    Ok(result)
}
