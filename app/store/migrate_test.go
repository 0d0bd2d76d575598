package store

import (
	"fmt"
	"testing"
)

// A version means the same schema change on every dialect: a database may move between them only
// through a dump, but the code reading it expects the same schema at the same version.
func TestDialectsHaveTheSameMigrationVersions(t *testing.T) {
	var want string
	for i, dl := range []dialect{sqliteDialect, postgresDialect} {
		ms, err := migrationsOf(dl.migrations)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 {
			t.Fatalf("%s: no migrations", dl.name)
		}
		var versions []int
		for _, m := range ms {
			versions = append(versions, m.version)
		}
		if i == 0 {
			want = fmt.Sprint(versions)
		} else if got := fmt.Sprint(versions); got != want {
			t.Errorf("%s migrations have versions %s, %s has %s", dl.name, got, sqliteDialect.name, want)
		}
	}
}

func TestRebindDollar(t *testing.T) {
	got := rebindDollar(`SELECT a FROM t WHERE b = ? AND c IN (?, ?)`)
	if want := `SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)`; got != want {
		t.Errorf("rebindDollar = %q, want %q", got, want)
	}
}
