//! Retention against a real SQLite ledger: disposition removes only expired payloads, never
//! held records or records younger than the floor, needs a second person, and leaves the
//! chain verifying.

use bytes::Bytes;
use chrono::{Duration, TimeZone, Utc};
use prost::Message;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use trace_archive::config::{ArchiveConfig, RetentionSchedule, RetentionTrigger};
use trace_archive::dispositions::Dispositions;
use trace_archive::entity::ledger_entry;
use trace_archive::ledger::{Incoming, append_batch};
use trace_archive::migration::Migrator;
use trace_proto::archive::v1::HoldScope;
use trace_proto::event::v1::{Actor, Envelope};
use trace_runtime::clock::ManualClock;
use trace_runtime::context::{CallContext, Principal};
use trace_runtime::outbox::Outbox;

fn envelope(entity_type: &str, entity_id: &str, version: u64, occurred_at: i64) -> Envelope {
    Envelope {
        event_id: uuid::Uuid::now_v7().to_string(),
        subject: format!("trace.{entity_type}.{entity_type}.read"),
        occurred_at: Some(trace_runtime::clock::timestamp(occurred_at)),
        actor: Some(Actor {
            user_id: "zhang.min".to_owned(),
            ..Actor::default()
        }),
        source_service: entity_type.to_owned(),
        entity_type: entity_type.to_owned(),
        entity_id: entity_id.to_owned(),
        entity_version: version,
        action: "read".to_owned(),
        confidentiality: 2,
        ..Envelope::default()
    }
}

fn caller(user_id: &str) -> CallContext {
    let mut context = CallContext::system("archive");
    context.principal = Principal {
        user_id: user_id.to_owned(),
        display_name: user_id.to_owned(),
        department: "admin-office".to_owned(),
        roles: vec!["administration".to_owned()],
    };
    context
}

#[tokio::test]
async fn disposition_spares_held_and_young_records() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("archive.db").display()
    );
    let db = trace_runtime::db::connect_and_migrate::<Migrator>(&url)
        .await
        .unwrap();
    let now = Utc.with_ymd_and_hms(2026, 12, 4, 8, 0, 0).unwrap();
    let two_years_ago = (now - Duration::days(730)).timestamp_micros();
    let last_month = (now - Duration::days(30)).timestamp_micros();

    let envelopes = [
        envelope("document", "old", 1, two_years_ago),
        envelope("document", "old", 2, two_years_ago + 1),
        envelope("document", "held", 1, two_years_ago),
        envelope("document", "young", 1, last_month),
        envelope("meeting", "unscheduled", 1, two_years_ago),
    ];
    let batch: Vec<Incoming> = envelopes
        .iter()
        .enumerate()
        .map(|(index, envelope)| Incoming {
            stream_sequence: index as u64 + 1,
            subject: envelope.subject.clone(),
            raw: Bytes::from(envelope.encode_to_vec()),
            previous_event_id: None,
        })
        .collect();
    append_batch(&db, now.timestamp_micros(), &batch)
        .await
        .unwrap();

    let mut config = ArchiveConfig::default();
    config.archive.retention = vec![RetentionSchedule {
        name: "documents-1y".to_owned(),
        entity_type: "document".to_owned(),
        confidentiality: None,
        period_months: 12,
        trigger: RetentionTrigger::Creation,
        trigger_actions: Vec::new(),
    }];
    config.validate().unwrap();
    let clock = ManualClock::new(now);
    let dispositions = Dispositions {
        db: db.clone(),
        settings: config.archive.clone(),
        zone: chrono_tz::Asia::Shanghai,
        clock: clock.clone(),
        outbox: Outbox::new(db.clone(), clock.clone(), 512 * 1024),
        jobs: trace_archive::jobs::JobBoard::default(),
    };

    let scope = HoldScope {
        entity_type: "document".to_owned(),
        entity_id: "held".to_owned(),
        ..HoldScope::default()
    };
    let hold = dispositions
        .place_hold(&caller("li.na"), Some(&scope), "audit case 2026-17")
        .await
        .unwrap();
    let plan = dispositions.plan(&caller("li.na")).await.unwrap();
    let planned: Vec<&str> = plan
        .items
        .iter()
        .map(|item| item.entity_id.as_str())
        .collect();
    assert_eq!(
        planned,
        ["old", "old"],
        "only the expired, unheld document is due"
    );
    assert_eq!(plan.held.len(), 1, "the held document is listed apart");
    assert_eq!(plan.held[0].entity_id, "held");
    assert_eq!(plan.held[0].hold_ids, vec![hold.hold_id]);

    let same_person = dispositions
        .approve(&caller("li.na"), &plan.plan_id)
        .await
        .unwrap_err();
    assert_eq!(same_person.code(), tonic::Code::PermissionDenied);

    let result = dispositions
        .approve(&caller("zhao.yun"), &plan.plan_id)
        .await
        .unwrap();
    assert_eq!(result.disposed, 2);
    assert!(result.certificate_json.contains("documents-1y"));
    assert!(result.certificate_json.contains("zhao.yun"));

    let remaining = ledger_entry::Entity::find()
        .filter(ledger_entry::Column::Payload.is_not_null())
        .count(&db)
        .await
        .unwrap();
    assert_eq!(remaining, 3, "held, young and unscheduled payloads stay");
    let verification = trace_archive::verify::verify_range(&db, 1, 0)
        .await
        .unwrap();
    assert!(verification.ok(), "{verification:?}");

    let again = dispositions
        .approve(&caller("zhao.yun"), &plan.plan_id)
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::FailedPrecondition);
    assert!(again.to_string().contains("EXECUTED"));
}

#[test]
fn schedule_below_the_floor_is_rejected() {
    let mut config = ArchiveConfig::default();
    config.archive.retention = vec![RetentionSchedule {
        name: "too-short".to_owned(),
        entity_type: "*".to_owned(),
        confidentiality: None,
        period_months: 3,
        trigger: RetentionTrigger::Creation,
        trigger_actions: Vec::new(),
    }];
    let error = config.validate().unwrap_err().to_string();
    assert!(error.contains("undercuts the floor"), "{error}");

    let mut config = ArchiveConfig::default();
    config.archive.retention_floor_months = 5;
    assert!(config.validate().is_err());
}
