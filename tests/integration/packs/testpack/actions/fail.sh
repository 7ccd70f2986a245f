#!/usr/bin/env bash
echo "about to fail"
echo "something broke" >&2
exit 3
