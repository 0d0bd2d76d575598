package config_test

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/causerie/causerie/app/config"
)

func TestDefaults(t *testing.T) {
	c, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr() != ":8181" || c.DataDir != "./data" || c.TokenTTL != 24*time.Hour || c.MaxMessageBytes != 4096 ||
		c.QueueBytes != 1<<20 || c.BcryptCost != 10 || c.JWTSecret != "" || c.LogFormat != "text" {
		t.Errorf("defaults = %+v", c)
	}
}

func TestValues(t *testing.T) {
	env := map[string]string{
		"PORT": "9000", "HOST": "127.0.0.1", "TOKEN_TTL": "1h", "ALLOWED_ORIGINS": " https://a.example/ , https://b.example",
		"LOG_FORMAT": "JSON", "JWT_SECRET": strings.Repeat("s", 32),
	}
	c, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr() != "127.0.0.1:9000" || c.TokenTTL != time.Hour || c.LogFormat != "json" ||
		strings.Join(c.AllowedOrigins, ",") != "https://a.example,https://b.example" {
		t.Errorf("config = %+v", c)
	}
}

func TestErrorsNameEveryBadVariable(t *testing.T) {
	env := map[string]string{
		"PORT": "http", "TOKEN_TTL": "forever", "JWT_SECRET": "short", "LOG_LEVEL": "loud",
		"PING_INTERVAL": "2m", "MAX_MESSAGE_BYTES": "0", "METRICS_ADDR": "9181",
		"TRUSTED_PROXIES": "10.0.0.0/8,proxy.example.com",
		"WS_WRITE_DELAY":  "5s", "WS_WRITE_TIMEOUT": "0s", "SESSION_MAX": "soon",
	}
	_, err := config.Load(func(k string) string { return env[k] })
	if err == nil {
		t.Fatal("no error")
	}
	for _, name := range []string{"PORT", "TOKEN_TTL", "JWT_SECRET", "LOG_LEVEL", "PONG_WAIT", "MAX_MESSAGE_BYTES", "METRICS_ADDR", "TRUSTED_PROXIES",
		"WS_WRITE_DELAY", "WS_WRITE_TIMEOUT", "SESSION_MAX"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

func TestCluster(t *testing.T) {
	env := map[string]string{
		"DATABASE_URL": "postgres://u@db:5432/chat", "REDIS_URL": "redis://redis:6379/0", "NODE_ID": "node-1",
		"JWT_SECRET": strings.Repeat("s", 32), "PRESENCE_TTL": "5s",
	}
	c, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if !c.Clustered() || c.NodeID != "node-1" || c.DatabaseMaxConns != 10 || c.RedisPrefix != "causerie:" || c.PresenceTTL != 5*time.Second {
		t.Errorf("config = %+v", c)
	}

	single, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	other, _ := config.Load(func(string) string { return "" })
	if single.Clustered() || single.NodeID == "" || single.NodeID == other.NodeID {
		t.Errorf("default node ids %q and %q: want two different ones", single.NodeID, other.NodeID)
	}

	if _, err := config.Load(func(k string) string { return map[string]string{"PRESENCE_TTL": "1s"}[k] }); err != nil {
		t.Errorf("PRESENCE_TTL=1s on a single node, where it means nothing: %v", err)
	}

	bad := map[string]string{"DATABASE_URL": "mysql://x", "REDIS_URL": "redis://r:6379", "NODE_ID": "a b", "PRESENCE_TTL": "1s"}
	_, err = config.Load(func(k string) string { return bad[k] })
	for _, want := range []string{"DATABASE_URL", "NODE_ID", "JWT_SECRET must be set when REDIS_URL is", "PRESENCE_TTL must be at least 3s"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}

	cluster := map[string]string{"REDIS_URL": "redis+cluster://r1:7000?addr=r2:7001", "JWT_SECRET": strings.Repeat("k", 32)}
	if c, err := config.Load(func(k string) string { return cluster[k] }); err != nil || !c.Clustered() {
		t.Errorf("a Redis Cluster's URL: clustered %v, err %v", c.Clustered(), err)
	}
	cluster["REDIS_PREFIX"] = "app{1}:"
	if _, err := config.Load(func(k string) string { return cluster[k] }); err == nil || !strings.Contains(err.Error(), "REDIS_PREFIX") {
		t.Errorf("a prefix with a hash tag: err %v, want one naming REDIS_PREFIX", err)
	}
}

// Every variable Load reads is in README.md's table, docs/deploy.md's and .env.example, and they name no
// other: the docs stay true as variables come and go.
func TestDocsListEveryVariable(t *testing.T) {
	read := func(path string) string {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	var names []string
	for _, s := range config.Settings {
		names = append(names, s.Name)
	}
	var readVars []string
	for _, m := range regexp.MustCompile(`(?:getenv|p\.\w+)\("([A-Z][A-Z_]+)"`).FindAllStringSubmatch(read("config.go"), -1) {
		if !slices.Contains(readVars, m[1]) {
			readVars = append(readVars, m[1])
		}
	}
	slices.Sort(readVars)
	sorted := slices.Sorted(slices.Values(names))
	if !slices.Equal(readVars, sorted) {
		t.Errorf("config.go reads %v;\nSettings lists %v", readVars, sorted)
	}

	// The README's table is Settings, row for row.
	var rows []string
	for _, line := range strings.Split(read("../../README.md"), "\n") {
		if regexp.MustCompile("^\\| `[A-Z][A-Z_]+` \\|").MatchString(line) {
			rows = append(rows, line)
		}
	}
	for i, s := range config.Settings {
		if i >= len(rows) {
			t.Errorf("README.md's table lacks %s:\n%s", s.Name, s.Row())
			continue
		}
		if rows[i] != s.Row() {
			t.Errorf("README.md's row %d differs from config.Settings:\nREADME:   %s\nSettings: %s", i+1, rows[i], s.Row())
		}
	}
	for _, extra := range rows[min(len(rows), len(config.Settings)):] {
		t.Errorf("README.md's table has a row Settings lacks: %s", extra)
	}

	tableRow := regexp.MustCompile("(?m)^\\| `([A-Z][A-Z_]+)` \\|")
	envLine := regexp.MustCompile(`(?m)^(?:# )?([A-Z][A-Z_]+)=`)
	for path, re := range map[string]*regexp.Regexp{
		"../../docs/deploy.md": tableRow,
		"../../.env.example":   envLine,
	} {
		documented := map[string]bool{}
		for _, m := range re.FindAllStringSubmatch(read(path), -1) {
			documented[m[1]] = true
		}
		for _, v := range names {
			if !documented[v] {
				t.Errorf("%s does not document %s", path, v)
			}
			delete(documented, v)
		}
		for v := range documented {
			t.Errorf("%s documents %s, which config.go does not read", path, v)
		}
	}
}

// A default the table shows as a value (in backticks) is what Load takes when the variable is unset:
// setting the variable to it changes nothing.
func TestSettingsDefaultsAreLoadsDefaults(t *testing.T) {
	base := map[string]string{"NODE_ID": "n1"} // else a random one
	load := func(env map[string]string) config.Config {
		t.Helper()
		c, err := config.Load(func(k string) string { return env[k] })
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	want := load(base)
	literal := regexp.MustCompile("^`([^`]+)`")
	checked := 0
	for _, s := range config.Settings {
		m := literal.FindStringSubmatch(s.Default)
		if m == nil || s.Name == "NODE_ID" {
			continue
		}
		env := map[string]string{"NODE_ID": "n1", s.Name: m[1]}
		if got := load(env); !reflect.DeepEqual(got, want) {
			t.Errorf("%s=%s (its documented default) loads %+v;\nunset, it loads %+v", s.Name, m[1], got, want)
		}
		checked++
	}
	if checked < 25 {
		t.Errorf("only %d defaults checked", checked)
	}
}
