package public_test

import (
	"fmt"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/causerie/causerie/app/servertest"
)

// logIn fills the form and logs in to an existing account.
func (tb *tab) logIn(email, password string) {
	tb.t.Helper()
	tb.submitAuth(email, password, "login-button")
}

// roomButton is the JavaScript of a room's button in the room list.
func roomButton(name string) string {
	return fmt.Sprintf(`document.querySelector('#rooms button[data-room=%q]')`, name)
}

// A private room made from the join form, a member added by name with the keyboard, and a DM opened from a
// name in the online list: each shows in the other user's room list at once, under labels.
func TestPrivateRoomAndDirectMessage(t *testing.T) {
	_, ada, bob := twoUsers(t)

	// Space ticks the checkbox, as a keyboard user would.
	ada.do(chromedp.Focus(chromedp.ID("join-private")), chromedp.KeyEvent(" "))
	ada.do(chromedp.SendKeys(chromedp.ID("join-input"), "projet\r"))
	ada.waitJS(roomButton("projet") + `?.getAttribute('aria-current') === 'true'`)
	ada.waitJS(`document.querySelector('#room-title').textContent === '#projet (private)'`)
	ada.waitJS(`!document.querySelector('#member-form').hidden`)
	if label := eval[string](ada, `document.querySelector('label[for=member-input]').textContent.trim()`); label != "Add a member" {
		t.Errorf("the member input's label is %q", label)
	}
	if eval[bool](bob, roomButton("projet")+` !== null`) {
		t.Error("bob sees projet before he is a member")
	}

	ada.do(chromedp.SendKeys(chromedp.ID("member-input"), "bob\r"))
	ada.waitJS(`[...document.querySelectorAll('#messages .msg-system')].some(e => e.textContent === 'ada added bob to the room.')`)
	bob.waitJS(roomButton("projet") + ` !== null`)
	ada.say("le plan")
	bob.waitJS(roomButton("projet") + `.querySelector('.unread')?.textContent.trim() === '1'`)
	bob.do(chromedp.Click(chromedp.CSS(`#rooms button[data-room="projet"]`)))
	bob.waitLine("ada", "le plan")
	if !eval[bool](bob, `document.querySelector('#member-form').hidden`) {
		t.Error("bob, who does not own projet, is offered to add members")
	}

	// The owner deletes a member's message (and may not edit it); the member may not delete the owner's.
	bob.say("hors sujet")
	ada.waitLine("bob", "hors sujet")
	if eval[bool](ada, lineWith("hors sujet")+`.querySelector('button[data-tool="edit"]') !== null`) {
		t.Error("ada is offered to edit bob's message")
	}
	if eval[bool](bob, lineWith("le plan")+`.querySelector('button[data-tool="delete"]') !== null`) {
		t.Error("bob is offered to delete the owner's message")
	}
	del := lineWith("hors sujet") + `.querySelector('button[data-tool="delete"]')`
	ada.click(del)
	ada.click(del)
	bob.waitJS(`document.querySelector('#messages .msg[data-deleted="true"] .msg-text')?.textContent === 'This message was deleted.'`)

	// bob opens a DM with ada from the online list of projet.
	bob.waitJS(`document.querySelector('#presence button[data-dm="ada"]') !== null`)
	if label := eval[string](bob, `document.querySelector('#presence button[data-dm="ada"]').getAttribute('aria-label')`); label != "Send a direct message to ada" {
		t.Errorf("the DM button's label is %q", label)
	}
	bob.do(chromedp.Click(chromedp.CSS(`#presence button[data-dm="ada"]`)))
	dm := `document.querySelector('#rooms button[data-room^="dm-"]')`
	bob.waitJS(dm + `?.getAttribute('aria-current') === 'true'`)
	bob.waitJS(`document.querySelector('#room-title').textContent === '@ada'`)
	bob.say("en privé")
	ada.waitJS(dm + `?.querySelector('.room-name')?.textContent === 'bob'`)
	ada.waitJS(dm + `.querySelector('.unread')?.textContent.trim() === '1'`)
	ada.do(chromedp.Click(chromedp.CSS(`#rooms button[data-room^="dm-"]`)))
	ada.waitLine("bob", "en privé")
	if hidden := eval[bool](ada, dm+`.parentElement.querySelector('.room-leave').hidden`); !hidden {
		t.Error("a DM offers to leave it")
	}
}

// The room list and the unread counts come from the server: a second device of the same user shows the
// rooms joined on the first, and reading a room on one device clears its count on the other.
func TestRoomListAndReadStateOnEveryDevice(t *testing.T) {
	browser := startBrowser(t)
	s := servertest.Start(t, nil)
	phone := openTab(t, browser, s.URL, 1280, 800)
	phone.register("ada@example.com", "password123")
	bob := openTab(t, browser, s.URL, 1280, 800)
	bob.register("bob@example.com", "password123")
	phone.do(chromedp.SendKeys(chromedp.ID("join-input"), "jeux\r"))
	phone.waitJS(roomButton("jeux") + `?.getAttribute('aria-current') === 'true'`)

	laptop := openTab(t, browser, s.URL, 1280, 800)
	laptop.logIn("ada@example.com", "password123")
	laptop.waitJS(roomButton("jeux") + ` !== null && ` + roomButton("general") + ` !== null`)

	// The laptop looks at jeux; messages in general count there until the phone reads them.
	laptop.do(chromedp.Click(chromedp.CSS(`#rooms button[data-room="jeux"]`)))
	laptop.waitJS(roomButton("jeux") + `.getAttribute('aria-current') === 'true'`)
	for i := 1; i <= 2; i++ {
		bob.say(fmt.Sprint("nouvelle ", i))
	}
	laptop.waitJS(roomButton("general") + `.querySelector('.unread')?.textContent.trim() === '2'`)
	phone.do(chromedp.Click(chromedp.CSS(`#rooms button[data-room="general"]`)))
	phone.waitLine("bob", "nouvelle 2")
	laptop.waitJS(roomButton("general") + `.querySelector('.unread').hidden`)
}
