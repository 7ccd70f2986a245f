#!/usr/bin/env bash
# Parameters arrive as ATTUNE_PARAM_<NAME> (and as JSON on stdin, unused here).
# Without a `key`, a workflow task counts its attempts per task run (the workflow execution,
# task, run and item the worker exports), so concurrent workflow runs never share a counter;
# a top-level run without a key uses the counter "default".
set -u
if [ -n "${ATTUNE_PARAM_KEY:-}" ]; then
  key="$ATTUNE_PARAM_KEY"
elif [ -n "${ATTUNE_WORKFLOW_EXECUTION_ID:-}" ]; then
  key="${ATTUNE_WORKFLOW_EXECUTION_ID}-${ATTUNE_TASK_NAME:-}-${ATTUNE_TASK_RUN:-}${ATTUNE_TASK_ITEM_INDEX:+-item${ATTUNE_TASK_ITEM_INDEX}}"
else
  key=default
fi
key=$(printf '%s' "$key" | tr -c 'A-Za-z0-9_-' '_')
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
