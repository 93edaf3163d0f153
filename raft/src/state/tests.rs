//! Unit tests of every state transition, including stale fencing tokens and unknown commands.

use super::*;

fn member(id: NodeId) -> Member {
    Member {
        node_id: id,
        grpc_address: format!("10.0.0.{id}:10901"),
        http_address: format!("10.0.0.{id}:10902"),
        roles: [Role::Query, Role::Store].into(),
        software_version: "0.1.0".to_string(),
        protocol_version: 1,
        joined_at_ms: 1000,
    }
}

fn store(addr: &str, node: Option<NodeId>) -> StoreInfo {
    StoreInfo {
        address: addr.to_string(),
        node_id: node,
        label_sets: vec![[("replica".to_string(), "a".to_string())].into()],
        min_time_ms: 0,
        max_time_ms: 100,
    }
}

fn apply(s: &mut ClusterState, c: Command) -> Response {
    s.apply(3, &Request::new(c))
}

fn rejected(r: Response) -> Rejection {
    match r {
        Response::Rejected { reason } => reason,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn assign(s: &mut ClusterState, job: &str, node: NodeId, until: i64, now: i64) -> FencingToken {
    let c = Command::AssignJob {
        job_id: job.into(),
        node_id: node,
        lease_expiry_ms: until,
        now_ms: now,
    };
    match apply(s, c) {
        Response::Assigned { token } => token,
        other => panic!("expected an assignment, got {other:?}"),
    }
}

fn with_job(id: &str) -> ClusterState {
    let mut s = ClusterState::default();
    let c = Command::CreateJob {
        job_id: id.into(),
        kind: "compact".into(),
        spec: "{}".into(),
        now_ms: 5,
    };
    assert_eq!(apply(&mut s, c), Response::Ok);
    s
}

#[test]
fn add_member_inserts_and_replaces_by_id() {
    let mut s = ClusterState::default();
    assert_eq!(
        apply(&mut s, Command::AddMember { member: member(1) }),
        Response::Ok
    );
    let mut m = member(1);
    m.http_address = "elsewhere:1".into();
    apply(&mut s, Command::AddMember { member: m.clone() });
    assert_eq!(s.members.len(), 1);
    assert_eq!(s.members.get(&1), Some(&m));
}

#[test]
fn remove_member_drops_its_stores_and_refuses_unknown_ids() {
    let mut s = ClusterState::default();
    apply(&mut s, Command::AddMember { member: member(1) });
    apply(
        &mut s,
        Command::RegisterStore {
            store: store("a:1", Some(1)),
            now_ms: 10,
        },
    );
    apply(
        &mut s,
        Command::RegisterStore {
            store: store("b:1", None),
            now_ms: 10,
        },
    );
    assert_eq!(
        apply(&mut s, Command::RemoveMember { node_id: 1 }),
        Response::Ok
    );
    assert!(s.members.is_empty());
    assert_eq!(s.stores.keys().collect::<Vec<_>>(), vec!["b:1"]);
    let r = rejected(apply(&mut s, Command::RemoveMember { node_id: 1 }));
    assert_eq!(r, Rejection::UnknownMember { node_id: 1 });
}

#[test]
fn register_store_keeps_first_registration_time_and_refuses_bad_ranges() {
    let mut s = ClusterState::default();
    apply(
        &mut s,
        Command::RegisterStore {
            store: store("a:1", None),
            now_ms: 10,
        },
    );
    apply(
        &mut s,
        Command::RegisterStore {
            store: store("a:1", None),
            now_ms: 20,
        },
    );
    let e = &s.stores["a:1"];
    assert_eq!((e.registered_at_ms, e.last_heartbeat_ms), (10, 20));
    let mut bad = store("b:1", None);
    bad.min_time_ms = 200;
    let r = rejected(apply(
        &mut s,
        Command::RegisterStore {
            store: bad,
            now_ms: 20,
        },
    ));
    assert!(matches!(r, Rejection::Invalid { .. }), "{r:?}");
    assert!(!s.stores.contains_key("b:1"));
}

#[test]
fn heartbeat_updates_time_range_and_never_moves_liveness_back() {
    let mut s = ClusterState::default();
    apply(
        &mut s,
        Command::RegisterStore {
            store: store("a:1", None),
            now_ms: 10,
        },
    );
    let hb = |now| Command::StoreHeartbeat {
        address: "a:1".into(),
        min_time_ms: 5,
        max_time_ms: 500,
        now_ms: now,
    };
    assert_eq!(apply(&mut s, hb(50)), Response::Ok);
    apply(&mut s, hb(30));
    let e = &s.stores["a:1"];
    assert_eq!(
        (e.last_heartbeat_ms, e.info.min_time_ms, e.info.max_time_ms),
        (50, 5, 500)
    );
    let unknown = Command::StoreHeartbeat {
        address: "z:1".into(),
        min_time_ms: 0,
        max_time_ms: 1,
        now_ms: 60,
    };
    assert_eq!(
        rejected(apply(&mut s, unknown)),
        Rejection::UnknownStore {
            address: "z:1".into()
        }
    );
}

#[test]
fn deregister_removes_and_refuses_unknown() {
    let mut s = ClusterState::default();
    apply(
        &mut s,
        Command::RegisterStore {
            store: store("a:1", None),
            now_ms: 10,
        },
    );
    assert_eq!(
        apply(
            &mut s,
            Command::DeregisterStore {
                address: "a:1".into()
            }
        ),
        Response::Ok
    );
    assert!(s.stores.is_empty());
    let r = rejected(apply(
        &mut s,
        Command::DeregisterStore {
            address: "a:1".into(),
        },
    ));
    assert_eq!(
        r,
        Rejection::UnknownStore {
            address: "a:1".into()
        }
    );
}

#[test]
fn liveness_and_expiry_follow_heartbeat_age_at_command_time() {
    let mut s = ClusterState::default();
    apply(
        &mut s,
        Command::RegisterStore {
            store: store("old:1", None),
            now_ms: 100,
        },
    );
    apply(
        &mut s,
        Command::RegisterStore {
            store: store("new:1", None),
            now_ms: 900,
        },
    );
    let live: Vec<_> = s
        .live_stores(1000, 500)
        .iter()
        .map(|e| e.info.address.clone())
        .collect();
    assert_eq!(live, vec!["new:1"]);
    let r = apply(
        &mut s,
        Command::ExpireStores {
            now_ms: 1000,
            max_age_ms: 500,
        },
    );
    assert_eq!(
        r,
        Response::Expired {
            ids: vec!["old:1".into()]
        }
    );
    assert_eq!(s.stores.keys().collect::<Vec<_>>(), vec!["new:1"]);
}

#[test]
fn create_job_refuses_duplicates() {
    let mut s = with_job("j1");
    assert!(matches!(s.jobs["j1"].state, JobState::Pending));
    let c = Command::CreateJob {
        job_id: "j1".into(),
        kind: "x".into(),
        spec: "".into(),
        now_ms: 6,
    };
    assert_eq!(
        rejected(apply(&mut s, c)),
        Rejection::DuplicateJob {
            job_id: "j1".into()
        }
    );
}

#[test]
fn assign_gives_a_token_with_the_entry_term_and_a_new_attempt() {
    let mut s = with_job("j1");
    let t = assign(&mut s, "j1", 2, 100, 10);
    assert_eq!(
        t,
        FencingToken {
            term: 3,
            job_id: "j1".into(),
            attempt: 1
        }
    );
    let again = Command::AssignJob {
        job_id: "j1".into(),
        node_id: 3,
        lease_expiry_ms: 200,
        now_ms: 50,
    };
    assert!(matches!(
        rejected(apply(&mut s, again)),
        Rejection::JobNotAssignable { .. }
    ));
    // Once the lease has ended the job can go to another node, under a new token.
    let t2 = assign(&mut s, "j1", 3, 300, 150);
    assert_eq!(t2.attempt, 2);
    assert_ne!(t, t2);
}

#[test]
fn assign_refuses_unknown_jobs_and_leases_already_over() {
    let mut s = with_job("j1");
    let c = Command::AssignJob {
        job_id: "nope".into(),
        node_id: 2,
        lease_expiry_ms: 100,
        now_ms: 10,
    };
    assert_eq!(
        rejected(apply(&mut s, c)),
        Rejection::UnknownJob {
            job_id: "nope".into()
        }
    );
    let c = Command::AssignJob {
        job_id: "j1".into(),
        node_id: 2,
        lease_expiry_ms: 10,
        now_ms: 10,
    };
    assert!(matches!(
        rejected(apply(&mut s, c)),
        Rejection::Invalid { .. }
    ));
}

#[test]
fn renew_extends_the_lease_only_with_the_current_token() {
    let mut s = with_job("j1");
    let t = assign(&mut s, "j1", 2, 100, 10);
    let renew = |t: &FencingToken, node, until, now| Command::RenewLease {
        token: t.clone(),
        node_id: node,
        lease_expiry_ms: until,
        now_ms: now,
    };
    assert_eq!(apply(&mut s, renew(&t, 2, 200, 50)), Response::Ok);
    // A delayed, shorter renewal does not cut the lease.
    assert_eq!(apply(&mut s, renew(&t, 2, 150, 60)), Response::Ok);
    assert!(matches!(
        s.jobs["j1"].state,
        JobState::Assigned {
            lease_expiry_ms: 200,
            ..
        }
    ));
    let r = rejected(apply(&mut s, renew(&t, 9, 300, 60)));
    assert_eq!(
        r,
        Rejection::NotAssignee {
            job_id: "j1".into(),
            node_id: 9
        }
    );
    let r = rejected(apply(&mut s, renew(&t, 2, 400, 250)));
    assert!(
        matches!(
            r,
            Rejection::LeaseExpired {
                lease_expiry_ms: 200,
                now_ms: 250,
                ..
            }
        ),
        "{r:?}"
    );
}

#[test]
fn complete_from_a_deposed_assignee_is_rejected_as_stale() {
    let mut s = with_job("j1");
    let old = assign(&mut s, "j1", 2, 100, 10);
    // Node 2 stalls past its lease; the leader expires it and gives the job to node 3.
    assert_eq!(
        apply(&mut s, Command::ExpireLeases { now_ms: 120 }),
        Response::Expired {
            ids: vec!["j1".into()]
        }
    );
    let new = assign(&mut s, "j1", 3, 300, 130);
    let late = Command::CompleteJob {
        token: old.clone(),
        node_id: 2,
        result: "dup".into(),
        now_ms: 140,
    };
    match rejected(apply(&mut s, late)) {
        Rejection::StaleFencingToken {
            presented, current, ..
        } => {
            assert_eq!(presented, old);
            assert_eq!(current, new.to_string());
        }
        other => panic!("expected a stale token, got {other:?}"),
    }
    let ok = Command::CompleteJob {
        token: new.clone(),
        node_id: 3,
        result: "ulid-1".into(),
        now_ms: 150,
    };
    assert_eq!(apply(&mut s, ok), Response::Ok);
    assert_eq!(
        s.jobs["j1"].state,
        JobState::Done {
            node_id: 3,
            token: new.clone(),
            result: "ulid-1".into(),
            completed_at_ms: 150
        }
    );
    // A finished job accepts no second completion, not even with its own token.
    let twice = Command::CompleteJob {
        token: new,
        node_id: 3,
        result: "again".into(),
        now_ms: 160,
    };
    assert!(matches!(
        rejected(apply(&mut s, twice)),
        Rejection::StaleFencingToken { .. }
    ));
}

#[test]
fn complete_after_lease_end_is_rejected_even_with_the_current_token() {
    let mut s = with_job("j1");
    let t = assign(&mut s, "j1", 2, 100, 10);
    let late = Command::CompleteJob {
        token: t,
        node_id: 2,
        result: "r".into(),
        now_ms: 100,
    };
    assert!(matches!(
        rejected(apply(&mut s, late)),
        Rejection::LeaseExpired { .. }
    ));
    assert!(matches!(s.jobs["j1"].state, JobState::Assigned { .. }));
}

#[test]
fn same_job_reassigned_in_the_same_term_fences_the_first_token() {
    let mut s = with_job("j1");
    let first = assign(&mut s, "j1", 2, 100, 10);
    let second = assign(&mut s, "j1", 3, 300, 100);
    assert_eq!(first.term, second.term);
    let c = Command::RenewLease {
        token: first,
        node_id: 2,
        lease_expiry_ms: 400,
        now_ms: 110,
    };
    assert!(matches!(
        rejected(apply(&mut s, c)),
        Rejection::StaleFencingToken { .. }
    ));
}

#[test]
fn expire_leases_leaves_unexpired_and_done_jobs() {
    let mut s = with_job("a");
    for id in ["b", "c"] {
        apply(
            &mut s,
            Command::CreateJob {
                job_id: id.into(),
                kind: "k".into(),
                spec: "".into(),
                now_ms: 1,
            },
        );
    }
    assign(&mut s, "a", 1, 100, 10);
    let tb = assign(&mut s, "b", 1, 1000, 10);
    apply(
        &mut s,
        Command::CompleteJob {
            token: tb,
            node_id: 1,
            result: "r".into(),
            now_ms: 20,
        },
    );
    assign(&mut s, "c", 1, 1000, 10);
    assert_eq!(
        apply(&mut s, Command::ExpireLeases { now_ms: 500 }),
        Response::Expired {
            ids: vec!["a".into()]
        }
    );
    assert!(matches!(s.jobs["b"].state, JobState::Done { .. }));
    assert!(matches!(s.jobs["c"].state, JobState::Assigned { .. }));
}

#[test]
fn delete_job_removes_and_refuses_unknown() {
    let mut s = with_job("j1");
    assert_eq!(
        apply(
            &mut s,
            Command::DeleteJob {
                job_id: "j1".into()
            }
        ),
        Response::Ok
    );
    let r = rejected(apply(
        &mut s,
        Command::DeleteJob {
            job_id: "j1".into(),
        },
    ));
    assert_eq!(
        r,
        Rejection::UnknownJob {
            job_id: "j1".into()
        }
    );
}

#[test]
fn unknown_command_from_a_newer_node_decodes_and_is_refused_without_change() {
    let json = r#"{"version":2,"command":{"type":"assign_rule_group","group":"g","node_id":1}}"#;
    let req: Request = serde_json::from_str(json).expect("an unknown command still decodes");
    assert_eq!(req.command, Command::Unknown);
    assert!(!req.is_supported());
    let mut s = with_job("j1");
    let before = s.clone();
    let r = rejected(s.apply(4, &req));
    assert_eq!(
        r,
        Rejection::UnsupportedCommand {
            command: "unknown".into(),
            needed: 2,
            supported: 1
        }
    );
    assert_eq!(s, before);
}

#[test]
fn known_command_with_a_newer_version_is_refused() {
    let mut req = Request::new(Command::DeleteJob {
        job_id: "j1".into(),
    });
    req.version = 7;
    let mut s = with_job("j1");
    let r = rejected(s.apply(4, &req));
    assert!(
        r.to_string()
            .contains("needs state version 7, this node applies up to 1"),
        "{r}"
    );
    assert!(s.jobs.contains_key("j1"));
}

#[test]
fn apply_is_deterministic_for_the_same_command_sequence() {
    let cmds = [
        Command::AddMember { member: member(1) },
        Command::RegisterStore {
            store: store("a:1", Some(1)),
            now_ms: 10,
        },
        Command::CreateJob {
            job_id: "j".into(),
            kind: "k".into(),
            spec: "".into(),
            now_ms: 11,
        },
        Command::AssignJob {
            job_id: "j".into(),
            node_id: 1,
            lease_expiry_ms: 50,
            now_ms: 12,
        },
        Command::ExpireLeases { now_ms: 60 },
        Command::ExpireStores {
            now_ms: 1000,
            max_age_ms: 100,
        },
    ];
    let run = || {
        let mut s = ClusterState::default();
        let rs: Vec<_> = cmds
            .iter()
            .map(|c| s.apply(2, &Request::new(c.clone())))
            .collect();
        (s, rs)
    };
    assert_eq!(run(), run());
}

#[test]
fn state_round_trips_through_json() {
    let mut s = with_job("j1");
    apply(&mut s, Command::AddMember { member: member(1) });
    apply(
        &mut s,
        Command::RegisterStore {
            store: store("a:1", Some(1)),
            now_ms: 10,
        },
    );
    assign(&mut s, "j1", 1, 100, 10);
    let json = serde_json::to_vec(&s).expect("serializes");
    let back: ClusterState = serde_json::from_slice(&json).expect("deserializes");
    assert_eq!(back, s);
}

#[test]
fn member_from_a_newer_binary_with_an_unknown_role_decodes_and_keeps_it() {
    let json = r#"{"node_id":7,"grpc_address":"10.0.0.7:10901","http_address":"10.0.0.7:10902",
        "roles":["store","receive"],"software_version":"9.0.0","protocol_version":1,
        "joined_at_ms":5}"#;
    let m: Member = serde_json::from_str(json).expect("decodes");
    assert_eq!(
        m.roles,
        [Role::Store, Role::Unknown("receive".into())].into()
    );
    let again = serde_json::to_value(&m).expect("encodes");
    assert_eq!(again["roles"], serde_json::json!(["store", "receive"]));
}

#[test]
fn a_lapsed_lease_is_remembered_in_the_job_with_its_holder() {
    let mut s = with_job("a");
    assign(&mut s, "a", 2, 100, 10);
    // Re-assigned straight after the lapse: node 2 is recorded.
    assign(&mut s, "a", 3, 300, 150);
    assert_eq!(
        s.jobs["a"].lapses,
        vec![Lapse {
            node_id: 2,
            at_ms: 100
        }]
    );
    // Expired by the leader's sweep: node 3 is recorded too.
    apply(&mut s, Command::ExpireLeases { now_ms: 400 });
    let nodes: Vec<NodeId> = s.jobs["a"].lapses.iter().map(|l| l.node_id).collect();
    assert_eq!(nodes, vec![2, 3]);
    // Bounded: only the newest are kept.
    for i in 0..(MAX_LAPSES as i64 + 3) {
        let at = 1000 + i * 100;
        assign(&mut s, "a", 4, at + 50, at);
        apply(&mut s, Command::ExpireLeases { now_ms: at + 60 });
    }
    assert_eq!(s.jobs["a"].lapses.len(), MAX_LAPSES);
    // The state round-trips through a snapshot's JSON with its lapses.
    let json = serde_json::to_string(&s).expect("encode");
    let back: ClusterState = serde_json::from_str(&json).expect("decode");
    assert_eq!(back, s);
}
