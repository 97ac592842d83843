#!/usr/bin/env bash
# Mount benchmarks, side by side on one machine and disk: gocryptfs, rclone's
# crypt mount (--vfs-cache-mode writes) and sealfs, each over a local
# directory as its "remote"; then sealfs alone on a cloud-shaped link
# (--remote-shape), sealfs against rclone crypt over SFTP (OpenSSH's sshd on
# loopback, started here), and sealfs with many small files. Prints markdown
# tables (docs/BENCHMARKS.md holds the recorded ones).
#
#   scripts/bench-mount.sh [--rounds N] [--files N] [--only LIST] [--workloads LIST] [SIZE_MIB]
#
#   SIZE_MIB   size of the sequential file, default 1024
#   --rounds   rounds of the side-by-side and cloud workloads, default 3; medians
#   --files    files of the many-files run (in 100 folders), default 10000
#   --only     comma-separated parts to run: main,cloud,sftp,many (default all)
#   --workloads  the side-by-side part's workloads, comma-separated:
#              write,read,fio,untar,ls,rm,rewrite (default all); read and
#              fio read what write wrote (it runs with them), ls and rm
#              what untar wrote
#   SEALFS=path/to/sealfs   the binary to measure (default bin/sealfs)
#
# How it measures. Interleaved: each round runs one workload on every system
# before the next workload, the systems' order rotating from round to round.
# Data is random (incompressible). Every step mounts afresh; caches are
# dropped before cold steps, and a cold sealfs or rclone mount gets a fresh
# cache directory (nothing local but the remote). "Until on the remote"
# means: sealfs umount returned (it commits and drains); rclone reports no
# upload queued or in progress (rc vfs/stats; --vfs-write-back 0s, so that its
# 5 s delay does not count) and was unmounted; gocryptfs unmounted; then a
# sync for all three. Bytes uploaded by a rewrite are the sizes of the remote
# files created or changed by it (what a copy of the remote to a cloud would
# send). Daemon peak RSS is VmHWM of the daemon, sampled until it exits.
# Needs root (mounts, drop_caches, sshd); installs what is missing with apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=3 FILES=10000 ONLY=main,cloud,sftp,many WORKLOADS=write,read,fio,untar,ls,rm,rewrite
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) ROUNDS=$2; shift 2 ;;
	--files) FILES=$2; shift 2 ;;
	--only) ONLY=$2; shift 2 ;;
	--workloads) WORKLOADS=$2; shift 2 ;;
	-h | --help) sed -n '2,32p' "$0"; exit 0 ;;
	-*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
	*) break ;;
	esac
done
SIZE=${1:-1024}
for n in "$ROUNDS" "$FILES" "$SIZE"; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "not a positive number: $n" >&2; exit 2; }
done
want() { [[ ,$ONLY, == *,$1,* ]]; }
wl() { [[ ,$WORKLOADS, == *,$1,* ]]; }
if wl read || wl fio; then WORKLOADS+=,write; fi
if wl ls || wl rm; then WORKLOADS+=,untar; fi
[ "$(id -u)" -eq 0 ] || { echo "bench-mount.sh needs root (mounts, drop_caches, sshd)" >&2; exit 1; }
S=$(realpath "${SEALFS:-bin/sealfs}")
[ -x "$S" ] || { echo "no sealfs binary at $S (make build)" >&2; exit 1; }

need=()
for c in gocryptfs:gocryptfs rclone:rclone fio:fio bc:bc jq:jq fusermount3:fuse3 fusermount:fuse3 sshd:openssh-server ssh-keygen:openssh-client; do
	command -v "${c%%:*}" >/dev/null || [ -x "/usr/sbin/${c%%:*}" ] || need+=("${c#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

W=$(mktemp -d /var/tmp/sealfs-bench.XXXXXX)
cleanup() { # every mount, daemon and sshd this script started
	set +e
	mountpoint -q "$W/s-mnt" && "$S" umount --timeout 1m "$W/s-mnt" > /dev/null
	for m in "$W"/*-mnt; do
		mountpoint -q "$m" && { fusermount3 -uz "$m" 2>/dev/null || umount -l "$m"; }
	done
	for p in $(jobs -p); do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "# $*" >&2; }
now() { date +%s.%N; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
calc() { echo "$*" | bc -l; }
mbs() { calc "$1 / $2 / 1000000"; } # bytes, seconds: MB/s

declare -A V # measurements: V[metric.system] = "v1 v2 ..."
rec() { V[$1.$2]="${V[$1.$2]:-} $3"; log "$1 $2 $3"; }
median() {
	# shellcheck disable=SC2086
	printf '%s\n' ${V[$1]:-} | sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}

wait_mounted() { # mountpoint pid
	for _ in $(seq 300); do
		mountpoint -q "$1" && return 0
		kill -0 "$2" 2>/dev/null || { log "the daemon for $1 exited"; return 1; }
		sleep 0.1
	done
	log "$1 was not mounted within 30 s"
	return 1
}

# Peak RSS: a sampler writes the daemon's VmHWM (KiB) to a file until the
# daemon exits; hwm reads it in MiB once the daemon is gone.
DPID=0 SAMPLER=0
sample() {
	rm -f "$W/hwm"
	(while kb=$(awk '/^VmHWM/ {print $2}' "/proc/$DPID/status" 2>/dev/null) && [ -n "$kb" ]; do
		echo "$kb" > "$W/hwm"
		sleep 0.1
	done) &
	SAMPLER=$!
}
hwm() { wait "$SAMPLER" 2>/dev/null || true; calc "$(cat "$W/hwm") / 1024"; }

# --- the three systems: up SYSTEM warm|cold, down SYSTEM (until on the remote)

M_g=$W/g-mnt M_r=$W/r-mnt M_s=$W/s-mnt
R_g=$W/g-cipher R_r=$W/r-remote R_s=$W/s-remote
mkdir -p "$M_g" "$M_r" "$M_s" "$R_g" "$R_r"
echo "benchmark-password" > "$W/pass"
gocryptfs -q -init -passfile "$W/pass" -scryptn 10 "$R_g" >/dev/null
"$S" init --cache-dir "$W/s-cache" --code-file "$W/s-code" "$R_s" >/dev/null
cat > "$W/rclone.conf" <<EOF
[crypt]
type = crypt
remote = $R_r
password = $(rclone obscure bench-password-1)
password2 = $(rclone obscure bench-password-2)
EOF
RC_PORT=$((20000 + RANDOM % 20000))
# sealfs's remote, cache and extra flags; the cloud, SFTP and many-files
# runs point them elsewhere.
SREMOTE=$R_s SCACHE=$W/s-cache SCODE=$W/s-code SFLAGS=() COLD=0 RCLONE_REMOTE=crypt:
use_repo() { # name remote: sealfs's repository for the next steps, made if new
	SREMOTE=$2 SCACHE=$W/$1-cache SCODE=$W/$1-code
	[ -e "$SCODE" ] || "$S" init --cache-dir "$SCACHE" --code-file "$SCODE" "$SREMOTE" > /dev/null
}

up() { # system warm|cold
	local cache
	case $1 in
	g)
		gocryptfs -fg -q -passfile "$W/pass" "$R_g" "$M_g" > "$W/g.log" 2>&1 &
		DPID=$!
		wait_mounted "$M_g" "$DPID"
		;;
	r)
		cache=$W/r-cache
		[ "$2" = warm ] || cache=$W/r-cache-$((++COLD))
		rclone --config "$W/rclone.conf" mount "$RCLONE_REMOTE" "$M_r" --vfs-cache-mode writes --vfs-write-back 0s \
			--cache-dir "$cache" --rc --rc-addr "127.0.0.1:$RC_PORT" --rc-no-auth > "$W/r.log" 2>&1 &
		DPID=$!
		wait_mounted "$M_r" "$DPID"
		;;
	s)
		cache=$SCACHE
		[ "$2" = warm ] || cache=$W/s-cache-$((++COLD))
		"$S" mount --cache-dir "$cache" --code-file "$SCODE" --log-file "$W/s.log" "${SFLAGS[@]}" "$SREMOTE" "$M_s" > /dev/null
		DPID=$("$S" status --json "$M_s" | jq -r .pid)
		;;
	esac
	sample
}

# rclone_drain waits until rclone's VFS has nothing queued or uploading,
# twice in a row.
rclone_drain() {
	local idle=0 q
	while [ $idle -lt 2 ]; do
		q=$(rclone rc --url "http://127.0.0.1:$RC_PORT/" vfs/stats | jq '.diskCache.uploadsQueued + .diskCache.uploadsInProgress')
		if [ "$q" = 0 ]; then idle=$((idle + 1)); else idle=0; fi
		sleep 0.05
	done
}

down() { # system: until everything is on the remote, the daemon gone
	case $1 in
	g) fusermount3 -u "$M_g"; wait "$DPID" ;;
	r) rclone_drain; fusermount3 -u "$M_r"; wait "$DPID" ;;
	s) "$S" umount "$M_s" > /dev/null ;;
	esac
	while kill -0 "$DPID" 2>/dev/null; do sleep 0.05; done
	sync
	rm -rf "$W"/s-cache-* "$W"/r-cache-*
}
mnt() { local v=M_$1; echo "${!v}"; }

# --- workloads; each records its figures for system $1 in round $2

w_write() {
	local m t0 t1 tw
	m=$(mnt "$1")
	up "$1" warm
	t0=$(now)
	cp "$W/data-$2" "$m/data-$2"
	tw=$(now)
	down "$1"
	t1=$(now)
	hwm > /dev/null
	rec write "$1" "$(mbs $((SIZE << 20)) "$(calc "$t1 - $t0")")"
	rec write_ret "$1" "$(mbs $((SIZE << 20)) "$(calc "$tw - $t0")")"
}
w_read() {
	local m t0 t1
	m=$(mnt "$1")
	drop
	up "$1" cold
	t0=$(now)
	cat "$m/data-$2" > /dev/null
	t1=$(now)
	down "$1"
	rec read "$1" "$(mbs $((SIZE << 20)) "$(calc "$t1 - $t0")")"
	rec rss_read "$1" "$(hwm)"
}
w_fio() {
	local m
	m=$(mnt "$1")
	drop
	up "$1" cold
	fio --name=randread --filename="$m/data-$2" --readonly --rw=randread --bs=4k --ioengine=psync \
		--runtime=10 --time_based --output-format=json > "$W/fio.json"
	down "$1"
	rec iops "$1" "$(jq '.jobs[0].read.iops' "$W/fio.json")"
	rec p99 "$1" "$(jq '.jobs[0].read.clat_ns.percentile["99.000000"] / 1000000' "$W/fio.json")"
	rec rss_rand "$1" "$(hwm)"
}
w_untar() {
	local m t0 t1 tw
	m=$(mnt "$1")
	up "$1" warm
	t0=$(now)
	tar -C "$m" -xf "$W/src.tar"
	tw=$(now)
	down "$1"
	t1=$(now)
	rec untar "$1" "$(calc "$t1 - $t0")"
	rec untar_ret "$1" "$(calc "$tw - $t0")"
	rec rss_untar "$1" "$(hwm)"
}
w_ls() {
	local m t0 t1
	m=$(mnt "$1")
	drop
	up "$1" cold
	t0=$(now)
	ls -lR "$m/src" > /dev/null
	t1=$(now)
	down "$1"
	hwm > /dev/null
	rec ls "$1" "$(calc "$t1 - $t0")"
}
w_rm() {
	local m t0 t1
	m=$(mnt "$1")
	up "$1" warm
	t0=$(now)
	rm -rf "$m/src"
	down "$1"
	t1=$(now)
	hwm > /dev/null
	rec rm "$1" "$(calc "$t1 - $t0")"
}
w_rewrite() { # 1 MiB rewritten in the middle of a 256 MiB file
	local m r
	m=$(mnt "$1")
	r=R_$1
	up "$1" warm
	cp "$W/big" "$m/big"
	down "$1"
	hwm > /dev/null
	touch "$W/before-rewrite"
	up "$1" warm
	dd if=/dev/urandom of="$m/big" bs=1M count=1 seek=128 conv=notrunc status=none
	down "$1"
	hwm > /dev/null
	rec rewrite "$1" "$(find "${!r}" -type f -newer "$W/before-rewrite" -printf '%s\n' | awk '{s += $1} END {print s / 1048576}')"
}

ORDER=(g r s)
rotate() { ORDER=("${ORDER[@]:1}" "${ORDER[0]}"); }

if want main; then
	log "side by side: $SIZE MiB, $ROUNDS rounds, $S"
	tar -C /usr/local/go -cf "$W/src.tar" src
	ENTRIES=$(tar -tf "$W/src.tar" | wc -l)
	head -c $((256 << 20)) /dev/urandom > "$W/big"
	for round in $(seq "$ROUNDS"); do
		head -c $((SIZE << 20)) /dev/urandom > "$W/data-$round"
		for w in write read fio untar ls rm; do
			wl "$w" || continue
			for x in "${ORDER[@]}"; do "w_$w" "$x" "$round"; done
		done
		if [ "$round" = 1 ] && wl rewrite; then
			for x in "${ORDER[@]}"; do w_rewrite "$x"; done
		fi
		rm -f "$W/data-$round"
		rotate
	done
fi

# --- sealfs on a cloud-shaped link: 40 ms a request, 100 Mbit/s each way.
SHAPE=latency=40ms,up=100Mbit,down=100Mbit LINK_MBS=12.5
CLOUD=$((SIZE < 256 ? SIZE : 256))
if want cloud; then
	use_repo c "$W/c-remote"
	up s warm # the 10k-file tree, written without shaping
	for d in $(seq -w 0 99); do
		mkdir -p "$M_s/tree/d$d"
		head -c $((100 * 1024)) /dev/urandom | split -b 1024 -a 3 -d - "$M_s/tree/d$d/f"
	done
	down s
	hwm > /dev/null
	SFLAGS=(--remote-shape "$SHAPE")
	if "$S" mount --help | grep -q -- '--transfers'; then SFLAGS+=(--transfers 4); fi
	CLOUD_FLAGS=${SFLAGS[*]}
	log "cloud-shaped: $CLOUD MiB, sealfs $CLOUD_FLAGS"
	for round in $(seq "$ROUNDS"); do
		head -c $((CLOUD << 20)) /dev/urandom > "$W/cloud"
		up s warm
		t0=$(now)
		cp "$W/cloud" "$M_s/cloud-$round"
		down s
		t1=$(now)
		hwm > /dev/null
		rec cloud_up s "$(mbs $((CLOUD << 20)) "$(calc "$t1 - $t0")")"
		drop
		up s cold
		t0=$(now)
		cat "$M_s/cloud-$round" > /dev/null
		t1=$(now)
		down s
		hwm > /dev/null
		rec cloud_read s "$(mbs $((CLOUD << 20)) "$(calc "$t1 - $t0")")"
		drop
		up s cold
		t0=$(now)
		ls -lR "$M_s/tree" > /dev/null
		t1=$(now)
		down s
		hwm > /dev/null
		rec cloud_ls s "$(calc "$t1 - $t0")"
	done
	SFLAGS=()
fi

# --- SFTP: OpenSSH's sshd on loopback; sealfs's sftp remote against rclone
# crypt over the same server.
SFTP_MIB=200
if want sftp; then
	mkdir -p "$W/ssh" /run/sshd
	ssh-keygen -q -t ed25519 -N '' -f "$W/ssh/host" && ssh-keygen -q -t ed25519 -N '' -f "$W/ssh/id"
	cp "$W/ssh/id.pub" "$W/ssh/authorized_keys"
	SSH_PORT=$((40000 + RANDOM % 20000))
	cat > "$W/ssh/sshd_config" <<EOF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $W/ssh/host
AuthorizedKeysFile $W/ssh/authorized_keys
PidFile $W/ssh/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
EOF
	/usr/sbin/sshd -f "$W/ssh/sshd_config" -D -e 2> "$W/ssh/sshd.log" &
	SSHD=$!
	cat >> "$W/rclone.conf" <<EOF

[sftp]
type = sftp
host = 127.0.0.1
port = $SSH_PORT
user = root
key_file = $W/ssh/id
shell_type = unix

[sftpcrypt]
type = crypt
remote = sftp:$W/sftp-r
password = $(rclone obscure bench-password-1)
password2 = $(rclone obscure bench-password-2)
EOF
	for _ in $(seq 50); do rclone --config "$W/rclone.conf" lsd sftp:/ > /dev/null 2>&1 && break; sleep 0.2; done
	export RCLONE_CONFIG=$W/rclone.conf
	use_repo f "sftp:$W/sftp-s"
	RCLONE_REMOTE=sftpcrypt:
	log "sftp: $SFTP_MIB MiB on 127.0.0.1:$SSH_PORT"
	ORDER=(r s)
	for round in $(seq "$ROUNDS"); do
		head -c $((SFTP_MIB << 20)) /dev/urandom > "$W/sftp-data"
		for x in "${ORDER[@]}"; do
			m=$(mnt "$x")
			up "$x" warm
			t0=$(now)
			cp "$W/sftp-data" "$m/f-$round"
			down "$x"
			t1=$(now)
			hwm > /dev/null
			rec sftp_write "$x" "$(mbs $((SFTP_MIB << 20)) "$(calc "$t1 - $t0")")"
		done
		for x in "${ORDER[@]}"; do
			m=$(mnt "$x")
			drop
			up "$x" cold
			t0=$(now)
			cat "$m/f-$round" > /dev/null
			t1=$(now)
			down "$x"
			hwm > /dev/null
			rec sftp_read "$x" "$(mbs $((SFTP_MIB << 20)) "$(calc "$t1 - $t0")")"
		done
		rotate
	done
	unset RCLONE_CONFIG
	kill "$SSHD"
	wait "$SSHD" || true
	RCLONE_REMOTE=crypt:
fi

# --- many files: written through the mount, committed, listed on a fresh cache.
if want many; then
	use_repo m "$W/m-remote"
	per=$(((FILES + 99) / 100))
	log "many files: 100 folders x $per files of 1 KiB"
	up s warm
	t0=$(now)
	# Four writers, a folder each at a time (one writer through FUSE
	# takes ~1.6 ms a file: half an hour for a million).
	# shellcheck disable=SC2016
	seq -w 0 99 | xargs -P 4 -I{} sh -c 'mkdir "$1/d$2" && head -c "$3" /dev/urandom | split -b 1024 -a 6 -d - "$1/d$2/f"' \
		sh "$M_s" {} $((per * 1024))
	tw=$(now)
	rec many_written s "$(calc "$tw - $t0")"
	rec many_written_rss s "$(calc "$(awk '/^VmHWM/ {print $2}' "/proc/$DPID/status") / 1024")"
	down s
	t1=$(now)
	rec many_write s "$(calc "$t1 - $t0")"
	rec many_write_rss s "$(hwm)"
	drop
	up s cold
	t0=$(now)
	ls -lR "$M_s" > /dev/null
	t1=$(now)
	down s
	rec many_ls s "$(calc "$t1 - $t0")"
	rec many_ls_rss s "$(hwm)"
fi

# --- tables
m() { median "$1.$2"; }
f() { printf "%.${2:-0}f" "$1"; }
ratio() { calc "$(m "$1" s) / $(m "$1" g)"; }
echo
if want main; then
	echo "Side by side ($ROUNDS rounds, medians; $SIZE MiB of random data; remotes in local directories):"
	echo
	echo "| workload | gocryptfs | rclone crypt mount (writes) | sealfs | sealfs ÷ gocryptfs |"
	echo "|---|---:|---:|---:|---:|"
	speed() { echo "| $1 | $(f "$(m "$2" g)") MB/s | $(f "$(m "$2" r)") MB/s | $(f "$(m "$2" s)") MB/s | $(f "$(ratio "$2")" 2) |"; }
	secs() { echo "| $1 | $(f "$(m "$2" g)" 2) s | $(f "$(m "$2" r)" 2) s | $(f "$(m "$2" s)" 2) s | $(f "$(ratio "$2")" 2)× the time |"; }
	wl write && speed "sequential write, until on the remote" write
	wl write && speed "(the same, until cp returns)" write_ret
	wl read && speed "sequential read, cold" read
	wl fio && echo "| random 4 KiB reads (fio, 10 s, cold) | $(f "$(m iops g)") IOPS | $(f "$(m iops r)") IOPS | $(f "$(m iops s)") IOPS | $(f "$(ratio iops)" 2) |"
	wl fio && echo "| random read p99 latency | $(f "$(m p99 g)" 2) ms | $(f "$(m p99 r)" 2) ms | $(f "$(m p99 s)" 2) ms | $(f "$(ratio p99)" 1)× |"
	wl untar && secs "untar of Go's \`src\` ($ENTRIES entries), until on the remote" untar
	wl untar && secs "(the same, until tar returns)" untar_ret
	wl ls && secs "\`ls -lR\` of it, cold" ls
	wl rm && secs "\`rm -rf\` of it, until on the remote" rm
	wl rewrite && echo "| bytes uploaded after a 1 MiB rewrite in a 256 MiB file | $(f "$(m rewrite g)" 2) MiB | $(f "$(m rewrite r)" 2) MiB | $(f "$(m rewrite s)" 2) MiB | $(f "$(ratio rewrite)" 3) |"
	rss() { echo "$(f "$(m rss_read "$1")") / $(f "$(m rss_rand "$1")") / $(f "$(m rss_untar "$1")") MiB"; }
	peak() { printf '%s\n' "$(m rss_read "$1")" "$(m rss_rand "$1")" "$(m rss_untar "$1")" | sort -g | tail -1; }
	echo "| daemon peak RSS (seq read / random read / untar) | $(rss g) | $(rss r) | $(rss s) | $(f "$(calc "$(peak s) / $(peak g)")" 1)× (largest) |"
	echo
	echo "Systems run per workload in rotating order (round 1: gocryptfs, rclone, sealfs; then rotated); rewrite measured in round 1."
	echo
fi
if want cloud; then
	echo "sealfs on a cloud-shaped link (sealfs \`$CLOUD_FLAGS\`; $ROUNDS rounds, medians; the link is $LINK_MBS MB/s):"
	echo
	echo "| workload | sealfs | share of the link |"
	echo "|---|---:|---:|"
	echo "| upload of a $CLOUD MiB file, until on the remote | $(f "$(m cloud_up s)" 1) MB/s | $(f "$(calc "100 * $(m cloud_up s) / $LINK_MBS")") % |"
	echo "| cold read of it | $(f "$(m cloud_read s)" 1) MB/s | $(f "$(calc "100 * $(m cloud_read s) / $LINK_MBS")") % |"
	echo "| \`ls -lR\` of an uncached tree of 10,000 files in 100 folders | $(f "$(m cloud_ls s)" 2) s | |"
	echo
fi
if want sftp; then
	echo "Over SFTP (OpenSSH sshd on 127.0.0.1; $SFTP_MIB MiB of random data; $ROUNDS rounds, medians):"
	echo
	echo "| workload | rclone crypt mount (writes) | sealfs | sealfs ÷ rclone |"
	echo "|---|---:|---:|---:|"
	for w in sftp_write:"write, until on the remote" sftp_read:"cold read"; do
		k=${w%%:*}
		echo "| ${w#*:} | $(f "$(m "$k" r)") MB/s | $(f "$(m "$k" s)") MB/s | $(f "$(calc "$(m "$k" s) / $(m "$k" r)")" 2) |"
	done
	echo
fi
if want many; then
	echo "Many files (sealfs; 100 folders, $((per * 100)) files of 1 KiB written through the mount):"
	echo
	echo "| phase | time | daemon peak RSS |"
	echo "|---|---:|---:|"
	echo "| write them (4 writers, until the last returns) | $(f "$(m many_written s)" 1) s | $(f "$(m many_written_rss s)") MiB |"
	echo "| write them and commit (until \`sealfs umount\` returns) | $(f "$(m many_write s)" 1) s | $(f "$(m many_write_rss s)") MiB |"
	echo "| \`ls -lR\` on a fresh cache | $(f "$(m many_ls s)" 1) s | $(f "$(m many_ls_rss s)") MiB |"
	echo
fi
