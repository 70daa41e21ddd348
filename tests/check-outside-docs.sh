#!/bin/sh
# check-outside-docs.sh: the repository explains itself. No tracked file may
# point a reader at a planning document that lives outside the repository
# (the product contract, the claim notes, the style notes or the Connect
# wire notes the project started from): their content belongs in docs/, in
# the project's own words. The names are built from parts here so that this
# script does not match itself.
set -eu
cd "$(dirname "$0")/.."
md=.md
spec=SP; spec=${spec}EC
# The four file names, and the contract cited by its bare name
# (e.g. a comment pointing at section "Logging" of it).
pattern="$spec$md|CLAIMS$md|CONNECT-API$md|STYLE$md|(^|[^A-Za-z0-9_])$spec([^A-Za-z0-9_.]|\$)"
self=tests/check-outside-docs.sh

if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        files=$(git ls-files)
else
        # A tarball without .git: every regular file but build output.
        files=$(find . -type f ! -path './.git/*' ! -path './build*' ! -path '*/__pycache__/*' | sed 's|^\./||')
fi

hits=$(printf '%s\n' "$files" | grep -v -x -F "$self" | while IFS= read -r f; do
        [ -f "$f" ] || continue
        grep -n -I -E "$pattern" "$f" /dev/null 2>/dev/null || true
done)
if [ -n "$hits" ]; then
        echo "files that name a document outside the repository (say it in docs/ instead):" >&2
        echo "$hits" >&2
        echo "check-outside-docs: $(echo "$hits" | wc -l) line(s)" >&2
        exit 1
fi
echo "check-outside-docs: ok"
