#!/usr/bin/env bash
# Fetches GitHub's official OpenAPI description for the GitHub adapter's
# tests: the one file generated/api.github.com.json (13 MB) out of npm's
# @octokit/openapi 23.0.2 (a 29 MB tarball from the npm registry, checked
# against the registry's sha512; the unpacked package is 385 MB, so
# nothing else is kept). Idempotent; needs only python3.
set -euo pipefail
cd "$(dirname "$0")"
[ -s .openapi/api.github.com.json ] && exit 0
mkdir -p .openapi
python3 - <<'PY'
import base64, hashlib, io, os, tarfile, urllib.request

url = "https://registry.npmjs.org/@octokit/openapi/-/openapi-23.0.2.tgz"
integrity = "pV8M7L9GY23AybNvTmo2nyjmpmnt6+2sRE/tqr0ZLQcPS4lnw7u5eZGNmwRNkBC3D7gZXbFx5AHzLUVRBXGDhg=="
data = urllib.request.urlopen(url, timeout=120).read()
got = base64.b64encode(hashlib.sha512(data).digest()).decode()
if got != integrity:
    raise SystemExit(f"{url}: sha512 {got}, the registry says {integrity}")
with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as t:
    member = t.extractfile("package/generated/api.github.com.json")
    tmp = ".openapi/api.github.com.json.part"
    with open(tmp, "wb") as f:
        f.write(member.read())
os.replace(tmp, ".openapi/api.github.com.json")
print("fetched @octokit/openapi 23.0.2: tests/github/.openapi/api.github.com.json")
PY
