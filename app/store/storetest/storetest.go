// Package storetest gives tests a PostgreSQL database of their own, so that the store's tests, and those
// of packages built on it, can run against PostgreSQL beside SQLite.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the environment variable holding the URL of the PostgreSQL database that tests may use,
// e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable. Tests only ever write to schemas they
// create in it.
const EnvURL = "TEST_DATABASE_URL"

// cleanupTimeout bounds the drop of a test's schema: the test is over, nothing else waits for it.
const cleanupTimeout = 30 * time.Second

// PostgresURL creates an empty schema in the database named by TEST_DATABASE_URL and returns that URL with
// the schema as its search_path, so that everything a store opened on it creates lands in the schema.
// Each call makes another schema; t's cleanup drops it, with its contents, after the cleanups registered
// later (such as closing the store) have run. PostgresURL skips t when the variable is unset.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvURL)
	if base == "" {
		t.Skip(EnvURL + " is not set: PostgreSQL tests skipped")
	}
	var b [8]byte
	rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	exec(t, base, "CREATE SCHEMA "+schema)
	t.Cleanup(func() { exec(t, base, "DROP SCHEMA "+schema+" CASCADE") })
	return withSearchPath(t, base, schema)
}

// exec runs one statement on a connection of its own.
func exec(t testing.TB, dsn, statement string) {
	t.Helper()
	// Not t.Context(): it is already done when cleanups run.
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("storetest: connect to %s: %v", EnvURL, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, statement); err != nil {
		t.Fatalf("storetest: %s: %v", statement, err)
	}
}

// withSearchPath sets search_path in dsn, a URL or a key=value string, both of which pgx sends to the
// server as a run-time parameter.
func withSearchPath(t testing.TB, dsn, schema string) string {
	t.Helper()
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return dsn + " search_path=" + schema
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("storetest: %s: %v", EnvURL, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
