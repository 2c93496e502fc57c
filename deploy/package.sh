#!/usr/bin/env bash
# Builds the deployable package of one stage, offline (no AWS credentials needed; PyPI is used
# to fetch the Lambda platform's wheels, cached by chalice in .chalice/deployments).
#   deploy/package.sh <stage> [outdir]     -> outdir (default build/<stage>) holds sam.json +
#                                             deployment.zip, ready for `aws cloudformation package`
set -euo pipefail
stage=${1:?usage: deploy/package.sh <stage> [outdir]}
root=$(cd "$(dirname "$0")/.." && pwd)
out=${2:-$root/build/$stage}
# Tools from $VENV, else the project's .venv (./run-tests makes it), else /tmp/venv, else PATH.
for venv in "${VENV:-}" "$root/.venv" /tmp/venv; do
    if [ -n "$venv" ] && [ -x "$venv/bin/chalice" ]; then PATH="$venv/bin:$PATH"; break; fi
done

cd "$root"
python deploy/make_template.py "$stage" --check-policy
rm -rf "$out"
mkdir -p "$out"
python deploy/make_template.py "$stage" --template "$out/resources.json"
# No credentials: chalice package never calls AWS; a region is only needed by botocore's setup.
env -u AWS_PROFILE -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN \
    AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" \
    chalice package --stage "$stage" --merge-template "$out/resources.json" "$out/package"
mv "$out/package/sam.json" "$out/package/deployment.zip" "$out/"
rmdir "$out/package"
# boto3/botocore/s3transfer come with the Lambda runtime: the vendored copies (PynamoDB's
# dependency) would only shadow it (deploy/check_template.py).
python -c "import sys; sys.path.insert(0, 'deploy'); import check_template as c; from pathlib import Path; print('runtime packages dropped from deployment.zip:', c.strip_runtime_packages(Path(sys.argv[1])), 'files')" "$out/deployment.zip"
echo "packaged $stage: $out/sam.json ($(python -c "import json,sys; print(len(json.load(open(sys.argv[1]))['Resources']))" "$out/sam.json") resources), $out/deployment.zip"
