#!/usr/bin/env bash
# Runs one package's tests in a fresh venv built only from that package's locked dependencies and its `test` group,
# then checks that no other engine SDK was installed.
set -euo pipefail
cd "$(dirname "$0")/.."
pkg="${1:?usage: just test-isolated temporal|dbos|prefect|kernel [pytest args]}"; shift
case "$pkg" in kernel|temporal|dbos|prefect) ;; *) echo "unknown package: $pkg" >&2; exit 2;; esac

venv="$(mktemp -d)/venv"
trap 'rm -rf "$(dirname "$venv")"' EXIT
UV_PROJECT_ENVIRONMENT="$venv" uv sync --frozen --package "durable-$pkg" --no-default-groups --group test --all-extras --quiet

declare -A sdk=([temporal]=temporalio [dbos]=dbos [prefect]=prefect)
for other in temporal dbos prefect; do
  [[ "$other" == "$pkg" ]] && continue
  if "$venv/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('${sdk[$other]}') is None)"; then
    echo "isolation broken: ${sdk[$other]} is installed in the durable-$pkg environment" >&2; exit 1
  fi
  if "$venv/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('durable_$other') is None)"; then
    echo "isolation broken: durable_$other is installed in the durable-$pkg environment" >&2; exit 1
  fi
done
echo "== durable-$pkg isolated: $("$venv/bin/python" -m pip --version >/dev/null 2>&1; "$venv/bin/python" -c 'import sys; print(sys.version.split()[0])'), other engines absent"
rc=0
"$venv/bin/python" -m pytest "packages/durable-$pkg/tests" -n "${PYTEST_WORKERS:-2}" --dist loadgroup "$@" || rc=$?
[[ $rc -eq 5 ]] && rc=0
exit $rc
