//! Property: whatever the interleaving of offline edits and syncs across three devices, once every
//! device syncs with the network back, all of them hold exactly the server's documents, and no text
//! anybody typed is lost.

use fieldsync_core::Role;
use fieldsync_core::docs::Document;
use fieldsync_e2e::fixtures::{self, on_customer, prepend_notes};
use fieldsync_e2e::{Device, MORNING_MS, TestServer, assert_converged};
use proptest::prelude::*;

const TEAM: &str = "acme";

#[derive(Debug, Clone)]
enum Op {
    /// Insert a unique fragment into the shared customer's notes.
    EditCustomerNotes {
        dev: usize,
        at: u8,
    },
    SetFollowUp {
        dev: usize,
        status: u8,
    },
    /// A rep plans a visit (the manager edits the first visit she holds instead).
    PlanVisit {
        dev: usize,
    },
    EditVisitNotes {
        dev: usize,
    },
    Sync {
        dev: usize,
    },
    ToggleNetwork {
        dev: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let dev = 0usize..3;
    prop_oneof![
        3 => (dev.clone(), any::<u8>()).prop_map(|(dev, at)| Op::EditCustomerNotes { dev, at }),
        1 => (dev.clone(), 0u8..4).prop_map(|(dev, status)| Op::SetFollowUp { dev, status }),
        2 => dev.clone().prop_map(|dev| Op::PlanVisit { dev }),
        2 => dev.clone().prop_map(|dev| Op::EditVisitNotes { dev }),
        3 => dev.clone().prop_map(|dev| Op::Sync { dev }),
        1 => dev.prop_map(|dev| Op::ToggleNetwork { dev }),
    ]
}

struct World {
    server: TestServer,
    devices: Vec<Device>,
    online: Vec<bool>,
    fragments: Vec<String>,
    visit_fragments: Vec<(String, String)>,
    counter: usize,
}

impl World {
    async fn new() -> Self {
        let server = TestServer::seeded(
            TEAM,
            &fixtures::territory_with_customer("terr-1", &["alice", "bob"], "cust-1"),
        )
        .await;
        let mut devices = vec![
            server.add_device("alice-phone", TEAM, "alice", Role::Rep),
            server.add_device("bob-phone", TEAM, "bob", Role::Rep),
            server.add_device("maria-tablet", TEAM, "maria", Role::Manager),
        ];
        for d in &mut devices {
            d.sync().await.expect("bootstrap");
        }
        World {
            server,
            devices,
            online: vec![true; 3],
            fragments: vec![],
            visit_fragments: vec![],
            counter: 0,
        }
    }

    async fn apply(&mut self, op: &Op) {
        self.counter += 1;
        let now = MORNING_MS + self.counter as i64 * 1000;
        match *op {
            Op::EditCustomerNotes { dev, at } => {
                let fragment = format!("[{dev}:{}]", self.counter);
                self.devices[dev]
                    .replica
                    .update(
                        "cust-1",
                        now,
                        on_customer(|c| {
                            let len = c.notes.as_str().chars().count();
                            let pos = if len == 0 { 0 } else { at as usize % (len + 1) };
                            // Insert between fragments, never inside one.
                            let pos = c
                                .notes
                                .as_str()
                                .chars()
                                .take(pos)
                                .collect::<String>()
                                .rfind(']')
                                .map_or(0, |i| i + 1);
                            c.notes.splice(pos, 0, &fragment);
                        }),
                    )
                    .expect("notes edit is allowed");
                self.fragments.push(fragment);
            }
            Op::SetFollowUp { dev, status } => {
                let s = ["none", "call_back", "send_quote", "visit_again"][status as usize];
                self.devices[dev]
                    .replica
                    .update("cust-1", now, on_customer(|c| c.follow_up_status = s.into()))
                    .expect("status edit is allowed");
            }
            Op::PlanVisit { dev } => {
                if dev == 2 {
                    return;
                }
                let rep = if dev == 0 { "alice" } else { "bob" };
                let id = format!("visit-{rep}-{}", self.counter);
                self.devices[dev]
                    .replica
                    .create(fixtures::visit(&id, "cust-1", rep, now).into(), now)
                    .expect("a rep plans own visits");
            }
            Op::EditVisitNotes { dev } => {
                let me = ["alice", "bob", "maria"][dev];
                let ids: Vec<String> = self.devices[dev]
                    .replica
                    .doc_ids()
                    .filter(|id| id.starts_with("visit-"))
                    .cloned()
                    .collect();
                let Some(id) = ids.into_iter().find(|id| dev == 2 || id.contains(me)) else {
                    return;
                };
                let fragment = format!("<{dev}:{}>", self.counter);
                self.devices[dev]
                    .replica
                    .update(&id, now, prepend_notes(&fragment))
                    .expect("visit notes edit is allowed");
                self.visit_fragments.push((id, fragment));
            }
            Op::Sync { dev } => {
                let result = self.devices[dev].sync().await;
                if self.online[dev] {
                    let outcome = result.expect("an online sync succeeds");
                    assert!(
                        outcome.rejected().is_empty(),
                        "honest edits are never rejected: {:?}",
                        outcome.rejected()
                    );
                } else {
                    assert!(result.is_err(), "an offline device cannot sync");
                }
            }
            Op::ToggleNetwork { dev } => {
                self.online[dev] = !self.online[dev];
                if self.online[dev] {
                    self.devices[dev].go_online();
                } else {
                    self.devices[dev].go_offline();
                }
            }
        }
    }

    async fn settle(&mut self) {
        for d in &mut self.devices {
            d.go_online();
        }
        for _round in 0..2 {
            for d in &mut self.devices {
                let outcome = d.sync().await.expect("final sync");
                assert!(outcome.rejected().is_empty());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, max_shrink_iters: 64, .. ProptestConfig::default() })]

    #[test]
    fn random_interleavings_of_offline_edits_and_syncs_converge(ops in proptest::collection::vec(op(), 1..30)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        rt.block_on(async {
            let mut world = World::new().await;
            for op in &ops {
                world.apply(op).await;
            }
            world.settle().await;

            let refs: Vec<&Device> = world.devices.iter().collect();
            assert_converged(&world.server, TEAM, &refs);

            // The typed documents agree too, and every fragment typed anywhere is there.
            let server_notes = match world.server.doc(TEAM, "cust-1") {
                Some(Document::Customer(c)) => c.notes.as_str().to_string(),
                other => panic!("customer missing on the server: {other:?}"),
            };
            for d in &world.devices {
                assert_eq!(d.doc("cust-1"), world.server.doc(TEAM, "cust-1"));
            }
            for f in &world.fragments {
                assert!(server_notes.contains(f.as_str()), "{f} lost from {server_notes:?}");
            }
            for (id, f) in &world.visit_fragments {
                match world.server.doc(TEAM, id) {
                    Some(Document::Visit(v)) => assert!(v.notes.as_str().contains(f.as_str()), "{f} lost from {id}"),
                    other => panic!("visit {id} missing on the server: {other:?}"),
                }
            }
            // The manager holds every visit; reps hold only their own.
            let visits: Vec<&String> = world.devices[2].replica.doc_ids().filter(|i| i.starts_with("visit-")).collect();
            for id in visits {
                let owner_dev = if id.contains("alice") { 0 } else { 1 };
                assert!(world.devices[owner_dev].replica.local(id).is_some());
                assert!(world.devices[1 - owner_dev].replica.local(id).is_none(), "{id} leaked to the other rep");
            }
        });
    }
}
