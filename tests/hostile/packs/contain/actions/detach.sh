#!/usr/bin/env bash
set -eu
dir="$ATTUNE_PARAM_DIR"
setsid sh -c 'echo $$ > "$0/setsid.pid"; exec sleep 300' "$dir" </dev/null >/dev/null 2>&1 &
( setsid sh -c 'echo $$ > "$0/daemon.pid"; exec sleep 300' "$dir" </dev/null >/dev/null 2>&1 & )
echo $$ > "$dir/leader.pid"
sleep "${ATTUNE_PARAM_SECONDS:-300}"
