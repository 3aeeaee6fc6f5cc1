#!/usr/bin/env bash
# The whole pipeworkd test suite, run twice:
#   1. /usr/bin/python3  with Debian bookworm's libraries (pyroute2 0.7.2, docker 5.0.3),
#   2. .venv/bin/python  with the newest PyPI releases (built by setup-host.sh --venv).
# Extra arguments are passed to both pytest runs. If none of them names a path under tests/, the
# whole "tests" directory is collected. Exits non-zero if either run fails (including pytest's exit
# code 5, "no tests collected").
#
# usage: scripts/test.sh [PYTEST-ARGS...]
set -euo pipefail

root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$root"

export PYTHONDONTWRITEBYTECODE=1

bash "$root/scripts/setup-host.sh" --venv "$root/.venv"

# Collect the whole tests/ directory unless the caller named tests itself (e.g. tests/test_x.py::t).
targets=(tests)
for arg in "$@"; do
    case $arg in
        tests | tests/* | tests::*)
            targets=()
            break
            ;;
    esac
done

# Banner: interpreter, its version and the library versions under test.
banner() {
    local py=$1 info
    info=$("$py" - <<'EOF' 2>&1
import importlib.metadata as md
import platform
import sys


def version(dist):
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "MISSING"


print(f"python {platform.python_version()} ({sys.executable}), "
      f"pyroute2 {version('pyroute2')}, docker {version('docker')}")
EOF
    ) || info="(could not query versions: $info)"
    printf '\n%s\n== pytest with %s\n== %s\n%s\n' \
        "==================================================================" "$py" "$info" \
        "=================================================================="
}

# run_suite NAME PYTHON [PYTEST-ARGS...]: sets results[NAME] to pytest's exit code.
declare -A results=()
run_suite() {
    local name=$1 py=$2 rc=0
    shift 2
    banner "$py"
    "$py" -m pytest -q -p no:cacheprovider "${targets[@]}" "$@" || rc=$?
    results[$name]=$rc
}

run_suite debian /usr/bin/python3 "$@"
run_suite venv "$root/.venv/bin/python" "$@"

status=0
printf '\n== summary\n'
for name in debian venv; do
    rc=${results[$name]}
    case $rc in
        0) what="passed" ;;
        5) what="FAILED: no tests collected (exit 5)" ;;
        *) what="FAILED (exit $rc)" ;;
    esac
    printf '== %-6s %s\n' "$name" "$what"
    if ((rc != 0 && status == 0)); then status=$rc; fi
done
exit "$status"
