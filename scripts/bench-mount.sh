#!/usr/bin/env bash
# Mount benchmarks: sealfs (local-directory remote) beside gocryptfs on the
# same machine and disk, as ratios. Needs root (to mount and drop caches);
# installs gocryptfs and fuse3 from Debian if missing.
#
#   scripts/bench-mount.sh [SIZE_MIB]     (default 1024)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-1024}
S=$PWD/bin/sealfs
W=$(mktemp -d /var/tmp/sealfs-bench.XXXXXX)
trap 'for m in "$W"/s-mnt "$W"/g-mnt; do mountpoint -q "$m" && umount -l "$m"; done; rm -rf "$W"' EXIT

need=()
command -v gocryptfs >/dev/null || need+=(gocryptfs)
command -v fusermount3 >/dev/null || need+=(fuse3)
if [ ${#need[@]} -gt 0 ]; then
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# Inputs: random data (incompressible, like media or already-compressed
# dumps) and a source tree (Go's standard library) as a tar.
head -c $((SIZE << 20)) /dev/urandom > "$W/data"
tar -C /usr/local/go -cf "$W/src.tar" src
files=$(tar -tf "$W/src.tar" | wc -l)

# sealfs
mkdir -p "$W/s-mnt"
"$S" init --cache-dir "$W/s-cache" --code-file "$W/code" "$W/s-remote" >/dev/null
smount() { "$S" mount --cache-dir "$1" --code-file "$W/code" --commit-delay 1h "$W/s-remote" "$W/s-mnt" >/dev/null; }
sumount() { "$S" umount "$W/s-mnt" >/dev/null; }
# gocryptfs
mkdir -p "$W/g-cipher" "$W/g-mnt"
echo "benchmark-password" > "$W/pass"
gocryptfs -q -init -passfile "$W/pass" -scryptn 10 "$W/g-cipher" >/dev/null
gmount() { gocryptfs -q -passfile "$W/pass" "$W/g-cipher" "$W/g-mnt"; }
gumount() { sync; fusermount3 -u "$W/g-mnt"; }

declare -A R
run() { # name fs function...: time a workload
	local name=$1 fs=$2 t0 t1
	shift 2
	t0=$(now)
	"$@"
	t1=$(now)
	R[$name.$fs]=$(secs "$t0" "$t1")
}

for fs in s g; do
	m="$W/$fs-mnt"
	if [ $fs = s ]; then
		up() { smount "$W/s-cache"; }
		down() { sumount; }
		cold() { smount "$W/s-cache-$RANDOM"; } # a fresh cache: nothing local
	else
		up() { gmount; }
		down() { gumount; }
		cold() { gmount; }
	fi
	write() { cp "$W/data" "$m/data" && down; }
	read_all() { cat "$m/data" > /dev/null; }
	untar() { tar -C "$m" -xf "$W/src.tar" && down; }
	list() { ls -lR "$m/src" > /dev/null; }
	drop; up
	run write $fs write
	drop; cold
	run read $fs read_all
	run untar $fs untar
	drop; cold
	run lsR $fs list
	down
done

printf '\n%-42s %10s %10s %8s\n' "workload (sealfs: local-directory remote)" "sealfs s" "gocryptfs s" "ratio"
row() { printf '%-42s %10.2f %10.2f %8.2f\n' "$1" "${R[$2.s]}" "${R[$2.g]}" "$(echo "${R[$2.s]} / ${R[$2.g]}" | bc -l)"; }
row "write ${SIZE} MiB, until committed + unmounted" write
row "cold sequential read ${SIZE} MiB" read
row "untar Go src ($files entries) + unmount" untar
row "ls -lR of it, cold" lsR
