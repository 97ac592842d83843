# sealfs: end-to-end encrypted backups on any rclone remote. See README.md.

GO       ?= go
# sealfs is one static binary (no cgo: NAS boxes, ARM boards, containers);
# sealfs-vault, the vault's server, needs cgo for PKCS#11.
BIN      := bin/sealfs
VAULTBIN := bin/sealfs-vault
# A count, not a duration: Go 1.26's fuzz coordinator can fail a target with a spurious
# "context deadline exceeded" when a duration runs out (go.dev/issue/75804, fixed in 1.27).
FUZZTIME ?= 20000x
# Every fuzz target, as package:Target. Each runs for FUZZTIME inputs in `make test`.
FUZZ     := ./crypt:FuzzParseKeySlot ./crypt:FuzzParseRecoveryCode \
            ./repo/format:FuzzDecodeTree ./repo/format:FuzzDecodeIndex ./repo/format:FuzzOpenIndexTable ./repo/format:FuzzDecodePackHeader \
            ./repo/format:FuzzDecodeSnapshot ./repo/format:FuzzParseConfig ./repo/format:FuzzDecodeForget \
            ./repo/format:FuzzDecodeSegmentTable ./repo/format:FuzzParseSnapshotName ./repo/format:FuzzDecodeHistory \
            ./internal/vaultserver:FuzzDecodeRequest ./internal/vaultserver:FuzzDecodeBatch ./keyvault:FuzzValidatePoint \
            ./internal/worktree:FuzzReadJournal ./internal/worktree:FuzzSealedJournal ./remote/mirror:FuzzDecodeListing \
            ./remote/bwlimit:FuzzParse ./internal/unlock:FuzzParseVaultParams ./keyvault/shamir:FuzzCombine

.PHONY: all build build-sealfs build-vault test unit fuzz lint bench demo demo-stop install clean

all: build

## build: bin/sealfs (static, CGO_ENABLED=0) and bin/sealfs-vault (cgo: needs a C compiler), side by side.
build: build-sealfs build-vault

build-sealfs:
	CGO_ENABLED=0 $(GO) build -o $(BIN) ./cmd/sealfs

build-vault:
	CGO_ENABLED=1 $(GO) build -o $(VAULTBIN) ./cmd/sealfs-vault

## test: what CI runs: lint, every test with the race detector, each fuzz target briefly.
test: lint unit fuzz

unit:
	$(GO) test -race -count=1 -timeout 50m ./...

fuzz:
	@set -e; for f in $(FUZZ); do \
		pkg=$${f%%:*}; target=$${f##*:}; \
		echo "fuzz $$pkg $$target ($(FUZZTIME))"; \
		$(GO) test $$pkg -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME); \
	done

## lint: formatting, go vet, staticcheck, and go.mod/go.sum tidiness.
lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	$(GO) mod tidy -diff

## bench: throughput figures for docs/BENCHMARKS.md: Go benchmarks on one core, then
## the mount beside gocryptfs (as root; installs gocryptfs if missing).
bench: build
	$(GO) test -run '^$$' -bench . -benchtime 10x -cpu 1 ./chunker ./repo
	$(GO) test -run '^$$' -bench . -benchtime 20x -cpu 1 ./internal/worktree/sealedfile
	$(GO) test -run '^$$' -bench . -benchtime 2s ./internal/vaultserver
	@if [ "$$(id -u)" -eq 0 ]; then ./scripts/bench-mount.sh 512; else echo "bench-mount skipped: it needs root to mount and drop caches"; fi

## demo: build, start a vault on loopback (embedded SoftHSM2), create a repository in ./demo
## (first time: prints its recovery code, enrols a password), mount it at ./demo/mnt by password.
demo: build
	./scripts/demo.sh

## demo-stop: commit, drain and unmount the demo, then stop its vault.
demo-stop: build-sealfs
	$(BIN) umount demo/mnt
	@if [ -f demo/vault.pid ]; then kill "$$(cat demo/vault.pid)" 2>/dev/null || true; rm -f demo/vault.pid; fi

## install: both commands (sealfs, sealfs-vault), the mount helpers (mount.sealfs,
## mount.fuse.sealfs) and the systemd units.
PREFIX  ?= /usr/local
SBINDIR ?= /sbin
UNITDIR ?= /etc/systemd/system
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/sealfs
	install -D -m 0755 $(VAULTBIN) $(DESTDIR)$(PREFIX)/bin/sealfs-vault
	install -d $(DESTDIR)$(SBINDIR)
	ln -sf $(PREFIX)/bin/sealfs $(DESTDIR)$(SBINDIR)/mount.sealfs
	ln -sf $(PREFIX)/bin/sealfs $(DESTDIR)$(SBINDIR)/mount.fuse.sealfs
	install -d $(DESTDIR)$(UNITDIR)
	sed 's|/usr/local/bin/sealfs|$(PREFIX)/bin/sealfs|g' contrib/systemd/sealfs@.service > $(DESTDIR)$(UNITDIR)/sealfs@.service
	install -D -m 0644 docs/SYSTEMD.md $(DESTDIR)$(PREFIX)/share/doc/sealfs/SYSTEMD.md
	install -D -m 0644 contrib/systemd/mnt-backup.mount $(DESTDIR)$(PREFIX)/share/doc/sealfs/examples/mnt-backup.mount
	install -D -m 0644 contrib/systemd/mnt-backup.automount $(DESTDIR)$(PREFIX)/share/doc/sealfs/examples/mnt-backup.automount

clean:
	rm -rf bin
