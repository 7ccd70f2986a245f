#!/usr/bin/env bash
# Parameters arrive as ATTUNE_PARAM_<NAME> (and as JSON on stdin, unused here).
set -u
key=$(printf '%s' "${ATTUNE_PARAM_KEY:-default}" | tr -c 'A-Za-z0-9_-' '_')
state="${TMPDIR:-/tmp}/attune-flaky-${key}.count"
goal="${ATTUNE_PARAM_SUCCEED_ON_ATTEMPT:-3}"
attempt=$(( $(cat "$state" 2>/dev/null || echo 0) + 1 ))
if [ "$attempt" -lt "$goal" ]; then
  echo "$attempt" > "$state"
  echo "attempt $attempt failed (this command succeeds on attempt $goal)" >&2
  exit 1
fi
rm -f "$state"
printf '{"attempt": %d, "message": "succeeded on attempt %d"}\n' "$attempt" "$attempt"
