#!/usr/bin/env bash
# The main job: a local weft mesh of three hosts (network namespaces) on this machine.
# Needs root. `--keep` leaves it running until Ctrl-C.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
source "$root/scripts/env.sh"
exec node --disable-warning=ExperimentalWarning "$root/scripts/demo.ts" "$@"
