#!/usr/bin/env bash
# Parameters arrive as JSON on stdin and, when not secret, as ATTUNE_PARAM_<NAME>.
printf '%s\n' "$ATTUNE_PARAM_MESSAGE"
