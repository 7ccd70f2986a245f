#!/usr/bin/env bash
# One line per start: an append of less than PIPE_BUF bytes is atomic, so concurrent starts
# never interleave.
set -eu
printf '%s\n' "$ATTUNE_EXECUTION_ID" >> "$ATTUNE_PARAM_LOG_FILE"
sleep "${ATTUNE_PARAM_SECONDS:-0}"
printf '{"execution_id": "%s"}\n' "$ATTUNE_EXECUTION_ID"
