package vaultserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sealfs/sealfs/keyvault"
)

// pgStore is a Store in PostgreSQL, shared by every vault process that
// serves the same HSM token: records as JSON (so fields added to
// userRecord need no schema change), pending enrolments, counters, and
// the counter chain's head. Its locks are session advisory locks, each
// held on a connection of its own: class pgUserLock with hashtext(user)
// for a user (two users may share one; they then only wait for each
// other), pgCountersLock for the counter chain. A process that dies loses
// its connections, and so its locks.
type pgStore struct {
	pool *pgxpool.Pool
	// holders bounds the connections held by user locks, so that the
	// queries of the lock holders, and the counters lock, always find a
	// connection (the holders wait for a batch, which needs the counters
	// lock: with every connection held by users it waited forever).
	holders chan struct{}
}

// Advisory lock classes (the first key of pg_advisory_lock(int, int)).
const (
	pgUserLock     = 0x5ea1f5
	pgCountersLock = 0x5ea1f6
	pgSchemaLock   = 0x5ea1f7
)

const (
	// pgMaxConns is the pool's size; pgMaxHolders of them at most hold
	// a user lock at once (a request waits for a place otherwise).
	pgMaxConns   = 32
	pgMaxHolders = 20
	// pgTimeout bounds one query, pgLockTimeout the wait for a lock (a
	// user's request holds it for one request: milliseconds).
	pgTimeout     = 30 * time.Second
	pgLockTimeout = 2 * time.Minute
)

const pgSchema = `
CREATE TABLE IF NOT EXISTS sealfs_vault_users (id text PRIMARY KEY, record bytea NOT NULL);
CREATE TABLE IF NOT EXISTS sealfs_vault_pending (id text PRIMARY KEY, started bigint NOT NULL);
CREATE TABLE IF NOT EXISTS sealfs_vault_counters (id text PRIMARY KEY, label text NOT NULL, count bigint NOT NULL);
CREATE TABLE IF NOT EXISTS sealfs_vault_meta (k text PRIMARY KEY, v bytea NOT NULL);
`

// OpenPostgresStore connects to the PostgreSQL database at url
// (postgres://user:password@host:port/db?sslmode=...) and makes the
// vault's tables if they are missing.
func OpenPostgresStore(url string) (*pgStore, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("--db %q is not a PostgreSQL URL: %w", redactURL(url), err)
	}
	cfg.MaxConns = pgMaxConns
	ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err == nil {
		err = pool.Ping(ctx)
	}
	if err != nil {
		if pool != nil {
			pool.Close()
		}
		return nil, fmt.Errorf("failed to connect to the vault database %s: %w", redactURL(url), err)
	}
	s := &pgStore{pool: pool, holders: make(chan struct{}, pgMaxHolders)}
	// Processes that start together make the tables one at a time.
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, 0)`, pgSchemaLock); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, pgSchema)
		return err
	})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("failed to make the vault's tables: %w", err)
	}
	return s, nil
}

// redactURL hides the password of a database URL in messages.
func redactURL(url string) string {
	cfg, err := pgx.ParseConfig(url)
	if err != nil || cfg.Password == "" {
		return "(the --db URL)"
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}

func pgCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), pgTimeout)
}

func (s *pgStore) Close() error { s.pool.Close(); return nil }

func (s *pgStore) Load(user string) (*userRecord, error) {
	ctx, cancel := pgCtx()
	defer cancel()
	var b []byte
	err := s.pool.QueryRow(ctx, `SELECT record FROM sealfs_vault_users WHERE id = $1`, user).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, keyvault.ErrNotEnrolled
	}
	if err != nil {
		return nil, fmt.Errorf("vault database: %w", err)
	}
	rec := &userRecord{}
	if err := json.Unmarshal(b, rec); err != nil {
		return nil, fmt.Errorf("vault database record %q is unreadable: %w", user, err)
	}
	return rec, nil
}

func (s *pgStore) Put(user string, rec *userRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	ctx, cancel := pgCtx()
	defer cancel()
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if rec.Pending {
			if _, err := tx.Exec(ctx, `INSERT INTO sealfs_vault_pending (id, started) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET started = $2`, user, rec.Created.UnixNano()); err != nil {
				return err
			}
		} else if _, err := tx.Exec(ctx, `DELETE FROM sealfs_vault_pending WHERE id = $1`, user); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO sealfs_vault_users (id, record) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET record = $2`, user, b)
		return err
	})
}

func (s *pgStore) ForgetPending(user string) error {
	ctx, cancel := pgCtx()
	defer cancel()
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM sealfs_vault_pending WHERE id = $1`, user); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM sealfs_vault_users WHERE id = $1`, user)
		return err
	})
}

func (s *pgStore) IsPending(user string) (bool, error) {
	ctx, cancel := pgCtx()
	defer cancel()
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM sealfs_vault_pending WHERE id = $1)`, user).Scan(&ok)
	return ok, err
}

func (s *pgStore) PendingCount() (int, error) {
	ctx, cancel := pgCtx()
	defer cancel()
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM sealfs_vault_pending`).Scan(&n)
	return n, err
}

func (s *pgStore) Pending() (map[string]time.Time, error) {
	ctx, cancel := pgCtx()
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT id, started FROM sealfs_vault_pending`)
	if err != nil {
		return nil, err
	}
	out := map[string]time.Time{}
	var id string
	var t int64
	_, err = pgx.ForEachRow(rows, []any{&id, &t}, func() error {
		out[id] = time.Unix(0, t)
		return nil
	})
	return out, err
}

func (s *pgStore) forEachUser(fn func(string, *userRecord) error) error {
	ctx, cancel := pgCtx()
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT id, record FROM sealfs_vault_users`)
	if err != nil {
		return err
	}
	var id string
	var b []byte
	_, err = pgx.ForEachRow(rows, []any{&id, &b}, func() error {
		var rec userRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			return fmt.Errorf("vault database record %q is unreadable: %w", id, err)
		}
		return fn(id, &rec)
	})
	return err
}

// countBounds checks a count read from the database.
func countBounds(user string, n int64) (uint32, error) {
	if n < 0 || n > 1<<32-1 {
		return 0, fmt.Errorf("the vault database's counter of %q is out of range", user)
	}
	return uint32(n), nil
}

func (s *pgStore) Counter(user string) (counterValue, bool, error) {
	ctx, cancel := pgCtx()
	defer cancel()
	var c counterValue
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT label, count FROM sealfs_vault_counters WHERE id = $1`, user).Scan(&c.Label, &n)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, false, nil
	}
	if err != nil {
		return c, false, err
	}
	c.Count, err = countBounds(user, n)
	return c, err == nil, err
}

func (s *pgStore) Counters(fn func(string, counterValue) error) error {
	ctx, cancel := pgCtx()
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT id, label, count FROM sealfs_vault_counters`)
	if err != nil {
		return err
	}
	var id, label string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&id, &label, &n}, func() error {
		c, err := countBounds(id, n)
		if err != nil {
			return err
		}
		return fn(id, counterValue{Label: label, Count: c})
	})
	return err
}

func (s *pgStore) CounterHead() (uint64, []byte, error) {
	ctx, cancel := pgCtx()
	defer cancel()
	var b []byte
	err := s.pool.QueryRow(ctx, `SELECT v FROM sealfs_vault_meta WHERE k = 'head'`).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil, nil
	}
	return headEpoch(b), b, err
}

func (s *pgStore) CommitCounters(b *counterBatch, enc []byte) error {
	ctx, cancel := pgCtx()
	defer cancel()
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var head []byte
		err := tx.QueryRow(ctx, `SELECT v FROM sealfs_vault_meta WHERE k = 'head' FOR UPDATE`).Scan(&head)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if headEpoch(head) != b.Epoch-1 {
			return errStaleCounters
		}
		var q pgx.Batch
		for _, c := range b.Changes {
			if c.HadOld {
				q.Queue(`UPDATE sealfs_vault_counters SET label = $2, count = $3 WHERE id = $1 AND label = $4 AND count = $5`,
					c.User, c.New.Label, int64(c.New.Count), c.Old.Label, int64(c.Old.Count))
			} else {
				q.Queue(`INSERT INTO sealfs_vault_counters (id, label, count) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`,
					c.User, c.New.Label, int64(c.New.Count))
			}
		}
		q.Queue(`INSERT INTO sealfs_vault_meta (k, v) VALUES ('head', $1) ON CONFLICT (k) DO UPDATE SET v = $1`, enc)
		res := tx.SendBatch(ctx, &q)
		for _, c := range b.Changes {
			tag, err := res.Exec()
			if err == nil && tag.RowsAffected() != 1 {
				err = fmt.Errorf("%w: %s", errStaleCounters, c.User)
			}
			if err != nil {
				res.Close()
				return err
			}
		}
		if _, err := res.Exec(); err != nil {
			res.Close()
			return err
		}
		return res.Close()
	})
}

// advisoryLock takes the session advisory lock (class, key) on a
// connection of its own, held until the returned function runs; with
// wait false, ok is false (and nothing held) when another holds it. A
// user lock takes a place among holders first; the counters lock, which
// one goroutine of a process holds at a time (Vault.lockCounters), none.
func (s *pgStore) advisoryLock(class int32, key string, wait bool) (func(), bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), pgLockTimeout)
	defer cancel()
	bounded := class == pgUserLock
	if bounded {
		select {
		case s.holders <- struct{}{}:
		case <-ctx.Done():
			return nil, false, fmt.Errorf("no database connection free for a lock: %w", ctx.Err())
		}
	}
	leave := func() {
		if bounded {
			<-s.holders
		}
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		leave()
		return nil, false, fmt.Errorf("vault database: %w", err)
	}
	ok := true
	if wait {
		_, err = conn.Exec(ctx, `SELECT pg_advisory_lock($1, hashtext($2))`, class, key)
	} else {
		err = conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, class, key).Scan(&ok)
	}
	if err != nil || !ok {
		if err != nil {
			// The lock may be granted after all: drop the session.
			conn.Conn().Close(context.Background())
			err = fmt.Errorf("vault database lock: %w", err)
		}
		conn.Release()
		leave()
		return nil, false, err
	}
	return func() {
		ctx, cancel := pgCtx()
		defer cancel()
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1, hashtext($2))`, class, key); err != nil {
			conn.Conn().Close(context.Background()) // ends the session, and its locks
		}
		conn.Release()
		leave()
	}, true, nil
}

func (s *pgStore) LockUser(user string, wait bool) (func(), bool, error) {
	return s.advisoryLock(pgUserLock, user, wait)
}

func (s *pgStore) LockCounters() (func(), error) {
	unlock, _, err := s.advisoryLock(pgCountersLock, "counters", true)
	return unlock, err
}
