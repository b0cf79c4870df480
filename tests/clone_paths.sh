#!/usr/bin/env bash
# carkey — `make test-paths`: the whole `make test` in fresh clones of HEAD at a 4- and a 120-character path.
# SPDX-License-Identifier: MIT
#
# Nothing in the repository may depend on where the checkout is, nor on anything beside
# it: each clone builds its own .venv and runs the suite with nothing next to it.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
head=$(git -C "$repo" rev-parse HEAD)
[ -z "$(git -C "$repo" status --porcelain --untracked-files=no)" ] ||
    echo "carkey: note: uncommitted changes are not in the clones; testing HEAD $head" >&2

short=""
for c in 0 1 2 3 4 5 6 7 8 9 a b c d e f g h i j k l m n o p q r s t u v w x y z; do
    if mkdir "/ck$c" 2>/dev/null; then short="/ck$c"; break; fi
done
if [ -z "$short" ]; then
    echo "carkey: cannot create a 4-character directory /ckX (needs write access to /)" >&2
    exit 1
fi
base=$(mktemp -d /tmp/ckXXXXXX)
trap 'rm -rf "$short" "$base"' EXIT
long="$base/$(head -c $((120 - ${#base} - 1)) /dev/zero | tr '\0' c)"

for dir in "$short" "$long"; do
    echo "== make test in a clone at $dir (${#dir} characters)"
    git clone --quiet --no-checkout "$repo" "$dir"
    git -C "$dir" checkout --quiet --detach "$head"
    start=$SECONDS
    (cd "$dir" && make test)
    echo "== $dir: make test passed in $((SECONDS - start)) s"
done
