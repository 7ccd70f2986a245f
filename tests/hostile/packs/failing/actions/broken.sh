#!/usr/bin/env bash
echo "about to fail"
echo "disk on fire" >&2
exit 3
