#!/usr/bin/env bash
exec sleep "$ATTUNE_PARAM_SECONDS"
