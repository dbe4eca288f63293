//! Loading what a report or communication message shows besides its main row: the current
//! round's content, figures and comments of reports, and the parts of communications.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use trace_proto::worklog::v1 as proto;
use trace_runtime::seal::Keyring;
use trace_runtime::sealed_text::open_rows;
use trace_runtime::{ServiceError, ServiceResult};

use super::WorklogHandler;
use super::content;
use super::convert::{self, CommunicationParts};
use crate::entity::{
    communication, communication_attachment, communication_document, communication_participant,
    report, report_comment, report_figure, report_round,
};

/// Figures of the given reports, every round, ordered by round and position and opened.
pub(super) async fn figures_of<C: ConnectionTrait>(
    connection: &C,
    keyring: &Keyring,
    report_ids: &[String],
) -> ServiceResult<Vec<report_figure::Model>> {
    let rows = report_figure::Entity::find()
        .filter(report_figure::Column::ReportId.is_in(report_ids.iter().map(String::as_str)))
        .order_by_asc(report_figure::Column::Round)
        .order_by_asc(report_figure::Column::Position)
        .all(connection)
        .await?;
    Ok(open_rows(keyring, rows)?)
}

impl WorklogHandler {
    /// Builds the message of one report.
    pub(super) async fn report_view<C: ConnectionTrait>(
        &self,
        connection: &C,
        report: &report::Model,
    ) -> ServiceResult<proto::Report> {
        report_views(connection, &self.keyring, std::slice::from_ref(report))
            .await?
            .pop()
            .ok_or_else(|| {
                ServiceError::Internal(anyhow::anyhow!(
                    "no message was built for report {}",
                    report.id
                ))
            })
    }
}

/// Builds the messages of `reports`, in their order, with three queries for the whole page.
pub(super) async fn report_views<C: ConnectionTrait>(
    connection: &C,
    keyring: &Keyring,
    reports: &[report::Model],
) -> ServiceResult<Vec<proto::Report>> {
    let ids: Vec<String> = reports.iter().map(|report| report.id.clone()).collect();
    let rounds = report_round::Entity::find()
        .filter(report_round::Column::ReportId.is_in(ids.iter().map(String::as_str)))
        .all(connection)
        .await?;
    // Only the current round of each report is shown, so only those are opened.
    let current: Vec<report_round::Model> = rounds
        .into_iter()
        .filter(|round| {
            reports
                .iter()
                .any(|report| report.id == round.report_id && report.round == round.round)
        })
        .collect();
    let rounds = open_rows(keyring, current)?;
    let figures = figures_of(connection, keyring, &ids).await?;
    let comments = report_comment::Entity::find()
        .filter(report_comment::Column::ReportId.is_in(ids.iter().map(String::as_str)))
        .order_by_asc(report_comment::Column::Id)
        .all(connection)
        .await?;
    let comments = open_rows(keyring, comments)?;

    let view = |report: &report::Model| {
        let current = rounds
            .iter()
            .find(|round| round.report_id == report.id && round.round == report.round);
        let round_figures: Vec<_> = figures
            .iter()
            .filter(|figure| figure.report_id == report.id && figure.round == report.round)
            .collect();
        let content = current
            .map(|round| content::from_rows(round, &round_figures))
            .unwrap_or_default();
        let report_comments: Vec<_> = comments
            .iter()
            .filter(|comment| comment.report_id == report.id)
            .collect();
        convert::report(report, &content, &report_comments)
    };
    Ok(reports.iter().map(view).collect())
}

/// Builds the messages of `communications`, in their order, with three queries for the page.
pub(super) async fn communication_views<C: ConnectionTrait>(
    connection: &C,
    communications: &[communication::Model],
) -> ServiceResult<Vec<proto::Communication>> {
    let ids: Vec<&str> = communications.iter().map(|row| row.id.as_str()).collect();
    let participants = communication_participant::Entity::find()
        .filter(communication_participant::Column::CommunicationId.is_in(ids.clone()))
        .order_by_asc(communication_participant::Column::Position)
        .all(connection)
        .await?;
    let attachments = communication_attachment::Entity::find()
        .filter(communication_attachment::Column::CommunicationId.is_in(ids.clone()))
        .order_by_asc(communication_attachment::Column::Position)
        .all(connection)
        .await?;
    let documents = communication_document::Entity::find()
        .filter(communication_document::Column::CommunicationId.is_in(ids))
        .order_by_asc(communication_document::Column::Position)
        .all(connection)
        .await?;

    let view = |row: &communication::Model| {
        let parts = CommunicationParts {
            participants: participants
                .iter()
                .filter(|part| part.communication_id == row.id)
                .collect(),
            attachments: attachments
                .iter()
                .filter(|part| part.communication_id == row.id)
                .collect(),
            documents: documents
                .iter()
                .filter(|part| part.communication_id == row.id)
                .collect(),
        };
        convert::communication(row, &parts)
    };
    Ok(communications.iter().map(view).collect())
}
