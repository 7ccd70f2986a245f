#!/usr/bin/env bash
for ((i = 1; i <= ATTUNE_PARAM_COUNT; i++)); do
  echo "$ATTUNE_PARAM_WORD $i"
  if [[ $i -lt $ATTUNE_PARAM_COUNT ]]; then sleep "$ATTUNE_PARAM_PAUSE"; fi
done
echo "$ATTUNE_PARAM_WORD done" >&2
