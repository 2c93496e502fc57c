#!/usr/bin/env bash
# CI check of the deployment: package every stage offline and lint the result with cfn-lint.
# Fails on a stale .chalice/policy-<stage>.json, a packaging error or any cfn-lint error.
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
    # Errors fail; warnings (W) and informational (I) findings are printed but do not.
    rc=0
    cfn-lint --non-zero-exit-code error -- "$out/sam.json" || rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "cfn-lint: errors in the $stage template" >&2
        exit "$rc"
    fi
    echo "cfn-lint $stage: 0 errors"
    rm -rf "$out"
done
echo "deploy check passed for ${stages[*]} in $(( $(date +%s) - start ))s"
