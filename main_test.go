package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/causerie/causerie/app/bench"
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
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, nil, func(k string) string { return env[k] }, logs)
		logs.Close()
	}()

	lines := bufio.NewScanner(out)
	var addr string
	sawWarning := false
	for addr == "" && lines.Scan() {
		var entry map[string]any
		if err := json.Unmarshal(lines.Bytes(), &entry); err != nil {
			t.Fatalf("log line is not JSON: %s", lines.Text())
		}
		if strings.Contains(entry["msg"].(string), "JWT_SECRET is not set") {
			sawWarning = true
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
	var out strings.Builder
	env := map[string]string{"PORT": "eighty", "DATA_DIR": t.TempDir()}
	if code := run(context.Background(), nil, func(k string) string { return env[k] }, &out); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if !strings.Contains(out.String(), "PORT") {
		t.Errorf("output %q does not name PORT", out.String())
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
			if code := run(context.Background(), nil, func(k string) string { return env[k] }, &out); code != 1 {
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
			"-users", "3", "-duration", "1s", "-json"}, func(string) string { return "" }, &out)
		var rep bench.Report
		if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
			t.Fatalf("rooms %s: exit %d, output %q", rooms, code, out.String())
		}
		if code != 0 || rep.Lost != 0 || rep.Duplicated != 0 || rep.Delivered == 0 || rep.Acked != rep.Sent || rep.Closed != 0 {
			t.Errorf("rooms %s: exit %d, report %+v", rooms, code, rep)
		}
	}
}
