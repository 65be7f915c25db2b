//! The importer against arbitrary and damaged bytes: the stable-Rust twin of the
//! `framework_import` fuzz target (`fuzz/`), run on every test run. Any input gives findings or
//! an error, never a panic.

use cezone_domain::findings::Severity;
use cezone_domain::guangdong;
use cezone_domain::import::read_untrusted;
use proptest::prelude::*;

/// The seed table with `n` bytes overwritten at `at`: close enough to the real thing to reach
/// deep into the importer.
fn damaged(at: usize, bytes: &[u8]) -> Vec<u8> {
    let mut t = guangdong::TABLE.as_bytes().to_vec();
    let at = at % t.len();
    for (i, b) in bytes.iter().enumerate() {
        if let Some(slot) = t.get_mut(at + i) {
            *slot = *b;
        }
    }
    t
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_bytes_never_panic_the_importer(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        for name in ["x.csv", "x.xlsx", "x.json"] {
            let _ = read_untrusted(name, &data);
        }
    }

    #[test]
    fn a_damaged_seed_table_gives_findings_not_a_panic(
        at in 0usize..200_000,
        bytes in proptest::collection::vec(any::<u8>(), 1..16),
    ) {
        let data = damaged(at, &bytes);
        if let Ok((fw, findings)) = read_untrusted("indicators.csv", &data) {
            // What the damage broke is said: a framework whose own structural check fails
            // never comes back without errors, nor an empty one.
            let recheck = fw.check();
            prop_assert!(
                findings.has_errors() || (recheck.errors() == 0 && !fw.is_empty()),
                "at {} bytes {:?}: read without errors, yet its check says {:?}",
                at, bytes, recheck
            );
            // And each error says where: a file, a row, a column or an item.
            for f in findings.iter().filter(|f| f.severity == Severity::Error) {
                let l = &f.location;
                prop_assert!(
                    l.file.is_some() || l.row.is_some() || l.column.is_some() || l.item.is_some(),
                    "an error with no place: {}", f.message
                );
            }
        }
    }

    #[test]
    fn lines_cut_or_repeated_give_findings_not_a_panic(cut in 0usize..120, repeat in 0usize..120) {
        let original: Vec<&str> = guangdong::TABLE.lines().collect();
        let mut lines = original.clone();
        if cut < lines.len() { lines.remove(cut); }
        if repeat < lines.len() { let l = lines[repeat]; lines.insert(repeat, l); }
        let outcome = read_untrusted("indicators.csv", lines.join("\n").as_bytes());
        // A criterion row lost or doubled never passes unnoticed: the import is refused, says
        // what is wrong, or reads a different number of criteria than the seed has.
        let touched = |i: usize| i > 0 && i < original.len() && !original[i].trim().is_empty();
        if touched(cut) || touched(repeat) {
            let noticed = match &outcome {
                Err(_) => true,
                Ok((fw, findings)) => {
                    findings.errors() + findings.warnings() > 0
                        || fw.len() != guangdong::framework().0.len()
                }
            };
            prop_assert!(noticed, "cut {} repeat {}: read as the seed", cut, repeat);
        }
    }
}

#[test]
fn the_seed_reads_through_the_untrusted_path() {
    let (fw, findings) = read_untrusted("indicators.csv", guangdong::TABLE.as_bytes()).unwrap();
    assert_eq!(fw.len(), guangdong::framework().0.len());
    assert!(!findings.has_errors(), "{findings:?}");
}

/// Every criterion row of the seed lost, or doubled, is noticed (the property above draws
/// both at once; this walks each alone, every row).
#[test]
fn each_criterion_row_lost_or_doubled_is_noticed() {
    let original: Vec<&str> = guangdong::TABLE.lines().collect();
    let seed_len = guangdong::framework().0.len();
    for i in 1..original.len() {
        for doubled in [false, true] {
            let mut lines = original.clone();
            if doubled {
                lines.insert(i, original[i]);
            } else {
                lines.remove(i);
            }
            let noticed = match read_untrusted("indicators.csv", lines.join("\n").as_bytes()) {
                Err(_) => true,
                Ok((fw, findings)) => {
                    findings.errors() + findings.warnings() > 0 || fw.len() != seed_len
                }
            };
            assert!(
                noticed,
                "row {i} {}: read as the seed",
                if doubled { "doubled" } else { "lost" }
            );
        }
    }
}
