#!/bin/sh
# Points references to the wire contract at docs/api/ (run once from the repository root,
# then delete this script):
#   README §N / README.md §N  -> docs/api/README.md §N
#   data-tokens.md, flows.md, ... (with or without §) -> docs/api/<file>.md
# README.md without §, DEVELOPERS.md and paths already under a directory are left alone,
# so running it twice changes nothing.
#
# Usage: sh docs/api/rewrite-refs.sh        rewrite in place
#        sh docs/api/rewrite-refs.sh -n     only list the lines that would change
set -eu

cd "$(git rev-parse --show-toplevel)"

# Code, migration comments and the prose docs outside docs/api/ (whose files refer to each
# other by bare name on purpose).
files=$(git ls-files '*.rs' '*.sql' DEVELOPERS.md 'docs/*.md' | grep -v '^docs/api/' || true)
[ -n "$files" ] || exit 0

# Not preceded by a word character, '/', '.' or '-': skips docs/api/flows.md,
# my-flows.md and the like.
rules='
s{(?<![\w/.-])README(?:\.md)?(\s*)§}{docs/api/README.md$1§}g;
s{(?<![\w/.-])(data-tokens|devices-and-storage|profile-and-keys|flows|oauth|voting-and-policy|directory)\.md\b}{docs/api/$1.md}g;
'

if [ "${1:-}" = "-n" ]; then
    # shellcheck disable=SC2086
    perl -ne "\$o = \$_; $rules print \"\$ARGV:\$.: \$_\" if \$_ ne \$o; close ARGV if eof" $files
    exit 0
fi

# shellcheck disable=SC2086
perl -pi -e "$rules" $files

# A bare § names a section of the contract file the surrounding text is about; they are
# listed for a look, not rewritten.
echo "bare § references (not rewritten):" >&2
# shellcheck disable=SC2086
perl -ne 'print STDERR "$ARGV:$.: $_" if /(?<!\.md )§/; close ARGV if eof' $files
