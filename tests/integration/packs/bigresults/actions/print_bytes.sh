#!/usr/bin/env bash
head -c "$ATTUNE_PARAM_BYTES" /dev/zero | tr '\0' 'x'
