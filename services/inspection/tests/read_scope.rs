//! Read scope of findings and department results against a real database: PostgreSQL when
//! `TRACE_TEST_DATABASE_URL` is set, otherwise a SQLite file. Each test records findings of
//! engineering and records, makes xu.fang responsible for some engineering findings, and
//! reads them as callers inside and outside the scope.

// The support module serves several test crates; this one uses only part of it.
#[allow(dead_code)]
mod support;

use chrono::NaiveDate;
use prost::Message;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use tonic::Code;
use trace_proto::common::v1::{AccessDenied, Date, PageRequest};
use trace_proto::event::v1::Envelope;
use trace_proto::inspection::v1 as proto;
use trace_runtime::clock::proto_date;
use trace_runtime::outbox::outbox_event;

use support::{NatsServer, Service, call};
use trace_tests::corpus::recorded_denial;

/// Employee of engineering, responsible for some of its findings.
const RESPONSIBLE: &str = "xu.fang";
/// Head of engineering, who assigns the rectifications.
const HEAD: &str = "huang.wei";
/// Employee of records, unknown to the directory, so the token's claims apply.
const FOREIGN: &str = "wang.lei";

/// Findings recorded by the administration, in id order per department.
struct Findings {
    engineering: Vec<String>,
    records: Vec<String>,
    /// Engineering findings whose rectification xu.fang is responsible for.
    assigned: Vec<String>,
}

fn date(year: i32, month: u32, day: u32) -> Option<Date> {
    Some(proto_date(
        NaiveDate::from_ymd_opt(year, month, day).unwrap(),
    ))
}

/// Starts the service on a fresh PostgreSQL database, or on SQLite when none is configured.
async fn start(nats: &NatsServer) -> Service {
    Service::start(nats, support::postgres_url().await).await
}

/// Orders a spot check of `departments` as the administration and returns its id.
async fn order_spot_check(service: &mut Service, departments: &[&str]) -> String {
    let order = proto::OrderSpotCheckRequest {
        departments: departments.iter().map(|d| (*d).to_owned()).collect(),
        processes: vec![proto::Process::DailyRecords as i32],
        record_ids: vec!["report-17".to_owned()],
        method: proto::SpotCheckMethod::Interview as i32,
    };
    let request = call(order, "li.na", "admin-office", &["administration"]);
    service
        .client
        .order_spot_check(request)
        .await
        .unwrap()
        .into_inner()
        .inspection
        .unwrap()
        .inspection_id
}

/// Records a finding about `department` as the administration and returns its id.
async fn record_finding(service: &mut Service, inspection_id: &str, department: &str) -> String {
    let record = proto::RecordFindingRequest {
        inspection_id: inspection_id.to_owned(),
        severity: proto::Severity::Medium as i32,
        department: department.to_owned(),
        description: format!("Daily reports of {department} lack results."),
        references: Vec::new(),
        ..Default::default()
    };
    let request = call(record, "li.na", "admin-office", &["administration"]);
    service
        .client
        .record_finding(request)
        .await
        .unwrap()
        .into_inner()
        .finding
        .unwrap()
        .finding_id
}

/// Records six engineering and two records findings, interleaved, and lets the head of
/// engineering assign the first, third and sixth engineering finding to xu.fang.
async fn record_findings(service: &mut Service) -> Findings {
    let inspection_id = order_spot_check(service, &["engineering", "records"]).await;
    let mut findings = Findings {
        engineering: Vec::new(),
        records: Vec::new(),
        assigned: Vec::new(),
    };
    let departments = [
        "engineering",
        "records",
        "engineering",
        "engineering",
        "records",
        "engineering",
        "engineering",
        "engineering",
    ];
    for department in departments {
        let finding_id = record_finding(service, &inspection_id, department).await;
        if department == "engineering" {
            findings.engineering.push(finding_id);
        } else {
            findings.records.push(finding_id);
        }
    }

    for index in [0, 2, 5] {
        let finding_id = findings.engineering[index].clone();
        let assignment = proto::AssignRectificationRequest {
            finding_id: finding_id.clone(),
            measures: "Rewrite the reports.".to_owned(),
            responsible_id: RESPONSIBLE.to_owned(),
            deadline: date(2026, 12, 10),
        };
        let request = call(assignment, HEAD, "engineering", &["department_head"]);
        service.client.assign_rectification(request).await.unwrap();
        findings.assigned.push(finding_id);
    }
    findings
}

fn get(finding_id: &str) -> proto::GetFindingRequest {
    proto::GetFindingRequest {
        finding_id: finding_id.to_owned(),
    }
}

/// Decodes the outbox row of the event `event_id`.
async fn outbox_envelope(service: &Service, event_id: &str) -> Envelope {
    let row = outbox_event::Entity::find()
        .filter(outbox_event::Column::EventId.eq(event_id))
        .one(&service.db)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no outbox row for event {event_id}"));
    Envelope::decode(row.envelope.as_slice()).unwrap()
}

/// Lists findings as `user_id` page by page with `page_size` and returns the ids of each page.
async fn pages(
    service: &mut Service,
    (user_id, department, roles): (&str, &str, &[&str]),
    filter: &str,
    page_size: i32,
) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let request = proto::ListFindingsRequest {
            department: filter.to_owned(),
            page: Some(PageRequest {
                page_size,
                page_token: token.clone(),
            }),
            ..Default::default()
        };
        let request = call(request, user_id, department, roles);
        let page = service
            .client
            .list_findings(request)
            .await
            .unwrap()
            .into_inner();
        pages.push(page.findings.into_iter().map(|f| f.finding_id).collect());
        if page.next_page_token.is_empty() {
            return pages;
        }
        token = page.next_page_token;
        assert!(pages.len() <= 10, "paging does not end");
    }
}

#[tokio::test]
async fn foreign_employee_denied_finding() {
    let nats = NatsServer::start();
    let mut service = start(&nats).await;
    let findings = record_findings(&mut service).await;
    let finding_id = findings.engineering[1].clone();
    let missing_id = uuid::Uuid::now_v7().to_string();

    let request = call(get(&finding_id), FOREIGN, "records", &["employee"]);
    let status = service.client.get_finding(request).await.unwrap_err();
    let (message, event_id) = recorded_denial(&status, &finding_id);
    let request = call(get(&missing_id), FOREIGN, "records", &["employee"]);
    let status = service.client.get_finding(request).await.unwrap_err();
    let (missing_message, missing_event_id) = recorded_denial(&status, &missing_id);
    assert_eq!(message, missing_message);
    assert!(
        !message.contains("engineering"),
        "the message names the department: {message}"
    );

    // The denial of the existing finding is its own read_denied event at the next version.
    let envelope = outbox_envelope(&service, &event_id).await;
    assert_eq!(envelope.subject, "trace.inspection.finding.read_denied");
    assert_eq!(envelope.entity_id, finding_id);
    assert_eq!(envelope.entity_version, 2);
    let actor = envelope.actor.unwrap();
    assert_eq!(actor.user_id, FOREIGN);
    assert_eq!(actor.department, "records");
    let payload = envelope.payload.unwrap();
    assert!(
        payload
            .type_url
            .ends_with("/trace.inspection.v1.FindingReadDenied")
    );
    let payload = proto::FindingReadDenied::decode(payload.value.as_slice()).unwrap();
    assert_eq!(payload.method, "GetFinding");
    assert!(payload.reason.contains(FOREIGN), "{}", payload.reason);

    // The denial of the missing finding is an access.denied event of the same caller.
    let envelope = outbox_envelope(&service, &missing_event_id).await;
    assert_eq!(envelope.subject, "trace.inspection.access.denied");
    assert_eq!(envelope.actor.unwrap().user_id, FOREIGN);
    let payload = AccessDenied::decode(envelope.payload.unwrap().value.as_slice()).unwrap();
    assert_eq!(
        payload.method,
        "/trace.inspection.v1.InspectionService/GetFinding"
    );
    assert_eq!(payload.code, "PERMISSION_DENIED");

    // Both denials reach the stream.
    for recorded in [&event_id, &missing_event_id] {
        let published = format!(
            "SELECT COUNT(*) AS n FROM outbox WHERE event_id = '{recorded}' \
             AND published_at IS NOT NULL"
        );
        service
            .wait_for_count(&published, 1, &format!("event {recorded} to be published"))
            .await;
    }

    // An employee of the finding's department who takes no part in it is denied too.
    let request = call(get(&finding_id), RESPONSIBLE, "engineering", &["employee"]);
    let status = service.client.get_finding(request).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let request = call(
        get(&findings.assigned[0]),
        RESPONSIBLE,
        "engineering",
        &["employee"],
    );
    let found = service.client.get_finding(request).await.unwrap();
    let found = found.into_inner().finding.unwrap();
    assert_eq!(found.finding_id, findings.assigned[0]);
    assert_eq!(found.rectification.unwrap().responsible_id, RESPONSIBLE);

    // Whole-view callers read every finding and get NOT_FOUND for a missing one.
    for (user_id, department, roles) in [
        ("li.na", "admin-office", &["administration"][..]),
        ("zhao.yun", "audit", &["audit"][..]),
    ] {
        let request = call(get(&finding_id), user_id, department, roles);
        let found = service.client.get_finding(request).await.unwrap();
        let found = found.into_inner().finding.unwrap();
        assert_eq!(found.finding_id, finding_id, "{user_id}");
        assert_eq!(found.entity_version, 3, "{user_id}");
        let request = call(get(&missing_id), user_id, department, roles);
        let status = service.client.get_finding(request).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{user_id}");
    }

    // The finding has two read_denied events. The denial layer recorded neither denial a
    // second time, so the only access.denied event is the missing finding's.
    let read_denied = format!(
        "SELECT COUNT(*) AS n FROM outbox WHERE subject = 'trace.inspection.finding.read_denied' \
         AND entity_id = '{finding_id}'"
    );
    assert_eq!(service.count(&read_denied).await, 2);
    let access_denied = "SELECT COUNT(*) AS n FROM outbox WHERE entity_type = 'access'";
    assert_eq!(service.count(access_denied).await, 1);

    service.stop().await;
}

#[tokio::test]
async fn employee_lists_own_findings_by_pages() {
    let nats = NatsServer::start();
    let mut service = start(&nats).await;
    let findings = record_findings(&mut service).await;
    let employee = (RESPONSIBLE, "engineering", &["employee"][..]);

    let listed = pages(&mut service, employee, "", 2).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0], findings.assigned[..2]);
    assert_eq!(listed[1], findings.assigned[2..]);

    let one_by_one = pages(&mut service, employee, "", 1).await;
    let ids: Vec<String> = one_by_one.concat();
    assert_eq!(ids, findings.assigned);

    let records = pages(&mut service, employee, "records", 2).await;
    assert_eq!(records, vec![Vec::<String>::new()]);

    let foreign = pages(&mut service, (FOREIGN, "records", &["employee"]), "", 5).await;
    assert_eq!(foreign, vec![Vec::<String>::new()]);

    service.stop().await;
}

#[tokio::test]
async fn head_reads_own_department_only() {
    let nats = NatsServer::start();
    let mut service = start(&nats).await;
    let findings = record_findings(&mut service).await;
    let head = (HEAD, "engineering", &["department_head"][..]);

    let listed = pages(&mut service, head, "", 4).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed.concat(), findings.engineering);
    let records = pages(&mut service, head, "records", 4).await;
    assert_eq!(records, vec![Vec::<String>::new()]);

    let request = call(
        get(&findings.engineering[1]),
        HEAD,
        "engineering",
        &["department_head"],
    );
    let found = service.client.get_finding(request).await.unwrap();
    assert_eq!(
        found.into_inner().finding.unwrap().department,
        "engineering"
    );
    let request = call(
        get(&findings.records[0]),
        HEAD,
        "engineering",
        &["department_head"],
    );
    let status = service.client.get_finding(request).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    // Audit lists every finding of both departments.
    let audit = pages(&mut service, ("zhao.yun", "audit", &["audit"]), "", 50).await;
    assert_eq!(audit.concat().len(), 8);

    service.stop().await;
}

#[tokio::test]
async fn department_aggregates_need_department_view() {
    let nats = NatsServer::start();
    let mut service = start(&nats).await;
    record_findings(&mut service).await;
    let results = |department: &str| proto::DepartmentResultsRequest {
        department: department.to_owned(),
        from: date(2026, 12, 1),
        to: date(2026, 12, 31),
    };
    let score = |department: &str| proto::GetCompletenessScoreRequest {
        department: department.to_owned(),
        from: date(2026, 12, 1),
        to: date(2026, 12, 31),
    };

    let request = call(
        results("engineering"),
        HEAD,
        "engineering",
        &["department_head"],
    );
    let response = service.client.department_results(request).await.unwrap();
    assert_eq!(response.into_inner().findings, 6);
    let request = call(
        score("engineering"),
        HEAD,
        "engineering",
        &["department_head"],
    );
    let response = service
        .client
        .get_completeness_score(request)
        .await
        .unwrap();
    assert_eq!(response.into_inner().department, "engineering");
    let request = call(results("records"), "zhao.yun", "audit", &["audit"]);
    let response = service.client.department_results(request).await.unwrap();
    assert_eq!(response.into_inner().findings, 2);

    let denied = [
        (HEAD, "engineering", "department_head", "records"),
        (RESPONSIBLE, "engineering", "employee", "engineering"),
    ];
    for (user_id, department, held, asked) in denied {
        let request = call(results(asked), user_id, department, &[held]);
        let status = service
            .client
            .department_results(request)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{user_id} {asked}");
        assert!(
            status.message().contains(asked),
            "{user_id}: {}",
            status.message()
        );
        let request = call(score(asked), user_id, department, &[held]);
        let status = service
            .client
            .get_completeness_score(request)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{user_id} {asked}");
    }

    // The denial layer records each denied aggregate as an access.denied event.
    let access_denied = "SELECT COUNT(*) AS n FROM outbox WHERE entity_type = 'access'";
    service
        .wait_for_count(access_denied, 4, "four access.denied events")
        .await;
    let rows = outbox_event::Entity::find()
        .filter(outbox_event::Column::EntityType.eq("access"))
        .all(&service.db)
        .await
        .unwrap();
    let mut methods: Vec<String> = rows
        .iter()
        .map(|row| {
            let envelope = Envelope::decode(row.envelope.as_slice()).unwrap();
            let payload = envelope.payload.unwrap();
            AccessDenied::decode(payload.value.as_slice())
                .unwrap()
                .method
        })
        .collect();
    methods.sort();
    assert_eq!(
        methods,
        [
            "/trace.inspection.v1.InspectionService/DepartmentResults",
            "/trace.inspection.v1.InspectionService/DepartmentResults",
            "/trace.inspection.v1.InspectionService/GetCompletenessScore",
            "/trace.inspection.v1.InspectionService/GetCompletenessScore",
        ]
    );

    service.stop().await;
}

#[tokio::test]
async fn directory_head_reads_headed_department() {
    let nats = NatsServer::start();
    // huang.wei belongs to engineering and also heads the lab in the directory.
    let lab = format!(
        "{}\n[[departments]]\nid = \"lab\"\nname = \"實驗室\"\nhead = \"{HEAD}\"\n",
        support::DIRECTORY
    );
    let url = support::postgres_url().await;
    let mut service = Service::start_with(&nats, url, |config, folder| {
        let path = folder.join("directory-with-lab.toml");
        std::fs::write(&path, &lab).unwrap();
        config.service.directory_file = Some(path.display().to_string());
    })
    .await;
    let inspection_id = order_spot_check(&mut service, &["lab", "records"]).await;
    let lab_finding = record_finding(&mut service, &inspection_id, "lab").await;
    let records_finding = record_finding(&mut service, &inspection_id, "records").await;
    let head = (HEAD, "engineering", &["department_head"][..]);

    let request = call(get(&lab_finding), head.0, head.1, head.2);
    let found = service.client.get_finding(request).await.unwrap();
    assert_eq!(found.into_inner().finding.unwrap().department, "lab");
    let request = call(get(&records_finding), head.0, head.1, head.2);
    let status = service.client.get_finding(request).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    let listed = pages(&mut service, head, "", 50).await;
    assert_eq!(listed.concat(), [lab_finding]);

    let results = proto::DepartmentResultsRequest {
        department: "lab".to_owned(),
        from: date(2026, 12, 1),
        to: date(2026, 12, 31),
    };
    let request = call(results, head.0, head.1, head.2);
    let response = service.client.department_results(request).await.unwrap();
    assert_eq!(response.into_inner().findings, 1);

    service.stop().await;
}

/// Denied reads and a rectification of the same finding run at once. Each stages an event of
/// the finding, and the versions stay unique and without gaps, on PostgreSQL as on SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_keep_versions_contiguous() {
    let nats = NatsServer::start();
    let mut service = start(&nats).await;
    let inspection_id = order_spot_check(&mut service, &["engineering"]).await;
    let finding_id = record_finding(&mut service, &inspection_id, "engineering").await;

    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let mut client = service.client.clone();
        let request = call(get(&finding_id), FOREIGN, "records", &["employee"]);
        calls.spawn(async move { client.get_finding(request).await.map(|_| ()) });
    }
    let assignment = proto::AssignRectificationRequest {
        finding_id: finding_id.clone(),
        measures: "Rewrite the reports.".to_owned(),
        responsible_id: RESPONSIBLE.to_owned(),
        deadline: date(2026, 12, 10),
    };
    let mut client = service.client.clone();
    let request = call(assignment, HEAD, "engineering", &["department_head"]);
    calls.spawn(async move { client.assign_rectification(request).await.map(|_| ()) });
    let mut denied = 0;
    while let Some(result) = calls.join_next().await {
        match result.unwrap() {
            Ok(()) => {}
            Err(status) if status.code() == Code::PermissionDenied => denied += 1,
            Err(status) => panic!("unexpected failure: {status:?}"),
        }
    }
    assert_eq!(denied, 8);

    let rows = outbox_event::Entity::find()
        .filter(outbox_event::Column::EntityId.eq(finding_id.as_str()))
        .all(&service.db)
        .await
        .unwrap();
    let mut versions: Vec<u64> = rows
        .iter()
        .map(|row| {
            Envelope::decode(row.envelope.as_slice())
                .unwrap()
                .entity_version
        })
        .collect();
    versions.sort_unstable();
    // Recorded, eight denials and the assignment.
    assert_eq!(versions, (1..=10).collect::<Vec<u64>>());
    service.stop().await;
}
