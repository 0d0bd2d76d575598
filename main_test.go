package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/causerie/causerie/app/bench"
	"github.com/causerie/causerie/app/config"
	"github.com/causerie/causerie/app/servertest"
)

// TestRun starts the whole program as main does, on a free loopback port, and chats through it with the
// x/net/websocket client.
func TestRun(t *testing.T) {
	env := map[string]string{
		"HOST": "127.0.0.1", "PORT": "0", "DATA_DIR": t.TempDir(), "LOG_FORMAT": "json", "BCRYPT_COST": "4",
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, logs := io.Pipe()
	var stdout syncBuilder
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, nil, func(k string) string { return env[k] }, &stdout, logs)
		logs.Close()
	}()

	lines := bufio.NewScanner(out)
	var addr string
	sawWarning, sawNewDB := false, false
	for addr == "" && lines.Scan() {
		var entry map[string]any
		if err := json.Unmarshal(lines.Bytes(), &entry); err != nil {
			t.Fatalf("log line is not JSON: %s", lines.Text())
		}
		if strings.Contains(entry["msg"].(string), "JWT_SECRET is not set") {
			sawWarning = true
		}
		if strings.Contains(entry["msg"].(string), "created a new database") {
			sawNewDB = entry["path"] == filepath.Join(env["DATA_DIR"], "causerie.db")
		}
		if entry["msg"] == "listening" {
			addr = entry["addr"].(string)
		}
	}
	if addr == "" {
		t.Fatal("the server never logged its address")
	}
	if !sawWarning {
		t.Error("no warning about the generated JWT secret")
	}
	if !sawNewDB {
		t.Error("no log line names the new database's absolute path")
	}
	_, port, _ := strings.Cut(addr, "127.0.0.1:")
	if want := "serving on http://127.0.0.1:" + port; !strings.Contains(stdout.String(), want) {
		t.Errorf("stdout %q, want %q", stdout.String(), want)
	}
	go io.Copy(io.Discard, out)

	resp, err := http.Post("http://"+addr+"/api/register", "application/json",
		strings.NewReader(`{"email":"ada@example.com","password":"password123"}`))
	if err != nil {
		t.Fatal(err)
	}
	var session struct{ Token string }
	json.NewDecoder(resp.Body).Decode(&session)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || session.Token == "" {
		t.Fatalf("register: %d", resp.StatusCode)
	}

	dial := func() *websocket.Conn {
		ws, err := websocket.Dial("ws://"+addr+"/?token="+session.Token, "", "http://"+addr)
		if err != nil {
			t.Fatal(err)
		}
		ws.SetDeadline(time.Now().Add(10 * time.Second))
		var welcome string
		if err := websocket.Message.Receive(ws, &welcome); err != nil || !strings.Contains(welcome, `"welcome"`) {
			t.Fatalf("welcome: %q %v", welcome, err)
		}
		for _, want := range []string{`"presence"`, `"history"`} {
			var f string
			if err := websocket.Message.Receive(ws, &f); err != nil || !strings.Contains(f, want) {
				t.Fatalf("got %q %v, want a %s frame", f, err, want)
			}
		}
		return ws
	}
	a, b := dial(), dial()
	defer a.Close()
	defer b.Close()
	if err := websocket.Message.Send(a, "salut"); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := websocket.Message.Receive(b, &got); err != nil || !strings.Contains(got, `"text":"salut"`) || !strings.Contains(got, `"name":"ada"`) {
		t.Fatalf("b got %q, %v", got, err)
	}

	cancel()
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("exit code %d", code)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after the context ended")
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	var stdout, stderr strings.Builder
	env := map[string]string{"PORT": "eighty", "DATA_DIR": t.TempDir()}
	if code := run(context.Background(), nil, func(k string) string { return env[k] }, &stdout, &stderr); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), "PORT") || stdout.Len() != 0 {
		t.Errorf("stderr %q, stdout %q: want PORT named on stderr alone", stderr.String(), stdout.String())
	}
}

// A DATA_DIR where no database can be made stops the program with a message that names it.
func TestRunNamesABadDataDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"DATA_DIR": filepath.Join(file, "data"), "PORT": "0"}
	var stderr strings.Builder
	if code := run(context.Background(), nil, func(k string) string { return env[k] }, io.Discard, &stderr); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), "DATA_DIR") {
		t.Errorf("stderr %q does not name DATA_DIR", stderr.String())
	}
}

// A store or bus that cannot be reached at start stops the node with a message naming its variable.
func TestRunNamesTheUnreachableDependency(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"DATABASE_URL": {"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none?connect_timeout=2"},
		"REDIS_URL":    {"REDIS_URL": "redis://127.0.0.1:1/0", "JWT_SECRET": strings.Repeat("s", 32)},
	} {
		t.Run(name, func(t *testing.T) {
			env["DATA_DIR"], env["PORT"] = t.TempDir(), "0"
			var out strings.Builder
			if code := run(context.Background(), nil, func(k string) string { return env[k] }, io.Discard, &out); code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			if !strings.Contains(out.String(), name+":") {
				t.Errorf("output %q does not name %s", out.String(), name)
			}
		})
	}
}

// TestBenchSmoke runs the load tool for a second against a real server: every message must reach every
// receiver exactly once. It asserts no timing; docs/performance.md has the measured runs.
func TestBenchSmoke(t *testing.T) {
	s := servertest.Start(t, map[string]string{"RATE_LIMIT": "0", "LOG_LEVEL": "warn"})
	for _, rooms := range []string{"1", "3"} {
		var out strings.Builder
		code := run(context.Background(), []string{"bench", "-url", s.URL, "-conns", "30", "-senders", "3", "-rooms", rooms,
			"-users", "3", "-duration", "1s", "-json"}, func(string) string { return "" }, &out, io.Discard)
		var rep bench.Report
		if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
			t.Fatalf("rooms %s: exit %d, output %q", rooms, code, out.String())
		}
		if code != 0 || rep.Lost != 0 || rep.Duplicated != 0 || rep.Delivered == 0 || rep.Acked != rep.Sent || rep.Closed != 0 {
			t.Errorf("rooms %s: exit %d, report %+v", rooms, code, rep)
		}
	}
}

// syncBuilder is a strings.Builder that run may write to while the test reads it.
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuilder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// help, -h and --help list every setting on stdout and exit 0; version names the build; anything else
// is an error on stderr, exit 2.
func TestCommandLine(t *testing.T) {
	env := func(string) string { return "" }
	for _, arg := range []string{"help", "-h", "-help", "--help"} {
		var stdout, stderr strings.Builder
		if code := run(context.Background(), []string{arg}, env, &stdout, &stderr); code != 0 || stderr.Len() != 0 {
			t.Errorf("%s: exit %d, stderr %q", arg, code, stderr.String())
		}
		for _, s := range config.Settings {
			if !strings.Contains(stdout.String(), "\n  "+s.Name+"   default: ") {
				t.Errorf("%s does not list %s", arg, s.Name)
			}
		}
		if !strings.Contains(stdout.String(), "causerie bench") {
			t.Errorf("%s does not name the bench subcommand", arg)
		}
	}
	var stdout, stderr strings.Builder
	if code := run(context.Background(), []string{"version"}, env, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "causerie ") || !strings.Contains(stdout.String(), "go1.") {
		t.Errorf("version: exit %d, %q", code, stdout.String())
	}
	for _, args := range [][]string{{"serve"}, {"--port", "80"}, {"bench", "extra"}, {"help", "extra"}, {"version", "x"}} {
		var stdout, stderr strings.Builder
		if code := run(context.Background(), args, env, &stdout, &stderr); code != 2 || stderr.Len() == 0 || stdout.Len() != 0 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 and an error on stderr", args, code, stdout.String(), stderr.String())
		}
	}
}
