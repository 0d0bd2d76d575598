package public_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/causerie/causerie/app/servertest"
)

// The page is tested in a real headless Chromium (CHROME_PATH, else chromium on PATH, else
// /usr/bin/chromium), driven over the DevTools protocol, against a real server. Without a browser the tests skip, unless REQUIRE_BROWSER=1
// (as in CI) makes that a failure.

const waitFor = 10 * time.Second

// startBrowser starts a headless Chromium with a fresh profile and returns its context.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	path := os.Getenv("CHROME_PATH")
	if path == "" {
		// On PATH, as .ci/run looks for it, else where Debian puts it (a PATH of Go alone lacks /usr/bin).
		path = "/usr/bin/chromium"
		if found, err := exec.LookPath("chromium"); err == nil {
			path = found
		}
	}
	if _, err := exec.LookPath(path); err != nil {
		if os.Getenv("REQUIRE_BROWSER") == "1" {
			t.Fatalf("no browser at %s (CHROME_PATH) and REQUIRE_BROWSER=1", path)
		}
		t.Skipf("no browser at %s: set CHROME_PATH to run the page tests (REQUIRE_BROWSER=1 makes this a failure)", path)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		// Without these, Chromium keeps trying to reach Google's services, which this network refuses.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	return ctx
}

// tab is one page in a browser context of its own: its own storage, so one user each. Console errors
// and uncaught exceptions fail the test unless they contain an allowed text.
type tab struct {
	t   *testing.T
	ctx context.Context

	mu      sync.Mutex
	errors  []string
	dialogs []string
	allowed []string
}

func openTab(t *testing.T, browser context.Context, url string, width, height int64) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	tb := &tab{t: t, ctx: ctx}
	console := chromedp.Console(ctx)
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				tb.mu.Lock()
				tb.errors = append(tb.errors, m.String()+" "+m.URL)
				tb.mu.Unlock()
			}
		}
	}()
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.dialogs = append(tb.dialogs, ev.Message)
			tb.mu.Unlock()
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(width, height), chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if errs := tb.consoleErrors(); len(errs) > 0 {
			t.Errorf("console errors: %q", errs)
		}
	})
	return tb
}

// allow lets console errors that contain text pass: Chromium itself logs refused requests and
// connections, which some tests cause on purpose.
func (tb *tab) allow(text string) {
	tb.mu.Lock()
	tb.allowed = append(tb.allowed, text)
	tb.mu.Unlock()
}

func (tb *tab) consoleErrors() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	var out []string
	for _, e := range tb.errors {
		if !slices.ContainsFunc(tb.allowed, func(a string) bool { return strings.Contains(e, a) }) {
			out = append(out, e)
		}
	}
	return out
}

func (tb *tab) dialogCount() int {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return len(tb.dialogs)
}

func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 2*waitFor)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatal(err)
	}
}

// eval returns the value of a JavaScript expression.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitFor)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// waitJS waits until the JavaScript expression is true.
func (tb *tab) waitJS(expr string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitFor)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(20*time.Millisecond))); err != nil {
		tb.t.Fatalf("waiting for %s: %v\npage text:\n%s", expr, err, eval[string](tb, `document.body.innerText`))
	}
}

// register fills the form and creates the account.
func (tb *tab) register(email, password string) {
	tb.t.Helper()
	tb.submitAuth(email, password, "register-button")
}

// submitAuth fills the form and presses button (register or log in), then waits for the connection.
func (tb *tab) submitAuth(email, password, button string) {
	tb.t.Helper()
	tb.do(
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), email),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.ID(button)),
	)
	tb.waitConnected()
}

func (tb *tab) waitConnected() {
	tb.t.Helper()
	tb.waitJS(`document.querySelector('#status')?.dataset.state === 'connected'`)
}

// say types text in the message box and presses Enter.
func (tb *tab) say(text string) {
	tb.t.Helper()
	tb.do(chromedp.SendKeys(chromedp.ID("message-input"), text+"\r"))
}

type line struct {
	Author, Text string
	Own          bool
	ID           string
}

// lines returns the chat lines shown for the current room.
func (tb *tab) lines() []line {
	tb.t.Helper()
	return eval[[]line](tb, `[...document.querySelectorAll('#messages .msg')].filter(e => e.offsetParent !== null).map(e => ({
		Author: e.querySelector('.msg-author')?.textContent ?? '',
		Text: e.querySelector('.msg-text')?.textContent ?? '',
		Own: e.dataset.own === 'true',
		ID: e.dataset.id ?? '',
	}))`)
}

// waitLine waits until a line with that author and text shows.
func (tb *tab) waitLine(author, text string) {
	tb.t.Helper()
	tb.waitJS(fmt.Sprintf(`[...document.querySelectorAll('#messages .msg')].some(e =>
		e.querySelector('.msg-author')?.textContent === %q && e.querySelector('.msg-text')?.textContent === %q && e.dataset.id)`, author, text))
}

func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitFor)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tb.t.Fatal(err)
	}
	dir := filepath.Join("..", "test-artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
}

// twoUsers starts a browser and a server, and registers ada and bob in tabs of their own.
func twoUsers(t *testing.T) (s *servertest.Server, ada, bob *tab) {
	t.Helper()
	return twoUsersWith(t, nil)
}

// twoUsersWith is twoUsers with a server configured by env.
func twoUsersWith(t *testing.T, env map[string]string) (s *servertest.Server, ada, bob *tab) {
	t.Helper()
	browser := startBrowser(t)
	s = servertest.Start(t, env)
	ada = openTab(t, browser, s.URL, 1280, 800)
	ada.register("ada@example.com", "password123")
	bob = openTab(t, browser, s.URL, 1280, 800)
	bob.register("bob@example.com", "password123")
	return s, ada, bob
}

func count(lines []line, text string) int {
	n := 0
	for _, l := range lines {
		if l.Text == text {
			n++
		}
	}
	return n
}

func TestRegisterLandsInTheChat(t *testing.T) {
	browser := startBrowser(t)
	s := servertest.Start(t, nil)
	p := openTab(t, browser, s.URL, 1280, 800)
	p.register("ada.lovelace@example.com", "password123")
	me := eval[string](p, `document.querySelector('#me').textContent`)
	focused := eval[string](p, `document.activeElement.id`)
	if me != "ada.lovelace" {
		t.Errorf("#me = %q, want ada.lovelace", me)
	}
	if focused != "message-input" {
		t.Errorf("focus on #%s, want the message box", focused)
	}
}

func TestWrongPasswordShowsAnError(t *testing.T) {
	browser := startBrowser(t)
	s := servertest.Start(t, nil)
	s.Register(t, "ada@example.com")
	p := openTab(t, browser, s.URL, 1280, 800)
	p.allow("status of 401")
	p.do(
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), "ada@example.com"),
		chromedp.SendKeys(chromedp.ID("password"), "not-the-password\r"), // Enter submits: log in
	)
	p.waitJS(`document.querySelector('#auth-error').textContent.trim() !== ''`)
	msg := eval[string](p, `document.querySelector('#auth-error').textContent`)
	chatHidden := eval[bool](p, `document.querySelector('#chat').hidden`)
	if !strings.Contains(strings.ToLower(msg), "password") || !chatHidden {
		t.Errorf("error %q, chat hidden %v: want a readable error and no chat", msg, chatHidden)
	}
}

// "Log out everywhere", reached with the keyboard from the account menu, ends the page's session and every
// other session of the account: a client elsewhere gets session_ended and 4001, and the page shows the
// form with nothing of the session left in storage.
func TestLogOutEverywhere(t *testing.T) {
	browser := startBrowser(t)
	s := servertest.Start(t, nil)
	ada := s.Register(t, "ada@example.com")
	elsewhere := s.Connect(t, ada)
	p := openTab(t, browser, s.URL, 1280, 800)
	p.do(
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), "ada@example.com"),
		chromedp.SendKeys(chromedp.ID("password"), "password123\r"),
	)
	p.waitConnected()
	p.do(chromedp.Focus(chromedp.ID("account-button")), chromedp.KeyEvent("\r"))
	p.waitJS(`document.querySelector('#account-menu').open`)
	p.do(chromedp.Focus(chromedp.ID("logout-all-button")), chromedp.KeyEvent("\r"))
	p.waitJS(`!document.querySelector('#auth').hidden`)

	for {
		f, err := elsewhere.TryRead(servertest.Timeout)
		if err != nil {
			t.Fatalf("the other session's socket: %v before session_ended", err)
		}
		if f["type"] == "error" && f["code"] == "session_ended" {
			break
		}
	}
	if code := elsewhere.CloseCode(); code != 4001 {
		t.Errorf("the other session's socket closed with %d, want 4001", code)
	}
	if status, _ := s.Do(t, "GET", "/api/me", ada.Token, nil); status != 401 {
		t.Errorf("the other session's token: GET /api/me = %d, want 401", status)
	}
	if stored := eval[int](p, `localStorage.length`); stored != 0 {
		t.Errorf("%d items left in storage after log out", stored)
	}
	if msg := eval[string](p, `document.querySelector('#auth-error').textContent`); msg != "" {
		t.Errorf("the form says %q after a log out that worked", msg)
	}
}

// Two users in two browser contexts and a third on a plain WebSocket (the Postman path) chat; the text of
// a message is never run as HTML.
func TestTwoUsersAndAWebSocketClientChat(t *testing.T) {
	s, ada, bob := twoUsers(t)
	postman := s.Connect(t, s.Register(t, "postman@example.com"))

	ada.say("Bonjour Bob !")
	bob.waitLine("ada", "Bonjour Bob !")
	ada.waitLine("ada", "Bonjour Bob !")
	bob.say("Salut Ada")
	ada.waitLine("bob", "Salut Ada")
	postman.SendText("hello from Postman")
	ada.waitLine("postman", "hello from Postman")
	bob.waitLine("postman", "hello from Postman")

	const xss = `<img src=x onerror=alert(1)>`
	bob.say(xss)
	ada.waitLine("bob", xss)

	for _, l := range ada.lines() {
		if want := l.Author == "ada"; l.Own != want {
			t.Errorf("ada's page: %q by %s shown as own=%v", l.Text, l.Author, l.Own)
		}
	}
	if n := count(ada.lines(), "Bonjour Bob !"); n != 1 {
		t.Errorf("ada sees her message %d times, want once", n)
	}
	if imgs := eval[int](ada, `document.querySelectorAll('#messages img').length`); imgs != 0 || ada.dialogCount() != 0 {
		t.Errorf("the message ran as HTML: %d img elements, %d dialogs", imgs, ada.dialogCount())
	}
	ada.screenshot("chat-two-users.png")
}

// The page at phone width, driven with the keyboard only, with its labels and live region in place.
func TestPhoneWidthKeyboardAndLabels(t *testing.T) {
	browser := startBrowser(t)
	s := servertest.Start(t, nil)
	p := openTab(t, browser, s.URL, 390, 844)
	p.do(
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.Focus(chromedp.ID("email")),
		chromedp.KeyEvent("claire@example.com\tpassword123\t\t\t\r"), // e-mail, password, name, Log in, Create account
	)
	p.waitConnected()
	p.do(chromedp.KeyEvent("Hello from a phone\r"))
	p.waitLine("claire", "Hello from a phone")

	unlabelled := eval[[]string](p, `[...document.querySelectorAll('input')].filter(i => i.type !== 'hidden' && !(i.labels?.length || i.getAttribute('aria-label'))).map(i => i.id)`)
	if len(unlabelled) > 0 {
		t.Errorf("inputs without a label: %v", unlabelled)
	}
	if live := eval[string](p, `document.querySelector('#messages').getAttribute('aria-live')`); live != "polite" && live != "assertive" {
		t.Errorf("#messages aria-live = %q", live)
	}
	if eval[bool](p, `document.documentElement.scrollWidth > window.innerWidth`) {
		t.Error("the page is wider than a 390px screen")
	}
	p.screenshot("chat-phone.png")
}

// The server counts a message's bytes, not its characters: a text over MAX_MESSAGE_BYTES in UTF-8 is
// refused on the page with the figures, and stays in the box; one under it, with as many characters, goes.
func TestLongMessageInBytes(t *testing.T) {
	browser := startBrowser(t)
	s := servertest.Start(t, map[string]string{"MAX_MESSAGE_BYTES": "100"})
	p := openTab(t, browser, s.URL, 1280, 800)
	p.register("ada@example.com", "password123")
	p.do(chromedp.Focus(chromedp.ID("message-input")))
	eval[bool](p, `(() => { const i = document.querySelector('#message-input'); i.value = 'é'.repeat(60); i.dispatchEvent(new Event('input')); return true; })()`)
	p.do(chromedp.KeyEvent("\r"))
	p.waitJS(`document.querySelector('#message-error').textContent !== ''`)
	if msg := eval[string](p, `document.querySelector('#message-error').textContent`); !strings.Contains(msg, "120 bytes") || !strings.Contains(msg, "100") {
		t.Errorf("the error says %q, want the 120 bytes and the 100 allowed", msg)
	}
	if kept := eval[int](p, `document.querySelector('#message-input').value.length`); kept != 60 {
		t.Errorf("%d characters left in the box, want the 60 typed", kept)
	}
	if n := count(p.lines(), strings.Repeat("é", 60)); n != 0 {
		t.Error("the long text was shown as sent")
	}
	// Shortened to 50 "é", 100 bytes: the error goes as soon as it fits, and the message is sent.
	eval[bool](p, `(() => { const i = document.querySelector('#message-input'); i.value = 'é'.repeat(50); i.dispatchEvent(new Event('input')); return true; })()`)
	if msg := eval[string](p, `document.querySelector('#message-error').textContent`); msg != "" {
		t.Errorf("the error stays (%q) once the text fits", msg)
	}
	p.do(chromedp.KeyEvent("\r"))
	p.waitLine("ada", strings.Repeat("é", 50))
}

// At phone width, a reader at the newest message stays there when the online panel opens above the list.
func TestOnlinePanelKeepsTheNewestMessageInView(t *testing.T) {
	browser := startBrowser(t)
	s := servertest.Start(t, nil)
	bob := s.Register(t, "bob@example.com")
	for i := 1; i <= 40; i++ {
		s.Do(t, "POST", "/api/rooms/general/messages", bob.Token, map[string]string{"text": fmt.Sprint("message ", i)})
	}
	p := openTab(t, browser, s.URL, 390, 700)
	p.register("ada@example.com", "password123")
	p.waitLine("bob", "message 40")
	atBottom := `(() => { const l = document.querySelector('#messages'); return l.scrollHeight - l.scrollTop - l.clientHeight <= 4; })()`
	p.waitJS(atBottom)
	p.do(chromedp.Click(chromedp.ID("presence-toggle")))
	p.waitJS(`document.querySelector('#presence-panel').dataset.open === 'true'`)
	p.waitJS(atBottom)
	p.screenshot("chat-phone-online-panel.png")
}

// The server stops and starts again on the same address: the page says so, reconnects by itself, and
// shows each message sent meanwhile once.
func TestReconnectAfterRestart(t *testing.T) {
	browser := startBrowser(t)
	s := servertest.Start(t, nil)
	ada := openTab(t, browser, s.URL, 1280, 800)
	ada.allow("ERR_CONNECTION_REFUSED") // Chromium logs each refused reconnection attempt
	ada.allow("WebSocket connection to")
	ada.register("ada@example.com", "password123")
	ada.say("before the restart")
	ada.waitLine("ada", "before the restart")

	s.Stop(t)
	ada.waitJS(`document.querySelector('#status').dataset.state !== 'connected'`)
	// In words, not a close code; and nobody is shown online while nobody can be known to be.
	ada.waitJS(`document.querySelector('#messages').textContent.includes('The server is restarting')`)
	if online := eval[string](ada, `document.querySelector('.presence-count').textContent`); online != "0" {
		t.Errorf("%s shown online while disconnected, want 0", online)
	}
	s = s.Restart(t)
	bob := s.Connect(t, s.Register(t, "bob@example.com"))
	for i := 1; i <= 3; i++ {
		bob.SendText(fmt.Sprint("meanwhile ", i))
		bob.Read()
	}
	ada.waitConnected()
	for i := 1; i <= 3; i++ {
		ada.waitLine("bob", fmt.Sprint("meanwhile ", i))
	}
	bob.SendText("after")
	ada.waitLine("bob", "after")
	lines := ada.lines()
	for _, text := range []string{"before the restart", "meanwhile 1", "meanwhile 2", "meanwhile 3", "after"} {
		if n := count(lines, text); n != 1 {
			t.Errorf("%q shown %d times, want once", text, n)
		}
	}
}

// Rooms, the unread badge, presence and the typing line, between two users.
func TestRoomsPresenceAndTyping(t *testing.T) {
	_, ada, bob := twoUsers(t)

	presence := `[...document.querySelectorAll('#presence li.presence-user')].map(e => e.textContent.trim()).sort().join(',')`
	ada.waitJS(presence + ` === 'ada,bob'`)

	for _, p := range []*tab{ada, bob} {
		p.do(chromedp.SendKeys(chromedp.ID("join-input"), "jeux\r"))
		p.waitJS(`document.querySelector('#rooms button[data-room="jeux"]')?.getAttribute('aria-current') === 'true'`)
	}
	ada.say("dans jeux")
	bob.waitLine("ada", "dans jeux")

	bob.do(chromedp.Click(chromedp.CSS(`#rooms button[data-room="general"]`)))
	bob.waitJS(`document.querySelector('#rooms button[data-room="general"]').getAttribute('aria-current') === 'true'`)
	if n := count(bob.lines(), "dans jeux"); n != 0 {
		t.Errorf("general shows the message of jeux %d times", n)
	}
	ada.say("encore jeux")
	bob.waitJS(`document.querySelector('#rooms button[data-room="jeux"] .unread')?.textContent.trim() === '1'`)

	bob.do(chromedp.Click(chromedp.CSS(`#rooms button[data-room="jeux"]`)))
	bob.waitLine("ada", "encore jeux")
	bob.waitJS(`document.querySelector('#rooms button[data-room="jeux"] .unread').hidden`)

	bob.do(chromedp.SendKeys(chromedp.ID("message-input"), "je tape"))
	ada.waitJS(`document.querySelector('#typing').textContent.includes('bob')`)
	if got := eval[string](bob, `document.querySelector('#typing').textContent`); strings.Contains(got, "bob") {
		t.Errorf("bob sees himself typing: %q", got)
	}
	// Names and texts are isolated, so that one written right to left cannot reorder what stands beside it.
	if got := eval[string](ada, `document.querySelector('#typing').textContent`); got != "\u2068bob\u2069 is typing…" {
		t.Errorf("typing line %q, want bob's name between isolates", got)
	}
	if isolated := eval[bool](ada, `[...document.querySelectorAll('#messages .msg-author, #messages .msg-text, #presence li')].every(e => e.dir === 'auto')`); !isolated {
		t.Error("a name or a text without dir=auto")
	}
}

// With WS_COMPRESSION=1, Chromium negotiates permessage-deflate and the page works as without: long
// messages both ways, and the history frame after a reload.
func TestChatWithCompression(t *testing.T) {
	_, ada, bob := twoUsersWith(t, map[string]string{"WS_COMPRESSION": "1"})
	handshakes := chromedp.Events(ada.ctx, network.WebSocketHandshakeResponseReceived)
	extensions := make(chan string, 10)
	go func() {
		for ev, err := range handshakes {
			if err != nil {
				return
			}
			for k, v := range ev.Response.Headers {
				if strings.EqualFold(k, "Sec-WebSocket-Extensions") {
					extensions <- fmt.Sprint(v)
				}
			}
		}
	}()
	long := strings.Repeat("Une longue phrase qui se répète. ", 30)
	ada.say(long)
	bob.waitLine("ada", long)
	bob.say("bien reçu")
	ada.waitLine("bob", "bien reçu")

	ada.do(chromedp.Reload())
	ada.waitConnected()
	ada.waitLine("ada", long)
	select {
	case ext := <-extensions:
		if !strings.Contains(ext, "permessage-deflate") {
			t.Errorf("the server answered Sec-WebSocket-Extensions %q, want permessage-deflate", ext)
		}
	case <-time.After(waitFor):
		t.Error("no WebSocket handshake seen after the reload")
	}
	if n := count(ada.lines(), long); n != 1 {
		t.Errorf("the long message shown %d times after the reload, want once", n)
	}
}
