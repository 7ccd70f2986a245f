#!/usr/bin/env bash
# Parameters arrive as JSON on stdin and, when not secret, as ATTUNE_PARAM_<NAME> -- unless the
# environment cannot carry the value (over 32 KiB, or holding a NUL): then it is on stdin only.
if [[ -v ATTUNE_PARAM_MESSAGE ]]; then
  printf '%s\n' "$ATTUNE_PARAM_MESSAGE"
  exit 0
fi
if ! command -v python3 >/dev/null; then
  echo "core.echo: a message over 32 KiB is read from stdin, which needs python3 on PATH" >&2
  exit 2
fi
exec python3 -c '
import json, sys
message = json.load(sys.stdin)["message"]
if "\0" in message:
    sys.exit("core.echo: the message contains a NUL character, which text output cannot carry")
sys.stdout.write(message + "\n")
'
