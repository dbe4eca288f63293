//! Confidentiality levels of inspection reports against a real database and a real
//! `nats-server`: the level stored, returned and taken from the findings, the rejected levels,
//! sealed report events, the report text sealed at rest, and reports stored before the level.

// The support module serves several test crates; this one uses only part of it.
#[allow(dead_code)]
mod support;

use std::path::PathBuf;

use tonic::Code;
use trace_proto::common::v1::Confidentiality;
use trace_proto::event::v1::Envelope;
use trace_proto::inspection::v1 as proto;
use trace_tests::scan::files_containing;

use support::{NatsServer, Service, call, opened, test_on_both_databases};

/// Head of the administration department, who drafts and reviews the reports.
const ADMIN: (&str, &str, &[&str]) = ("li.na", "admin-office", &["administration"]);
/// Another member of the administration, who distributes reports without drafting them.
const CLERK: (&str, &str, &[&str]) = ("zhou.min", "admin-office", &["administration"]);

/// Drafts the report of `inspection_id` at `level` with `marker` in its text.
async fn draft(
    service: &mut Service,
    inspection_id: &str,
    level: Confidentiality,
    marker: &str,
) -> Result<proto::Report, tonic::Status> {
    let draft = proto::DraftReportRequest {
        inspection_id: inspection_id.to_owned(),
        findings_summary: format!("Summary {marker}"),
        suggestions: format!("Suggestions {marker}"),
        confidentiality: level as i32,
    };
    let request = call(draft, ADMIN.0, ADMIN.1, ADMIN.2);
    let response = service.client.draft_report(request).await?;
    Ok(response.into_inner().report.unwrap())
}

/// Returns the stored level of the report of `inspection_id`.
async fn stored_level(service: &Service, inspection_id: &str) -> i64 {
    let sql = format!(
        "SELECT CAST(report_confidentiality AS BIGINT) AS n FROM inspections WHERE id = '{inspection_id}'"
    );
    service.count(&sql).await
}

/// Returns the envelopes of the inspection's events with `action`, in outbox order.
async fn report_events(service: &Service, inspection_id: &str, action: &str) -> Vec<Envelope> {
    let subject = format!("trace.inspection.inspection.{action}");
    service.outbox_events(&subject, inspection_id).await
}

/// Walks through the default, the accepted and the rejected levels of one report.
async fn level_case(service: &mut Service) {
    let inspection_id = service.spot_check(ADMIN).await;

    // Without findings the level defaults to INTERNAL, and the event is not sealed.
    let report = draft(service, &inspection_id, Confidentiality::Unspecified, "a")
        .await
        .unwrap();
    assert_eq!(report.confidentiality, Confidentiality::Internal as i32);
    assert_eq!(
        stored_level(service, &inspection_id).await,
        Confidentiality::Internal as i64
    );
    let drafted = report_events(service, &inspection_id, "report_drafted").await;
    assert_eq!(drafted.len(), 1);
    assert_eq!(drafted[0].confidentiality, Confidentiality::Internal as i32);
    assert!(drafted[0].payload.is_some());

    // A CONFIDENTIAL finding raises the default and the lowest accepted level.
    service
        .record_finding(
            ADMIN,
            &inspection_id,
            Confidentiality::Internal,
            "Reviews missing",
        )
        .await;
    service
        .record_finding(
            ADMIN,
            &inspection_id,
            Confidentiality::Confidential,
            "Reviews missing",
        )
        .await;
    let report = draft(service, &inspection_id, Confidentiality::Unspecified, "b")
        .await
        .unwrap();
    assert_eq!(report.confidentiality, Confidentiality::Confidential as i32);
    assert_eq!(report.findings_summary, "Summary b");
    assert_eq!(
        stored_level(service, &inspection_id).await,
        Confidentiality::Confidential as i64
    );
    let drafted = report_events(service, &inspection_id, "report_drafted").await;
    assert_eq!(drafted.len(), 2);
    assert_eq!(
        drafted[1].confidentiality,
        Confidentiality::Confidential as i32
    );
    let payload: proto::ReportDrafted = opened(&drafted[1]);
    assert_eq!(payload.findings_summary, "Summary b");
    assert_eq!(payload.suggestions, "Suggestions b");

    for low in [Confidentiality::Public, Confidentiality::Internal] {
        let status = draft(service, &inspection_id, low, "c").await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().contains("confidentiality"),
            "{}",
            status.message()
        );
        assert!(
            status.message().contains(low.as_str_name()),
            "{}",
            status.message()
        );
        assert!(
            status.message().contains("CONFIDENTIALITY_CONFIDENTIAL"),
            "{}",
            status.message()
        );
    }
    assert_eq!(
        report_events(service, &inspection_id, "report_drafted")
            .await
            .len(),
        2,
        "a rejected draft stages no event"
    );

    // A level above the findings is kept, and the review opinion and its event follow it.
    let report = draft(service, &inspection_id, Confidentiality::Secret, "d")
        .await
        .unwrap();
    assert_eq!(report.confidentiality, Confidentiality::Secret as i32);
    let review = proto::ReviewReportRequest {
        inspection_id: inspection_id.clone(),
        decision: proto::ReviewDecision::Approve as i32,
        opinion: "Opinion d".to_owned(),
    };
    let request = call(review, ADMIN.0, ADMIN.1, ADMIN.2);
    let reviewed = service.client.review_report(request).await.unwrap();
    let reviewed = reviewed.into_inner().report.unwrap();
    assert_eq!(reviewed.confidentiality, Confidentiality::Secret as i32);
    assert_eq!(reviewed.findings_summary, "Summary d");
    assert_eq!(reviewed.review_opinion, "Opinion d");
    let events = report_events(service, &inspection_id, "report_reviewed").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].confidentiality, Confidentiality::Secret as i32);
    let payload: proto::ReportReviewed = opened(&events[0]);
    assert_eq!(payload.opinion, "Opinion d");

    // The drafter gets the text back from DistributeReport, another clerk does not.
    let distribute = proto::DistributeReportRequest {
        inspection_id: inspection_id.clone(),
        departments: vec!["engineering".to_owned()],
    };
    let request = call(distribute, ADMIN.0, ADMIN.1, ADMIN.2);
    let distributed = service.client.distribute_report(request).await.unwrap();
    let distributed = distributed.into_inner().report.unwrap();
    assert_eq!(distributed.confidentiality, Confidentiality::Secret as i32);
    assert_eq!(distributed.suggestions, "Suggestions d");
    assert_eq!(distributed.review_opinion, "Opinion d");
    assert!(!distributed.content_withheld);
    let events = report_events(service, &inspection_id, "report_distributed").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].confidentiality, Confidentiality::Secret as i32);

    let distribute = proto::DistributeReportRequest {
        inspection_id: inspection_id.clone(),
        departments: vec!["records".to_owned()],
    };
    let request = call(distribute, CLERK.0, CLERK.1, CLERK.2);
    let withheld = service.client.distribute_report(request).await.unwrap();
    let withheld = withheld.into_inner().report.unwrap();
    assert!(withheld.content_withheld);
    assert_eq!(withheld.findings_summary, "");
    assert_eq!(withheld.suggestions, "");
    assert_eq!(withheld.review_opinion, "");
    assert_eq!(withheld.distributed_to, ["engineering", "records"]);
    assert_eq!(withheld.drafted_by, ADMIN.0);
}

test_on_both_databases!(
    report_levels_on_sqlite,
    report_levels_on_postgres,
    level_case
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confidential_report_is_sealed_at_rest() {
    let nats = NatsServer::start();
    let mut service = Service::start(&nats, None).await;

    let reports = [
        (Confidentiality::Confidential, "marker-7a3e 保密报告"),
        (Confidentiality::Internal, "internal-report-marker-41c9"),
    ];
    for (level, marker) in reports {
        let inspection_id = service.spot_check(ADMIN).await;
        let report = draft(&mut service, &inspection_id, level, marker)
            .await
            .unwrap();
        assert_eq!(report.confidentiality, level as i32);
        let review = proto::ReviewReportRequest {
            inspection_id: inspection_id.clone(),
            decision: proto::ReviewDecision::Return as i32,
            opinion: format!("Opinion {marker}"),
        };
        let request = call(review, ADMIN.0, ADMIN.1, ADMIN.2);
        let reviewed = service.client.review_report(request).await.unwrap();
        let reviewed = reviewed.into_inner().report.unwrap();
        assert_eq!(reviewed.findings_summary, format!("Summary {marker}"));
        assert_eq!(reviewed.suggestions, format!("Suggestions {marker}"));
        assert_eq!(reviewed.review_opinion, format!("Opinion {marker}"));
    }
    let unpublished = "SELECT COUNT(*) AS n FROM outbox WHERE published_at IS NULL";
    let started = std::time::Instant::now();
    while service.count(unpublished).await > 0 {
        assert!(
            started.elapsed() < support::DEADLINE,
            "events not published"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // No database or broker file contains the CONFIDENTIAL report's text. The INTERNAL
    // report's text is stored as it is, which shows that the scan reads those files.
    let data = service.folder().to_path_buf();
    let confidential = reports[0].1;
    assert_eq!(
        files_containing(&data, confidential.as_bytes()).unwrap(),
        Vec::<PathBuf>::new()
    );
    assert_eq!(
        files_containing(nats.store(), confidential.as_bytes()).unwrap(),
        Vec::<PathBuf>::new()
    );
    let internal = files_containing(&data, reports[1].1.as_bytes()).unwrap();
    assert!(
        internal
            .iter()
            .any(|path| path.to_string_lossy().contains("inspection.db")),
        "{internal:?}"
    );
    let broker = files_containing(nats.store(), reports[1].1.as_bytes()).unwrap();
    assert!(
        !broker.is_empty(),
        "the internal report's events reach the broker"
    );
    service.stop().await;
}

#[tokio::test]
async fn stored_reports_become_internal() {
    use sea_orm::{ConnectionTrait, Statement};
    use sea_orm_migration::MigratorTrait;

    let folder = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        folder.path().join("inspection.db").display()
    );
    let db = trace_runtime::db::connect(&url).await.unwrap();
    // The tables as the first five migrations made them before the report level existed.
    trace_inspection::Migrator::up(&db, Some(5)).await.unwrap();
    for statement in [
        "ALTER TABLE inspections DROP COLUMN report_confidentiality",
        "INSERT INTO inspections (id, kind, departments, processes, record_ids, ordered_by, \
         opened_at, report_state, findings_summary, suggestions, entity_version) VALUES \
         ('0193a000-0000-7000-8000-000000000002', 'SPOT_CHECK', '[]', '[]', '[]', 'li.na', 0, \
         'DRAFT', 'Old summary', 'Old suggestions', 2)",
    ] {
        let statement = Statement::from_string(db.get_database_backend(), statement.to_owned());
        db.execute_raw(statement).await.unwrap();
    }

    trace_inspection::Migrator::up(&db, None).await.unwrap();

    let statement = Statement::from_string(
        db.get_database_backend(),
        "SELECT report_confidentiality AS n, findings_summary AS s FROM inspections".to_owned(),
    );
    let row = db.query_one_raw(statement).await.unwrap().unwrap();
    let level: i32 = row.try_get("", "n").unwrap();
    assert_eq!(level, Confidentiality::Internal as i32);
    let summary: String = row.try_get("", "s").unwrap();
    assert_eq!(summary, "Old summary");
}
