#!/bin/sh
echo "passing test sees: $(head -1 combined.txt)"
exit 0
