//! Metric instruments of the inspection service. Names follow [`trace_runtime::metrics`], and
//! every data point carries `service = "inspection"`.

use std::sync::LazyLock;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Counter;

use crate::rules::RuleKind;
use crate::sweep::SweepOutcome;

/// Counter `trace.rule.findings` by `rule`, created from the global meter provider on first
/// use, which must come after [`trace_runtime::telemetry::init`].
static FINDINGS: LazyLock<Counter<u64>> = LazyLock::new(|| {
    trace_runtime::metrics::meter()
        .u64_counter("trace.rule.findings")
        .with_unit("{finding}")
        .with_description("Findings raised by the business rules")
        .build()
});

/// Counts the findings of a committed sweep by rule.
pub fn record_findings(outcome: &SweepOutcome) {
    for (rule, raised) in RuleKind::ALL.iter().zip(outcome.raised_by_rule) {
        if raised > 0 {
            FINDINGS.add(
                u64::from(raised),
                &[
                    KeyValue::new("service", "inspection"),
                    KeyValue::new("rule", rule.name()),
                ],
            );
        }
    }
}
