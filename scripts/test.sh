#!/usr/bin/env bash
# Runs the test suites: every package in turn, or the one named first (kernel|temporal|dbos|prefect|integration|examples|benchmarks).
# Each package runs in its own pytest process (DBOS and Prefect hold process-wide state) on 2 xdist workers.
set -euo pipefail
cd "$(dirname "$0")/.."

all=(kernel temporal dbos prefect integration examples benchmarks)
targets=()
if [[ $# -gt 0 && " ${all[*]} " == *" $1 "* ]]; then
  targets=("$1"); shift
else
  targets=("${all[@]}")
fi

# `just test-integration dbos`: the integration suite's tests are parametrized by engine; select one with -k.
if [[ "${targets[*]}" == integration && $# -gt 0 && " temporal dbos prefect " == *" $1 "* ]]; then
  set -- -k "$1" "${@:2}"
fi

# A relative venv on PATH would break tools run from another directory (a test that runs `uv` in a temp dir).
[[ -n "${DURABLE_VENV:-}" ]] && DURABLE_VENV="$(cd "$DURABLE_VENV" && pwd)"

workers="${PYTEST_WORKERS:-2}"
status=0
for target in "${targets[@]}"; do
  case "$target" in
    integration) dir=tests-integration ;;
    examples) dir=examples ;;
    benchmarks) dir=benchmarks ;;
    *) dir="packages/durable-$target/tests" ;;
  esac
  if ! compgen -G "$dir/test_*.py" >/dev/null && ! compgen -G "$dir/**/test_*.py" >/dev/null; then
    echo "== $target: no tests yet in $dir"; continue
  fi
  echo "== $target: pytest $dir -n $workers $*"
  rc=0
  if [[ -n "${DURABLE_VENV:-}" ]]; then  # a cell of the version matrix (scripts/test_matrix.sh) has its own venv
    PATH="$DURABLE_VENV/bin:$PATH" "$DURABLE_VENV/bin/python" -m pytest "$dir" -n "$workers" --dist loadgroup "$@" || rc=$?
  else
    uv run --frozen pytest "$dir" -n "$workers" --dist loadgroup "$@" || rc=$?
  fi
  # 5 = no test collected (e.g. a -k filter that matches nothing in this package): not a failure of the suite.
  if [[ $rc -ne 0 && $rc -ne 5 ]]; then status=$rc; echo "== $target: FAILED (exit $rc)"; fi
done
exit $status
