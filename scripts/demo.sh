#!/usr/bin/env bash
# The sealfs demo: a repository on a local directory under ./demo (the
# embedded default; no cloud account). The first run creates it and prints
# its recovery code; every run backs up a sample folder, lists the snapshots,
# restores the newest into a new folder, compares, and checks the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

S=bin/sealfs
D=demo
common=(--cache-dir "$D/cache" --code-file "$D/recovery-code")

mkdir -p "$D"
# A module of its own, so that the Go tooling of the project (./...) never
# descends into the demo's files.
[ -f "$D/go.mod" ] || printf 'module sealfsdemo\n' > "$D/go.mod"
if [ ! -f "$D/remote/config" ]; then
	echo "== Creating a repository in $D/remote"
	"$S" init --cache-dir "$D/cache" --code-file "$D/recovery-code" "$D/remote"
	echo "(For the demo the code is kept in $D/recovery-code; for real backups keep it on paper.)"
	echo
fi

echo "== Backing up a sample folder ($D/sample: this project's docs and test vectors)"
rm -rf "$D/sample"
mkdir -p "$D/sample"
cp -a README.md docs testdata "$D/sample/"
date > "$D/sample/backed-up-at.txt"
"$S" backup "${common[@]}" "$D/sample" "$D/remote"

echo
echo "== Snapshots"
"$S" snapshots "${common[@]}" "$D/remote"

restored="$D/restored-$(date +%Y%m%d-%H%M%S)"
echo
echo "== Restoring the newest snapshot into $restored"
"$S" restore "${common[@]}" "$D/remote" "$restored"
diff -r "$D/sample" "$restored" && echo "restored files are identical to the originals"

echo
echo "== Checking every object of the repository"
"$S" check --read-data "${common[@]}" "$D/remote"

echo
echo "What the storage holds is in $D/remote: only encrypted packs, indexes and snapshots."
echo "Try: grep -r backed-up-at $D/remote   (finds nothing), or run 'make demo' again to"
echo "see deduplication at work. Remove the $D folder to start over."
