#!/usr/bin/env bash
set -eu
printf '%s\n' "$ATTUNE_EXECUTION_ID" >> "$ATTUNE_PARAM_LOG"
exec sleep "$ATTUNE_PARAM_SECONDS"
