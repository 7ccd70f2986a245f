#!/usr/bin/env bash
trap "" TERM
sleep "$ATTUNE_PARAM_SECONDS" &
wait
