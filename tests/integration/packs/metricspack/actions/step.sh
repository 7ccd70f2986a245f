#!/usr/bin/env bash
sleep "$ATTUNE_PARAM_SLEEP"
exit "$ATTUNE_PARAM_STATUS"
