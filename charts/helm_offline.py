"""Render and lint a Helm chart offline through helm-python-sdk.

helm-python-sdk (the `helm_python` module) binds Helm's Go SDK and ships no helm
binary, so this script replaces `helm template` and `helm lint`. Neither call
contacts a cluster or the network: rendering uses Helm's default capabilities, and
the `lookup` function returns nothing.

    python charts/helm_offline.py render charts/trace --values FILE --output-dir DIR
    python charts/helm_offline.py lint charts/trace --values FILE --kube-version v1.33.0

Values files are merged in order, as `helm -f A -f B` does, and `--set-file KEY=PATH`
sets one dotted key to a file's text. Exit status 1 means the chart failed to render
or lint; the message on standard error says why.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import helm_python as helm


def merge_values(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merge override into a copy of base: maps key by key, other values replace."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_values(values_files: list[str], set_files: list[str]) -> dict[str, Any]:
    """Read the values files with Helm's own YAML parser, then apply --set-file."""
    values: dict[str, Any] = {}
    for path in values_files:
        values = merge_values(values, helm.values_from_yaml(Path(path).read_text()))
    for assignment in set_files:
        key, separator, path = assignment.partition("=")
        if not separator or not key or not path:
            raise SystemExit(f"invalid --set-file {assignment!r}: expected KEY=PATH")
        *parents, leaf = key.split(".")
        target = values
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = Path(path).read_text()
    return values


def render(args: argparse.Namespace) -> int:
    values = load_values(args.values, args.set_file)
    try:
        with helm.Chart.load(args.chart) as chart:
            manifests = chart.render(values, name=args.release, namespace=args.namespace)
    except helm.HelmError as error:
        print(f"render of {args.chart} failed: {error}", file=sys.stderr)
        return 1

    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = 0
    for template, text in sorted(manifests.items()):
        # NOTES.txt is shown after an install, not applied. Templates that render only
        # whitespace produce no manifest, as with `helm template`.
        if template.endswith("NOTES.txt") or not text.strip():
            continue
        # "trace/templates/deployment.yaml" becomes "templates_deployment.yaml".
        name = template.split("/", 1)[1].replace("/", "_")
        (output_dir / name).write_text(f"# Source: {template}\n{text.strip()}\n")
        written += 1
    print(f"rendered {args.chart} as release {args.release}: {written} manifest files in {output_dir}")
    return 0


def lint(args: argparse.Namespace) -> int:
    values = load_values(args.values, args.set_file)
    report = helm.lint(
        args.chart,
        values,
        strict=True,
        namespace=args.namespace,
        kube_version=args.kube_version,
    )
    severity_names = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}
    failed = False
    for message in report["messages"]:
        severity = message["severity"]
        # With strict linting, warnings fail as errors do.
        failed = failed or severity >= 2
        print(f"[{severity_names.get(severity, severity)}] {message['path']}: {message['error'].strip()}")
    if failed or report["errors"]:
        print(f"lint of {args.chart} failed", file=sys.stderr)
        return 1
    print(f"lint of {args.chart} passed ({report['total_charts_linted']} chart, Kubernetes {args.kube_version})")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, handler in (("render", render), ("lint", lint)):
        command = commands.add_parser(name)
        command.set_defaults(handler=handler)
        command.add_argument("chart", help="chart directory")
        command.add_argument("--values", action="append", default=[], metavar="FILE",
                             help="values file; repeat to layer several")
        command.add_argument("--set-file", action="append", default=[], metavar="KEY=PATH",
                             help="set a dotted values key to the text of a file")
        command.add_argument("--namespace", default="trace", help="release namespace (default trace)")
    commands.choices["render"].add_argument("--release", default="trace",
                                            help="release name (default trace)")
    commands.choices["render"].add_argument("--output-dir", required=True,
                                            help="folder for one file per rendered template")
    commands.choices["lint"].add_argument("--kube-version", default="v1.33.0",
                                          help="Kubernetes version to lint against (default v1.33.0)")
    args = parser.parse_args()
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
