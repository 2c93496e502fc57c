#!/usr/bin/env bash
# CI check of the deployment: package every stage offline, transform it as CloudFormation would
# (aws-sam-translator), check the first-deploy rules (deploy/check_template.py) and lint both
# templates with cfn-lint. Fails on a stale .chalice/policy-<stage>-<function>.json, a packaging
# error, a broken rule or any cfn-lint error.
#   deploy/check.sh [stage ...]     (default: dev prod)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# Tools from $VENV, else the project's .venv (./run-tests makes it), else /tmp/venv, else PATH.
for venv in "${VENV:-}" "$root/.venv" /tmp/venv; do
    if [ -n "$venv" ] && [ -x "$venv/bin/chalice" ]; then PATH="$venv/bin:$PATH"; break; fi
done
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(dev prod)
start=$(date +%s)
for stage in "${stages[@]}"; do
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT
    "$root/deploy/package.sh" "$stage" "$out"
    # The SAM transform (as CloudFormation runs it), the static rules of a first deploy and the
    # stack created on moto's CloudFormation (deploy/check_template.py): writes
    # $out/transformed.json.
    python "$root/deploy/check_template.py" "$out" "$stage"
    # Errors fail; warnings (W) and informational (I) findings are printed but do not.
    for template in sam.json transformed.json; do
        rc=0
        cfn-lint --non-zero-exit-code error -- "$out/$template" || rc=$?
        if [ "$rc" -ne 0 ]; then
            echo "cfn-lint: errors in the $stage template ($template)" >&2
            exit "$rc"
        fi
        echo "cfn-lint $stage $template: 0 errors"
    done
    rm -rf "$out"
done
echo "deploy check passed for ${stages[*]} in $(( $(date +%s) - start ))s"
