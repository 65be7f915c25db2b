//! The demo district is realistic in shape and exactly reproducible from its seed.

use cezone_domain::demo::{DemoParams, generate};
use cezone_domain::engine::Engine;
use cezone_domain::guangdong;
use cezone_domain::org::{CommunityType, OrgLevel, OrgTree};

#[test]
fn nanhai_has_seven_towns_and_about_290_communities_of_both_types() {
    let (fw, _) = guangdong::framework();
    let d = generate(&fw, &DemoParams::nanhai(7));
    let tree = OrgTree::build(d.units.clone()).unwrap();
    assert_eq!(tree.count_at_level(OrgLevel::Town), 7);
    assert_eq!(tree.count_at_level(OrgLevel::Community), 290);
    let names: Vec<&str> = tree
        .children(0)
        .iter()
        .map(|&t| tree.unit(t).name.as_str())
        .collect();
    for town in [
        "桂城街道",
        "九江镇",
        "西樵镇",
        "丹灶镇",
        "狮山镇",
        "大沥镇",
        "里水镇",
    ] {
        assert!(names.contains(&town), "{town} missing from {names:?}");
    }
    let urban = d
        .units
        .iter()
        .filter(|u| u.community_type == Some(CommunityType::Urban))
        .count();
    assert!(urban > 60 && urban < 230, "{urban} urban communities");
    let pop = tree.populations(2013)[0];
    assert!(
        (1_500_000..4_000_000).contains(&pop),
        "district population {pop}"
    );
}

#[test]
fn the_same_seed_gives_the_same_district_and_scores() {
    let (fw, _) = guangdong::framework();
    let a = generate(&fw, &DemoParams::nanhai(42));
    let b = generate(&fw, &DemoParams::nanhai(42));
    let c = generate(&fw, &DemoParams::nanhai(43));
    let (fa, fb, fc) = (
        a.facts(&fw.catalog),
        b.facts(&fw.catalog),
        c.facts(&fw.catalog),
    );
    assert_eq!(fa, fb);
    assert_ne!(fa, fc);
    let tree = OrgTree::build(a.units.clone()).unwrap();
    let sa = Engine::new(fw.clone().into(), tree.clone().into(), &fa, 2013).scoreboard();
    let sb = Engine::new(fw.clone().into(), tree.clone().into(), &fb, 2013).scoreboard();
    assert_eq!(sa, sb);
    let total = sa.total(&fw, 0);
    // A district mid-way through its preparation: far from zero, short of full marks.
    assert!(
        total.confirmed.as_f64() > 35.0 && total.confirmed.as_f64() < 95.0,
        "{total:?}"
    );
    assert!(total.projected > total.confirmed);
}

#[test]
fn sizes_scale_to_a_province() {
    let (fw, _) = guangdong::framework();
    let p = DemoParams {
        towns: 40,
        communities: 900,
        responses_per_community: 2,
        ..DemoParams::province(1)
    };
    let d = generate(&fw, &p);
    let tree = OrgTree::build(d.units).unwrap();
    assert_eq!(tree.count_at_level(OrgLevel::Town), 40);
    assert_eq!(tree.count_at_level(OrgLevel::Community), 900);
    let prov = DemoParams::province(1);
    assert_eq!((prov.towns, prov.communities), (1600, 26_000));
}
