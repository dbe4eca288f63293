//! The approval rule for reads of CONFIDENTIAL and SECRET meetings, projects, daily reports
//! and inspection findings, through the real services, NATS and the archive. A reader in the
//! record's read scope who takes no part in it is denied without an access request, denied
//! once the approved request has expired, and denied a SECRET record until they accepted the
//! confidentiality agreement. Each denial reaches the archive as the record's `read_denied`
//! event naming the request it judged, and each permitted read as a `read` event naming the
//! request it used. The services run on a manual clock, so an approval expires without a wait.

use chrono::{TimeZone, Utc};
use prost::Message;
use tonic::transport::Channel as GrpcChannel;
use tonic::{Code, Status};
use trace_proto::common::v1::Confidentiality;
use trace_runtime::clock::{Clock, timestamp};
use trace_tests::corpus::recorded_denial;

use crate::stack::*;

/// 10:00 on Monday 7 December 2026 in Shanghai, the business time zone of the defaults.
fn start_instant() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 2, 0, 0).unwrap()
}

/// The fields that the `read` and `read_denied` payloads of the four services share.
trait ReadPayload: Message + Default {
    fn method(&self) -> &str;
    fn access_request_id(&self) -> &str;
}

/// The reason that the `read_denied` payloads add.
trait DenialPayload: ReadPayload {
    fn reason(&self) -> &str;
}

macro_rules! read_payloads {
    ($($payload:ty),* $(,)?) => {$(
        impl ReadPayload for $payload {
            fn method(&self) -> &str {
                &self.method
            }
            fn access_request_id(&self) -> &str {
                &self.access_request_id
            }
        }
    )*};
}

macro_rules! denial_payloads {
    ($($payload:ty),* $(,)?) => {$(
        impl DenialPayload for $payload {
            fn reason(&self) -> &str {
                &self.reason
            }
        }
    )*};
}

read_payloads!(
    trace_proto::meeting::v1::MeetingRead,
    trace_proto::meeting::v1::MeetingReadDenied,
    trace_proto::project::v1::ProjectRead,
    trace_proto::project::v1::ProjectReadDenied,
    trace_proto::worklog::v1::RecordRead,
    trace_proto::worklog::v1::RecordReadDenied,
    trace_proto::inspection::v1::FindingRead,
    trace_proto::inspection::v1::FindingReadDenied,
);
denial_payloads!(
    trace_proto::meeting::v1::MeetingReadDenied,
    trace_proto::project::v1::ProjectReadDenied,
    trace_proto::worklog::v1::RecordReadDenied,
    trace_proto::inspection::v1::FindingReadDenied,
);

/// The calls of one service that the approval rule involves. The author creates the
/// records, the reader reads them and requests access, and the decider approves.
trait ApprovalCalls {
    type Read: ReadPayload;
    type ReadDenied: DenialPayload;
    /// Entity type of the records in the archive.
    const ENTITY_TYPE: &'static str;
    /// The RPC that `read` calls, as the read events name it.
    const READ_METHOD: &'static str;
    /// The reader: in the read scope of the records, but no participant.
    const READER: Person;

    /// Creates a record at `level` as the author and returns its id.
    async fn create(&mut self, level: Confidentiality) -> String;
    async fn read(&mut self, record_id: &str) -> Result<(), Status>;
    /// Asks for access to `record_id` as the reader and returns the request's id.
    async fn request_access(&mut self, record_id: &str) -> String;
    /// Approves the request as the decider, until `expires_at`.
    async fn approve(&mut self, access_request_id: &str, expires_at: chrono::DateTime<Utc>);
    /// Accepts the current confidentiality agreement as the reader.
    async fn accept_agreement(&mut self);
}

/// Checks that `status` is a recorded denial of the reader's read of `record_id`, waits
/// until the archive has the `read_denied` event it names, and returns that event's payload.
async fn archived_denial<S: ApprovalCalls>(
    stack: &ClockedStack,
    status: &Status,
    record_id: &str,
) -> S::ReadDenied {
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let (message, event_id) = recorded_denial(status, record_id);
    assert!(!event_id.is_empty(), "the denial names no event: {message}");
    let entry = wait_for_entry(&stack.archive.address, S::ENTITY_TYPE, record_id, |entry| {
        entry.event_id == event_id
    })
    .await;
    assert_eq!(entry.action, "read_denied");
    let actor = entry.actor.clone().expect("the entry names its actor");
    assert_eq!(actor.user_id, S::READER.user_id);
    let payload: S::ReadDenied = entry_payload(&entry);
    assert_eq!(payload.method(), S::READ_METHOD);
    payload
}

/// Waits until the archive has a `read` event of `record_id` and returns its payload.
async fn archived_read<S: ApprovalCalls>(stack: &ClockedStack, record_id: &str) -> S::Read {
    let entry = wait_for_entry(&stack.archive.address, S::ENTITY_TYPE, record_id, |entry| {
        entry.action == "read"
    })
    .await;
    let actor = entry.actor.clone().expect("the entry names its actor");
    assert_eq!(actor.user_id, S::READER.user_id);
    let payload: S::Read = entry_payload(&entry);
    assert_eq!(payload.method(), S::READ_METHOD);
    payload
}

/// Walks the reader through a CONFIDENTIAL and a SECRET record of `service`: no request, an
/// approved request, the same request expired, and a SECRET record before and after the
/// agreement. Each outcome is checked in the archive.
async fn check_approval_rule<S: ApprovalCalls>(stack: &ClockedStack, service: &mut S) {
    let confidential = service.create(Confidentiality::Confidential).await;
    let secret = service.create(Confidentiality::Secret).await;

    // Without a request the reader is denied, and the archived denial names no request.
    let status = service
        .read(&confidential)
        .await
        .expect_err("a read without a request");
    let denied = archived_denial::<S>(stack, &status, &confidential).await;
    assert_eq!(denied.access_request_id(), "");
    assert!(
        denied
            .reason()
            .contains("has no approved access request for"),
        "{}",
        denied.reason()
    );

    // With an approved request the read succeeds, and the archived read names the request.
    let request_id = service.request_access(&confidential).await;
    let expires_at = stack.clock.now() + chrono::Duration::hours(1);
    service.approve(&request_id, expires_at).await;
    service
        .read(&confidential)
        .await
        .expect("a read under an approved request");
    let read = archived_read::<S>(stack, &confidential).await;
    assert_eq!(read.access_request_id(), request_id);

    // Once the approval has expired the read is denied, and the denial names the request.
    stack.clock.advance(chrono::Duration::hours(2));
    let status = service
        .read(&confidential)
        .await
        .expect_err("a read after the approval expired");
    assert!(status.message().contains("expired at"), "{status:?}");
    let denied = archived_denial::<S>(stack, &status, &confidential).await;
    assert_eq!(denied.access_request_id(), request_id);
    assert!(
        denied.reason().contains("expired at"),
        "{}",
        denied.reason()
    );

    // A SECRET record with an approved request still needs the accepted agreement.
    let secret_request_id = service.request_access(&secret).await;
    let expires_at = stack.clock.now() + chrono::Duration::hours(1);
    service.approve(&secret_request_id, expires_at).await;
    let status = service
        .read(&secret)
        .await
        .expect_err("a SECRET read without the agreement");
    assert!(
        status.message().contains("confidentiality agreement"),
        "{status:?}"
    );
    let denied = archived_denial::<S>(stack, &status, &secret).await;
    assert_eq!(denied.access_request_id(), secret_request_id);
    assert!(
        denied.reason().contains("confidentiality agreement"),
        "{}",
        denied.reason()
    );
    service.accept_agreement().await;
    service
        .read(&secret)
        .await
        .expect("a SECRET read with approval and agreement");
    let read = archived_read::<S>(stack, &secret).await;
    assert_eq!(read.access_request_id(), secret_request_id);
}

fn proto_timestamp(instant: chrono::DateTime<Utc>) -> prost_types::Timestamp {
    timestamp(instant.timestamp_micros())
}

const AGREEMENT_VERSION: &str = "2026-01";
const PURPOSE: &str = "Quarterly review";
const OPINION: &str = "For the quarterly review only";

/// Defines `approve` as a DecideAccess call by `$decider` and `accept_agreement` as an
/// AcceptAgreement call by `$reader`, for a service whose proto module is in scope: the four
/// services name these messages and their fields alike.
macro_rules! decide_and_accept_calls {
    ($decider:expr, $reader:expr) => {
        async fn approve(&mut self, access_request_id: &str, expires_at: chrono::DateTime<Utc>) {
            let decision = DecideAccessRequest {
                access_request_id: access_request_id.to_owned(),
                approve: true,
                opinion: OPINION.to_owned(),
                expires_at: Some(proto_timestamp(expires_at)),
            };
            self.0
                .decide_access($decider.request(decision))
                .await
                .expect("approve the access request");
        }

        async fn accept_agreement(&mut self) {
            let accept = AcceptAgreementRequest {
                agreement_version: AGREEMENT_VERSION.to_owned(),
            };
            self.0
                .accept_agreement($reader.request(accept))
                .await
                .expect("accept the agreement");
        }
    };
}

// ---------------------------------------------------------------------------------------
// Meetings: a department head reads the meetings their department's employee organises.

mod meeting {
    use trace_proto::meeting::v1::meeting_service_client::MeetingServiceClient;
    use trace_proto::meeting::v1::*;

    use super::*;

    pub const ORGANISER: Person = DRAFTER;
    pub const HEAD: Person = Person {
        user_id: "he.shi",
        department: "admin-office",
        role: "department_head",
    };
    pub const SUPERVISOR: Person = Person {
        user_id: "wu.di",
        department: "admin-office",
        role: "supervisor",
    };

    pub struct Meetings(pub MeetingServiceClient<GrpcChannel>);

    impl ApprovalCalls for Meetings {
        type Read = MeetingRead;
        type ReadDenied = MeetingReadDenied;
        const ENTITY_TYPE: &'static str = "meeting";
        const READ_METHOD: &'static str = "GetMeeting";
        const READER: Person = HEAD;

        async fn create(&mut self, level: Confidentiality) -> String {
            let start = start_instant() + chrono::Duration::days(1);
            let plan = PlanMeetingRequest {
                topic: "Budget review".to_owned(),
                start_time: Some(proto_timestamp(start)),
                end_time: Some(proto_timestamp(start + chrono::Duration::hours(1))),
                channel: Channel::InPerson as i32,
                location: "Room 2".to_owned(),
                attendee_ids: vec!["wang.wu".to_owned(), "chen.qi".to_owned()],
                agenda: vec![AgendaItem {
                    title: "Budget".to_owned(),
                    presenter_id: String::new(),
                }],
                confidentiality: level as i32,
            };
            let planned = self
                .0
                .plan_meeting(ORGANISER.request(plan))
                .await
                .expect("plan a meeting")
                .into_inner();
            planned.meeting.expect("the planned meeting").meeting_id
        }

        async fn read(&mut self, record_id: &str) -> Result<(), Status> {
            let request = GetMeetingRequest {
                meeting_id: record_id.to_owned(),
            };
            self.0.get_meeting(HEAD.request(request)).await.map(drop)
        }

        async fn request_access(&mut self, record_id: &str) -> String {
            let request = RequestAccessRequest {
                meeting_id: record_id.to_owned(),
                purpose: PURPOSE.to_owned(),
            };
            let requested = self
                .0
                .request_access(HEAD.request(request))
                .await
                .expect("request access to the meeting")
                .into_inner();
            requested
                .access_request
                .expect("the request")
                .access_request_id
        }

        decide_and_accept_calls!(SUPERVISOR, HEAD);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meeting_reads_need_approval() {
    let stack = ClockedStack::start(start_instant()).await;
    let service =
        start_meeting_with_clock(&stack.nats_url(), stack.dir.path(), stack.service_clock()).await;
    let mut meetings = meeting::Meetings(meeting_client(&service.address).await);
    check_approval_rule(&stack, &mut meetings).await;
    service.stop().await;
    stack.archive.stop().await;
}

// ---------------------------------------------------------------------------------------
// Projects: a department head reads the applications of their department's manager.

mod project {
    use trace_proto::project::v1::project_service_client::ProjectServiceClient;
    use trace_proto::project::v1::*;

    use super::*;

    pub const MANAGER: Person = Person {
        user_id: "li.wei",
        department: "it",
        role: "employee",
    };
    pub const HEAD: Person = Person {
        user_id: "sun.head",
        department: "it",
        role: "department_head",
    };
    pub const SUPERVISOR: Person = Person {
        user_id: "lu.lead",
        department: "it",
        role: "supervisor",
    };

    pub struct Projects(pub ProjectServiceClient<GrpcChannel>);

    fn date(year: i32, month: u32, day: u32) -> Option<trace_proto::common::v1::Date> {
        let date = chrono::NaiveDate::from_ymd_opt(year, month, day).expect("a calendar date");
        Some(trace_runtime::clock::proto_date(date))
    }

    impl ApprovalCalls for Projects {
        type Read = ProjectRead;
        type ReadDenied = ProjectReadDenied;
        const ENTITY_TYPE: &'static str = "project";
        const READ_METHOD: &'static str = "GetProject";
        const READER: Person = HEAD;

        async fn create(&mut self, level: Confidentiality) -> String {
            let approver = |approver_id: &str| ApproverEntry {
                approver_id: approver_id.to_owned(),
                required: true,
            };
            let application = SubmitApplicationRequest {
                name: "Warehouse system".to_owned(),
                department: MANAGER.department.to_owned(),
                confidentiality: level as i32,
                background: "Stock is tracked on paper.".to_owned(),
                goals: "Track stock in real time.".to_owned(),
                tasks: vec![Task {
                    title: "Requirements".to_owned(),
                    description: "Interview the warehouse staff.".to_owned(),
                }],
                milestones: vec![Milestone {
                    name: "Go-live".to_owned(),
                    due_date: date(2027, 3, 1),
                }],
                resource_needs: "Two developers for three months.".to_owned(),
                expected_results: "A running stock system.".to_owned(),
                approval_chain: vec![approver("zhao.head"), approver("qian.finance")],
            };
            let submitted = self
                .0
                .submit_application(MANAGER.request(application))
                .await
                .expect("submit an application")
                .into_inner();
            submitted.project.expect("the project").project_id
        }

        async fn read(&mut self, record_id: &str) -> Result<(), Status> {
            let request = GetProjectRequest {
                project_id: record_id.to_owned(),
            };
            self.0.get_project(HEAD.request(request)).await.map(drop)
        }

        async fn request_access(&mut self, record_id: &str) -> String {
            let request = RequestAccessRequest {
                project_id: record_id.to_owned(),
                purpose: PURPOSE.to_owned(),
            };
            let requested = self
                .0
                .request_access(HEAD.request(request))
                .await
                .expect("request access to the project")
                .into_inner();
            requested
                .access_request
                .expect("the request")
                .access_request_id
        }

        decide_and_accept_calls!(SUPERVISOR, HEAD);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_reads_need_approval() {
    let stack = ClockedStack::start(start_instant()).await;
    let service = start_project(&stack.nats_url(), stack.dir.path(), stack.service_clock()).await;
    let client = project_client(&service.address).await;
    check_approval_rule(&stack, &mut project::Projects(client)).await;
    service.stop().await;
    stack.archive.stop().await;
}

// ---------------------------------------------------------------------------------------
// Daily reports: the department head reads a clerk's reports, which the clerk's direct
// supervisor decides on.

mod worklog {
    use trace_proto::worklog::v1::worklog_service_client::WorklogServiceClient;
    use trace_proto::worklog::v1::*;

    use super::*;

    pub const CLERK: Person = Person {
        user_id: "zhang.min",
        department: "sales",
        role: "employee",
    };
    pub const LEAD: Person = Person {
        user_id: "chen.hua",
        department: "sales",
        role: "supervisor",
    };
    pub const HEAD: Person = Person {
        user_id: "li.na",
        department: "sales",
        role: "department_head",
    };

    /// The company directory: the lead supervises the clerk, and the head heads sales.
    pub const DIRECTORY: &str = r#"
[[departments]]
id = "sales"
name = "業務部"
head = "li.na"

[[employees]]
id = "li.na"
name = "李娜"
department = "sales"
position = "業務部經理"
roles = ["department_head"]

[[employees]]
id = "chen.hua"
name = "陳華"
department = "sales"
position = "業務主管"
roles = ["supervisor"]
supervisor = "li.na"

[[employees]]
id = "zhang.min"
name = "張敏"
department = "sales"
position = "業務員"
roles = ["employee"]
supervisor = "chen.hua"
"#;

    pub struct Reports(pub WorklogServiceClient<GrpcChannel>);

    impl ApprovalCalls for Reports {
        type Read = RecordRead;
        type ReadDenied = RecordReadDenied;
        const ENTITY_TYPE: &'static str = "daily_report";
        const READ_METHOD: &'static str = "GetReport";
        const READER: Person = HEAD;

        /// Submits the clerk's daily report, of Monday 7 December 2026 when CONFIDENTIAL
        /// and of Friday 4 December 2026 otherwise, so that each level has its own day.
        async fn create(&mut self, level: Confidentiality) -> String {
            let day = if level == Confidentiality::Confidential {
                7
            } else {
                4
            };
            let work_date = chrono::NaiveDate::from_ymd_opt(2026, 12, day).expect("a date");
            let report = SubmitDailyReportRequest {
                work_date: Some(trace_runtime::clock::proto_date(work_date)),
                content: Some(DailyContent {
                    work_done: "Visited two customers".to_owned(),
                    results: "Two quotes signed".to_owned(),
                    problems: String::new(),
                    solutions: String::new(),
                    next_day_plan: "Follow up the quotes".to_owned(),
                }),
                confidentiality: level as i32,
            };
            let submitted = self
                .0
                .submit_daily_report(CLERK.request(report))
                .await
                .expect("submit a daily report")
                .into_inner();
            submitted.report.expect("the report").report_id
        }

        async fn read(&mut self, record_id: &str) -> Result<(), Status> {
            let request = GetReportRequest {
                report_id: record_id.to_owned(),
            };
            self.0.get_report(HEAD.request(request)).await.map(drop)
        }

        async fn request_access(&mut self, record_id: &str) -> String {
            let request = RequestAccessRequest {
                record_id: record_id.to_owned(),
                purpose: PURPOSE.to_owned(),
            };
            let requested = self
                .0
                .request_access(HEAD.request(request))
                .await
                .expect("request access to the report")
                .into_inner();
            requested
                .access_request
                .expect("the request")
                .access_request_id
        }

        decide_and_accept_calls!(LEAD, HEAD);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_reads_need_approval() {
    let stack = ClockedStack::start(start_instant()).await;
    let service = start_worklog(
        &stack.nats_url(),
        stack.dir.path(),
        stack.service_clock(),
        worklog::DIRECTORY,
    )
    .await;
    let client = worklog_client(&service.address).await;
    check_approval_rule(&stack, &mut worklog::Reports(client)).await;
    service.stop().await;
    stack.archive.stop().await;
}

// ---------------------------------------------------------------------------------------
// Inspection findings: the administration records findings about engineering, whose head
// reads them and whose supervisor decides on the requests.

mod inspection {
    use trace_proto::inspection::v1::inspection_service_client::InspectionServiceClient;
    use trace_proto::inspection::v1::*;

    use super::*;

    pub const ADMIN: Person = Person {
        user_id: "li.na",
        department: "admin-office",
        role: "administration",
    };
    pub const HEAD: Person = Person {
        user_id: "huang.wei",
        department: "engineering",
        role: "department_head",
    };
    /// Unknown to the directory, so the roles of the call apply.
    pub const SUPERVISOR: Person = Person {
        user_id: "sun.li",
        department: "engineering",
        role: "supervisor",
    };

    /// The company directory: the head heads engineering, the department the findings are
    /// about.
    pub const DIRECTORY: &str = r#"
[[departments]]
id = "admin-office"
name = "行政部"
head = "li.na"

[[departments]]
id = "engineering"
name = "研發部"
head = "huang.wei"

[[employees]]
id = "li.na"
name = "李娜"
department = "admin-office"
position = "行政部經理"
roles = ["department_head", "administration"]

[[employees]]
id = "huang.wei"
name = "黃偉"
department = "engineering"
position = "研發部經理"
roles = ["department_head"]
"#;

    pub struct Findings(pub InspectionServiceClient<GrpcChannel>);

    impl ApprovalCalls for Findings {
        type Read = FindingRead;
        type ReadDenied = FindingReadDenied;
        const ENTITY_TYPE: &'static str = "finding";
        const READ_METHOD: &'static str = "GetFinding";
        const READER: Person = HEAD;

        /// Orders a spot check of engineering and records a finding of it at `level`.
        async fn create(&mut self, level: Confidentiality) -> String {
            let order = OrderSpotCheckRequest {
                departments: vec![HEAD.department.to_owned()],
                processes: vec![Process::DailyRecords as i32],
                record_ids: vec!["report-17".to_owned()],
                method: SpotCheckMethod::Interview as i32,
            };
            let ordered = self
                .0
                .order_spot_check(ADMIN.request(order))
                .await
                .expect("order a spot check")
                .into_inner();
            let finding = RecordFindingRequest {
                inspection_id: ordered.inspection.expect("the inspection").inspection_id,
                severity: Severity::High as i32,
                department: HEAD.department.to_owned(),
                description: "Salary table shared in a chat.".to_owned(),
                references: Vec::new(),
                confidentiality: level as i32,
            };
            let recorded = self
                .0
                .record_finding(ADMIN.request(finding))
                .await
                .expect("record a finding")
                .into_inner();
            recorded.finding.expect("the finding").finding_id
        }

        async fn read(&mut self, record_id: &str) -> Result<(), Status> {
            let request = GetFindingRequest {
                finding_id: record_id.to_owned(),
            };
            self.0.get_finding(HEAD.request(request)).await.map(drop)
        }

        async fn request_access(&mut self, record_id: &str) -> String {
            let request = RequestAccessRequest {
                finding_id: record_id.to_owned(),
                purpose: PURPOSE.to_owned(),
                inspection_id: String::new(),
            };
            let requested = self
                .0
                .request_access(HEAD.request(request))
                .await
                .expect("request access to the finding")
                .into_inner();
            requested
                .access_request
                .expect("the request")
                .access_request_id
        }

        decide_and_accept_calls!(SUPERVISOR, HEAD);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_reads_need_approval() {
    let stack = ClockedStack::start(start_instant()).await;
    let service = start_inspection(
        &stack.nats_url(),
        stack.dir.path(),
        stack.service_clock(),
        inspection::DIRECTORY,
    )
    .await;
    let client = inspection_client(&service.address).await;
    check_approval_rule(&stack, &mut inspection::Findings(client)).await;
    service.stop().await;
    stack.archive.stop().await;
}
