#!/usr/bin/env bash
echo "count is ${ATTUNE_PARAM_COUNT:-?}"
