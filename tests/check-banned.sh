#!/bin/sh
# Refuses calls that invite overflows or surprises (docs/design.md, "Conventions").
set -eu
bad=$(grep -nE '\b(sprintf|vsprintf|strcpy|strcat|strtok|atoi|atol|gets|system)[[:space:]]*\(' \
        daemon/*.c daemon/*.h daemon/aws/*.c daemon/aws/*.h 2>/dev/null | grep -vE '(snprintf|vsnprintf|strtok_r)\(' || true)
if [ -n "$bad" ]; then
        echo "banned functions used in daemon/:" >&2
        echo "$bad" >&2
        exit 1
fi
echo "check-banned: ok"
