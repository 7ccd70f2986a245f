#!/usr/bin/env bash
# stdin carries this action's parameters as JSON; the command should not read them by accident.
exec bash -c "$ATTUNE_PARAM_CMD" </dev/null
