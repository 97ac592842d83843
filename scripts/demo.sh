#!/usr/bin/env bash
# The sealfs demo: a repository on a local directory under ./demo (the
# embedded default; no cloud account) and a Backup Key Vault on loopback
# whose secrets live in an embedded SoftHSM2 token; the repository is
# mounted at ./demo/mnt, unlocked with a password through the vault. The
# first run creates the repository, prints its recovery code and enrols
# the password.
set -euo pipefail
cd "$(dirname "$0")/.."

S=bin/sealfs
D=demo
VAULT=http://127.0.0.1:18443
common=(--cache-dir "$D/cache" --code-file "$D/recovery-code")
byvault=(--cache-dir "$D/cache" --vault "$VAULT" --password-file "$D/vault-password")

# install PACKAGE... installs Debian packages (as root, or through sudo).
install() {
	local sudo=()
	[ "$(id -u)" -eq 0 ] || sudo=(sudo)
	"${sudo[@]}" apt-get update -qq && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}
if ! command -v fusermount3 >/dev/null 2>&1 && ! command -v fusermount >/dev/null 2>&1; then
	echo "== Installing fuse3 (FUSE user-space tools)"
	install fuse3
fi
if [ ! -e /usr/lib/softhsm/libsofthsm2.so ] && ! command -v softhsm2-util >/dev/null 2>&1; then
	echo "== Installing softhsm2 (the vault's embedded HSM)"
	install softhsm2
fi

# vault_up reports whether the demo's vault answers its health check.
vault_up() {
	exec 3<>/dev/tcp/127.0.0.1/18443 2>/dev/null || return 1
	printf 'GET /healthz HTTP/1.0\r\n\r\n' >&3
	local status
	read -r status <&3 || true
	exec 3>&-
	[[ $status == *" 200"* ]]
}

mkdir -p "$D/mnt"
# A module of its own, so that the project's Go tooling (./...) never
# descends into the demo's files.
[ -f "$D/go.mod" ] || printf 'module sealfsdemo\n' > "$D/go.mod"

if ! vault_up; then
	echo "== Starting the Backup Key Vault at $VAULT (its secrets in a SoftHSM2 token in $D/vault)"
	mkdir -p "$D/vault"
	nohup bin/sealfs-vault serve --listen 127.0.0.1:18443 --data-dir "$D/vault" >"$D/vault.log" 2>&1 &
	echo $! >"$D/vault.pid"
	for _ in $(seq 100); do vault_up && break; sleep 0.2; done
	vault_up || { echo "the vault did not start; see $D/vault.log" >&2; exit 1; }
fi

if [ ! -f "$D/remote/config" ]; then
	echo "== Creating a repository in $D/remote"
	"$S" init "${common[@]}" "$D/remote"
	echo "(For the demo the code is kept in $D/recovery-code; for real backups keep it on paper.)"
	echo
	echo "== Protecting the key with a password at the vault (it never sees the password)"
	(umask 077; head -c 15 /dev/urandom | base64 >"$D/vault-password")
	"$S" key add-vault "${common[@]}" --vault "$VAULT" --password-file "$D/vault-password" "$D/remote"
	echo "(The demo's password is in $D/vault-password; 10 wrong guesses destroy the key at the vault.)"
	echo
fi

if "$S" status "$D/mnt" >/dev/null 2>&1; then
	echo "== $D/mnt is mounted already"
else
	echo "== Mounting the repository at $D/mnt, unlocked with the password through the vault"
	"$S" mount "${byvault[@]}" --commit-delay 2s "$D/remote" "$D/mnt"
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
    (or by password):    $S snapshots ${byvault[*]} $D/remote
  stop (commits first):  make demo-stop          (unmounts, then stops the vault)

Delete the $D folder, after stopping, to start over.
MSG
