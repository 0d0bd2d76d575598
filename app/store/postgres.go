package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// defaultPostgresConns is the pool size when OpenPostgres is given none: enough for the hub's committer
// beside a few history reads, well under PostgreSQL's default max_connections of 100 shared by all nodes.
const defaultPostgresConns = 10

// OpenPostgres connects to the PostgreSQL database at url (postgres://user:password@host:port/db?...; any
// run-time parameter, such as search_path, may be given in the query) with a pool of at most maxConns
// connections (10 if maxConns <= 0), and brings its schema up to date. Several processes may open the
// same database at once.
func OpenPostgres(ctx context.Context, url string, maxConns int) (*DB, error) {
	if maxConns <= 0 {
		maxConns = defaultPostgresConns
	}
	// ParseConfig hides the password in its errors; ours never quote url for the same reason.
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("store: postgres url: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(maxConns)
	// database/sql keeps 2 idle connections by default: under load the others would be closed and
	// reopened, each time preparing the statements again.
	db.SetMaxIdleConns(maxConns)
	// An unreachable server is then reported as such, not as a failed migration.
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: connect to postgres: %w", err)
	}
	d, err := open(ctx, db, db, postgresDialect)
	if err != nil {
		return nil, err
	}
	close(d.stopped) // no background work
	return d, nil
}

var postgresDialect = dialect{
	name:       "postgres",
	migrations: "migrations/postgres",
	// A transaction-level advisory lock is released by the commit or rollback, and by the server if the
	// process dies. Its key is per schema: instances in other schemas of the database do not wait.
	lockMigrations: `SELECT pg_advisory_xact_lock(hashtext('causerie.migrate'), hashtext(current_schema()))`,
	rebind:         rebindDollar,
	// The unique index is on lower(email): a plain email = $1 could not use it.
	emailIs:     "lower(email) = ?",
	isUnique:    isPostgresUnique,
	isNameTaken: isPostgresNameTaken,
	// Planned as a join, (user_id, client_id) IN (VALUES ...) became a scan of the whole table when
	// statistics were missing (20 ms at 77,000 messages); a LIMIT subquery per row can only be run as
	// one probe of the unique index. The CAST gives the column its type, which PostgreSQL would take as
	// text; the following rows take it from the first.
	earlierMessages: batchQuery{
		name:  "look up earlier messages",
		head:  `SELECT m.* FROM (VALUES `,
		first: `(CAST(? AS BIGINT), ?)`,
		row:   `(?, ?)`,
		tail: `) AS v (user_id, client_id) CROSS JOIN LATERAL (SELECT ` + messageColumns + ` FROM messages
			WHERE messages.user_id = v.user_id AND messages.client_id = v.client_id AND messages.client_id IS NOT NULL
			LIMIT 1) AS m`,
	},
}

// rebindDollar rewrites the ? placeholders of query as $1, $2, ... No query of this package has a ? of
// its own, in a string or an operator.
func rebindDollar(query string) string {
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r != '?' {
			b.WriteRune(r)
			continue
		}
		n++
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(n))
	}
	return b.String()
}

// pgUniqueViolation is PostgreSQL's SQLSTATE for unique_violation.
const pgUniqueViolation = "23505"

func isPostgresUnique(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == pgUniqueViolation
}

func isPostgresNameTaken(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == pgUniqueViolation && e.ConstraintName == "users_name_key"
}
