#!/usr/bin/env bash
# The sealfs demo: a repository on a local directory under ./demo (the
# embedded default; no cloud account), mounted at ./demo/mnt. The first run
# creates the repository and prints its recovery code.
set -euo pipefail
cd "$(dirname "$0")/.."

S=bin/sealfs
D=demo
common=(--cache-dir "$D/cache" --code-file "$D/recovery-code")

if ! command -v fusermount3 >/dev/null 2>&1 && ! command -v fusermount >/dev/null 2>&1; then
	echo "== Installing fuse3 (FUSE user-space tools)"
	if [ "$(id -u)" -eq 0 ]; then
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse3
	else
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse3
	fi
fi

mkdir -p "$D/mnt"
# A module of its own, so that the project's Go tooling (./...) never
# descends into the demo's files.
[ -f "$D/go.mod" ] || printf 'module sealfsdemo\n' > "$D/go.mod"

if [ ! -f "$D/remote/config" ]; then
	echo "== Creating a repository in $D/remote"
	"$S" init "${common[@]}" "$D/remote"
	echo "(For the demo the code is kept in $D/recovery-code; for real backups keep it on paper.)"
	echo
fi

if "$S" status "$D/mnt" >/dev/null 2>&1; then
	echo "== $D/mnt is mounted already"
else
	echo "== Mounting the repository at $D/mnt"
	"$S" mount "${common[@]}" --commit-delay 2s "$D/remote" "$D/mnt"
fi

stamp=$(date +%Y%m%d-%H%M%S)
echo
echo "== Writing a sample into $D/mnt/sample-$stamp (this project's docs)"
mkdir -p "$D/mnt/sample-$stamp"
cp -r README.md docs "$D/mnt/sample-$stamp/"
sleep 3
"$S" status "$D/mnt"

cat <<MSG

The folder $D/mnt is a plain view of your encrypted backup: copy files into it,
and after a quiet moment sealfs commits them to $D/remote, which holds only
encrypted packs, indexes and snapshots (try: grep -r sealfs $D/remote; it finds nothing).

  watch the queue:       $S status $D/mnt
  list the snapshots:    $S snapshots ${common[*]} $D/remote
  stop (commits first):  $S umount $D/mnt        (or: make demo-stop)

Delete the $D folder, after stopping, to start over.
MSG
