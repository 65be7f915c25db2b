//! The org list as a civil-affairs office keeps it: code, name, parent, level, community type,
//! region class and resident population by year, one row per org unit. Read into the
//! registry's `ImportOrgUnits` request; written back by `org-units export`.

use cezone_proto::common::v1 as pc;
use cezone_proto::registry::v1 as pr;

use super::{CellError, FileErrors, Table};

const ID: &[&str] = &["code", "id", "org_unit", "代码", "编码", "单位代码"];
const NAME: &[&str] = &["name", "名称", "单位名称"];
const PARENT: &[&str] = &["parent", "parent_id", "上级", "上级代码"];
const LEVEL: &[&str] = &["level", "层级", "级别"];
const TYPE: &[&str] = &["community_type", "type", "社区类型", "类型"];
const REGION: &[&str] = &["region", "region_class", "区域类别", "地区类别"];

/// The headers `export` writes (and `import` reads), Chinese first.
pub fn headers(years: &[i32]) -> Vec<String> {
    let mut h: Vec<String> = [
        "代码 code",
        "名称 name",
        "上级 parent",
        "层级 level",
        "社区类型 community_type",
        "区域类别 region",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    h.extend(
        years
            .iter()
            .map(|y| format!("{y}年常住人口 population_{y}")),
    );
    h
}

/// A population column's year: a header with one four-digit year (`2013年常住人口`,
/// `population_2013`, `人口（2013）`).
fn population_year(header: &str) -> Option<i32> {
    // Every run of digits in the header must be the same four-digit year (a bilingual header
    // such as `2013年常住人口 population_2013` names it twice).
    let runs: Vec<&str> = header
        .split(|c: char| !c.is_ascii_digit())
        .filter(|r| !r.is_empty())
        .collect();
    let first = *runs.first()?;
    if first.len() != 4 || runs.iter().any(|r| *r != first) {
        return None;
    }
    let year: i32 = first.parse().ok()?;
    let lower = header.to_lowercase();
    let about_people =
        lower.contains("population") || header.contains('人') || header.trim().len() == 4;
    ((1900..=2200).contains(&year) && about_people).then_some(year)
}

fn level(text: &str) -> Result<pc::OrgLevel, String> {
    Ok(match text.to_lowercase().as_str() {
        "province" | "省" => pc::OrgLevel::Province,
        "city" | "市" | "地级市" => pc::OrgLevel::City,
        "district" | "区" | "县" | "区（县、市）" | "区县" => pc::OrgLevel::District,
        "town" | "镇" | "街道" | "镇街" | "镇（街道）" => pc::OrgLevel::Town,
        "community" | "社区" | "村" | "居委会" | "村委会" | "村（居）" => {
            pc::OrgLevel::Community
        }
        _ => {
            return Err(format!(
                "'{text}' is not a level (district/区, town/镇街, community/社区; also province, city)"
            ));
        }
    })
}

fn community_type(text: &str) -> Result<pc::CommunityType, String> {
    Ok(match text.to_lowercase().as_str() {
        "" => pc::CommunityType::Unspecified,
        "urban" | "城市" | "城市社区" | "居委会" => pc::CommunityType::Urban,
        "rural" | "农村" | "农村社区" | "村委会" => pc::CommunityType::Rural,
        _ => {
            return Err(format!(
                "'{text}' is not a community type (urban/城市社区, rural/农村社区)"
            ));
        }
    })
}

fn region(text: &str) -> Result<pc::RegionClass, String> {
    Ok(match text.to_lowercase().as_str() {
        "" => pc::RegionClass::Unspecified,
        "pearl_river_delta" | "珠三角" | "珠江三角洲" => pc::RegionClass::PearlRiverDelta,
        "less_developed" | "粤东西北" | "粤东、粤西、粤北" | "欠发达地区" => {
            pc::RegionClass::LessDeveloped
        }
        _ => {
            return Err(format!(
                "'{text}' is not a region class (pearl_river_delta/珠三角, less_developed/粤东西北)"
            ));
        }
    })
}

/// Reads an org list; every bad cell is reported, and nothing is returned while any is bad.
pub fn read(file: &str, bytes: &[u8]) -> Result<Vec<pr::OrgUnit>, FileErrors> {
    let t = Table::read(file, bytes)?;
    let mut errors = Vec::new();
    let mut need = |aliases: &[&str], what: &str| {
        let c = t.column(aliases);
        if c.is_none() {
            errors.push(CellError {
                row: 1,
                column: String::new(),
                message: format!("no {what} column (a header such as '{}')", aliases[0]),
            });
        }
        c
    };
    let id_c = need(ID, "code");
    let name_c = need(NAME, "name");
    let parent_c = need(PARENT, "parent");
    let level_c = need(LEVEL, "level");
    let type_c = t.column(TYPE);
    let region_c = t.column(REGION);
    let years: Vec<(usize, i32)> = t
        .headers
        .iter()
        .enumerate()
        .filter_map(|(i, h)| population_year(h).map(|y| (i, y)))
        .collect();
    let (Some(id_c), Some(name_c), Some(parent_c), Some(level_c)) =
        (id_c, name_c, parent_c, level_c)
    else {
        return Err(t.refused(errors));
    };
    let mut units = Vec::with_capacity(t.rows.len());
    for (row, cells) in &t.rows {
        let mut bad = |col: usize, message: String| {
            errors.push(CellError {
                row: *row,
                column: t.place(col),
                message,
            })
        };
        let id = t.cell(cells, id_c);
        if id.is_empty() {
            bad(id_c, "is empty; every org unit needs its code".into());
        }
        let name = t.cell(cells, name_c);
        if name.is_empty() {
            bad(name_c, "is empty; every org unit needs its name".into());
        }
        let lv = level(t.cell(cells, level_c)).unwrap_or_else(|e| {
            bad(level_c, e);
            pc::OrgLevel::Unspecified
        });
        let ct = type_c.map_or(Ok(pc::CommunityType::Unspecified), |c| {
            community_type(t.cell(cells, c))
        });
        let ct = ct.unwrap_or_else(|e| {
            bad(type_c.unwrap_or(0), e);
            pc::CommunityType::Unspecified
        });
        if lv == pc::OrgLevel::Community && ct == pc::CommunityType::Unspecified {
            match type_c {
                Some(c) => bad(
                    c,
                    "a community must be urban (城市社区) or rural (农村社区)".into(),
                ),
                None => bad(
                    level_c,
                    "a community needs its type, and the file has no community_type column".into(),
                ),
            }
        }
        let rg = region_c.map_or(Ok(pc::RegionClass::Unspecified), |c| {
            region(t.cell(cells, c))
        });
        let rg = rg.unwrap_or_else(|e| {
            bad(region_c.unwrap_or(0), e);
            pc::RegionClass::Unspecified
        });
        let mut populations = Vec::new();
        for (c, year) in &years {
            let text = t.cell(cells, *c).replace([',', '，'], "");
            if text.is_empty() {
                continue;
            }
            match text.parse::<u64>() {
                Ok(residents) => populations.push(pr::Population {
                    year: *year,
                    residents,
                }),
                Err(_) => bad(
                    *c,
                    format!("'{text}' is not a number of residents (a whole number)"),
                ),
            }
        }
        units.push(pr::OrgUnit {
            id: id.to_string(),
            name: name.to_string(),
            level: lv as i32,
            parent_id: t.cell(cells, parent_c).to_string(),
            community_type: ct as i32,
            region: rg as i32,
            populations,
            revision: 0,
        });
    }
    if units.is_empty() && errors.is_empty() {
        return Err(FileErrors::whole(
            file,
            "the file has no org units below its header",
        ));
    }
    if errors.is_empty() {
        Ok(units)
    } else {
        Err(t.refused(errors))
    }
}

/// Where `units[i]` is in the file (`sheet 组织 orgs, row 5` in XLSX, `row 5` in CSV), to place
/// the registry's refusals.
pub fn rows(file: &str, bytes: &[u8]) -> Vec<String> {
    Table::read(file, bytes)
        .map(|t| t.rows.iter().map(|(r, _)| t.at(*r)).collect())
        .unwrap_or_default()
}

/// The org list as CSV, parents before children, with a population column per year known.
pub fn export(units: &[pr::OrgUnit]) -> Vec<u8> {
    let mut years: Vec<i32> = units
        .iter()
        .flat_map(|u| u.populations.iter().map(|p| p.year))
        .collect();
    years.sort_unstable();
    years.dedup();
    let rows: Vec<Vec<String>> = units
        .iter()
        .map(|u| {
            let mut r = vec![
                u.id.clone(),
                u.name.clone(),
                u.parent_id.clone(),
                match pc::OrgLevel::try_from(u.level).unwrap_or_default() {
                    pc::OrgLevel::Province => "province",
                    pc::OrgLevel::City => "city",
                    pc::OrgLevel::District => "district",
                    pc::OrgLevel::Town => "town",
                    pc::OrgLevel::Community => "community",
                    pc::OrgLevel::Unspecified => "",
                }
                .to_string(),
                match pc::CommunityType::try_from(u.community_type).unwrap_or_default() {
                    pc::CommunityType::Urban => "urban",
                    pc::CommunityType::Rural => "rural",
                    pc::CommunityType::Unspecified => "",
                }
                .to_string(),
                match pc::RegionClass::try_from(u.region).unwrap_or_default() {
                    pc::RegionClass::PearlRiverDelta => "pearl_river_delta",
                    pc::RegionClass::LessDeveloped => "less_developed",
                    pc::RegionClass::Unspecified => "",
                }
                .to_string(),
            ];
            for y in &years {
                r.push(
                    u.populations
                        .iter()
                        .find(|p| p.year == *y)
                        .map(|p| p.residents.to_string())
                        .unwrap_or_default(),
                );
            }
            r
        })
        .collect();
    super::to_csv(&headers(&years), &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_civil_affairs_list_in_chinese_and_round_trips_it() {
        let csv = "代码,名称,上级,层级,社区类型,区域类别,2013年常住人口\n\
                   nanhai,南海区,,区,,珠三角,\"2,600,000\"\n\
                   nanhai.t1,桂城街道,nanhai,镇街,,,400000\n\
                   nanhai.t1.c1,平洲社区,nanhai.t1,社区,城市社区,,12000\n";
        let units = read("list.csv", csv.as_bytes()).unwrap();
        assert_eq!(units.len(), 3);
        assert_eq!(units[0].level, pc::OrgLevel::District as i32);
        assert_eq!(units[0].region, pc::RegionClass::PearlRiverDelta as i32);
        assert_eq!(units[0].populations[0].residents, 2_600_000);
        assert_eq!(units[2].community_type, pc::CommunityType::Urban as i32);
        let again = read("again.csv", &export(&units)).unwrap();
        assert_eq!(again, units);
    }

    #[test]
    fn every_bad_cell_is_named_by_row_and_column() {
        let csv = "code,name,parent,level,community_type,population_2013\n\
                   nanhai,南海区,,district,,many\n\
                   c1,,nanhai,village,,5\n\
                   c2,二社区,nanhai,community,,5\n";
        let e = read("list.csv", csv.as_bytes()).unwrap_err();
        let shown: Vec<String> = e.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            vec![
                "row 2, column F (population_2013): 'many' is not a number of residents (a whole number)",
                "row 3, column B (name): is empty; every org unit needs its name",
                "row 3, column D (level): 'village' is not a level (district/区, town/镇街, community/社区; also province, city)",
                "row 4, column E (community_type): a community must be urban (城市社区) or rural (农村社区)",
            ]
        );
    }

    #[test]
    fn a_missing_column_is_named() {
        let e = read("list.csv", b"code,name\nx,y\n").unwrap_err();
        assert_eq!(e.errors.len(), 2, "{e}");
        assert!(e.to_string().contains("no parent column"), "{e}");
    }
}
