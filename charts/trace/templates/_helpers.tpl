{{/*
Chart name, truncated to 63 characters because Kubernetes label values allow no more.
*/}}
{{- define "trace.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Resource name prefix. A release whose name already contains the chart name is not
repeated, so release "trace" gives "trace-archive", the address tracectl expects.
The prefix is cut to 40 characters so that "<prefix>-disposition-dry-run" still
fits the 52 characters of a CronJob name.
*/}}
{{- define "trace.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Chart label value: name and version.
*/}}
{{- define "trace.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Labels that select every pod of the release; the NetworkPolicies use them.
*/}}
{{- define "trace.releaseSelectorLabels" -}}
app.kubernetes.io/name: {{ include "trace.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
Labels that select the pods of one component. Call with (dict "root" $ "component" NAME).
*/}}
{{- define "trace.selectorLabels" -}}
{{ include "trace.releaseSelectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
Labels of every resource of one component. Call with (dict "root" $ "component" NAME).
*/}}
{{- define "trace.labels" -}}
{{ include "trace.selectorLabels" . }}
helm.sh/chart: {{ include "trace.chart" .root }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: trace
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Container image reference; a digest wins over the tag.
*/}}
{{- define "trace.image" -}}
{{- $image := .Values.image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
Recursive merge of .src over .dst, rendered as YAML. Maps merge key by key; lists,
scalars and nulls in .src replace. Unlike sprig's mergeOverwrite it also lets false,
0 and "" replace a default.
*/}}
{{- define "trace.deepMerge" -}}
{{- $merged := deepCopy .dst -}}
{{- range $key, $value := .src -}}
{{- $current := get $merged $key -}}
{{- if and (kindIs "map" $value) (kindIs "map" $current) -}}
{{- $_ := set $merged $key (include "trace.deepMerge" (dict "dst" $current "src" $value) | fromYaml) -}}
{{- else -}}
{{- $_ := set $merged $key $value -}}
{{- end -}}
{{- end -}}
{{- toYaml $merged -}}
{{- end -}}

{{/*
Effective settings of one service: serviceDefaults merged with services.<name>, plus
"name". Call with (dict "root" $ "name" NAME); parse the result with fromYaml.
Invalid combinations fail the render here, so every template sees the same checks.
*/}}
{{- define "trace.service" -}}
{{- $root := .root -}}
{{- $service := include "trace.deepMerge" (dict "dst" $root.Values.serviceDefaults "src" (get $root.Values.services .name)) | fromYaml -}}
{{- $_ := set $service "name" .name -}}
{{- $replicas := int64 $service.replicas -}}
{{- if and $service.natsCredentials.existingSecret $service.natsNkeySeed.existingSecret -}}
{{- fail (printf "services.%s sets both natsCredentials and natsNkeySeed, but a NATS login uses one of them: a credentials file for a server in operator mode, or an NKey seed for a server that lists users by public key" .name) -}}
{{- end -}}
{{- if and (gt $replicas 1) (not $service.database.existingSecret) -}}
{{- fail (printf "services.%s.replicas is %d, but the service has no PostgreSQL URL, and replicas on SQLite would each keep a separate database; set services.%s.database.existingSecret (or serviceDefaults.database.existingSecret) or use 1 replica" .name $replicas .name) -}}
{{- end -}}
{{- if and (gt $replicas 1) $service.persistence.enabled (not (has "ReadWriteMany" $service.persistence.accessModes)) -}}
{{- fail (printf "services.%s.replicas is %d, but its data volume is a claim without ReadWriteMany, which pods on different nodes cannot share; set services.%s.persistence.accessModes to [ReadWriteMany] or services.%s.persistence.enabled to false" .name $replicas .name .name) -}}
{{- end -}}
{{- toYaml $service -}}
{{- end -}}

{{/*
Names of the enabled services, in the order of the gRPC ports.
*/}}
{{- define "trace.enabledServices" -}}
{{- $names := list -}}
{{- range $name := list "document" "meeting" "project" "worklog" "inspection" "archive" -}}
{{- if (get $.Values.services $name).enabled -}}
{{- $names = append $names $name -}}
{{- end -}}
{{- end -}}
{{- toJson $names -}}
{{- end -}}

{{/*
A value as a TOML literal. Numbers arrive from YAML as floats, so whole numbers are
written as integers, the type the services' u64 and i64 keys need.
*/}}
{{- define "trace.tomlValue" -}}
{{- if kindIs "string" . -}}
{{- toJson . -}}
{{- else if kindIs "bool" . -}}
{{- . -}}
{{- else if or (kindIs "float64" .) (kindIs "int" .) (kindIs "int64" .) -}}
{{- if eq (float64 .) (float64 (int64 .)) -}}
{{- int64 . -}}
{{- else -}}
{{- . -}}
{{- end -}}
{{- else if kindIs "slice" . -}}
[{{- range $index, $item := . }}{{ if $index }}, {{ end }}{{ include "trace.tomlValue" $item }}{{ end -}}]
{{- else -}}
{{- fail (printf "cannot write %v (%s) as a TOML value; use a string, number, boolean or list" . (kindOf .)) -}}
{{- end -}}
{{- end -}}

{{/*
Paths inside the containers.
*/}}
{{- define "trace.configDir" -}}/etc/trace/config{{- end -}}
{{- define "trace.secretsDir" -}}/etc/trace/secrets{{- end -}}

{{/*
Whether a directory file is configured: "true" or "".
*/}}
{{- define "trace.hasDirectory" -}}
{{- if or .Values.directory.content .Values.directory.existingConfigMap -}}true{{- end -}}
{{- end -}}

{{/*
The TOML configuration file of one service (TRACE_CONFIG). Call with
(dict "root" $ "service" SERVICE) where SERVICE comes from "trace.service".
Environment variables (TRACE_DATABASE_URL from a Secret) override its keys.
*/}}
{{- define "trace.configToml" -}}
{{- $root := .root -}}
{{- $service := .service -}}
{{- $values := $root.Values -}}
# Rendered by the trace Helm chart. TRACE_-prefixed environment variables override these keys.
grpc_addr = {{ printf "0.0.0.0:%d" (int64 $service.port) | toJson }}
grpc_max_concurrent_streams = {{ int64 $values.grpcMaxConcurrentStreams }}
grpc_max_calls_in_flight = {{ int64 $values.grpcMaxCallsInFlight }}
blob_store_url = "file:///data/blobs"
{{- if not $service.database.existingSecret }}
database_url = {{ printf "sqlite:///data/%s.db?mode=rwc" $service.name | toJson }}
{{- end }}
business_time_zone = {{ $values.businessTimeZone | toJson }}
log_format = {{ $values.logging.format | toJson }}
log_level = {{ $values.logging.level | toJson }}
shutdown_grace_secs = {{ int64 $values.shutdownGraceSecs }}
{{- if include "trace.hasDirectory" $root }}
directory_file = {{ printf "%s/directory.toml" (include "trace.configDir" $root) | toJson }}
{{- end }}

[nats]
url = {{ $values.nats.url | toJson }}
{{- if $service.natsCredentials.existingSecret }}
credentials_file = {{ printf "%s/nats.creds" (include "trace.secretsDir" $root) | toJson }}
{{- end }}
{{- if $service.natsNkeySeed.existingSecret }}
nkey_seed_file = {{ printf "%s/nats.nk" (include "trace.secretsDir" $root) | toJson }}
{{- end }}
{{- if $values.nats.tls.existingSecret }}
require_tls = true
tls_ca_file = {{ printf "%s/nats-ca.crt" (include "trace.secretsDir" $root) | toJson }}
tls_cert_file = {{ printf "%s/nats-tls.crt" (include "trace.secretsDir" $root) | toJson }}
tls_key_file = {{ printf "%s/nats-tls.key" (include "trace.secretsDir" $root) | toJson }}
{{- end }}
stream_name = {{ $values.nats.streamName | toJson }}
stream_replicas = {{ int64 $values.nats.streamReplicas }}
duplicate_window_secs = {{ int64 $values.nats.duplicateWindowSecs }}
stream_max_age_days = {{ int64 $values.nats.streamMaxAgeDays }}
stream_max_bytes = {{ int64 $values.nats.streamMaxBytes }}
connect_timeout_secs = {{ int64 $values.nats.connectTimeoutSecs }}

[outbox]
batch_size = {{ int64 $values.outbox.batchSize }}
poll_interval_ms = {{ int64 $values.outbox.pollIntervalMs }}
receipt_timeout_secs = {{ int64 $values.outbox.receiptTimeoutSecs }}
max_receipt_timeout_secs = {{ int64 $values.outbox.maxReceiptTimeoutSecs }}
retention_days = {{ int64 $values.outbox.retentionDays }}
max_event_bytes = {{ int64 $values.outbox.maxEventBytes }}
{{- with $values.auth.jwt }}
{{- if or .existingSecret .jwksUrl }}

[auth]
issuer = {{ .issuer | toJson }}
audience = {{ .audience | toJson }}
{{- if .existingSecret }}
jwks_file = {{ printf "%s/jwt-key" (include "trace.secretsDir" $root) | toJson }}
{{- end }}
{{- if .jwksUrl }}
jwks_url = {{ .jwksUrl | toJson }}
jwks_refresh_secs = {{ int64 .jwksRefreshSecs }}
{{- end }}
allow_development_secret = false
{{- end }}
{{- end }}
{{- with $values.encryption }}
{{- if .existingSecret }}

[encryption]
active_key_id = {{ .activeKeyId | toJson }}
allow_development_key = false

[encryption.key_files]
{{ .activeKeyId }} = {{ printf "%s/encryption-key" (include "trace.secretsDir" $root) | toJson }}
{{- end }}
{{- end }}
{{- $table := dict }}
{{- range $key, $value := $service.settings }}
{{- $_ := set $table $key $value }}
{{- end }}
{{- if eq $service.name "archive" }}
{{- if $values.archive.checkpointSigningKey.existingSecret }}
{{- $_ := set $table "checkpoint_signing_key_file" (printf "%s/checkpoint-signing-key" (include "trace.secretsDir" $root)) }}
{{- end }}
{{- /* The archive rejects backup_url without backup_key_file, so both come from the key. */}}
{{- if $values.archive.backupEncryptionKey.existingSecret }}
{{- $_ := set $table "backup_url" ($values.archive.backupUrl | default "file:///data/backup") }}
{{- $_ := set $table "backup_key_file" (printf "%s/backup-key" (include "trace.secretsDir" $root)) }}
{{- end }}
{{- end }}
{{- if $table }}

[{{ $service.name }}]
{{- range $key := keys $table | sortAlpha }}
{{ $key }} = {{ include "trace.tomlValue" (get $table $key) }}
{{- end }}
{{- end }}
{{ end -}}

{{/*
Data of the ConfigMap of one service; its hash is the pod's checksum/config
annotation. Call with (dict "root" $ "service" SERVICE).
*/}}
{{- define "trace.configMapData" -}}
config.toml: |
{{ include "trace.configToml" . | indent 2 }}
{{- with .root.Values.directory.content }}
directory.toml: |
{{ . | indent 2 }}
{{- end }}
{{- end -}}

{{/*
Pod security context: non-root user 10001, whose group owns the mounted volumes.
*/}}
{{- define "trace.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
Container security context of the restricted Pod Security Standard, with a read-only
root file system; /tmp and /data are the only writable paths.
*/}}
{{- define "trace.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
Whether any tracectl CronJob is rendered: "true" or "". They need the archive.
*/}}
{{- define "trace.cronJobsEnabled" -}}
{{- if .Values.services.archive.enabled -}}
{{- range $job := .Values.cronJobs -}}
{{- if $job.enabled -}}true{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
A Kubernetes IntOrString: a quoted percentage or a whole number.
*/}}
{{- define "trace.intOrString" -}}
{{- if kindIs "string" . -}}
{{- quote . -}}
{{- else -}}
{{- int64 . -}}
{{- end -}}
{{- end -}}
