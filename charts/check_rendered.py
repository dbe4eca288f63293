"""Check the rendered manifests of the trace chart for the rules the chart promises.

    python charts/check_rendered.py DIR --profile default|production \
        [--changed-config DIR2] [--readme charts/trace/README.md]

DIR contains the files that `helm_offline.py render` wrote. Every rule is checked on
every object it applies to, and all failures are listed before the script exits 1.
--changed-config names a second rendering of the same values with a changed
ConfigMap, whose Deployments must carry other checksum/config annotations.
--readme checks that every trace_ metric used by the dashboard and the alert rules
is documented there.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any, Iterator

import yaml

DOMAIN_SERVICES = ["document", "meeting", "project", "worklog", "inspection"]
SERVICES = DOMAIN_SERVICES + ["archive"]
EXPECTED_ALERTS = {
    "ArchiveVerificationFailed",
    "ArchiveBackupTooOld",
    "ArchiveConsumerLagHigh",
    "OutboxBacklogGrowing",
    "ServiceRejectingCalls",
}
# Metric names in PromQL expressions and in the README.
METRIC_NAME = re.compile(r"\btrace_[a-z0-9_]+\b")


class Checker:
    """Collects failures so that one run reports all of them."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.checks = 0

    def check(self, condition: bool, message: str) -> bool:
        self.checks += 1
        if not condition:
            self.failures.append(message)
        return condition


def load_objects(directory: Path) -> list[dict[str, Any]]:
    objects = []
    for path in sorted(directory.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                objects.append(document)
    if not objects:
        raise SystemExit(f"no manifests found in {directory}")
    return objects


def name_of(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Yield (name, pod template metadata, pod spec) of every workload."""
    for obj in objects:
        if obj["kind"] == "Deployment":
            template = obj["spec"]["template"]
        elif obj["kind"] == "CronJob":
            template = obj["spec"]["jobTemplate"]["spec"]["template"]
        else:
            continue
        yield name_of(obj), template.get("metadata", {}), template["spec"]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def component(obj: dict[str, Any]) -> str:
    return obj["metadata"]["labels"].get("app.kubernetes.io/component", "")


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def check_containers(checker: Checker, objects: list[dict[str, Any]]) -> None:
    for workload, _, spec in pod_specs(objects):
        pod_context = spec.get("securityContext", {})
        checker.check(spec.get("automountServiceAccountToken") is False,
                      f"{workload}: automountServiceAccountToken must be false")
        for container in spec.get("initContainers", []) + spec["containers"]:
            where = f"{workload} container {container['name']}"
            context = container.get("securityContext", {})

            def effective(key: str) -> Any:
                return context.get(key, pod_context.get(key))

            checker.check(effective("runAsNonRoot") is True, f"{where}: runAsNonRoot must be true")
            run_as_user = effective("runAsUser")
            checker.check(run_as_user == 10001, f"{where}: runAsUser must be 10001, got {run_as_user}")
            checker.check(context.get("readOnlyRootFilesystem") is True,
                          f"{where}: readOnlyRootFilesystem must be true")
            checker.check(context.get("allowPrivilegeEscalation") is False,
                          f"{where}: allowPrivilegeEscalation must be false")
            checker.check("ALL" in context.get("capabilities", {}).get("drop", []),
                          f"{where}: capabilities.drop must contain ALL")
            checker.check(not context.get("capabilities", {}).get("add"),
                          f"{where}: capabilities.add must be empty")
            seccomp = (effective("seccompProfile") or {}).get("type")
            checker.check(seccomp == "RuntimeDefault", f"{where}: seccompProfile must be RuntimeDefault, got {seccomp}")
            resources = container.get("resources", {})
            for section in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    checker.check(resource in resources.get(section, {}),
                                  f"{where}: resources.{section}.{resource} is missing")
            mounts = {mount["mountPath"]: mount["name"] for mount in container.get("volumeMounts", [])}
            volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
            tmp = volumes.get(mounts.get("/tmp", ""), {})
            checker.check("emptyDir" in tmp, f"{where}: /tmp must be an emptyDir mount")


def check_deployments(checker: Checker, objects: list[dict[str, Any]]) -> None:
    pdbs = by_kind(objects, "PodDisruptionBudget")
    services = by_kind(objects, "Service")
    config_maps = {obj["metadata"]["name"]: obj for obj in by_kind(objects, "ConfigMap")}
    deployments = by_kind(objects, "Deployment")
    checker.check(len(deployments) > 0, "no Deployment was rendered")
    for deployment in deployments:
        name = name_of(deployment)
        template = deployment["spec"]["template"]
        pod_labels = template["metadata"]["labels"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        checksum = template["metadata"].get("annotations", {}).get("checksum/config", "")
        checker.check(re.fullmatch(r"[0-9a-f]{64}", checksum) is not None,
                      f"{name}: pod template needs a checksum/config annotation (sha256), got {checksum!r}")
        matching_pdbs = [pdb for pdb in pdbs if pdb["spec"]["selector"]["matchLabels"] == selector]
        checker.check(len(matching_pdbs) == 1,
                      f"{name}: expected 1 PodDisruptionBudget with its selector, found {len(matching_pdbs)}")
        matching_services = [svc for svc in services if selects(svc["spec"]["selector"], pod_labels)]
        checker.check(len(matching_services) == 1,
                      f"{name}: expected 1 Service selecting its pods, found {len(matching_services)}")

        container = template["spec"]["containers"][0]
        grpc_ports = [port["containerPort"] for port in container.get("ports", []) if port.get("name") == "grpc"]
        if not checker.check(len(grpc_ports) == 1, f"{name}: container needs one port named grpc"):
            continue
        port = grpc_ports[0]
        for svc in matching_services:
            ports = svc["spec"]["ports"]
            checker.check(svc["spec"].get("type", "ClusterIP") == "ClusterIP", f"{name_of(svc)}: type must be ClusterIP")
            checker.check(any(p.get("name") == "grpc" and p.get("appProtocol") == "grpc" and p["port"] == port
                              for p in ports),
                          f"{name_of(svc)}: needs port {port} named grpc with appProtocol grpc")
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            grpc = container.get(probe, {}).get("grpc")
            checker.check(grpc == {"port": port, "service": ""},
                          f"{name}: {probe} must be grpc on port {port} with service \"\", got {grpc}")

        env = {item["name"]: item for item in container.get("env", [])}
        config_path = env.get("TRACE_CONFIG", {}).get("value", "")
        mounts = {mount["name"]: mount for mount in container.get("volumeMounts", [])}
        config_mount = mounts.get("config", {})
        checker.check(config_mount.get("readOnly") is True, f"{name}: the config volume must be mounted read-only")
        checker.check(config_path == f"{config_mount.get('mountPath')}/config.toml",
                      f"{name}: TRACE_CONFIG {config_path!r} must name config.toml in the config mount")
        checker.check("data" in mounts and mounts["data"]["mountPath"] == "/data", f"{name}: /data must be mounted")
        config_map = config_maps.get(deployment["metadata"]["name"])
        if checker.check(config_map is not None, f"{name}: no ConfigMap of the same name"):
            check_config_toml(checker, name, config_map, port, container, template["spec"])


def mounted_files(spec: dict[str, Any]) -> set[str]:
    """Paths of the files that ConfigMap and Secret volumes put into the first container."""
    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    files = set()
    for mount in spec["containers"][0].get("volumeMounts", []):
        volume = volumes.get(mount["name"], {})
        sources = volume.get("projected", {}).get("sources", [])
        for source in sources:
            for kind in ("secret", "configMap"):
                for item in source.get(kind, {}).get("items", []):
                    files.add(f"{mount['mountPath']}/{item['path']}")
    return files


def check_file_keys(checker: Checker, name: str, config: dict[str, Any], spec: dict[str, Any]) -> None:
    """Check that every *_file key under /etc/trace/secrets names a mounted Secret item."""
    files = mounted_files(spec)

    def walk(table: dict[str, Any], prefix: str) -> None:
        for key, value in table.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            elif key.endswith("_file") and str(value).startswith("/etc/trace/secrets/"):
                checker.check(value in files, f"{name}: {prefix}{key} = {value!r} is not a mounted Secret item")

    walk(config, "")


def check_config_toml(checker: Checker, name: str, config_map: dict[str, Any], port: int,
                      container: dict[str, Any], spec: dict[str, Any]) -> None:
    text = config_map["data"].get("config.toml", "")
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        checker.check(False, f"{name_of(config_map)}: config.toml is not valid TOML: {error}")
        return
    checker.check(config.get("grpc_addr") == f"0.0.0.0:{port}",
                  f"{name_of(config_map)}: grpc_addr must be 0.0.0.0:{port}, got {config.get('grpc_addr')}")
    checker.check(str(config.get("blob_store_url", "")).startswith("file:///data/"),
                  f"{name_of(config_map)}: blob_store_url must be under /data")
    check_file_keys(checker, name, config, spec)
    env = {item["name"]: item for item in container.get("env", [])}
    database = env.get("TRACE_DATABASE_URL")
    if database is not None:
        checker.check("secretKeyRef" in database.get("valueFrom", {}),
                      f"{name}: TRACE_DATABASE_URL must come from a secretKeyRef")
    else:
        checker.check(str(config.get("database_url", "")).startswith("sqlite:///data/"),
                      f"{name_of(config_map)}: without a database Secret, database_url must be SQLite under /data")
    # The directory may also come from an existing ConfigMap, which is not rendered.
    if "directory.toml" in config_map["data"]:
        try:
            tomllib.loads(config_map["data"]["directory.toml"])
        except tomllib.TOMLDecodeError as error:
            checker.check(False, f"{name_of(config_map)}: directory.toml is not valid TOML: {error}")


def check_network_policies(checker: Checker, objects: list[dict[str, Any]]) -> None:
    policies = by_kind(objects, "NetworkPolicy")
    pod_labels = [(workload, metadata.get("labels", {})) for workload, metadata, _ in pod_specs(objects)]
    deny = [policy for policy in policies
            if set(policy["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
            and not policy["spec"].get("ingress") and not policy["spec"].get("egress")]
    if not checker.check(len(deny) == 1, f"expected 1 default-deny NetworkPolicy, found {len(deny)}"):
        return
    deny_selector = deny[0]["spec"]["podSelector"].get("matchLabels", {})
    checker.check(bool(deny_selector), "the default-deny NetworkPolicy must select the release's pods by label")
    for workload, labels in pod_labels:
        checker.check(selects(deny_selector, labels), f"{workload}: its pods are not selected by the default-deny policy")

    egress_ports: set[tuple[int, str]] = set()
    for policy in policies:
        for rule in policy["spec"].get("egress", []):
            for port in rule.get("ports", []):
                egress_ports.add((port["port"], port.get("protocol", "TCP")))
    for expected in ((53, "UDP"), (53, "TCP"), (4222, "TCP"), (5432, "TCP")):
        checker.check(expected in egress_ports, f"no NetworkPolicy allows egress to port {expected[0]}/{expected[1]}")
    for deployment in by_kind(objects, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        port = deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
        allowed = any(
            selects(policy["spec"]["podSelector"].get("matchLabels", {}), labels)
            and any(p["port"] == port for rule in policy["spec"].get("ingress", []) for p in rule.get("ports", []))
            for policy in policies
        )
        checker.check(allowed, f"{name_of(deployment)}: no NetworkPolicy allows ingress to gRPC port {port}")


def check_cron_jobs(checker: Checker, objects: list[dict[str, Any]]) -> None:
    cron_jobs = by_kind(objects, "CronJob")
    checker.check(len(cron_jobs) > 0, "no CronJob was rendered")
    arguments = []
    for cron_job in cron_jobs:
        container = cron_job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
        checker.check(container.get("command") == ["/usr/local/bin/tracectl"],
                      f"{name_of(cron_job)}: must run /usr/local/bin/tracectl")
        env = {item["name"]: item.get("value") for item in container.get("env", [])}
        checker.check(re.fullmatch(r"http://.+-archive:50056", env.get("TRACE_ARCHIVE_ADDR") or "") is not None,
                      f"{name_of(cron_job)}: TRACE_ARCHIVE_ADDR must point at the archive Service")
        arguments.append(container.get("args", []))
    checker.check(any("backup" in args for args in arguments), "no CronJob runs tracectl backup")
    checker.check(any("disposition" in args and "--dry-run" in args for args in arguments),
                  "no CronJob runs tracectl disposition --dry-run")


def check_secrets_and_accounts(checker: Checker, objects: list[dict[str, Any]], all_text: str) -> None:
    for secret in by_kind(objects, "Secret"):
        checker.check(not secret.get("data") and not secret.get("stringData"),
                      f"{name_of(secret)}: the chart must not render Secret values")
    for account in by_kind(objects, "ServiceAccount"):
        checker.check(account.get("automountServiceAccountToken") is False,
                      f"{name_of(account)}: automountServiceAccountToken must be false")
    for workload, _, spec in pod_specs(objects):
        account = spec.get("serviceAccountName", "")
        checker.check(any(obj["metadata"]["name"] == account for obj in by_kind(objects, "ServiceAccount")),
                      f"{workload}: ServiceAccount {account!r} is not rendered")
    checker.check("postgres://" not in all_text and "postgresql://" not in all_text,
                  "a PostgreSQL URL appears in the rendered output; it must come from a Secret")


def check_observability(checker: Checker, objects: list[dict[str, Any]], enabled: bool,
                        readme: Path | None) -> None:
    dashboards = [obj for obj in by_kind(objects, "ConfigMap") if obj["metadata"].get("labels", {}).get("grafana_dashboard")]
    rules = by_kind(objects, "PrometheusRule")
    if not enabled:
        checker.check(not dashboards, "dashboards.enabled is false but a dashboard ConfigMap was rendered")
        checker.check(not rules, "alerts.enabled is false but a PrometheusRule was rendered")
        return
    metrics: set[str] = set()
    if checker.check(len(dashboards) == 1, f"expected 1 dashboard ConfigMap, found {len(dashboards)}"):
        dashboard_map = dashboards[0]
        checker.check(dashboard_map["metadata"]["labels"]["grafana_dashboard"] == "1",
                      "the dashboard ConfigMap needs the label grafana_dashboard: \"1\"")
        for key, text in dashboard_map["data"].items():
            try:
                dashboard = json.loads(text)
            except json.JSONDecodeError as error:
                checker.check(False, f"dashboard {key} is not valid JSON: {error}")
                continue
            for panel in dashboard.get("panels", []):
                for target in panel.get("targets", []):
                    names = METRIC_NAME.findall(target.get("expr", ""))
                    checker.check(bool(names), f"dashboard panel {panel['title']!r} queries no trace_ metric")
                    metrics.update(names)
    if checker.check(len(rules) == 1, f"expected 1 PrometheusRule, found {len(rules)}"):
        rule = rules[0]
        checker.check(rule["apiVersion"] == "monitoring.coreos.com/v1", "PrometheusRule apiVersion must be monitoring.coreos.com/v1")
        alerts = {}
        for group in rule["spec"].get("groups", []):
            checker.check(bool(group.get("name")), "every rule group needs a name")
            for entry in group.get("rules", []):
                alerts[entry.get("alert")] = entry
                checker.check(bool(entry.get("expr")), f"alert {entry.get('alert')} has no expr")
                checker.check("${" not in json.dumps(entry), f"alert {entry.get('alert')} still has a ${{...}} placeholder")
                metrics.update(METRIC_NAME.findall(entry.get("expr", "")))
        missing = EXPECTED_ALERTS - set(alerts)
        checker.check(not missing, f"PrometheusRule lacks the alerts {sorted(missing)}")
    if readme is not None:
        documented = set(METRIC_NAME.findall(readme.read_text()))
        # Histograms are documented by their base name, but queries use the _bucket series.
        used = {re.sub(r"_bucket$", "", name) for name in metrics}
        undocumented = used - documented
        checker.check(not undocumented, f"metrics used by the dashboard or alerts but not listed in {readme}: {sorted(undocumented)}")


def check_production(checker: Checker, objects: list[dict[str, Any]]) -> None:
    deployments = {component(obj): obj for obj in by_kind(objects, "Deployment")}
    for service in DOMAIN_SERVICES:
        replicas = deployments.get(service, {}).get("spec", {}).get("replicas")
        checker.check(replicas == 3, f"production: {service} must run 3 replicas, got {replicas}")
    replicas = deployments.get("archive", {}).get("spec", {}).get("replicas")
    checker.check(replicas == 2, f"production: archive must run 2 replicas, got {replicas}")
    for service, deployment in deployments.items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        env = {item["name"]: item for item in container.get("env", [])}
        checker.check("TRACE_DATABASE_URL" in env, f"production: {service} needs TRACE_DATABASE_URL from a Secret")
        checker.check(bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT", {}).get("value")),
                      f"production: {service} needs OTEL_EXPORTER_OTLP_ENDPOINT")
        checker.check(deployment["spec"]["strategy"]["type"] == "RollingUpdate",
                      f"production: {service} on PostgreSQL should roll, not recreate")
    for config_map in by_kind(objects, "ConfigMap"):
        if "config.toml" not in config_map["data"]:
            continue
        config = tomllib.loads(config_map["data"]["config.toml"])
        where = name_of(config_map)
        checker.check(config.get("log_format") == "json", f"production: {where} must log JSON")
        checker.check(config.get("nats", {}).get("stream_replicas") == 3, f"production: {where} needs stream_replicas = 3")
        checker.check(bool(config.get("nats", {}).get("credentials_file")), f"production: {where} needs a NATS credentials file")
        if config_map["metadata"]["name"].endswith("-archive"):
            archive = config.get("archive", {})
            for key in ("backup_url", "backup_key_file", "checkpoint_signing_key_file"):
                checker.check(key in archive, f"production: {where} needs [archive] {key}")
        # Every service seals confidential event payloads, and the archive opens them.
        encryption = config.get("encryption", {})
        active = encryption.get("active_key_id")
        checker.check(encryption.get("allow_development_key") is False,
                      f"production: {where} must refuse the development encryption key")
        checker.check(active in encryption.get("key_files", {}),
                      f"production: {where} needs a key file for encryption.active_key_id {active!r}")
        auth = config.get("auth", {})
        checker.check(auth.get("allow_development_secret") is False,
                      f"production: {where} must reject tokens signed with the development secret")
        checker.check(bool(auth.get("jwks_file") or auth.get("jwks_url")),
                      f"production: {where} needs auth.jwks_file or auth.jwks_url")


def check_default(checker: Checker, objects: list[dict[str, Any]]) -> None:
    deployments = {component(obj) for obj in by_kind(objects, "Deployment")}
    checker.check(deployments == set(SERVICES), f"default: expected Deployments for {SERVICES}, got {sorted(deployments)}")


def check_changed_config(checker: Checker, objects: list[dict[str, Any]], changed: list[dict[str, Any]]) -> None:
    def checksums(items: list[dict[str, Any]]) -> dict[str, str]:
        return {name_of(obj): obj["spec"]["template"]["metadata"]["annotations"].get("checksum/config", "")
                for obj in by_kind(items, "Deployment")}

    before, after = checksums(objects), checksums(changed)
    for name, checksum in before.items():
        checker.check(after.get(name) not in (None, checksum),
                      f"{name}: checksum/config did not change although its ConfigMap did, so pods would not roll")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path, help="folder of rendered manifests")
    parser.add_argument("--profile", choices=["default", "production"], required=True,
                        help="which values were rendered")
    parser.add_argument("--changed-config", type=Path, metavar="DIR",
                        help="rendering of the same values with a changed ConfigMap")
    parser.add_argument("--readme", type=Path, help="chart README that lists the metric names")
    args = parser.parse_args()

    objects = load_objects(args.directory)
    all_text = "\n".join(path.read_text() for path in sorted(args.directory.glob("*.yaml")))
    checker = Checker()
    check_containers(checker, objects)
    check_deployments(checker, objects)
    check_network_policies(checker, objects)
    check_cron_jobs(checker, objects)
    check_secrets_and_accounts(checker, objects, all_text)
    if args.profile == "production":
        check_production(checker, objects)
        check_observability(checker, objects, enabled=True, readme=args.readme)
    else:
        check_default(checker, objects)
        check_observability(checker, objects, enabled=False, readme=None)
    if args.changed_config is not None:
        check_changed_config(checker, objects, load_objects(args.changed_config))

    if checker.failures:
        print(f"check_rendered: {len(checker.failures)} of {checker.checks} checks failed for {args.directory} ({args.profile}):",
              file=sys.stderr)
        for failure in checker.failures:
            print(f"  - {failure}", file=sys.stderr)
        return 1
    print(f"check_rendered: {checker.checks} checks passed for {args.directory} ({args.profile}), {len(objects)} objects")
    return 0


if __name__ == "__main__":
    sys.exit(main())
