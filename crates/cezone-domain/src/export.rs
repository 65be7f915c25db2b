//! Writing a framework back out: the seed-table CSV shape (canonical unit names, "同上"
//! resolved) and the nested JSON document.

use crate::framework::{Framework, ItemIdx};

/// The framework as a seed-shaped CSV table: one row per criterion, group cells only on the
/// first row of their group, as merged cells print.
pub fn to_csv(fw: &Framework) -> String {
    let depth = fw.items().iter().map(|i| i.code.depth()).max().unwrap_or(1);
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let mut header: Vec<String> = (0..depth).map(level_header).collect();
    header.extend(["分值", "提供材料", "负责单位"].map(str::to_string));
    w.write_record(&header).expect("writing to memory");

    // A table numbered the Chinese way writes each level's own label (一、, （一）, 1.);
    // otherwise every cell carries the full code.
    let by_level = fw
        .items()
        .first()
        .is_some_and(|i| i.code.numbered_by_level());
    for leaf in fw.leaves() {
        let mut chain: Vec<ItemIdx> =
            std::iter::successors(Some(leaf), |&i| fw.parent(i)).collect();
        chain.reverse();
        let mut record = vec![String::new(); depth + 3];
        for (level, &i) in chain.iter().enumerate() {
            let it = fw.item(i);
            // A group's cell is written on the row of its first criterion only.
            let first_leaf_of_group = first_leaf(fw, i) == leaf;
            if i != leaf && !first_leaf_of_group {
                continue;
            }
            let star = if it.key { "★" } else { "" };
            let code = if by_level {
                it.code.label_for_cell()
            } else {
                format!("{} ", it.code)
            };
            record[level] = if i != leaf && it.declared {
                format!("{star}{code}{}（{}分）", it.title, it.points)
            } else {
                format!("{star}{code}{}", it.title)
            };
        }
        let it = fw.item(leaf);
        record[depth] = format!("{}分", it.points);
        record[depth + 1] = it.materials.clone();
        record[depth + 2] = it
            .responsible
            .iter()
            .map(|u| fw.units.name_of(u))
            .collect::<Vec<_>>()
            .join("、");
        w.write_record(&record).expect("writing to memory");
    }
    String::from_utf8(w.into_inner().expect("flushing memory")).expect("CSV of UTF-8 is UTF-8")
}

fn first_leaf(fw: &Framework, mut i: ItemIdx) -> ItemIdx {
    while let Some(&c) = fw.children(i).first() {
        i = c;
    }
    i
}

fn level_header(level: usize) -> String {
    const NAMES: [&str; 9] = ["一", "二", "三", "四", "五", "六", "七", "八", "九"];
    match NAMES.get(level) {
        Some(n) => format!("{n}级指标"),
        None => format!("level-{}", level + 1),
    }
}

/// The stable JSON document (`format: cezone.framework.v1`).
pub fn to_json(fw: &Framework) -> String {
    serde_json::to_string_pretty(&fw.to_document()).expect("a framework serializes")
}
