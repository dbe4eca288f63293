#!/usr/bin/env bash
# Checks the Helm chart charts/trace offline with the pinned tools that `make tools`
# installs into .tools/venv (helm-python-sdk, yamllint, kubernetes-validate):
#
#   1. lints the chart (Helm's own linter, strict) for the default and production values
#   2. renders it for the default values, the production example and a changed config
#   3. runs yamllint on the chart's YAML files and on every rendered manifest
#   4. validates every rendered object against the Kubernetes $KUBE_VERSION schemas
#      (kubernetes-validate --strict, which rejects unknown fields)
#   5. checks the rendered objects with check_rendered.py (security context,
#      probes, PodDisruptionBudgets, NetworkPolicies, CronJobs, Secrets, replicas)
#   6. expects values that break the schema or the chart's own rules to fail
#
# It exits non-zero on the first failed step with a message that names it.
#
# Environment:
#   TOOLS_DIR     folder of the pinned tools (default .tools, as in the Makefile)
#   KUBE_VERSION  Kubernetes minor version to validate against (default 1.33)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$repo_root"

tools_dir="${TOOLS_DIR:-.tools}"
venv="$tools_dir/venv"
python="$venv/bin/python"
kube_version="${KUBE_VERSION:-1.33}"
charts_dir="$repo_root/charts"
chart="$charts_dir/trace"
production_values="$chart/examples/production-values.yaml"
directory_file="$repo_root/deploy/local/directory.toml"

work_dir="$(mktemp -d "${TMPDIR:-/tmp}/chart-test.XXXXXX")"
trap 'rm -rf "$work_dir"' EXIT

step() {
  printf '\n==> %s\n' "$*"
}

fail() {
  printf 'chart-test: FAILED: %s\n' "$*" >&2
  exit 1
}

for tool in "$python" "$venv/bin/yamllint" "$venv/bin/kubernetes-validate"; do
  [[ -x $tool ]] || fail "$tool not found; run \`make tools\` first"
done
"$python" -c 'import helm_python' 2>/dev/null ||
  fail "helm-python-sdk is not installed in $venv; run \`make tools\` first"
[[ -f $directory_file ]] || fail "$directory_file not found; the production render uses it"

helm_offline() {
  "$python" "$charts_dir/helm_offline.py" "$@"
}

step "helm lint (strict, Kubernetes $kube_version): default values"
helm_offline lint "$chart" --kube-version "v$kube_version.0" ||
  fail "helm lint of the default values"

step "helm lint (strict, Kubernetes $kube_version): production example"
helm_offline lint "$chart" --kube-version "v$kube_version.0" \
  --values "$production_values" --set-file "directory.content=$directory_file" ||
  fail "helm lint of $production_values"

step "render: default values, production example, and a changed config"
helm_offline render "$chart" --output-dir "$work_dir/default" ||
  fail "render of the default values"
helm_offline render "$chart" --output-dir "$work_dir/production" \
  --values "$production_values" --set-file "directory.content=$directory_file" ||
  fail "render of $production_values"
# Same values as the default render but another log level, which changes every
# service's ConfigMap, so every pod template's checksum/config must change too.
printf 'logging:\n  level: debug\n' >"$work_dir/changed-config.yaml"
helm_offline render "$chart" --output-dir "$work_dir/changed-config" \
  --values "$work_dir/changed-config.yaml" ||
  fail "render with a changed log level"

step "yamllint: chart files and rendered manifests"
"$venv/bin/yamllint" --strict -c "$charts_dir/yamllint.yaml" \
  "$chart/Chart.yaml" "$chart/values.yaml" "$chart/examples" "$chart/alerts" ||
  fail "yamllint of the chart's YAML files"
# Rendered text comes from Helm functions: toYaml writes list items flush with
# their parent key, and the embedded dashboard has PromQL lines that cannot wrap.
rendered_rules="{extends: $charts_dir/yamllint.yaml, rules: {line-length: disable,
  indentation: {spaces: consistent, indent-sequences: whatever}}}"
"$venv/bin/yamllint" --strict -d "$rendered_rules" "$work_dir/default" "$work_dir/production" ||
  fail "yamllint of the rendered manifests"
"$python" -m json.tool "$chart/dashboards/trace-overview.json" >/dev/null ||
  fail "dashboards/trace-overview.json is not valid JSON"
"$python" -m json.tool "$chart/values.schema.json" >/dev/null ||
  fail "values.schema.json is not valid JSON"
echo "yamllint and JSON syntax: passed"

step "kubernetes-validate --strict against Kubernetes $kube_version"
for profile in default production; do
  validation="$work_dir/validate-$profile.log"
  if ! "$venv/bin/kubernetes-validate" -k "$kube_version" --strict --quiet \
    "$work_dir/$profile"/*.yaml >"$validation" 2>&1; then
    cat "$validation" >&2
    fail "kubernetes-validate rejected the $profile manifests"
  fi
  # kubernetes-validate only warns, and exits 0, for a kind it has no schema for.
  # PrometheusRule is a custom resource, so check_rendered.py checks it instead.
  # Any other kind without a schema is a typo in kind or apiVersion.
  unknown_kinds="$(grep '^WARN' "$validation" | grep -v 'kind PrometheusRule ' || true)"
  if [[ -n $unknown_kinds ]]; then
    printf '%s\n' "$unknown_kinds" >&2
    fail "the $profile manifests contain kinds that Kubernetes $kube_version does not know"
  fi
  cat "$validation"
  echo "kubernetes-validate: $profile manifests are valid for Kubernetes $kube_version"
done

step "check_rendered.py: rules on the rendered objects"
"$python" "$charts_dir/check_rendered.py" "$work_dir/default" --profile default \
  --changed-config "$work_dir/changed-config" ||
  fail "check_rendered.py on the default values"
"$python" "$charts_dir/check_rendered.py" "$work_dir/production" --profile production \
  --readme "$chart/README.md" ||
  fail "check_rendered.py on the production example"

step "invalid values must fail the render"
# Each case: a values file, then text that the error message must contain.
expect_render_failure() {
  local case_name=$1 values=$2 expected=$3 output
  printf '%s\n' "$values" >"$work_dir/$case_name.yaml"
  if output="$(helm_offline render "$chart" --output-dir "$work_dir/$case_name" \
    --values "$work_dir/$case_name.yaml" 2>&1)"; then
    fail "$case_name: the render succeeded, but these values must be rejected: $values"
  fi
  if [[ $output != *"$expected"* ]]; then
    printf '%s\n' "$output" >&2
    fail "$case_name: the render failed, but the message lacks \"$expected\""
  fi
  echo "rejected as expected: $case_name"
}
expect_render_failure unknown-top-level-key 'unknownTopLevelKey: true' \
  "additional properties 'unknownTopLevelKey' not allowed"
expect_render_failure unknown-service-key \
  $'services:\n  document:\n    replica: 3' \
  "additional properties 'replica' not allowed"
expect_render_failure port-in-service-defaults $'serviceDefaults:\n  port: 50051' \
  "serviceDefaults"
expect_render_failure stream-replicas-out-of-range $'nats:\n  streamReplicas: 7' \
  "/nats/streamReplicas"
expect_render_failure replicas-on-sqlite \
  $'services:\n  archive:\n    replicas: 2' \
  "replicas on SQLite would each keep a separate database"
expect_render_failure shared-claim-without-rwx \
  $'serviceDefaults:\n  database:\n    existingSecret: db\nservices:\n  document:\n    replicas: 2' \
  "cannot share"
expect_render_failure secret-as-plain-backup-env \
  $'archive:\n  backupStoreEnv:\n    AWS_SECRET_ACCESS_KEY: plain' \
  "invalid propertyName 'AWS_SECRET_ACCESS_KEY'"
expect_render_failure credentials-in-backup-url \
  $'archive:\n  backupUrl: az://backups/ledger?sig=plain' \
  "/archive/backupUrl"
expect_render_failure nats-credentials-and-seed \
  $'services:\n  meeting:\n    natsCredentials:\n      existingSecret: creds\n    natsNkeySeed:\n      existingSecret: seeds' \
  "sets both natsCredentials and natsNkeySeed"
expect_render_failure jwks-url-not-https \
  $'auth:\n  jwt:\n    jwksUrl: http://login.example.com/jwks.json' \
  "/auth/jwt/jwksUrl"

printf '\nchart-test: all checks passed\n'
