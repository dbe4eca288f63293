//! The document part of the demo: drafting, review, registration, backup, reading, and a
//! borrowing that goes overdue and comes back damaged.

use anyhow::Context;
use tonic::transport::Channel;
use trace_proto::common::v1::Confidentiality;
use trace_proto::document::v1::document_service_client::DocumentServiceClient;
use trace_proto::document::v1::*;
use trace_runtime::clock::proto_date as date;

use super::{days_after, person, today};

/// Drives one document through its lifecycle and returns its id and the event ids.
pub(super) async fn lifecycle(
    client: &mut DocumentServiceClient<Channel>,
) -> anyhow::Result<(String, Vec<String>)> {
    let drafter = person("zhang.min", "admin-office", &["employee"]);
    let reviewer = person("chen.hua", "admin-office", &["supervisor"]);
    let registrar = person("li.na", "admin-office", &["administration"]);
    let borrower = person("wang.qiang", "finance", &["finance"]);
    let scheduler = person("scheduler", "system", &["system"]);
    let mut events = Vec::new();

    let drafted = client
        .create_draft(drafter.request(CreateDraftRequest {
            title: "二〇二六年度供應商合作協議".to_owned(),
            category: "CONTRACT".to_owned(),
            department: "admin-office".to_owned(),
            confidentiality: Confidentiality::Internal as i32,
            content: "第一條 合作範圍……".as_bytes().to_vec(),
            media_type: "text/plain; charset=utf-8".to_owned(),
        }))
        .await
        .context("create draft")?
        .into_inner();
    events.push(drafted.event_id);
    let document_id = drafted
        .document
        .context("draft has no document")?
        .document_id;
    out!("drafted document {document_id}");

    for (round, summary) in ["補充付款條款", "修訂違約責任"].iter().enumerate() {
        let revised = client
            .revise_draft(drafter.request(ReviseDraftRequest {
                document_id: document_id.clone(),
                content:
                    format!("第一條 合作範圍……\n第{}次修訂：{summary}", round + 1).into_bytes(),
                media_type: "text/plain; charset=utf-8".to_owned(),
                change_summary: (*summary).to_owned(),
            }))
            .await
            .context("revise draft")?
            .into_inner();
        events.push(revised.event_id);
    }

    let submitted = client
        .submit_for_review(drafter.request(SubmitForReviewRequest {
            document_id: document_id.clone(),
            reviewer_id: reviewer.user_id.clone(),
        }))
        .await
        .context("submit for review")?
        .into_inner();
    events.push(submitted.event_id);

    let reviewed = client
        .review_document(reviewer.request(ReviewDocumentRequest {
            document_id: document_id.clone(),
            decision: ReviewDecision::Approve as i32,
            opinion: "條款完整，同意歸檔。".to_owned(),
        }))
        .await
        .context("review")?
        .into_inner();
    events.push(reviewed.event_id);

    let registered = client
        .register_document(registrar.request(RegisterDocumentRequest {
            document_id: document_id.clone(),
            storage_location: "檔案室 B 櫃第 3 層".to_owned(),
        }))
        .await
        .context("register")?
        .into_inner();
    events.push(registered.event_id);
    let file_number = registered
        .document
        .map(|d| d.file_number)
        .unwrap_or_default();
    out!("registered as {file_number}");

    let backup = client
        .record_backup(registrar.request(RecordBackupRequest {
            document_id: document_id.clone(),
            medium: "external disk".to_owned(),
            location: "offsite vault, Suzhou branch".to_owned(),
        }))
        .await
        .context("record backup")?
        .into_inner();
    events.push(backup.event_id);

    for reader in [&reviewer, &borrower] {
        let read = client
            .read_content(reader.request(ReadContentRequest {
                access_request_id: String::new(),
                document_id: document_id.clone(),
                revision: 0,
            }))
            .await
            .context("read content")?
            .into_inner();
        events.push(read.event_id);
    }

    let today = today();
    let applied = client
        .apply_borrowing(borrower.request(ApplyBorrowingRequest {
            document_id: document_id.clone(),
            reason: "年度審計核對付款條款".to_owned(),
            expected_return_date: Some(date(today)),
        }))
        .await
        .context("apply for borrowing")?
        .into_inner();
    events.push(applied.event_id);
    let borrowing_id = applied.borrowing.context("no borrowing")?.borrowing_id;

    let decided = client
        .decide_borrowing(registrar.request(DecideBorrowingRequest {
            borrowing_id: borrowing_id.clone(),
            approve: true,
            opinion: "同意借閱，請按期歸還。".to_owned(),
        }))
        .await
        .context("approve borrowing")?
        .into_inner();
    events.push(decided.event_id);

    let lent = client
        .lend_document(registrar.request(LendDocumentRequest {
            borrowing_id: borrowing_id.clone(),
        }))
        .await
        .context("lend")?
        .into_inner();
    events.push(lent.event_id);

    // The demo cannot wait a day, so the scheduler role previews tomorrow's overdue check.
    let tomorrow = days_after(today, 1)?;
    let overdue = client
        .check_overdue(scheduler.request(CheckOverdueRequest {
            as_of: Some(date(tomorrow)),
        }))
        .await
        .context("check overdue")?
        .into_inner();
    anyhow::ensure!(
        overdue.borrowing_ids.contains(&borrowing_id),
        "the overdue check did not mark borrowing {borrowing_id}"
    );
    out!("borrowing {borrowing_id} is overdue");

    let returned = client
        .return_document(registrar.request(ReturnDocumentRequest {
            borrowing_id: borrowing_id.clone(),
            condition: ReturnCondition::Damaged as i32,
            condition_note: "封面撕裂，第 3 頁有水漬".to_owned(),
        }))
        .await
        .context("return")?
        .into_inner();
    events.push(returned.event_id);

    let handled = client
        .record_handling(registrar.request(RecordHandlingRequest {
            borrowing_id,
            handling_result: "已修補並由借閱人書面說明，歸入檔案室。".to_owned(),
        }))
        .await
        .context("record handling")?
        .into_inner();
    events.push(handled.event_id);

    Ok((document_id, events))
}

/// Shows the access rules of a CONFIDENTIAL document: a read without approval is denied and
/// recorded, the owner department's head approves a request, and the read then succeeds.
/// Returns the document id and the event ids, including the recorded denial.
pub(super) async fn confidential_access(
    client: &mut DocumentServiceClient<Channel>,
) -> anyhow::Result<(String, Vec<String>)> {
    let drafter = person("zhang.min", "admin-office", &["employee"]);
    let head = person("li.na", "admin-office", &["department_head"]);
    let reader = person("wang.qiang", "finance", &["finance"]);
    let mut events = Vec::new();

    let drafted = client
        .create_draft(drafter.request(CreateDraftRequest {
            title: "二〇二七年度薪酬調整方案".to_owned(),
            category: "PLAN".to_owned(),
            department: "admin-office".to_owned(),
            confidentiality: Confidentiality::Confidential as i32,
            content: "調整原則與幅度……".as_bytes().to_vec(),
            media_type: "text/plain; charset=utf-8".to_owned(),
        }))
        .await
        .context("create a confidential draft")?
        .into_inner();
    events.push(drafted.event_id);
    let document_id = drafted
        .document
        .context("draft has no document")?
        .document_id;
    let read = || ReadContentRequest {
        access_request_id: String::new(),
        document_id: document_id.clone(),
        revision: 0,
    };

    let denied = client
        .read_content(reader.request(read()))
        .await
        .err()
        .context("a read without approval was not denied")?;
    anyhow::ensure!(
        denied.code() == tonic::Code::PermissionDenied,
        "a read without approval failed with {:?}, expected PERMISSION_DENIED",
        denied.code()
    );
    let denial_event = denied
        .metadata()
        .get(trace_runtime::denials::RECORDED_HEADER)
        .and_then(|value| value.to_str().ok())
        .context("the denial names no recorded event")?;
    events.push(denial_event.to_owned());
    out!("confidential document {document_id}: read without approval denied");

    let requested = client
        .request_access(reader.request(RequestAccessRequest {
            document_id: document_id.clone(),
            purpose: "預算編製".to_owned(),
            revision: 0,
        }))
        .await
        .context("request access")?
        .into_inner();
    events.push(requested.event_id);
    let request_id = requested
        .access_request
        .context("no access request")?
        .access_request_id;
    let expires_at = chrono::Utc::now() + chrono::Duration::days(7);
    let decided = client
        .decide_access(head.request(DecideAccessRequest {
            access_request_id: request_id.clone(),
            approve: true,
            opinion: "同意，限預算編製使用".to_owned(),
            expires_at: Some(prost_types::Timestamp {
                seconds: expires_at.timestamp(),
                nanos: 0,
            }),
        }))
        .await
        .context("approve access")?
        .into_inner();
    events.push(decided.event_id);
    let permitted = client
        .read_content(reader.request(read()))
        .await
        .context("read with an approved request")?
        .into_inner();
    events.push(permitted.event_id);
    out!("confidential document {document_id}: read under access request {request_id}");
    Ok((document_id, events))
}
