#!/usr/bin/env bash
# Lists what failed in the output of `cargo test --no-fail-fast` (file LOG): each failed test
# under its test binary, each panic message, and the targets cargo reports as failed (a binary
# that crashed or did not build shows there without a failed test).
#   test-summary.sh LOG
set -euo pipefail
awk '
  /^ *Running / { bin = $0; sub(/.*\//, "", bin); sub(/-[0-9a-f]+\)$/, "", bin) }
  /^ *Doc-tests / { bin = "doc-tests " $2 }
  /^test .* \.\.\. FAILED$/ { print "  " bin ": " $2 }
  /^thread .* panicked at / { panic = 1; next }
  panic { print "      " $0; panic = 0 }
  /^error: [0-9]+ targets? failed:/ { targets = 1; print "cargo: " $0; next }
  targets && /^ +`/ { print "  " $0; next }
  { targets = 0 }
' "$1"
