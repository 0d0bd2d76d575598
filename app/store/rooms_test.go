package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/app/store"
)

// Rooms have a kind, an owner and members; a name is taken whatever the kind, and a room of messages made
// before the kinds is public.
func TestRoomsAndMembers(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open func(testing.TB) *store.DB) {
		ctx := context.Background()
		db := open(t)
		ada, bob := createUser(t, db, "ada@example.com"), createUser(t, db, "bob@example.com")
		now := time.Now()
		if _, err := db.AppendMessages(ctx, []app.Message{{Room: "general", From: app.Author{ID: ada.ID, Name: ada.Name}, Text: "hi", At: now}}); err != nil {
			t.Fatal(err)
		}
		if r, err := db.Room(ctx, "general"); err != nil || r.Kind != app.RoomPublic || r.Owner != 0 || r.LastID != 1 {
			t.Errorf("a room of messages: %+v, %v; want public, no owner, last id 1", r, err)
		}
		if _, err := db.Room(ctx, "nowhere"); app.ErrorCode(err) != app.CodeNotFound {
			t.Errorf("a room that does not exist: %v, want not_found", err)
		}
		if err := db.CreateRoom(ctx, app.Room{Name: "secret", Kind: app.RoomPrivate, Owner: ada.ID}, []int64{ada.ID}, now); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"secret", "general"} {
			if err := db.CreateRoom(ctx, app.Room{Name: name, Kind: app.RoomPrivate, Owner: bob.ID}, []int64{bob.ID}, now); app.ErrorCode(err) != app.CodeConflict {
				t.Errorf("creating %s again: %v, want conflict", name, err)
			}
		}
		if r, err := db.Room(ctx, "secret"); err != nil || r.Kind != app.RoomPrivate || r.Owner != ada.ID {
			t.Errorf("the private room: %+v, %v", r, err)
		}
		if added, err := db.AddMember(ctx, "secret", bob.ID, now); err != nil || !added {
			t.Fatalf("adding bob: %v, %v", added, err)
		}
		if added, err := db.AddMember(ctx, "secret", bob.ID, now); err != nil || added {
			t.Errorf("adding a member again: %v, %v; want false", added, err)
		}
		if _, err := db.AddMember(ctx, "nowhere", bob.ID, now); app.ErrorCode(err) != app.CodeNotFound {
			t.Errorf("adding to a room that does not exist: %v, want not_found", err)
		}
		if got, err := db.Members(ctx, "secret", 0, 10); err != nil || fmt.Sprint(got) != fmt.Sprint([]app.Author{{ID: ada.ID, Name: ada.Name}, {ID: bob.ID, Name: bob.Name}}) {
			t.Errorf("members %v, %v", got, err)
		}
		// A page starts after the member named: ada's next is bob, and bob's next is no one.
		for _, step := range []struct {
			after int64
			limit int
			want  string
		}{{0, 1, ada.Name}, {ada.ID, 1, bob.Name}, {bob.ID, 5, ""}} {
			got, err := db.Members(ctx, "secret", step.after, step.limit)
			var names []string
			for _, a := range got {
				names = append(names, a.Name)
			}
			if err != nil || strings.Join(names, " ") != step.want {
				t.Errorf("members after %d, %d at most: %v, %v; want %q", step.after, step.limit, names, err, step.want)
			}
		}
		for _, who := range []struct {
			user int64
			want bool
		}{{ada.ID, true}, {bob.ID, true}, {999, false}} {
			if got, err := db.IsMember(ctx, "secret", who.user); err != nil || got != who.want {
				t.Errorf("IsMember(secret, %d) = %v, %v; want %v", who.user, got, err, who.want)
			}
		}
		seen := func(user int64) string {
			t.Helper()
			list, err := db.VisibleRooms(ctx, user)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, r := range list {
				names = append(names, r.Name+":"+r.Kind)
			}
			return fmt.Sprint(names)
		}
		if got := seen(bob.ID); got != "[general:public secret:private]" {
			t.Errorf("bob, a member, sees %s", got)
		}
		if got := seen(999); got != "[general:public]" {
			t.Errorf("a non-member sees %s", got)
		}
		if removed, err := db.RemoveMember(ctx, "secret", bob.ID); err != nil || !removed {
			t.Errorf("removing bob: %v, %v", removed, err)
		}
		if removed, err := db.RemoveMember(ctx, "secret", bob.ID); err != nil || removed {
			t.Errorf("removing bob again: %v, %v; want false", removed, err)
		}
	})
}

// A member's room list counts what they have not read; reading never moves back, nor past the newest
// message.
func TestReadState(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open func(testing.TB) *store.DB) {
		ctx := context.Background()
		db := open(t)
		ada := createUser(t, db, "ada@example.com")
		now := time.Now()
		if err := db.CreateRoom(ctx, app.Room{Name: "secret", Kind: app.RoomPrivate, Owner: ada.ID}, []int64{ada.ID}, now); err != nil {
			t.Fatal(err)
		}
		// Five messages of cat's (who need not be a member here), which are news to ada.
		cat := createUser(t, db, "cat@example.com")
		var msgs []app.Message
		for i := range 5 {
			msgs = append(msgs, app.Message{Room: "secret", From: app.Author{ID: cat.ID, Name: cat.Name}, Text: fmt.Sprint(i), At: now})
		}
		if _, err := db.AppendMessages(ctx, msgs); err != nil {
			t.Fatal(err)
		}
		rooms := func() string {
			t.Helper()
			list, err := db.MemberRooms(ctx, ada.ID)
			if err != nil {
				t.Fatal(err)
			}
			return fmt.Sprint(list.Rooms)
		}
		if got := rooms(); got != "[{secret private 5 5 0 <nil> true}]" {
			t.Errorf("before reading: %s", got)
		}
		for _, step := range []struct{ upto, want, unread int64 }{{3, 3, 2}, {2, 3, 2}, {99, 5, 0}} {
			if got, unread, err := db.MarkRead(ctx, "secret", ada.ID, step.upto); err != nil || got != step.want || unread != step.unread {
				t.Errorf("read up to %d: %d (%d unread), %v; want %d (%d unread)", step.upto, got, unread, err, step.want, step.unread)
			}
		}
		if got := rooms(); got != "[{secret private 5 0 5 <nil> true}]" {
			t.Errorf("after reading: %s", got)
		}
		// What ada writes herself, from another device say, is no news to her; cat's next message is.
		if _, err := db.AppendMessages(ctx, []app.Message{
			{Room: "secret", From: app.Author{ID: ada.ID, Name: ada.Name}, Text: "mine", At: now},
			{Room: "secret", From: app.Author{ID: cat.ID, Name: cat.Name}, Text: "cat's", At: now},
		}); err != nil {
			t.Fatal(err)
		}
		if got := rooms(); got != "[{secret private 7 1 5 <nil> true}]" {
			t.Errorf("after ada's own message and cat's: %s, want 1 unread", got)
		}
		if _, _, err := db.MarkRead(ctx, "secret", ada.ID, 99); err != nil {
			t.Fatal(err)
		}
		if _, _, err := db.MarkRead(ctx, "general", ada.ID, 1); app.ErrorCode(err) != app.CodeNotFound {
			t.Errorf("reading a room one is not a member of: %v, want not_found", err)
		}
		// A member added later has read what came before.
		bob := createUser(t, db, "bob@example.com")
		if _, err := db.AddMember(ctx, "secret", bob.ID, now); err != nil {
			t.Fatal(err)
		}
		if list, err := db.MemberRooms(ctx, bob.ID); err != nil || fmt.Sprint(list.Rooms) != "[{secret private 7 0 7 <nil> false}]" {
			t.Errorf("bob's rooms: %v, %v; want secret with nothing unread", list, err)
		}
		// A DM names the other user, for each of the two.
		if err := db.CreateRoom(ctx, app.Room{Name: "dm-1-2", Kind: app.RoomDM}, []int64{ada.ID, bob.ID}, now); err != nil {
			t.Fatal(err)
		}
		for _, side := range []struct{ me, other app.User }{{ada, bob}, {bob, ada}} {
			all, err := db.MemberRooms(ctx, side.me.ID)
			list := all.Rooms
			if err != nil || len(list) == 0 || list[0].Name != "dm-1-2" || list[0].With == nil || list[0].With.ID != side.other.ID || list[0].With.Name != side.other.Name {
				t.Errorf("%s's rooms: %+v, %v; want the DM with %s first", side.me.Name, list, err, side.other.Name)
			}
		}
	})
}

// Migrating a database of version 5: general exists whether or not it had messages, the rooms of messages
// stay public, and the rows earlier versions made for rooms that never had one go.
func TestRoomsOfEarlierVersions(t *testing.T) {
	for _, dl := range dialects {
		t.Run(dl.name, func(t *testing.T) {
			ctx := context.Background()
			addr := dl.database(t)
			db, err := dl.open(ctx, addr)
			if err != nil {
				t.Fatal(err)
			}
			db.Close()
			raw, err := sql.Open(map[string]string{"sqlite": "sqlite", "postgres": "pgx"}[dl.name], addr)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			for _, stmt := range []string{
				`DELETE FROM schema_migrations WHERE version = 6`,
				`DELETE FROM rooms`,
				`INSERT INTO rooms (name, last_id) VALUES ('stray', 0), ('talk', 3)`,
			} {
				if _, err := raw.ExecContext(ctx, stmt); err != nil {
					t.Fatalf("%s: %v", stmt, err)
				}
			}
			db, err = dl.open(ctx, addr)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			for name, want := range map[string]string{"general": app.RoomPublic, "talk": app.RoomPublic, "stray": ""} {
				r, err := db.Room(ctx, name)
				if want == "" && app.ErrorCode(err) != app.CodeNotFound || want != "" && (err != nil || r.Kind != want) {
					t.Errorf("room %s: %+v, %v; want kind %q", name, r, err, want)
				}
			}
		})
	}
}

// A member event is in the room's log with its own id, and reads back with its subject.
func TestMemberEventsAreInTheLog(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open func(testing.TB) *store.DB) {
		ctx := context.Background()
		db := open(t)
		ada, bob := createUser(t, db, "ada@example.com"), createUser(t, db, "bob@example.com")
		now := time.Now().UTC().Truncate(time.Millisecond)
		a, b := app.Author{ID: ada.ID, Name: ada.Name}, app.Author{ID: bob.ID, Name: bob.Name}
		if _, err := db.AppendMessages(ctx, []app.Message{
			{Room: "general", From: a, Text: "hi", At: now},
			{Room: "general", From: a, Kind: app.MemberAdded, User: &b, At: now},
			{Room: "general", From: b, Text: "hello", At: now},
		}); err != nil {
			t.Fatal(err)
		}
		msgs, err := db.Messages(ctx, "general", app.MessageQuery{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		want := []app.Message{
			{ID: 1, Room: "general", From: a, Text: "hi", At: now},
			{ID: 2, Room: "general", From: a, Kind: app.MemberAdded, User: &b, At: now},
			{ID: 3, Room: "general", From: b, Text: "hello", At: now},
		}
		if !reflect.DeepEqual(msgs, want) {
			t.Errorf("log = %+v, want %+v", msgs, want)
		}
	})
}

// A member event and the membership it records are stored in one transaction, and every change of a
// user's memberships moves their list's version on.
func TestMemberEventsChangeMemberships(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open func(testing.TB) *store.DB) {
		ctx := context.Background()
		db := open(t)
		ada, bob := createUser(t, db, "ada@example.com"), createUser(t, db, "bob@example.com")
		now := time.Now()
		a, b := app.Author{ID: ada.ID, Name: ada.Name}, app.Author{ID: bob.ID, Name: bob.Name}
		if err := db.CreateRoom(ctx, app.Room{Name: "secret", Kind: app.RoomPrivate, Owner: ada.ID}, []int64{ada.ID}, now); err != nil {
			t.Fatal(err)
		}
		version := func() int64 {
			t.Helper()
			list, err := db.MemberRooms(ctx, bob.ID)
			if err != nil {
				t.Fatal(err)
			}
			return list.Version
		}
		v0 := version()
		if _, err := db.AppendMessages(ctx, []app.Message{{Room: "secret", From: a, Text: "avant", At: now}, {Room: "secret", From: a, Kind: app.MemberAdded, User: &b, At: now}}); err != nil {
			t.Fatal(err)
		}
		if member, err := db.IsMember(ctx, "secret", bob.ID); err != nil || !member {
			t.Errorf("after member_added: member %v, %v", member, err)
		}
		if list, err := db.MemberRooms(ctx, bob.ID); err != nil || fmt.Sprint(list.Rooms) != "[{secret private 2 0 2 <nil> false}]" {
			t.Errorf("bob's list after his adding: %+v, %v; want secret, read up to his adding", list, err)
		}
		v1 := version()
		if _, err := db.AppendMessages(ctx, []app.Message{{Room: "secret", From: a, Kind: app.MemberRemoved, User: &b, At: now}}); err != nil {
			t.Fatal(err)
		}
		if member, err := db.IsMember(ctx, "secret", bob.ID); err != nil || member {
			t.Errorf("after member_removed: member %v, %v", member, err)
		}
		v2 := version()
		if _, err := db.AddMember(ctx, "general", bob.ID, now); err != nil {
			t.Fatal(err)
		}
		v3 := version()
		if _, err := db.AddMember(ctx, "general", bob.ID, now); err != nil {
			t.Fatal(err)
		}
		if !(v0 < v1 && v1 < v2 && v2 < v3 && version() == v3) {
			t.Errorf("versions %d %d %d %d then %d: want each change to move it on, and no change to leave it", v0, v1, v2, v3, version())
		}

		// A change already made is refused before it takes an id (two adds at once, say): bob added twice
		// in one batch, removed though he is no member, and ada's message after them takes the next id.
		out, err := db.AppendMessages(ctx, []app.Message{
			{Room: "secret", From: a, Kind: app.MemberAdded, User: &b, At: now},
			{Room: "secret", From: a, Kind: app.MemberAdded, User: &b, At: now},
			{Room: "secret", From: a, Kind: app.MemberRemoved, User: &b, At: now},
			{Room: "secret", From: a, Kind: app.MemberRemoved, User: &b, At: now},
			{Room: "secret", From: a, Text: "après", At: now},
		})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, o := range out {
			code := ""
			if o.Err != nil {
				code = app.ErrorCode(o.Err)
			}
			got = append(got, fmt.Sprint(o.Message.ID, ":", o.Created, ":", code))
		}
		if want := "[4:true: 0:false:conflict 5:true: 0:false:not_found 6:true:]"; fmt.Sprint(got) != want {
			t.Errorf("a batch of repeated member events: %v, want %s", got, want)
		}
		log, err := db.Messages(ctx, "secret", app.MessageQuery{Log: true, Limit: 100})
		if err != nil || len(log) != 6 || log[5].ID != 6 {
			t.Errorf("secret's log: %v, %v; want 6 entries, without a gap", log, err)
		}
	})
}
