package servertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/causerie/causerie/app/bus/bustest"
	"github.com/causerie/causerie/app/config"
)

// Node is a server running as a process of the real binary, built from this module, as an operator runs
// it: whole-program tests can kill it with SIGKILL, which an in-process Server cannot survive. Its
// embedded Server gives it the HTTP and WebSocket helpers (Do, Register, Dial, Connect, Get, Logs); it
// has no DB or App, and its Stop and Restart are Node's own.
type Node struct {
	*Server

	env    map[string]string // the process's variables, PORT fixed
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has exited and its output is copied
	err    error         // what cmd.Wait returned, once exited is closed
}

// startAttempts bounds the tries at starting a node on a free port: between finding a port free and the
// process binding it, another process may take it.
const startAttempts = 5

// healthPoll is how often a starting node's /healthz is asked whether it is up.
const healthPoll = 20 * time.Millisecond

// StartProcess builds the binary once per test process (see Binary), starts it configured by env (as in
// README.md) on top of the test defaults of Start, waits until its /healthz answers 200, and kills it when
// the test ends. The process gets only PATH and HOME from this environment besides those variables, and
// runs in its DATA_DIR, so that no .env file is read. Without PORT, or with PORT 0, it listens on a free
// loopback port. Its output (stdout and stderr) is kept for Logs, and shown when the test failed.
func StartProcess(t testing.TB, env map[string]string) *Node {
	t.Helper()
	bin := Binary(t)
	vars := testEnv(t, env)
	pickPort := vars["PORT"] == "" || vars["PORT"] == "0"
	for attempt := 1; ; attempt++ {
		if pickPort {
			vars["PORT"] = strconv.Itoa(bustest.FreePort(t))
		}
		n, err := startNode(t, bin, vars)
		if err == nil {
			return n
		}
		if pickPort && attempt < startAttempts && strings.Contains(n.Logs(), "address already in use") {
			t.Logf("port %s was taken before the node bound it; trying another", vars["PORT"])
			continue
		}
		t.Fatalf("start %s (NODE_ID %s, PORT %s): %v\noutput:\n%s", bin, vars["NODE_ID"], vars["PORT"], err, tail(n.Logs()))
	}
}

// startNode starts one process and waits for its /healthz. On error the process has exited, and the
// returned node holds its output.
func startNode(t testing.TB, bin string, vars map[string]string) (*Node, error) {
	t.Helper()
	cfg, err := config.Load(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
	env := map[string]string{}
	for k, v := range vars {
		env[k] = v
	}
	n := &Node{
		Server: &Server{URL: "http://" + addr, WSURL: "ws://" + addr, Config: cfg, port: cfg.Port, logs: &syncBuffer{}},
		env:    env,
		exited: make(chan struct{}),
	}
	n.cmd = exec.Command(bin)
	n.cmd.Dir = cfg.DataDir
	for _, k := range []string{"PATH", "HOME"} {
		if v, ok := os.LookupEnv(k); ok {
			n.cmd.Env = append(n.cmd.Env, k+"="+v)
		}
	}
	for k, v := range vars {
		n.cmd.Env = append(n.cmd.Env, k+"="+v)
	}
	n.cmd.Stdout = n.logs
	n.cmd.Stderr = n.logs
	if err := n.cmd.Start(); err != nil {
		close(n.exited)
		return n, err
	}
	go func() {
		n.err = n.cmd.Wait()
		close(n.exited)
	}()
	t.Cleanup(func() {
		if n.running() {
			_ = n.cmd.Process.Kill()
			<-n.exited
		}
		if t.Failed() {
			t.Logf("output of node %s (%s):\n%s", cfg.NodeID, n.URL, tail(n.Logs()))
		}
	})
	if err := n.waitHealthy(); err != nil {
		if n.running() {
			_ = n.cmd.Process.Kill()
		}
		<-n.exited
		return n, err
	}
	return n, nil
}

// waitHealthy polls /healthz until it answers 200 for this node, the process exits, or Timeout passes.
func (n *Node) waitHealthy() error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(Timeout)
	var last string
	for {
		select {
		case <-n.exited:
			return fmt.Errorf("exited before it answered on /healthz: %v", n.err)
		default:
		}
		resp, err := client.Get(n.URL + "/healthz")
		if err == nil {
			var body struct{ Status, Node, Store, Bus string }
			err = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			switch {
			case err != nil:
				last = fmt.Sprintf("/healthz: %d, body not JSON: %v", resp.StatusCode, err)
			case resp.StatusCode != http.StatusOK:
				last = fmt.Sprintf("/healthz: %d %+v", resp.StatusCode, body)
			case body.Node != n.Config.NodeID:
				// Another process has the port: this one will exit with "address already in use".
				last = fmt.Sprintf("/healthz answered for node %q, not %q", body.Node, n.Config.NodeID)
			default:
				return nil
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no healthy answer on /healthz after %v; last: %s", Timeout, last)
		}
		time.Sleep(healthPoll)
	}
}

func (n *Node) running() bool {
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// PID returns the process id.
func (n *Node) PID() int { return n.cmd.Process.Pid }

// Kill sends SIGKILL, as kill -9 or a crash would: the node closes nothing and tells nobody. It returns
// once the process has exited.
func (n *Node) Kill(t testing.TB) {
	t.Helper()
	if !n.running() {
		t.Fatalf("kill node %s: it had already exited (%v)", n.Config.NodeID, n.err)
	}
	if err := n.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill node %s: %v", n.Config.NodeID, err)
	}
	select {
	case <-n.exited:
	case <-time.After(Timeout):
		t.Fatalf("node %s (pid %d) still running %v after SIGKILL", n.Config.NodeID, n.PID(), Timeout)
	}
}

// Stop sends SIGTERM and waits for a graceful shutdown, failing the test when the process does not exit
// with status 0 within SHUTDOWN_TIMEOUT and Timeout more (it is then killed).
func (n *Node) Stop(t testing.TB) {
	t.Helper()
	if !n.running() {
		t.Fatalf("stop node %s: it had already exited (%v)", n.Config.NodeID, n.err)
	}
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("stop node %s: %v", n.Config.NodeID, err)
	}
	select {
	case <-n.exited:
		if n.err != nil {
			t.Errorf("node %s exited with %v after SIGTERM, want status 0", n.Config.NodeID, n.err)
		}
	case <-time.After(n.Config.ShutdownTimeout + Timeout):
		_ = n.cmd.Process.Kill()
		<-n.exited
		t.Errorf("node %s did not exit within %v of SIGTERM; killed", n.Config.NodeID, n.Config.ShutdownTimeout+Timeout)
	}
}

// tailBytes is how much of a node's output a failure shows: the end, where the cause usually is.
const tailBytes = 16 << 10

func tail(s string) string {
	if len(s) <= tailBytes {
		return s
	}
	s = s[len(s)-tailBytes:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return "[...]\n" + s
}

// binary is the module's binary, built on first use by Binary.
var binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Binary builds the module's binary (go build . at the module's root) once per test process and returns
// its path. The package's TestMain should call RemoveBinary after m.Run, to delete it.
func Binary(t testing.TB) string {
	t.Helper()
	binary.once.Do(func() {
		binary.path, binary.err = build()
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

// RemoveBinary deletes the binary Binary built, if any. Call it once the tests are over.
func RemoveBinary() {
	binary.once.Do(func() { binary.err = errors.New("servertest: RemoveBinary was called: no more binary") })
	if binary.dir != "" {
		os.RemoveAll(binary.dir)
	}
}

// buildTimeout bounds the one build of the binary; with a cold cache on a small machine it takes a while.
const buildTimeout = 5 * time.Minute

func build() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("servertest: go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("servertest: go env GOMOD: the tests do not run inside a module")
	}
	dir, err := os.MkdirTemp("", "causerie-bin-")
	if err != nil {
		return "", err
	}
	binary.dir = dir
	path := filepath.Join(dir, "causerie")
	if runtime.GOOS == "windows" {
		path += ".exe"
	}
	// No VCS stamp: a machine with Go alone has no git to ask.
	cmd := exec.CommandContext(ctx, "go", "build", "-buildvcs=false", "-o", path, ".")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("servertest: go build in %s: %v\n%s", cmd.Dir, err, out)
	}
	return path, nil
}
