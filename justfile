# durable: run `uv run just --list` for the recipes.

set shell := ["bash", "-euo", "pipefail", "-c"]
set positional-arguments

export UV_COMPILE_BYTECODE := "1"
export PREFECT_SERVER_ANALYTICS_ENABLED := "false"
export DO_NOT_TRACK := "1"
export NO_MKDOCS_2_WARNING := "1"

# List the recipes.
default:
    @just --list

# Run the tests: `just test` (every package, then the integration suite) or `just test temporal -k name` (one suite: kernel|temporal|dbos|prefect|integration|examples).
test *args:
    @bash scripts/test.sh "$@"

# Run the tests in one cell of the version matrix: `just test-matrix pai2` (lock|pai2|pai2-newest|pai2-first|lowest|py310), then the `just test` arguments.
test-matrix cell *args:
    @bash scripts/test_matrix.sh "$@"

# Run one package's tests in a fresh venv holding only that package's declared dependencies (proves the other engines are not needed).
test-isolated package *args:
    @bash scripts/test_isolated.sh "$@"

# Run the Temporal exit test with many processes (the suite runs 4): `just exit-test 100`; every one must exit with code 0.
exit-test runs="100":
    DURABLE_TEMPORAL_EXIT_RUNS={{runs}} bash scripts/test.sh temporal -k test_processes_with_logfire_plugin_exit_with_code_zero

# Run the cross-engine conformance and crash suite: `just test-integration` or `just test-integration dbos`.
test-integration *args:
    @bash scripts/test.sh integration "$@"

# Kill workers at random moments, print lost runs and re-executed units: `just crash --kills 100 --engine dbos`.
crash *args:
    uv run python tests-integration/crash.py "$@"

# Format check, lint, strict type check and import boundaries.
lint:
    uv run ruff format --check .
    uv run ruff check .
    uv run pyright
    uv run lint-imports

# Format the code and apply safe lint fixes.
fmt:
    uv run ruff format .
    uv run ruff check --fix .

# Chat with a durable agent in the browser, kill its worker, watch the run resume: `just web-chat --port 8000`.
web-chat *args:
    uv run python -m examples.web_chat "$@"

# Show a durable agent surviving a crash: `just demo` (DBOS + SQLite), `just demo temporal`, `just demo prefect`.
demo *args:
    uv run python -m examples.demo "$@"

# Benchmarks: ours vs the reference vs the bare engine (`just bench --help`).
bench *args:
    uv run python -m benchmarks "$@"

# Scale-out: runs/s with 1, 2 and 4 worker processes against one engine server: `just bench-scale --engine dbos --write-docs`.
bench-scale *args:
    uv run python -m benchmarks._scale "$@"

# Where DBOS's or Prefect's CPU goes, ours vs floor vs plain, per thread (cProfile, thread CPU clocks): `just bench-profile --engine prefect --no-profile`.
bench-profile *args:
    uv run python -m benchmarks.profile_engines "$@"

# The cost of one Prefect cache key at 100, 1,000 and 3,000 messages: `just bench-prefect-keys --compare main`.
bench-prefect-keys *args:
    uv run python -m benchmarks.prefect_key_cost "$@"

# Build the docs site offline, failing on any warning.
docs:
    uv run mkdocs build --strict
