#!/bin/sh
# Passes when OUTCOME=pass, fails otherwise: one commit built twice, once each way.
[ "$OUTCOME" = "pass" ]
