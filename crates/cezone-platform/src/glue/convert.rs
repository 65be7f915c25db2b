//! Conversions between the contracts and the domain core, shared by servers and clients.

use std::collections::BTreeMap;

use cezone_domain::engine::Cell;
use cezone_domain::findings::Finding;
use cezone_domain::org::{CommunityType, OrgLevel, OrgUnit, OrgUnitId, RegionClass};
use cezone_proto::common::v1 as pc;
use cezone_proto::registry::v1 as pr;

use crate::error::ApiError;

pub fn level_to_proto(l: OrgLevel) -> pc::OrgLevel {
    match l {
        OrgLevel::Province => pc::OrgLevel::Province,
        OrgLevel::City => pc::OrgLevel::City,
        OrgLevel::District => pc::OrgLevel::District,
        OrgLevel::Town => pc::OrgLevel::Town,
        OrgLevel::Community => pc::OrgLevel::Community,
    }
}

pub fn level_from_proto(field: &str, v: i32) -> Result<OrgLevel, ApiError> {
    match pc::OrgLevel::try_from(v) {
        Ok(pc::OrgLevel::Province) => Ok(OrgLevel::Province),
        Ok(pc::OrgLevel::City) => Ok(OrgLevel::City),
        Ok(pc::OrgLevel::District) => Ok(OrgLevel::District),
        Ok(pc::OrgLevel::Town) => Ok(OrgLevel::Town),
        Ok(pc::OrgLevel::Community) => Ok(OrgLevel::Community),
        _ => Err(ApiError::invalid(
            field,
            format!("{v} is not an org level (province, city, district, town, community)"),
        )),
    }
}

pub fn community_type_to_proto(t: Option<CommunityType>) -> pc::CommunityType {
    match t {
        Some(CommunityType::Urban) => pc::CommunityType::Urban,
        Some(CommunityType::Rural) => pc::CommunityType::Rural,
        None => pc::CommunityType::Unspecified,
    }
}

pub fn community_type_from_proto(field: &str, v: i32) -> Result<Option<CommunityType>, ApiError> {
    match pc::CommunityType::try_from(v) {
        Ok(pc::CommunityType::Unspecified) => Ok(None),
        Ok(pc::CommunityType::Urban) => Ok(Some(CommunityType::Urban)),
        Ok(pc::CommunityType::Rural) => Ok(Some(CommunityType::Rural)),
        Err(_) => Err(ApiError::invalid(
            field,
            format!("{v} is not a community type"),
        )),
    }
}

pub fn region_to_proto(r: Option<RegionClass>) -> pc::RegionClass {
    match r {
        Some(RegionClass::PearlRiverDelta) => pc::RegionClass::PearlRiverDelta,
        Some(RegionClass::LessDeveloped) => pc::RegionClass::LessDeveloped,
        None => pc::RegionClass::Unspecified,
    }
}

pub fn region_from_proto(field: &str, v: i32) -> Result<Option<RegionClass>, ApiError> {
    match pc::RegionClass::try_from(v) {
        Ok(pc::RegionClass::Unspecified) => Ok(None),
        Ok(pc::RegionClass::PearlRiverDelta) => Ok(Some(RegionClass::PearlRiverDelta)),
        Ok(pc::RegionClass::LessDeveloped) => Ok(Some(RegionClass::LessDeveloped)),
        Err(_) => Err(ApiError::invalid(
            field,
            format!("{v} is not a region class"),
        )),
    }
}

pub fn org_unit_to_proto(u: &OrgUnit, revision: u64) -> pr::OrgUnit {
    pr::OrgUnit {
        id: u.id.to_string(),
        name: u.name.clone(),
        level: level_to_proto(u.level) as i32,
        parent_id: u
            .parent
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        community_type: community_type_to_proto(u.community_type) as i32,
        region: region_to_proto(u.region) as i32,
        populations: u
            .population
            .iter()
            .map(|(&year, &residents)| pr::Population { year, residents })
            .collect(),
        revision,
    }
}

pub fn org_unit_id(field: &str, text: &str) -> Result<OrgUnitId, ApiError> {
    OrgUnitId::parse(text).map_err(|e| ApiError::invalid(field, e))
}

/// Checks every field of a proto org unit and turns it into the domain's.
pub fn org_unit_from_proto(u: &pr::OrgUnit) -> Result<OrgUnit, ApiError> {
    let id = org_unit_id("id", &u.id)?;
    if u.name.trim().is_empty() {
        return Err(ApiError::invalid(
            "name",
            "is empty; every org unit needs a name",
        ));
    }
    let level = level_from_proto("level", u.level)?;
    let parent = if u.parent_id.is_empty() {
        None
    } else {
        Some(org_unit_id("parent_id", &u.parent_id)?)
    };
    let community_type = community_type_from_proto("community_type", u.community_type)?;
    if level == OrgLevel::Community && community_type.is_none() {
        return Err(ApiError::invalid(
            "community_type",
            "a community must be urban or rural",
        ));
    }
    if level != OrgLevel::Community && community_type.is_some() {
        return Err(ApiError::invalid(
            "community_type",
            format!("only communities have a type, not a {}", level.as_str()),
        ));
    }
    let mut population = BTreeMap::new();
    for (i, p) in u.populations.iter().enumerate() {
        if !(1900..=2200).contains(&p.year) {
            return Err(ApiError::invalid(
                &format!("populations[{i}].year"),
                format!("{} is not a plausible year", p.year),
            ));
        }
        if population.insert(p.year, p.residents).is_some() {
            return Err(ApiError::invalid(
                &format!("populations[{i}].year"),
                format!("{} is given twice", p.year),
            ));
        }
    }
    Ok(OrgUnit {
        id,
        name: u.name.trim().to_string(),
        level,
        parent,
        community_type,
        region: region_from_proto("region", u.region)?,
        population,
    })
}

pub fn finding_to_proto(f: &Finding) -> pc::Finding {
    pc::Finding {
        severity: f.severity.to_string(),
        kind: f.kind.as_str().to_string(),
        file: f.location.file.clone().unwrap_or_default(),
        row: f.location.row.unwrap_or(0),
        column: f.location.column.clone().unwrap_or_default(),
        item: f.location.item.clone().unwrap_or_default(),
        message: f.message.clone(),
    }
}

pub fn score(c: Cell) -> pc::Score {
    pc::Score {
        confirmed: c.confirmed.to_string(),
        projected: c.projected.to_string(),
    }
}
