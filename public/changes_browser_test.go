package public_test

import (
	"net/http"
	"testing"

	"github.com/chromedp/chromedp"
)

// lineWith is the JavaScript of the line of the message with that text.
func lineWith(text string) string {
	return `[...document.querySelectorAll('#messages .msg')].find(e => e.querySelector('.msg-text')?.textContent === ` + "`" + text + "`" + `)`
}

// Edit and delete one's own message, react to another's: each shows on the other user's page at once,
// with buttons a keyboard reaches.
func TestEditReactAndDelete(t *testing.T) {
	_, ada, bob := twoUsers(t)
	ada.say("mauvais texte")
	bob.waitLine("ada", "mauvais texte")

	// Edit: the message box takes the text; Escape gives up, and Save sends.
	edit := lineWith("mauvais texte") + `.querySelector('button[data-tool="edit"]')`
	ada.waitJS(edit + ` !== null`)
	if got := eval[string](ada, `document.getElementById(`+edit+`.getAttribute('aria-describedby')).textContent`); got != "mauvais texte" {
		t.Errorf("the edit button is described by %q, want its message's text", got)
	}
	// A draft waits for the edit to end.
	ada.do(chromedp.SendKeys(chromedp.ID("message-input"), "brouillon"))
	ada.click(edit)
	ada.waitJS(`document.querySelector('#send-button').textContent.trim() === 'Save' && document.querySelector('#message-input').value === 'mauvais texte'`)
	ada.do(chromedp.KeyEvent("\x1b"))
	ada.waitJS(`document.querySelector('#send-button').textContent.trim() === 'Send' && document.querySelector('#message-input').value === 'brouillon'`)
	ada.click(edit)
	eval[bool](ada, `(() => { document.querySelector('#message-input').value = ''; return true })()`)
	ada.do(chromedp.SendKeys(chromedp.ID("message-input"), "bon texte\r"))
	ada.waitJS(`document.querySelector('#message-input').value === 'brouillon'`)
	eval[bool](ada, `(() => { document.querySelector('#message-input').value = ''; return true })()`)
	bob.waitJS(lineWith("bon texte") + `?.querySelector('.msg-edited')?.textContent === '(edited)'`)
	if eval[bool](bob, lineWith("bon texte")+`.querySelector('button[data-tool="edit"]') !== null`) {
		t.Error("bob is offered to edit ada's message")
	}

	// React: the picker's buttons are labelled; the reaction shows on both pages, pressed on bob's.
	bob.click(lineWith("bon texte") + `.querySelector('button[data-tool="react"]')`)
	pick := lineWith("bon texte") + `.querySelector('button[data-pick="👍"]')`
	bob.waitJS(pick + `?.getAttribute('aria-label') === 'React with 👍'`)
	// Escape closes the picker and gives the focus back to its button; it opens again.
	bob.do(chromedp.Focus(chromedp.CSS(`#messages button[data-pick="👎"]`)), chromedp.KeyEvent("\x1b"))
	bob.waitJS(pick + `.parentElement.hidden && document.activeElement.dataset.tool === 'react'`)
	bob.click(lineWith("bon texte") + `.querySelector('button[data-tool="react"]')`)
	bob.click(pick)
	reaction := lineWith("bon texte") + `?.querySelector('.reaction[data-emoji="👍"]')`
	bob.waitJS(reaction + `?.getAttribute('aria-pressed') === 'true'`)
	ada.waitJS(reaction + `?.textContent === '👍 1' && ` + reaction + `.getAttribute('aria-pressed') === 'false'`)

	// After a reload, the page shows the message as it is now: edited, with bob's reaction.
	bob.do(chromedp.Reload())
	bob.waitConnected()
	bob.waitJS(lineWith("bon texte") + `?.querySelector('.msg-edited') != null && ` + reaction + `?.getAttribute('aria-pressed') === 'true'`)

	// Delete, in two clicks: a tombstone in its place on both pages.
	del := lineWith("bon texte") + `.querySelector('button[data-tool="delete"]')`
	ada.click(del)
	ada.waitJS(del + `.textContent === 'Delete? Click again'`)
	ada.click(del)
	for _, p := range []*tab{ada, bob} {
		p.waitJS(`document.querySelector('#messages .msg[data-deleted="true"] .msg-text')?.textContent === 'This message was deleted.'`)
	}
	if n := eval[int](bob, `document.querySelectorAll('#messages .msg[data-deleted="true"] .reaction').length`); n != 0 {
		t.Errorf("a tombstone shows %d reactions", n)
	}
}

// click clicks the element of the JavaScript expression expr, as a keyboard's Enter on a focused button
// would.
func (tb *tab) click(expr string) {
	tb.t.Helper()
	eval[bool](tb, `(() => { const e = `+expr+`; e.focus(); e.click(); return true })()`)
}

// An edit the server refuses (here, of a message deleted meanwhile from another device) gives its text back
// to the message box, with the reason, instead of losing it.
func TestARefusedEditKeepsItsText(t *testing.T) {
	s, ada, _ := twoUsers(t)
	ada.say("premier jet")
	edit := lineWith("premier jet") + `.querySelector('button[data-tool="edit"]')`
	ada.waitJS(edit + ` !== null`)
	ada.click(edit)
	ada.waitJS(`document.querySelector('#send-button').textContent.trim() === 'Save'`)
	eval[bool](ada, `(() => { document.querySelector('#message-input').value = 'version longue et soignée'; return true })()`)

	status, body := s.Do(t, http.MethodPost, "/api/login", "", map[string]string{"email": "ada@example.com", "password": "password123"})
	token, _ := body["token"].(string)
	if status != http.StatusOK || token == "" {
		t.Fatalf("log in over REST: %d %v", status, body)
	}
	if status, body := s.Do(t, http.MethodDelete, "/api/rooms/general/messages/1", token, nil); status != http.StatusOK {
		t.Fatalf("delete from another device: %d %v", status, body)
	}
	ada.do(chromedp.SendKeys(chromedp.ID("message-input"), "\r"))
	ada.waitJS(`document.querySelector('#message-error').textContent.startsWith('Not saved: ')`)
	if got := eval[string](ada, `document.querySelector('#message-input').value`); got != "version longue et soignée" {
		t.Errorf("the message box holds %q after the refusal, want the edit's text", got)
	}
	if got := eval[string](ada, `document.querySelector('#send-button').textContent.trim()`); got != "Save" {
		t.Errorf("the send button says %q, want Save: the edit goes on", got)
	}
	// Escape gives it up, and the reason goes with it.
	ada.do(chromedp.KeyEvent("\x1b"))
	ada.waitJS(`document.querySelector('#send-button').textContent.trim() === 'Send' && document.querySelector('#message-error').textContent === ''`)
}
