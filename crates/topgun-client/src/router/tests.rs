//! Routing tests: server messages in, outcomes and actions out, no sockets.

use super::*;
use topgun_protocol::{AuthFailReason, RejectCode, WireLwwRecord, WireNodeId, WireTimestamp};

fn ts(millis: u64) -> WireTimestamp {
    WireTimestamp {
        millis,
        counter: 0,
        node: WireNodeId(9),
    }
}

fn ack(op_id: u64, millis: u64) -> OpAckEntry {
    OpAckEntry {
        op_id,
        timestamp: ts(millis),
    }
}

fn reject(op_id: u64) -> OpRejection {
    OpRejection {
        op_id,
        code: RejectCode::Forbidden,
        message: format!("op {op_id} denied"),
    }
}

/// Routes `msg` and returns the actions.
fn route(r: &mut Router, msg: ServerMessage) -> Vec<Action> {
    let mut out = Vec::new();
    r.handle(msg, 10, Instant::now(), &mut out);
    out
}

fn info(code: u16) -> CloseInfo {
    CloseInfo {
        code: Some(code),
        reason: "bye".to_owned(),
        initiator: crate::error::CloseInitiator::Server,
    }
}

fn record() -> WireLwwRecord {
    WireLwwRecord {
        value: topgun_protocol::RecordValue::Tombstone,
        timestamp: ts(5),
        ttl_ms: None,
    }
}

#[test]
fn a_batch_answered_across_ack_and_reject_resolves_per_op_in_order() {
    let mut r = Router::new();
    let (_, mut rx) = r.register_batch(vec![10, 11, 12, 13]).unwrap();
    let actions = route(
        &mut r,
        ServerMessage::OpAck {
            acks: vec![ack(13, 7), ack(10, 9)],
        },
    );
    assert_eq!(
        actions,
        vec![Action::Observe(Timestamp::from(ts(9)))],
        "the clock follows the latest ack"
    );
    assert!(rx.try_recv().is_err(), "two ops still unanswered");
    route(
        &mut r,
        ServerMessage::OpRejected {
            rejections: vec![reject(11), reject(12)],
        },
    );
    let outcomes = rx.try_recv().unwrap().unwrap();
    let kinds: Vec<_> = outcomes.iter().map(OpOutcome::is_acked).collect();
    assert_eq!(kinds, [true, false, false, true]);
    assert_eq!(
        outcomes[0],
        OpOutcome::Acked {
            timestamp: ts(9).into()
        }
    );
    assert_eq!(r.pending(), 0);
}

#[test]
fn duplicate_op_ids_are_refused_and_unknown_answers_ignored() {
    let mut r = Router::new();
    let (batch, _rx) = r.register_batch(vec![1, 2]).unwrap();
    assert!(matches!(
        r.register_batch(vec![2]),
        Err(ClientError::DuplicateOpId(2))
    ));
    assert!(matches!(
        r.register_batch(vec![5, 5]),
        Err(ClientError::DuplicateOpId(5))
    ));
    // An answer for an id nobody awaits changes nothing.
    route(
        &mut r,
        ServerMessage::OpAck {
            acks: vec![ack(99, 1)],
        },
    );
    assert_eq!(r.pending(), 1);
    r.cancel_batch(batch);
    assert_eq!(r.pending(), 0);
    // The ids are free again.
    assert!(r.register_batch(vec![1, 2]).is_ok());
}

#[test]
fn close_fails_everything_pending_with_the_close_code() {
    let mut r = Router::new();
    let (_, mut batch) = r.register_batch(vec![1]).unwrap();
    let mut ping = r.register_ping(1, Instant::now()).unwrap();
    let end = Arc::new(OnceLock::new());
    let (tx, _updates) = mpsc::channel(4);
    let mut initial = r.register_query(3, tx, end.clone()).unwrap();
    let key: SyncKey = ("m".to_owned(), WireMapKind::Lww);
    r.begin_sync(&key).unwrap();
    let mut step = r.register_sync_step(key.clone()).unwrap();

    let closed = r.close(info(4001));
    assert_eq!(closed.code, Some(4001));
    let is_4001 = |e: ClientError| {
        matches!(
            e,
            ClientError::Disconnected {
                code: Some(4001),
                ..
            }
        )
    };
    assert!(is_4001(batch.try_recv().unwrap().unwrap_err()));
    assert!(is_4001(ping.try_recv().unwrap().unwrap_err()));
    assert!(is_4001(initial.try_recv().unwrap().unwrap_err()));
    assert!(is_4001(step.try_recv().unwrap().unwrap_err()));
    assert!(matches!(
        end.get(),
        Some(SubscriptionEnd::Disconnected {
            code: Some(4001),
            ..
        })
    ));
    assert_eq!(r.pending(), 0);

    // Later registrations fail at once; the first close is kept.
    assert!(is_4001(r.register_batch(vec![7]).unwrap_err()));
    assert!(is_4001(r.register_ping(2, Instant::now()).unwrap_err()));
    assert_eq!(r.close(info(1000)).code, Some(4001));
}

#[test]
fn pong_resolves_its_ping_with_the_round_trip() {
    let mut r = Router::new();
    let sent = Instant::now();
    let mut rx = r.register_ping(42, sent).unwrap();
    let mut out = Vec::new();
    r.handle(
        ServerMessage::Pong { nonce: 41 },
        4,
        sent + Duration::from_millis(3),
        &mut out,
    );
    assert!(rx.try_recv().is_err(), "another nonce");
    r.handle(
        ServerMessage::Pong { nonce: 42 },
        4,
        sent + Duration::from_millis(5),
        &mut out,
    );
    assert_eq!(rx.try_recv().unwrap().unwrap(), Duration::from_millis(5));
}

#[test]
fn server_requests_become_actions() {
    let cases: Vec<(ServerMessage, Vec<Action>)> = vec![
        (
            ServerMessage::Ping { nonce: 7 },
            vec![Action::Send(ClientMessage::Pong { nonce: 7 })],
        ),
        (
            ServerMessage::AuthRequired {
                min_version: 1,
                max_version: 1,
                reason: AuthRequiredReason::SessionExpiring { expires_at_ms: 99 },
            },
            vec![Action::Renew {
                min_version: 1,
                max_version: 1,
                reason: AuthRequiredReason::SessionExpiring { expires_at_ms: 99 },
            }],
        ),
        (
            ServerMessage::AuthFail {
                reason: AuthFailReason::Expired,
                message: "late".to_owned(),
            },
            vec![Action::Event(ClientEvent::RenewalFailed {
                reason: AuthFailReason::Expired,
                message: "late".to_owned(),
            })],
        ),
        (
            ServerMessage::Error {
                code: ErrorCode::SlowConsumer,
                message: "resync".to_owned(),
                context: None,
            },
            vec![Action::Event(ClientEvent::ServerError {
                code: ErrorCode::SlowConsumer,
                message: "resync".to_owned(),
                context: None,
            })],
        ),
    ];
    for (msg, expected) in cases {
        let name = format!("{msg:?}");
        assert_eq!(route(&mut Router::new(), msg), expected, "{name}");
    }
    let session = SessionInfo {
        sub: "alice".to_owned(),
        protocol_version: 1,
        expires_at_ms: Some(5),
    };
    assert_eq!(
        route(
            &mut Router::new(),
            ServerMessage::AuthAck {
                protocol_version: 1,
                sub: "alice".to_owned(),
                session_expires_at_ms: Some(5),
            }
        ),
        vec![
            Action::Session(session.clone()),
            Action::Event(ClientEvent::SessionRenewed(session))
        ]
    );
}

#[test]
fn errors_without_a_context_refuse_the_oldest_request_they_can_answer() {
    let mut r = Router::new();
    let key: SyncKey = ("m".to_owned(), WireMapKind::Or);
    let mut step = r.register_sync_step(key).unwrap();
    let end = Arc::new(OnceLock::new());
    let (tx, _updates) = mpsc::channel(4);
    let mut initial = r.register_query(1, tx, end.clone()).unwrap();

    // UnknownQuery only answers subscriptions: the sync is older but untouched.
    route(
        &mut r,
        ServerMessage::Error {
            code: ErrorCode::UnknownQuery,
            message: "reused".to_owned(),
            context: None,
        },
    );
    assert!(matches!(
        initial.try_recv().unwrap(),
        Err(ClientError::Server {
            code: ErrorCode::UnknownQuery,
            ..
        })
    ));
    assert!(matches!(end.get(), Some(SubscriptionEnd::Refused { .. })));
    assert!(step.try_recv().is_err());

    // Forbidden answers whatever is oldest.
    route(
        &mut r,
        ServerMessage::Error {
            code: ErrorCode::Forbidden,
            message: "no read".to_owned(),
            context: None,
        },
    );
    assert!(matches!(
        step.try_recv().unwrap(),
        Err(ClientError::Server {
            code: ErrorCode::Forbidden,
            ..
        })
    ));
    assert_eq!(r.pending(), 0);
}

#[test]
fn errors_with_a_context_refuse_exactly_the_request_they_name() {
    // Pending, oldest first: query 1, sync (m, Lww), query 2, sync (m, Or).
    // Each row: the error's context, then which of the four it fails.
    let lww: SyncKey = ("m".to_owned(), WireMapKind::Lww);
    let or: SyncKey = ("m".to_owned(), WireMapKind::Or);
    let sync = |key: &SyncKey| {
        Some(ErrorContext::Sync {
            map: key.0.clone(),
            kind: key.1,
        })
    };
    let cases: Vec<(Option<ErrorContext>, [bool; 4])> = vec![
        (
            Some(ErrorContext::Query { query_id: 2 }),
            [false, false, true, false],
        ),
        (sync(&or), [false, false, false, true]),
        (sync(&lww), [false, true, false, false]),
        // Nothing pending has that id or map: nothing fails (the old
        // guess would have failed query 1).
        (Some(ErrorContext::Query { query_id: 9 }), [false; 4]),
        (
            Some(ErrorContext::Sync {
                map: "other".to_owned(),
                kind: WireMapKind::Lww,
            }),
            [false; 4],
        ),
        // No context: the fallback picks the oldest.
        (None, [true, false, false, false]),
    ];
    for (context, expected) in cases {
        let mut r = Router::new();
        let (tx, _u1) = mpsc::channel(4);
        let mut q1 = r.register_query(1, tx, Arc::new(OnceLock::new())).unwrap();
        let mut s1 = r.register_sync_step(lww.clone()).unwrap();
        let (tx, _u2) = mpsc::channel(4);
        let end2 = Arc::new(OnceLock::new());
        let mut q2 = r.register_query(2, tx, end2.clone()).unwrap();
        let mut s2 = r.register_sync_step(or.clone()).unwrap();
        let actions = route(
            &mut r,
            ServerMessage::Error {
                code: ErrorCode::Forbidden,
                message: "denied".to_owned(),
                context: context.clone(),
            },
        );
        assert_eq!(
            actions,
            vec![Action::Event(ClientEvent::ServerError {
                code: ErrorCode::Forbidden,
                message: "denied".to_owned(),
                context: context.clone(),
            })],
            "{context:?}: the event carries the context"
        );
        let failed = [
            q1.try_recv().is_ok_and(|r| r.is_err()),
            s1.try_recv().is_ok_and(|r| r.is_err()),
            q2.try_recv().is_ok_and(|r| r.is_err()),
            s2.try_recv().is_ok_and(|r| r.is_err()),
        ];
        assert_eq!(failed, expected, "{context:?}");
        let still = expected.iter().filter(|f| !**f).count();
        assert_eq!(r.pending(), still, "{context:?}: the rest stays pending");
        if expected[2] {
            assert!(matches!(end2.get(), Some(SubscriptionEnd::Refused { .. })));
        }
    }
}

#[test]
fn subscription_results_and_updates_reach_the_subscriber() {
    let mut r = Router::new();
    let end = Arc::new(OnceLock::new());
    let (tx, mut updates) = mpsc::channel(1);
    let mut initial = r.register_query(4, tx, end.clone()).unwrap();
    route(
        &mut r,
        ServerMessage::QueryResp {
            query_id: 4,
            records: vec![QueryRecord {
                key: "a".to_owned(),
                record: record(),
            }],
        },
    );
    let got = initial.try_recv().unwrap().unwrap();
    assert_eq!(got[0].0, "a");
    assert!(got[0].1.is_tombstone());

    let update = |key: &str| ServerMessage::QueryUpdate {
        query_id: 4,
        change: topgun_protocol::ChangeKind::Leave,
        key: key.to_owned(),
        record: record(),
    };
    assert!(route(&mut r, update("b")).is_empty());
    assert_eq!(updates.try_recv().unwrap().key, "b");

    // A reader that falls behind its buffer ends the subscription.
    assert!(route(&mut r, update("c")).is_empty());
    assert_eq!(
        route(&mut r, update("d")),
        vec![
            Action::Send(ClientMessage::QueryUnsub { query_id: 4 }),
            Action::Event(ClientEvent::SubscriptionLagged { query_id: 4 })
        ]
    );
    assert_eq!(end.get(), Some(&SubscriptionEnd::Lagged));
    assert_eq!(updates.try_recv().unwrap().key, "c");
    assert!(updates.try_recv().is_err(), "the sender is gone");
    // Later updates for the query are ignored.
    assert!(route(&mut r, update("e")).is_empty());
}

#[test]
fn a_result_nobody_awaits_is_unsubscribed() {
    let mut r = Router::new();
    let (tx, _updates) = mpsc::channel(1);
    let initial = r.register_query(8, tx, Arc::new(OnceLock::new())).unwrap();
    drop(initial);
    assert_eq!(
        route(
            &mut r,
            ServerMessage::QueryResp {
                query_id: 8,
                records: vec![]
            }
        ),
        vec![Action::Send(ClientMessage::QueryUnsub { query_id: 8 })]
    );
    assert_eq!(r.pending(), 0);
}

#[test]
fn sync_answers_route_by_map_and_kind() {
    let mut r = Router::new();
    let lww: SyncKey = ("m".to_owned(), WireMapKind::Lww);
    r.begin_sync(&lww).unwrap();
    assert!(matches!(
        r.begin_sync(&lww),
        Err(ClientError::SyncInProgress { .. })
    ));
    let mut step = r.register_sync_step(lww.clone()).unwrap();
    // The OR map of the same name is another exchange.
    route(
        &mut r,
        ServerMessage::SyncRespRoot {
            map: "m".to_owned(),
            kind: WireMapKind::Or,
            root: topgun_protocol::Hash64(1),
        },
    );
    assert!(step.try_recv().is_err());
    let mut out = Vec::new();
    r.handle(
        ServerMessage::SyncRespRoot {
            map: "m".to_owned(),
            kind: WireMapKind::Lww,
            root: topgun_protocol::Hash64(2),
        },
        17,
        Instant::now(),
        &mut out,
    );
    let reply = step.try_recv().unwrap().unwrap();
    assert_eq!(reply.bytes, 17);
    r.end_sync(&lww);
    assert!(r.begin_sync(&lww).is_ok());
}

#[test]
fn a_split_leaf_answer_keeps_its_step_pending_until_the_last_part() {
    let mut r = Router::new();
    let key: SyncKey = ("m".to_owned(), WireMapKind::Lww);
    let mut parts = r.register_sync_step(key.clone()).unwrap();
    let part = |last| ServerMessage::SyncRespLeaf {
        map: "m".to_owned(),
        records: topgun_protocol::LeafRecords::Lww(vec![]),
        wanted_keys: vec![],
        last,
    };
    for i in 0..2 {
        assert!(route(&mut r, part(false)).is_empty());
        let got = parts.try_recv().unwrap().unwrap();
        assert!(
            matches!(got.msg, ServerMessage::SyncRespLeaf { last: false, .. }),
            "part {i}"
        );
        assert_eq!(r.pending(), 1, "the step awaits the rest");
    }
    route(&mut r, part(true));
    assert!(matches!(
        parts.try_recv().unwrap().unwrap().msg,
        ServerMessage::SyncRespLeaf { last: true, .. }
    ));
    assert_eq!(r.pending(), 0, "the last part ends the step");
    assert!(
        parts.try_recv().is_err(),
        "nothing more, and the sender is gone"
    );
    // A stray part after the end reaches nobody.
    route(&mut r, part(false));
    assert_eq!(r.pending(), 0);

    // A step whose driver gave up is dropped at its next part.
    let parts = r.register_sync_step(key.clone()).unwrap();
    drop(parts);
    route(&mut r, part(false));
    assert_eq!(r.pending(), 0);

    // The connection ending in the middle of an answer fails the step.
    let mut parts = r.register_sync_step(key).unwrap();
    route(&mut r, part(false));
    r.close(info(1001));
    assert!(parts.try_recv().unwrap().is_ok());
    assert!(matches!(
        parts.try_recv().unwrap(),
        Err(ClientError::Disconnected { .. })
    ));
}
