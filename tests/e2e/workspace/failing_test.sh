#!/bin/sh
echo "this test fails on purpose" >&2
exit 1
