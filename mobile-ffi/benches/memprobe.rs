fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}
fn main() {
    use fieldsync_core::docs::*;
    let mut saved = Vec::new();
    for i in 0..2000 {
        let c = Customer {
            kind: "customer".into(),
            schema: SCHEMA_VERSION,
            id: format!("cust-{i:05}"),
            name: format!("Customer {i}"),
            location: GeoPoint::wgs84(45.7, 4.8),
            address: format!("{i} rue de la République, Lyon"),
            timezone: "Europe/Paris".into(),
            opening_hours: (1..=5)
                .map(|d| OpeningHours { weekday: d, open_min: 510, close_min: 1110 })
                .collect(),
            potential_value: 1000.0,
            close_probability: 0.3,
            tier: Some(Tier::A),
            tier_set_by: None,
            tier_set_at_ms: None,
            follow_up_status: "none".into(),
            opportunity_stage: "qualification".into(),
            owner_rep: Some("alice".into()),
            territory: None,
            tags: vec!["bench".into()],
            notes: "Some notes about this customer, a few lines long as they usually are.".into(),
            geofence_m: None,
            created_by: "server".into(),
        };
        let mut doc = automerge::AutoCommit::new();
        Document::Customer(c).reconcile_into(&mut doc).unwrap();
        saved.push(doc.save());
    }
    let total: usize = saved.iter().map(|s| s.len()).sum();
    let before = rss();
    let docs: Vec<automerge::Automerge> =
        saved.iter().map(|b| automerge::Automerge::load(b).unwrap()).collect();
    let after = rss();
    eprintln!(
        "saved bytes total {} KiB; rss delta for 2000 loaded docs: {} KiB ({} B/doc)",
        total / 1024,
        after - before,
        (after - before) * 1024 / 2000
    );
    let typed: Vec<Document> = docs.iter().map(|d| Document::hydrate(d).unwrap()).collect();
    let after2 = rss();
    eprintln!("typed: {} KiB", after2 - after);
    drop(typed);
}
