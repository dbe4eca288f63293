//! Concurrent document calls that log every outcome in a [`Recorder`].

use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tonic::transport::Channel;
use trace_proto::common::v1::Confidentiality;
use trace_proto::document::v1::document_service_client::DocumentServiceClient;
use trace_proto::document::v1::{CreateDraftRequest, ReviseDraftRequest};

use super::history::Recorder;
use crate::stack::DRAFTER;

/// Revisions made to each draft before a task starts the next one, so that every entity
/// gets several versions whose order the history check can compare.
const REVISIONS_PER_DRAFT: usize = 3;

/// Pause after a failed call, so that a task waiting for a restarted service does not spin.
const PAUSE_AFTER_ERROR: Duration = Duration::from_millis(100);

/// Deadline of one call; a call to a killed or stopped process fails instead of hanging.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Concurrent load on the document service.
pub struct Load {
    tasks: JoinSet<()>,
}

impl Load {
    /// Starts `tasks` tasks that each make calls until `ok_calls_per_task` of them returned
    /// OK, alternating a `CreateDraft` with [`REVISIONS_PER_DRAFT`] `ReviseDraft` calls on
    /// that draft. A task panics if it has not finished within `timeout`.
    pub fn start(
        address: &str,
        recorder: &Recorder,
        tasks: usize,
        ok_calls_per_task: usize,
        timeout: Duration,
    ) -> Self {
        let channel = Channel::from_shared(address.to_owned())
            .expect("document address")
            .timeout(CALL_TIMEOUT)
            .connect_lazy();
        let mut set = JoinSet::new();
        for task in 0..tasks {
            let client = DocumentServiceClient::new(channel.clone());
            let recorder = recorder.clone();
            set.spawn(run_task(
                client,
                recorder,
                task,
                ok_calls_per_task,
                Instant::now() + timeout,
            ));
        }
        Self { tasks: set }
    }

    /// Waits until every task finished, and re-raises a task's panic.
    pub async fn join(mut self) {
        while let Some(result) = self.tasks.join_next().await {
            if let Err(error) = result {
                std::panic::resume_unwind(error.into_panic());
            }
        }
    }
}

async fn run_task(
    mut client: DocumentServiceClient<Channel>,
    recorder: Recorder,
    task: usize,
    ok_calls: usize,
    deadline: Instant,
) {
    let mut ok = 0;
    let mut draft: Option<(String, usize)> = None;
    let mut attempt = 0;
    while ok < ok_calls {
        assert!(
            Instant::now() < deadline,
            "load task {task} made only {ok} of {ok_calls} OK calls before its deadline"
        );
        attempt += 1;
        let succeeded = match draft.take() {
            Some((document_id, revisions)) if revisions < REVISIONS_PER_DRAFT => {
                let result = client
                    .revise_draft(DRAFTER.request(ReviseDraftRequest {
                        document_id: document_id.clone(),
                        content: format!("task {task} attempt {attempt}").into_bytes(),
                        media_type: "text/plain".to_owned(),
                        change_summary: format!("revision {}", revisions + 1),
                    }))
                    .await;
                // The draft's next call is a revision even when this one failed, because a
                // failed call may have committed; the versions only need to increase.
                draft = Some((document_id.clone(), revisions + 1));
                match result {
                    Ok(response) => {
                        let event_id = response.into_inner().event_id;
                        recorder.record_ok("ReviseDraft", &document_id, event_id);
                        true
                    }
                    Err(status) => {
                        recorder.record_error("ReviseDraft", Some(&document_id), &status);
                        false
                    }
                }
            }
            _ => {
                let result = client
                    .create_draft(DRAFTER.request(CreateDraftRequest {
                        title: format!("load {task} {attempt}"),
                        category: "REPORT".to_owned(),
                        department: "admin-office".to_owned(),
                        confidentiality: Confidentiality::Internal as i32,
                        content: format!("task {task} attempt {attempt}").into_bytes(),
                        media_type: "text/plain".to_owned(),
                    }))
                    .await;
                match result {
                    Ok(response) => {
                        let response = response.into_inner();
                        let document_id = response.document.expect("document").document_id;
                        recorder.record_ok("CreateDraft", &document_id, response.event_id);
                        draft = Some((document_id, 0));
                        true
                    }
                    Err(status) => {
                        recorder.record_error("CreateDraft", None, &status);
                        false
                    }
                }
            }
        };
        if succeeded {
            ok += 1;
        } else {
            tokio::time::sleep(PAUSE_AFTER_ERROR).await;
        }
    }
}
