#!/usr/bin/env bash
# The whole test suite, from a fresh machine: set-up, type check, then every test
# (unit, deterministic simulations, end-to-end on network namespaces). Needs root.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
source scripts/env.sh

echo "== type check" >&2
tsc --noEmit -p .

echo "== tests" >&2
report="$(mktemp -d)/vitest.json"
# Namespaces that exist already (a benchmark running beside us) are not ours to judge.
before="$(ip netns list 2>/dev/null | awk '{print $1}' | sort)"
status=0
vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
# vitest's own summary is not one CI reads; print the plain closing line it does.
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
' "$report" || echo "0 passed, 1 failed"
after="$(ip netns list 2>/dev/null | awk '{print $1}' | sort)"
left="$(comm -13 <(echo "$before") <(echo "$after") | grep -E '^wt' || true)"
if [[ -n "$left" ]]; then echo "tests left network namespaces behind:" >&2; echo "$left" >&2; status=1; fi
exit "$status"
