#!/bin/bash
# check-completion.sh: the bash completion of connect-numbersd
# (packaging/bash-completion/connect-numbersd) as bash-completion runs it:
# each case sets the words of a command line as readline splits them, calls
# the completion function and compares the candidates. Every long option of
# daemon/main.c's option table must be offered, so a new option without its
# completion fails here.
set -u
cd "$(dirname "$0")/.."

helpers=/usr/share/bash-completion/bash_completion
if [ ! -r "$helpers" ]; then
        echo "check-completion: $helpers missing (Debian package bash-completion)" >&2
        exit 1
fi
# shellcheck disable=SC1090
. "$helpers"
# shellcheck disable=SC1091
. packaging/bash-completion/connect-numbersd

fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/state" "$tmp/other"
: >"$tmp/numbers.yaml"
: >"$tmp/notes.txt"

# complete WORD...: the candidates, sorted, one line, for the last word.
complete_words() {
        COMP_WORDS=(connect-numbersd "$@")
        COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
        # readline splits "--opt=value" into three words with no blanks
        local w prev=""
        COMP_LINE=""
        for w in "${COMP_WORDS[@]}"; do
                if [ -z "$COMP_LINE" ] || [ "$w" = "=" ] || [ "$prev" = "=" ]; then
                        COMP_LINE="$COMP_LINE$w"
                else
                        COMP_LINE="$COMP_LINE $w"
                fi
                prev=$w
        done
        COMP_POINT=${#COMP_LINE}
        COMPREPLY=()
        _connect_numbersd 2>/dev/null
        printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//'
}

# expect "WANT" WORD...: the candidates are exactly WANT (sorted)
expect() {
        local want=$1 got
        shift
        got=$(complete_words "$@")
        if [ "$got" != "$want" ]; then
                echo "check-completion: 'connect-numbersd $*': got '$got', want '$want'" >&2
                fail=1
        fi
}

# has "WORD..." / lacks "WORD...": each candidate is (not) offered
has() {
        local list=$1 w got
        shift
        got=" $(complete_words "$@") "
        for w in $list; do
                case $got in *" $w "*) ;; *)
                        echo "check-completion: 'connect-numbersd $*' does not offer $w" >&2
                        fail=1 ;;
                esac
        done
}
lacks() {
        local list=$1 w got
        shift
        got=" $(complete_words "$@") "
        for w in $list; do
                case $got in *" $w "*)
                        echo "check-completion: 'connect-numbersd $*' offers $w" >&2
                        fail=1 ;;
                esac
        done
}

complete -p connect-numbersd >/dev/null 2>&1 || { echo "check-completion: connect-numbersd not registered" >&2; fail=1; }

# every long option of main.c, and its short ones
longs=$(sed -n '/struct option options\[\]/,/{0}/s/.*{"\([a-z-]*\)".*/--\1/p' daemon/main.c)
shorts=$(sed -n 's/.*getopt_long(argc, argv, "\([^"]*\)".*/\1/p' daemon/main.c | tr -d ':' | sed 's/./-& /g')
[ -n "$longs" ] && [ -n "$shorts" ] || { echo "check-completion: cannot read main.c's options" >&2; fail=1; }
has "$longs $shorts" ""
has "$longs" --

expect "--log-target" --log-t
expect "auto console journal" --log-target ""
expect "journal" --log-target = j
expect "5m" --wait 5
expect "--check-config --config" -c "$tmp/numbers.yaml" --c
expect "$tmp/notes.txt $tmp/numbers.yaml" --config "$tmp/n"
expect "$tmp/numbers.yaml" -c "$tmp/nu"
expect "$tmp/state" --state-dir "$tmp/s"
lacks "$tmp/numbers.yaml" --state-dir "$tmp/"
has "$tmp/other $tmp/state" --state-dir "$tmp/"

# modes: one at most, and only the options that go with it
has "--wait" --once --
lacks "--plan --status --json --check-config" --once --
has "--json" --status --
lacks "--wait --once" --status --
has "--json" -c x --plan -v --
lacks "--json --wait" --check-config --
expect "" --version ""
expect "" --help --

[ "$fail" = 0 ] && echo "check-completion: ok"
exit "$fail"
