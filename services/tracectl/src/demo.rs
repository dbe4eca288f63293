//! `tracectl demo`: drives a realistic document lifecycle through the running stack, waits
//! until every event is archived, prints the timeline and verifies the chain.

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{Datelike, Days};
use tonic::transport::Channel;
use trace_proto::archive::v1::{GetEntryRequest, get_entry_request};
use trace_proto::common::v1::{Confidentiality, Date};
use trace_proto::document::v1::document_service_client::DocumentServiceClient;
use trace_proto::document::v1::*;

use crate::Identity;

/// Business time zone of the demo stack's services.
const BUSINESS_ZONE: chrono_tz::Tz = chrono_tz::Asia::Shanghai;

fn person(user_id: &str, department: &str, role: &str) -> Identity {
    Identity {
        user_id: user_id.to_owned(),
        department: department.to_owned(),
        roles: vec![role.to_owned()],
    }
}

fn date(value: chrono::NaiveDate) -> Date {
    Date {
        year: value.year(),
        month: value.month() as i32,
        day: value.day() as i32,
    }
}

/// Runs the demo; returns false when the archived trace does not verify.
pub async fn run(
    document_address: &str,
    archive_address: &str,
    timeout_secs: u64,
) -> anyhow::Result<bool> {
    let mut documents = DocumentServiceClient::connect(document_address.to_owned())
        .await
        .with_context(|| {
            format!("failed to connect to the document service at {document_address}")
        })?;
    let (document_id, event_ids) = document_lifecycle(&mut documents).await?;
    println!(
        "document {document_id}: {} calls succeeded",
        event_ids.len()
    );

    let auditor = person("audit.demo", "audit", "audit");
    wait_until_archived(archive_address, &auditor, &event_ids, timeout_secs).await?;
    crate::archive::timeline(archive_address, &auditor, "document", &document_id, false).await?;
    crate::archive::verify(archive_address, &auditor, 1, 0, false).await
}

async fn document_lifecycle(
    client: &mut DocumentServiceClient<Channel>,
) -> anyhow::Result<(String, Vec<String>)> {
    let drafter = person("zhang.min", "admin-office", "employee");
    let reviewer = person("chen.hua", "admin-office", "supervisor");
    let registrar = person("li.na", "admin-office", "administration");
    let borrower = person("wang.qiang", "finance", "finance");
    let scheduler = person("scheduler", "system", "system");
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
    println!("drafted document {document_id}");

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
    println!("registered as {file_number}");

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
                document_id: document_id.clone(),
                revision: 0,
            }))
            .await
            .context("read content")?
            .into_inner();
        events.push(read.event_id);
    }

    let today = trace_runtime::clock::local_date(chrono::Utc::now(), BUSINESS_ZONE);
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
    let tomorrow = today
        .checked_add_days(Days::new(1))
        .context("date overflow")?;
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
    println!("borrowing {borrowing_id} is overdue");

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

/// Polls the archive until every event id is stored, or fails after the timeout.
async fn wait_until_archived(
    address: &str,
    identity: &Identity,
    event_ids: &[String],
    timeout_secs: u64,
) -> anyhow::Result<()> {
    let mut client = crate::archive::connect(address).await?;
    let deadline = Instant::now() + Duration::from_secs(timeout_secs);
    for event_id in event_ids {
        loop {
            let request = identity.request(GetEntryRequest {
                key: Some(get_entry_request::Key::EventId(event_id.clone())),
            });
            match client.get_entry(request).await {
                Ok(_) => break,
                Err(status)
                    if status.code() == tonic::Code::NotFound && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(status) => anyhow::bail!("event {event_id} is not archived: {status}"),
            }
        }
    }
    println!("all {} events archived", event_ids.len());
    Ok(())
}
