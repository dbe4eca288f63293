//! Bad-input corpus of the inspection service: every request field that takes text, ids,
//! dates, enums or lists gets the shared bad values of `trace_tests::corpus`. Each rejected
//! case must return the documented code and field, and leave every table unchanged.
//! Attack-looking text that is legitimate in free text must be accepted and stored.
//!
//! One service instance of the shared test support serves every case. The caller is the
//! head of the administration department, who may call every method but `RunRules`.

// The support module serves several test crates; this one uses only part of it.
#[allow(dead_code)]
mod support;

use std::future::Future;
use std::pin::Pin;

use tonic::Status;
use trace_proto::common::v1::{Confidentiality, Date, PageRequest};
use trace_proto::inspection::v1::inspection_service_client::InspectionServiceClient;
use trace_proto::inspection::v1::*;
use trace_tests::corpus::{
    ACCEPTED_TEXT, Expected, bad_dates, bad_departments, bad_enums, bad_record_ids, bad_text,
    bad_timestamps, bad_tokens, check_rejection,
};

use support::{NatsServer, Service, call};

type Client = InspectionServiceClient<tonic::transport::Channel>;
type Call = Pin<Box<dyn Future<Output = Result<(), Status>> + Send>>;

/// Head of the administration department in the support directory.
const ADMIN: &str = "li.na";

/// Tables a call may write. The outbox count leaves out denial events, which the denial
/// recorder writes after the call.
const TABLES: &[&str] = &[
    "outbox WHERE entity_type <> 'access'",
    "inspection_plans",
    "inspections",
    "findings",
    "report_distributions",
    "obligations",
    "fulfilments",
    "overdue_reports",
    "access_requests",
    "agreement_acceptances",
];

macro_rules! call {
    ($client:expr, $method:ident, $message:expr) => {{
        let mut client = $client.clone();
        let request = call(
            $message,
            ADMIN,
            "admin-office",
            &["department_head", "administration"],
        );
        Box::pin(async move { client.$method(request).await.map(|_| ()) }) as Call
    }};
}

/// Returns the row count of every table in [`TABLES`].
async fn snapshot(service: &Service) -> Vec<i64> {
    let mut counts = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        counts.push(
            service
                .count(&format!("SELECT COUNT(*) AS n FROM {table}"))
                .await,
        );
    }
    counts
}

fn date(year: i32, month: i32, day: i32) -> Option<Date> {
    Some(Date { year, month, day })
}

fn plan_request(name: &str) -> CreateInspectionPlanRequest {
    CreateInspectionPlanRequest {
        name: name.to_owned(),
        cycle: Cycle::Monthly as i32,
        departments: vec!["engineering".to_owned()],
        processes: vec![Process::Documents as i32],
    }
}

fn spot_check_request() -> OrderSpotCheckRequest {
    OrderSpotCheckRequest {
        departments: vec!["engineering".to_owned()],
        processes: vec![Process::DailyRecords as i32],
        record_ids: vec!["report-17".to_owned()],
        method: SpotCheckMethod::Interview as i32,
    }
}

fn finding_request(inspection_id: &str, description: &str) -> RecordFindingRequest {
    RecordFindingRequest {
        inspection_id: inspection_id.to_owned(),
        severity: Severity::High as i32,
        department: "engineering".to_owned(),
        description: description.to_owned(),
        references: vec![RecordReference {
            ledger_sequence: 42,
            ..Default::default()
        }],
        confidentiality: Confidentiality::Internal as i32,
    }
}

/// Builds bad department lists with the suffix of the field each must be rejected on: the
/// list itself for a count error, or the index of the bad entry.
fn bad_department_lists() -> Vec<(String, Vec<String>, &'static str)> {
    let mut cases = vec![
        ("no departments".to_owned(), Vec::new(), ""),
        (
            "51 departments".to_owned(),
            (0..51).map(|i| format!("d{i}")).collect(),
            "",
        ),
        (
            "10,000 departments".to_owned(),
            (0..10_000).map(|i| format!("d{i}")).collect(),
            "",
        ),
        (
            "listed twice".to_owned(),
            vec!["engineering".to_owned(), "engineering".to_owned()],
            "[1]",
        ),
    ];
    for (label, value) in bad_departments() {
        cases.push((format!("entry {label}"), vec![value], "[0]"));
    }
    cases
}

/// Builds bad process lists, with field suffixes as in [`bad_department_lists`].
fn bad_process_lists() -> Vec<(String, Vec<i32>, &'static str)> {
    let documents = Process::Documents as i32;
    let mut cases = vec![
        ("no processes".to_owned(), Vec::new(), ""),
        ("5 processes".to_owned(), vec![1, 2, 3, 4, 1], ""),
        ("10,000 processes".to_owned(), vec![1; 10_000], ""),
        ("listed twice".to_owned(), vec![documents, documents], "[1]"),
    ];
    for (label, value) in bad_enums().into_iter().chain([("0".to_owned(), 0)]) {
        cases.push((format!("entry {label}"), vec![value], "[0]"));
    }
    cases
}

fn field(name: &str, suffix: &str) -> &'static str {
    Box::leak(format!("{name}{suffix}").into_boxed_str())
}

/// Ids of the records the cases address.
struct Fixture {
    plan: String,
    inspection: String,
    finding: String,
    /// Id of a consumed SECRET trace event.
    secret_event: String,
}

/// Builds every rejected case of the corpus.
#[allow(clippy::too_many_lines)]
fn rejected_cases(client: &Client, ids: &Fixture) -> Vec<(String, Expected, Call)> {
    let mut cases: Vec<(String, Expected, Call)> = Vec::new();
    let mut add = |label: String, expected: Expected, call: Call| {
        cases.push((label, expected, call));
    };
    let unknown = uuid::Uuid::now_v7().to_string();

    // CreateInspectionPlan.
    let create = |change: &dyn Fn(&mut CreateInspectionPlanRequest)| {
        let mut request = plan_request("Monthly check");
        change(&mut request);
        call!(client, create_inspection_plan, request)
    };
    for (label, value) in bad_text(1, 200, true) {
        let call = create(&|r| r.name = value.clone());
        add(
            format!("plan name {label}"),
            Expected::Invalid("name"),
            call,
        );
    }
    for (label, value) in bad_enums().into_iter().chain([("0".to_owned(), 0)]) {
        let call = create(&|r| r.cycle = value);
        add(format!("cycle {label}"), Expected::Invalid("cycle"), call);
    }
    for (label, value, suffix) in bad_department_lists() {
        let call = create(&|r| r.departments = value.clone());
        let name = field("departments", suffix);
        add(
            format!("plan departments {label}"),
            Expected::Invalid(name),
            call,
        );
        let order = || {
            let mut request = spot_check_request();
            request.departments = value.clone();
            request
        };
        let call = call!(client, order_spot_check, order());
        add(
            format!("spot check departments {label}"),
            Expected::Invalid(name),
            call,
        );
    }
    for (label, value, suffix) in bad_process_lists() {
        let call = create(&|r| r.processes = value.clone());
        let name = field("processes", suffix);
        add(
            format!("plan processes {label}"),
            Expected::Invalid(name),
            call,
        );
        let mut order = spot_check_request();
        order.processes = value.clone();
        let call = call!(client, order_spot_check, order);
        add(
            format!("spot check processes {label}"),
            Expected::Invalid(name),
            call,
        );
    }

    // OpenInspection.
    let open = |plan_id: &str, period_start: Option<Date>| {
        let request = OpenInspectionRequest {
            plan_id: plan_id.to_owned(),
            period_start,
        };
        call!(client, open_inspection, request)
    };
    for (label, value) in bad_record_ids() {
        let call = open(&value, date(2027, 1, 1));
        add(
            format!("open plan_id {label}"),
            Expected::Invalid("plan_id"),
            call,
        );
    }
    let call = open(&unknown, date(2027, 1, 1));
    add(
        "open unknown plan".to_owned(),
        Expected::NotFound("plan"),
        call,
    );
    let starts = bad_dates()
        .into_iter()
        .map(|(label, value)| (label, Some(value)))
        .chain([
            ("missing".to_owned(), None),
            ("second of the month".to_owned(), date(2027, 1, 2)),
        ]);
    for (label, value) in starts {
        let call = open(&ids.plan, value);
        add(
            format!("period_start {label}"),
            Expected::Invalid("period_start"),
            call,
        );
    }

    // OrderSpotCheck.
    for (label, value) in bad_enums().into_iter().chain([("0".to_owned(), 0)]) {
        let mut order = spot_check_request();
        order.method = value;
        let call = call!(client, order_spot_check, order);
        add(format!("method {label}"), Expected::Invalid("method"), call);
    }
    for (label, value) in bad_text(1, 64, true) {
        let mut order = spot_check_request();
        order.record_ids = vec![value.clone()];
        let call = call!(client, order_spot_check, order);
        add(
            format!("record_ids entry {label}"),
            Expected::Invalid("record_ids[0]"),
            call,
        );
    }
    for count in [101, 10_000] {
        let mut order = spot_check_request();
        order.record_ids = (0..count).map(|i| format!("r{i}")).collect();
        let call = call!(client, order_spot_check, order);
        add(
            format!("{count} record_ids"),
            Expected::Invalid("record_ids"),
            call,
        );
    }

    // RecordFinding.
    let record = |change: &dyn Fn(&mut RecordFindingRequest)| {
        let mut request = finding_request(&ids.inspection, "Missing reviews.");
        change(&mut request);
        call!(client, record_finding, request)
    };
    for (label, value) in bad_record_ids() {
        let call = record(&|r| r.inspection_id = value.clone());
        add(
            format!("finding inspection_id {label}"),
            Expected::Invalid("inspection_id"),
            call,
        );
    }
    for (label, value) in bad_enums().into_iter().chain([("0".to_owned(), 0)]) {
        let call = record(&|r| r.severity = value);
        add(
            format!("severity {label}"),
            Expected::Invalid("severity"),
            call,
        );
    }
    // An unspecified level means INTERNAL, so only unknown numbers are rejected.
    for (label, value) in bad_enums() {
        let call = record(&|r| r.confidentiality = value);
        add(
            format!("finding confidentiality {label}"),
            Expected::Invalid("confidentiality"),
            call,
        );
    }
    let call = record(&|r| {
        r.references[0].event_id = ids.secret_event.clone();
        r.confidentiality = Confidentiality::Confidential as i32;
    });
    add(
        "finding confidentiality below a referenced event".to_owned(),
        Expected::Invalid("confidentiality"),
        call,
    );
    for (label, value) in bad_departments() {
        let call = record(&|r| r.department = value.clone());
        add(
            format!("finding department {label}"),
            Expected::Invalid("department"),
            call,
        );
    }
    for (label, value) in bad_text(1, 4000, false) {
        let call = record(&|r| r.description = value.clone());
        add(
            format!("description {label}"),
            Expected::Invalid("description"),
            call,
        );
    }
    let call = record(&|r| r.description = " \n\t ".to_owned());
    add(
        "description of whitespace".to_owned(),
        Expected::Invalid("description"),
        call,
    );
    for count in [51, 10_000] {
        let reference = RecordReference {
            ledger_sequence: 1,
            ..Default::default()
        };
        let call = record(&|r| r.references = vec![reference.clone(); count]);
        add(
            format!("{count} references"),
            Expected::Invalid("references"),
            call,
        );
    }
    let call = record(&|r| r.references = vec![RecordReference::default()]);
    add(
        "empty reference".to_owned(),
        Expected::Invalid("references[0]"),
        call,
    );
    for (label, value) in bad_record_ids().into_iter().filter(|(_, v)| !v.is_empty()) {
        let reference = RecordReference {
            event_id: value.clone(),
            ..Default::default()
        };
        let call = record(&|r| r.references = vec![reference.clone()]);
        let name = "references[0].event_id";
        add(
            format!("reference event_id {label}"),
            Expected::Invalid(name),
            call,
        );
    }
    let references = [("entity_type", 64), ("entity_id", 128)];
    for (part, max) in references {
        for (label, value) in bad_text(0, max, true) {
            let mut reference = RecordReference {
                ledger_sequence: 1,
                ..Default::default()
            };
            if part == "entity_type" {
                reference.entity_type = value;
            } else {
                reference.entity_id = value;
            }
            let call = record(&|r| r.references = vec![reference.clone()]);
            let name = field("references[0].", part);
            add(
                format!("reference {part} {label}"),
                Expected::Invalid(name),
                call,
            );
        }
    }

    // AssignRectification, SubmitRectificationResult, VerifyRectification, GetFinding.
    let assign = |change: &dyn Fn(&mut AssignRectificationRequest)| {
        let mut request = AssignRectificationRequest {
            finding_id: ids.finding.clone(),
            measures: "Review the files.".to_owned(),
            responsible_id: "xu.fang".to_owned(),
            deadline: date(2026, 12, 20),
        };
        change(&mut request);
        call!(client, assign_rectification, request)
    };
    for (label, value) in bad_record_ids() {
        let call = assign(&|r| r.finding_id = value.clone());
        add(
            format!("assign finding_id {label}"),
            Expected::Invalid("finding_id"),
            call,
        );
        let submit = SubmitRectificationResultRequest {
            finding_id: value.clone(),
            result: "Done".to_owned(),
        };
        let call = call!(client, submit_rectification_result, submit);
        add(
            format!("result finding_id {label}"),
            Expected::Invalid("finding_id"),
            call,
        );
        let verify = VerifyRectificationRequest {
            finding_id: value.clone(),
            verdict: Verdict::Accepted as i32,
            opinion: "ok".to_owned(),
        };
        let call = call!(client, verify_rectification, verify);
        add(
            format!("verify finding_id {label}"),
            Expected::Invalid("finding_id"),
            call,
        );
        let get = GetFindingRequest {
            finding_id: value.clone(),
        };
        let call = call!(client, get_finding, get);
        add(
            format!("get finding_id {label}"),
            Expected::Invalid("finding_id"),
            call,
        );
    }
    let get = GetFindingRequest {
        finding_id: unknown.clone(),
    };
    let call = call!(client, get_finding, get);
    add(
        "get unknown finding".to_owned(),
        Expected::NotFound("finding"),
        call,
    );
    for (label, value) in bad_text(1, 4000, false) {
        let call = assign(&|r| r.measures = value.clone());
        add(
            format!("measures {label}"),
            Expected::Invalid("measures"),
            call,
        );
        let submit = SubmitRectificationResultRequest {
            finding_id: ids.finding.clone(),
            result: value.clone(),
        };
        let call = call!(client, submit_rectification_result, submit);
        add(format!("result {label}"), Expected::Invalid("result"), call);
    }
    let responsible = bad_tokens(64)
        .into_iter()
        .chain([("not in the directory".to_owned(), "nobody".to_owned())]);
    for (label, value) in responsible {
        let call = assign(&|r| r.responsible_id = value.clone());
        add(
            format!("responsible_id {label}"),
            Expected::Invalid("responsible_id"),
            call,
        );
    }
    let deadlines = bad_dates()
        .into_iter()
        .map(|(label, value)| (label, Some(value)))
        .chain([
            ("missing".to_owned(), None),
            ("yesterday".to_owned(), date(2026, 12, 6)),
        ]);
    for (label, value) in deadlines {
        let call = assign(&|r| r.deadline = value);
        add(
            format!("deadline {label}"),
            Expected::Invalid("deadline"),
            call,
        );
    }
    let verify = |verdict: i32, opinion: &str| {
        let request = VerifyRectificationRequest {
            finding_id: ids.finding.clone(),
            verdict,
            opinion: opinion.to_owned(),
        };
        call!(client, verify_rectification, request)
    };
    for (label, value) in bad_enums().into_iter().chain([("0".to_owned(), 0)]) {
        let call = verify(value, "ok");
        add(
            format!("verdict {label}"),
            Expected::Invalid("verdict"),
            call,
        );
    }
    for (label, value) in bad_text(1, 2000, false) {
        let call = verify(Verdict::Accepted as i32, &value);
        add(
            format!("verify opinion {label}"),
            Expected::Invalid("opinion"),
            call,
        );
    }

    // CheckOverdue.
    for (label, value) in bad_dates() {
        let request = CheckOverdueRequest { as_of: Some(value) };
        let call = call!(client, check_overdue, request);
        add(format!("as_of {label}"), Expected::Invalid("as_of"), call);
    }

    // DraftReport, ReviewReport, DistributeReport.
    for (label, value) in bad_record_ids() {
        let draft = DraftReportRequest {
            inspection_id: value.clone(),
            findings_summary: "x".to_owned(),
            suggestions: "x".to_owned(),
            confidentiality: 0,
        };
        let call = call!(client, draft_report, draft);
        add(
            format!("draft inspection_id {label}"),
            Expected::Invalid("inspection_id"),
            call,
        );
        let review = ReviewReportRequest {
            inspection_id: value.clone(),
            decision: ReviewDecision::Approve as i32,
            opinion: String::new(),
        };
        let call = call!(client, review_report, review);
        add(
            format!("review inspection_id {label}"),
            Expected::Invalid("inspection_id"),
            call,
        );
        let distribute = DistributeReportRequest {
            inspection_id: value.clone(),
            departments: vec!["engineering".to_owned()],
        };
        let call = call!(client, distribute_report, distribute);
        let name = "inspection_id";
        add(
            format!("distribute inspection_id {label}"),
            Expected::Invalid(name),
            call,
        );
    }
    for (label, value) in bad_text(1, 8000, false) {
        let draft = DraftReportRequest {
            inspection_id: ids.inspection.clone(),
            findings_summary: value.clone(),
            suggestions: "x".to_owned(),
            confidentiality: 0,
        };
        let call = call!(client, draft_report, draft);
        add(
            format!("findings_summary {label}"),
            Expected::Invalid("findings_summary"),
            call,
        );
        let draft = DraftReportRequest {
            inspection_id: ids.inspection.clone(),
            findings_summary: "x".to_owned(),
            suggestions: value.clone(),
            confidentiality: 0,
        };
        let call = call!(client, draft_report, draft);
        add(
            format!("suggestions {label}"),
            Expected::Invalid("suggestions"),
            call,
        );
    }
    // An unspecified level means the highest level of the findings, so only unknown numbers
    // and levels below that of the INTERNAL fixture finding are rejected.
    let report_levels = bad_enums().into_iter().chain([(
        "below the findings".to_owned(),
        Confidentiality::Public as i32,
    )]);
    for (label, value) in report_levels {
        let draft = DraftReportRequest {
            inspection_id: ids.inspection.clone(),
            findings_summary: "x".to_owned(),
            suggestions: "x".to_owned(),
            confidentiality: value,
        };
        let call = call!(client, draft_report, draft);
        add(
            format!("report confidentiality {label}"),
            Expected::Invalid("confidentiality"),
            call,
        );
    }
    for (label, value) in bad_enums().into_iter().chain([("0".to_owned(), 0)]) {
        let review = ReviewReportRequest {
            inspection_id: ids.inspection.clone(),
            decision: value,
            opinion: String::new(),
        };
        let call = call!(client, review_report, review);
        add(
            format!("report decision {label}"),
            Expected::Invalid("decision"),
            call,
        );
    }
    for (label, value) in bad_text(1, 2000, false) {
        let review = ReviewReportRequest {
            inspection_id: ids.inspection.clone(),
            decision: ReviewDecision::Return as i32,
            opinion: value.clone(),
        };
        let call = call!(client, review_report, review);
        add(
            format!("report opinion {label}"),
            Expected::Invalid("opinion"),
            call,
        );
    }
    for (label, value, suffix) in bad_department_lists() {
        let distribute = DistributeReportRequest {
            inspection_id: ids.inspection.clone(),
            departments: value.clone(),
        };
        let call = call!(client, distribute_report, distribute);
        let name = field("departments", suffix);
        add(
            format!("distribute departments {label}"),
            Expected::Invalid(name),
            call,
        );
    }

    // DepartmentResults and GetCompletenessScore.
    for (label, value) in bad_departments() {
        let results = DepartmentResultsRequest {
            department: value.clone(),
            from: date(2026, 12, 1),
            to: date(2026, 12, 31),
        };
        let call = call!(client, department_results, results);
        add(
            format!("results department {label}"),
            Expected::Invalid("department"),
            call,
        );
        let score = GetCompletenessScoreRequest {
            department: value.clone(),
            from: date(2026, 12, 1),
            to: date(2026, 12, 31),
        };
        let call = call!(client, get_completeness_score, score);
        add(
            format!("score department {label}"),
            Expected::Invalid("department"),
            call,
        );
    }
    let periods = bad_dates()
        .into_iter()
        .map(|(label, value)| (label, Some(value)))
        .chain([("missing".to_owned(), None)]);
    for (label, value) in periods {
        for (name, from, to) in [
            ("from", value, date(2026, 12, 31)),
            ("to", date(2026, 12, 1), value),
        ] {
            let results = DepartmentResultsRequest {
                department: "engineering".to_owned(),
                from,
                to,
            };
            let call = call!(client, department_results, results);
            add(
                format!("results {name} {label}"),
                Expected::Invalid(name),
                call,
            );
            let score = GetCompletenessScoreRequest {
                department: "engineering".to_owned(),
                from,
                to,
            };
            let call = call!(client, get_completeness_score, score);
            add(
                format!("score {name} {label}"),
                Expected::Invalid(name),
                call,
            );
        }
    }
    let reversed = GetCompletenessScoreRequest {
        department: "engineering".to_owned(),
        from: date(2026, 12, 31),
        to: date(2026, 12, 1),
    };
    let call = call!(client, get_completeness_score, reversed);
    add(
        "score to before from".to_owned(),
        Expected::Invalid("to"),
        call,
    );

    // ListFindings: empty filters mean "any".
    let list = |change: &dyn Fn(&mut ListFindingsRequest)| {
        let mut request = ListFindingsRequest::default();
        change(&mut request);
        call!(client, list_findings, request)
    };
    for (label, value) in bad_departments().into_iter().filter(|(_, v)| !v.is_empty()) {
        let call = list(&|r| r.department = value.clone());
        add(
            format!("list department {label}"),
            Expected::Invalid("department"),
            call,
        );
    }
    for (label, value) in bad_enums() {
        let call = list(&|r| r.rule = value);
        add(
            format!("list rule {label}"),
            Expected::Invalid("rule"),
            call,
        );
        let call = list(&|r| r.state = value);
        add(
            format!("list state {label}"),
            Expected::Invalid("state"),
            call,
        );
    }
    let pages = bad_record_ids()
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(label, token)| (format!("page_token {label}"), 0, token, "page.page_token"))
        .chain([-1, 501, i32::MAX, i32::MIN].map(|size| {
            (
                format!("page_size {size}"),
                size,
                String::new(),
                "page.page_size",
            )
        }));
    for (label, page_size, page_token, name) in pages {
        let page = PageRequest {
            page_size,
            page_token,
        };
        let call = list(&|r| r.page = Some(page.clone()));
        add(format!("findings {label}"), Expected::Invalid(name), call);
    }
    // RequestAccess, DecideAccess, ListAccessRequests and AcceptAgreement.
    for (label, value) in bad_record_ids() {
        let request = RequestAccessRequest {
            finding_id: value.clone(),
            purpose: "Performance review".to_owned(),
            ..Default::default()
        };
        let call = call!(client, request_access, request);
        add(
            format!("request access id {label}"),
            Expected::Invalid("finding_id"),
            call,
        );
        let decide = DecideAccessRequest {
            access_request_id: value.clone(),
            approve: false,
            opinion: "Not needed".to_owned(),
            expires_at: None,
        };
        let call = call!(client, decide_access, decide);
        add(
            format!("decide access id {label}"),
            Expected::Invalid("access_request_id"),
            call,
        );
        let list = ListAccessRequestsRequest {
            finding_id: value.clone(),
            ..Default::default()
        };
        let call = call!(client, list_access_requests, list);
        add(
            format!("list access requests id {label}"),
            Expected::Invalid("finding_id"),
            call,
        );
        // Without either id the error names finding_id, the id most requests carry.
        let report_field = if value.is_empty() {
            "finding_id"
        } else {
            "inspection_id"
        };
        let request = RequestAccessRequest {
            inspection_id: value.clone(),
            purpose: "Performance review".to_owned(),
            ..Default::default()
        };
        let call = call!(client, request_access, request);
        add(
            format!("request report access id {label}"),
            Expected::Invalid(report_field),
            call,
        );
        let list = ListAccessRequestsRequest {
            inspection_id: value.clone(),
            ..Default::default()
        };
        let call = call!(client, list_access_requests, list);
        add(
            format!("list report access requests id {label}"),
            Expected::Invalid(report_field),
            call,
        );
        let get = GetInspectionReportRequest {
            inspection_id: value.clone(),
        };
        let call = call!(client, get_inspection_report, get);
        add(
            format!("get inspection report id {label}"),
            Expected::Invalid("inspection_id"),
            call,
        );
    }
    // A request names a finding or a report, never both.
    let request = RequestAccessRequest {
        finding_id: ids.finding.clone(),
        inspection_id: ids.inspection.clone(),
        purpose: "Performance review".to_owned(),
    };
    let call = call!(client, request_access, request);
    add(
        "request access for a finding and a report".to_owned(),
        Expected::Invalid("inspection_id"),
        call,
    );
    let list = ListAccessRequestsRequest {
        finding_id: ids.finding.clone(),
        inspection_id: ids.inspection.clone(),
    };
    let call = call!(client, list_access_requests, list);
    add(
        "list access requests of a finding and a report".to_owned(),
        Expected::Invalid("inspection_id"),
        call,
    );
    for (label, value) in bad_text(1, 2000, false) {
        let request = RequestAccessRequest {
            finding_id: ids.finding.clone(),
            purpose: value.clone(),
            ..Default::default()
        };
        let call = call!(client, request_access, request);
        add(
            format!("access purpose {label}"),
            Expected::Invalid("purpose"),
            call,
        );
        let decide = DecideAccessRequest {
            access_request_id: unknown.clone(),
            approve: false,
            opinion: value.clone(),
            expires_at: None,
        };
        let call = call!(client, decide_access, decide);
        add(
            format!("access opinion {label}"),
            Expected::Invalid("opinion"),
            call,
        );
    }
    // The service clock is at the start time, so an approval must end after it and at
    // most 90 days later.
    let at = |hours: i64| {
        let instant = support::start_time() + chrono::Duration::hours(hours);
        trace_runtime::clock::timestamp(instant.timestamp_micros())
    };
    let mut ends = bad_timestamps();
    ends.push(("now".to_owned(), at(0)));
    ends.push(("an hour ago".to_owned(), at(-1)));
    ends.push(("91 days".to_owned(), at(91 * 24)));
    for (label, value) in ends {
        let decide = DecideAccessRequest {
            access_request_id: unknown.clone(),
            approve: true,
            opinion: "Needed".to_owned(),
            expires_at: Some(value),
        };
        let call = call!(client, decide_access, decide);
        add(
            format!("approval end {label}"),
            Expected::Invalid("expires_at"),
            call,
        );
    }
    let decide = DecideAccessRequest {
        access_request_id: unknown.clone(),
        approve: true,
        opinion: "Needed".to_owned(),
        expires_at: None,
    };
    let call = call!(client, decide_access, decide);
    add(
        "approval end missing".to_owned(),
        Expected::Invalid("expires_at"),
        call,
    );
    let request = RequestAccessRequest {
        finding_id: ids.finding.clone(),
        purpose: "Performance review".to_owned(),
        ..Default::default()
    };
    let call = call!(client, request_access, request);
    add(
        "access to an internal finding".to_owned(),
        Expected::Precondition("INTERNAL"),
        call,
    );
    let decide = DecideAccessRequest {
        access_request_id: unknown.clone(),
        approve: false,
        opinion: "Not needed".to_owned(),
        expires_at: None,
    };
    let call = call!(client, decide_access, decide);
    add(
        "decide a missing access request".to_owned(),
        Expected::Denied,
        call,
    );
    let mut versions = bad_tokens(32);
    versions.push(("lowercase".to_owned(), "v2026".to_owned()));
    versions.push(("not the current one".to_owned(), "2025-01".to_owned()));
    for (label, value) in versions {
        let accept = AcceptAgreementRequest {
            agreement_version: value,
        };
        let call = call!(client, accept_agreement, accept);
        add(
            format!("agreement version {label}"),
            Expected::Invalid("agreement_version"),
            call,
        );
    }
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_and_writes_nothing() {
    let nats = NatsServer::start();
    let service = Service::start(&nats, None).await;
    let mut client = service.client.clone();
    let admin = ["department_head", "administration"];

    let plan = client
        .create_inspection_plan(call(plan_request("Monthly"), ADMIN, "admin-office", &admin))
        .await
        .unwrap()
        .into_inner()
        .plan
        .unwrap()
        .plan_id;
    let open = OpenInspectionRequest {
        plan_id: plan.clone(),
        period_start: date(2026, 12, 1),
    };
    let inspection = client
        .open_inspection(call(open, ADMIN, "admin-office", &admin))
        .await
        .unwrap()
        .into_inner()
        .inspection
        .unwrap()
        .inspection_id;
    let finding = client
        .record_finding(call(
            finding_request(&inspection, "Missing reviews."),
            ADMIN,
            "admin-office",
            &admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .finding
        .unwrap()
        .finding_id;
    let mut secret = service.event(
        "document",
        ("document", "doc-secret"),
        "read",
        "xu.fang",
        "engineering",
        &trace_proto::document::v1::DocumentRead::default(),
    );
    secret.confidentiality = Confidentiality::Secret as i32;
    trace_runtime::event::seal_payload(&trace_runtime::seal::Keyring::development(), &mut secret);
    service.publish(&[&secret]).await;
    let ids = Fixture {
        plan,
        inspection,
        finding,
        secret_event: secret.event_id,
    };

    let cases = rejected_cases(&client, &ids);
    assert!(cases.len() > 300, "only {} cases", cases.len());
    for (label, expected, call) in cases {
        let before = snapshot(&service).await;

        check_rejection(&label, call.await, expected);

        assert_eq!(snapshot(&service).await, before, "{label} wrote something");
    }

    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legitimate_odd_input_is_stored_exactly() {
    let nats = NatsServer::start();
    let service = Service::start(&nats, None).await;
    let mut client = service.client.clone();
    let admin = ["department_head", "administration"];

    let mut order = spot_check_request();
    order.record_ids = ACCEPTED_TEXT
        .iter()
        .map(|text| (*text).to_owned())
        .collect();
    order
        .record_ids
        .extend(["a.b", "*", ">"].map(str::to_owned));
    let inspection = client
        .order_spot_check(call(order.clone(), ADMIN, "admin-office", &admin))
        .await
        .unwrap()
        .into_inner()
        .inspection
        .unwrap();
    assert_eq!(inspection.record_ids, order.record_ids);

    for text in ACCEPTED_TEXT {
        let description = format!("{text}\nline two\tcolumn");
        let request = finding_request(&inspection.inspection_id, &description);
        let finding = client
            .record_finding(call(request, ADMIN, "admin-office", &admin))
            .await
            .unwrap()
            .into_inner()
            .finding
            .unwrap();
        assert_eq!(finding.description, description);
    }

    // Leading and trailing whitespace is removed, as the API documents.
    let request = finding_request(&inspection.inspection_id, "  padded \n");
    let finding = client
        .record_finding(call(request, ADMIN, "admin-office", &admin))
        .await
        .unwrap()
        .into_inner()
        .finding
        .unwrap();
    assert_eq!(finding.description, "padded");

    service.stop().await;
}
