//! `tracectl completeness`: the completeness score of a department over a period, with the
//! counts of each completeness rule.

use anyhow::Context;
use chrono::NaiveDate;
use tonic::transport::Channel;
use trace_proto::inspection::v1::inspection_service_client::InspectionServiceClient;
use trace_proto::inspection::v1::{
    CompletenessCounts, GetCompletenessScoreRequest, GetCompletenessScoreResponse, Rule,
};
use trace_runtime::clock::proto_date;

use crate::Identity;

/// Connects to the inspection service.
pub async fn connect(address: &str) -> anyhow::Result<InspectionServiceClient<Channel>> {
    InspectionServiceClient::connect(address.to_owned())
        .await
        .with_context(|| format!("failed to connect to the inspection service at {address}"))
}

/// Fetches the score of `department` from `from` to `to`, both inclusive.
pub async fn fetch(
    client: &mut InspectionServiceClient<Channel>,
    identity: &Identity,
    department: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> anyhow::Result<GetCompletenessScoreResponse> {
    let request = identity.request(GetCompletenessScoreRequest {
        department: department.to_owned(),
        from: Some(proto_date(from)),
        to: Some(proto_date(to)),
    });
    let score = client
        .get_completeness_score(request)
        .await
        .with_context(|| format!("get the completeness score of {department} from {from} to {to}"))?
        .into_inner();
    Ok(score)
}

/// Prints the score of a department over a period.
pub async fn print(
    address: &str,
    identity: &Identity,
    department: &str,
    from: NaiveDate,
    to: NaiveDate,
    json: bool,
) -> anyhow::Result<bool> {
    let mut client = connect(address).await?;
    let score = fetch(&mut client, identity, department, from, to).await?;
    if json {
        out!("{}", score_json(&score, from, to));
    } else {
        print_text(&score, from, to);
    }
    Ok(true)
}

/// Prints the score and one line per rule as text.
pub fn print_text(score: &GetCompletenessScoreResponse, from: NaiveDate, to: NaiveDate) {
    out!(
        "completeness of {} from {from} to {to}: {:.3} ({} of {} expected records on time, {} present)",
        score.department,
        score.score,
        score.on_time,
        score.expected,
        score.present
    );
    for counts in &score.rules {
        out!(
            "  {:<28} {:.3}  expected {:>4}  present {:>4}  on time {:>4}",
            rule_name(counts.rule),
            counts.score,
            counts.expected,
            counts.present,
            counts.on_time
        );
    }
}

fn score_json(
    score: &GetCompletenessScoreResponse,
    from: NaiveDate,
    to: NaiveDate,
) -> serde_json::Value {
    let rules: Vec<serde_json::Value> = score.rules.iter().map(counts_json).collect();
    serde_json::json!({
        "department": score.department,
        "from": from.to_string(),
        "to": to.to_string(),
        "expected": score.expected,
        "present": score.present,
        "on_time": score.on_time,
        "score": score.score,
        "rules": rules,
    })
}

fn counts_json(counts: &CompletenessCounts) -> serde_json::Value {
    serde_json::json!({
        "rule": rule_name(counts.rule),
        "expected": counts.expected,
        "present": counts.present,
        "on_time": counts.on_time,
        "score": counts.score,
    })
}

/// Returns the rule's name without the `RULE_` prefix, in lower case, or the number of an
/// unknown rule.
pub fn rule_name(rule: i32) -> String {
    match Rule::try_from(rule) {
        Ok(known) => {
            let name = known.as_str_name();
            name.strip_prefix("RULE_").unwrap_or(name).to_lowercase()
        }
        Err(_) => format!("rule {rule}"),
    }
}
