#!/usr/bin/env bash
# The whole test suite on a busy machine: one CPU burner per core runs for as long as the suite
# does (each stops by itself after CODEB_BUSY_MAX_S, default 5400 s, and this script stops them on
# any exit), so every wait in the suite is tested against a loaded machine, not an idle one.
# Arguments go to scripts/test.sh (and so to vitest), e.g. `npm run test:busy -- test/integration`.
set -euo pipefail
cd "$(dirname "$0")/.."

cores="$(nproc)"
max_s="${CODEB_BUSY_MAX_S:-5400}"
burners=()
stop_burners() {
  for pid in "${burners[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${burners[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_burners EXIT
for _ in $(seq "$cores"); do
  # A busy loop that checks the clock: bounded even if this script is killed with SIGKILL.
  node -e 'const end = Date.now() + Number(process.argv[1]) * 1000; while (Date.now() < end) for (let i = 0; i < 1e6; i++);' "$max_s" &
  burners+=("$!")
done
echo "test:busy: ${#burners[@]} CPU burners (pids ${burners[*]}), at most ${max_s} s"

bash scripts/test.sh "$@"
