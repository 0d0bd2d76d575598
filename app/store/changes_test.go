package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/store"
)

// Changes are entries of the room's log, applied to their messages in the same transaction: a history
// shows each message in its current state and no change, the log shows every change with its message,
// and changes count as nothing unread.
func TestChangesToMessages(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open func(testing.TB) *store.DB) {
		ctx := context.Background()
		db := open(t)
		ada, bob := createUser(t, db, "ada@example.com"), createUser(t, db, "bob@example.com")
		a, b := app.Author{ID: ada.ID, Name: ada.Name}, app.Author{ID: bob.ID, Name: bob.Name}
		now := time.Now().UTC().Truncate(time.Millisecond)
		appendAll := func(msgs ...app.Message) []app.Appended {
			t.Helper()
			out, err := db.AppendMessages(ctx, msgs)
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		change := func(kind string, who app.Author, target int64, text string) app.Message {
			return app.Message{Room: "general", From: who, Kind: kind, TargetID: target, Text: text, At: now}
		}
		appendAll(app.Message{Room: "general", From: a, Text: "bonjour", At: now}, app.Message{Room: "general", From: b, Text: "salut", At: now})
		out := appendAll(
			change(app.ChangeEdit, a, 1, "bonjour à tous"),
			change(app.ChangeReact, b, 1, "👍"),
			change(app.ChangeReact, a, 1, "👍"),
			change(app.ChangeReact, a, 1, "🎉"),
			change(app.ChangeReact, a, 1, "🎉"), // once per user and emoji
			change(app.ChangeUnreact, a, 1, "🎉"),
			change(app.ChangeDelete, b, 2, ""),
			change(app.ChangeReact, a, 2, "👍"), // a tombstone takes no reaction
		)
		if got := out[0].Message.Target; got == nil || got.Text != "bonjour à tous" || got.EditedAt == nil || !got.EditedAt.Equal(now) {
			t.Errorf("the edit's message: %+v", got)
		}
		if got := out[2].Message.Target; got == nil || fmt.Sprint(got.Reactions) != fmt.Sprintf("[{👍 2 [%d %d] <nil>}]", ada.ID, bob.ID) {
			t.Errorf("the second 👍's message: %+v", got)
		}

		history, err := db.Messages(ctx, "general", app.MessageQuery{Limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		if len(history) != 2 {
			t.Fatalf("history holds %d entries, want the two messages: %+v", len(history), history)
		}
		if m := history[0]; m.Text != "bonjour à tous" || m.EditedAt == nil || fmt.Sprint(m.Reactions) != fmt.Sprintf("[{👍 2 [%d %d] <nil>}]", ada.ID, bob.ID) {
			t.Errorf("message 1 now: %+v", m)
		}
		if m := history[1]; !m.Deleted || m.Text != "" || len(m.Reactions) != 0 {
			t.Errorf("message 2 now: %+v, want a tombstone", m)
		}

		log, err := db.Messages(ctx, "general", app.MessageQuery{After: 2, Limit: 50, Log: true})
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, m := range log {
			if m.Target == nil {
				t.Errorf("change %d has no message", m.ID)
				continue
			}
			kinds = append(kinds, fmt.Sprint(m.Kind, ":", m.Target.ID))
		}
		if want := "[edit:1 react:1 react:1 react:1 react:1 unreact:1 delete:2 react:2]"; fmt.Sprint(kinds) != want {
			t.Errorf("the log after 2: %v, want %s", kinds, want)
		}

		// A member has read up to message 1: what is unread is bob's message 2, not the changes after it.
		if err := db.CreateRoom(ctx, app.Room{Name: "r", Kind: app.RoomPrivate, Owner: ada.ID}, []int64{ada.ID}, now); err != nil {
			t.Fatal(err)
		}
		appendAll(app.Message{Room: "r", From: b, Text: "1", At: now}, app.Message{Room: "r", From: b, Text: "2", At: now},
			app.Message{Room: "r", From: b, Kind: app.ChangeReact, TargetID: 1, Text: "👀", At: now})
		if _, unread, err := db.MarkRead(ctx, "r", ada.ID, 1); err != nil || unread != 1 {
			t.Errorf("unread after reading 1 of r: %d, %v; want 1", unread, err)
		}
	})
}
