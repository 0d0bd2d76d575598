package handlers

import (
	"strings"
	"testing"

	"github.com/causerie/causerie/app"
)

// namesNoRoom reports whether every comma-separated item of rooms is blank.
func namesNoRoom(rooms string) bool {
	for _, item := range strings.Split(rooms, ",") {
		if strings.TrimSpace(item) != "" {
			return false
		}
	}
	return true
}

// FuzzParseJoins feeds parseJoins any rooms and since query parameters and any cap. It must not panic;
// an error is an *app.Error; a success is 1 to max distinct valid rooms, each named by the request (or
// the default room when rooms names none), with a Since only for rooms that since lists (a bare id
// standing for the default room), never negative.
func FuzzParseJoins(f *testing.F) {
	f.Add("", "", 50)
	f.Add("general,jeux", "", 50)
	f.Add("a,b,c", "", 2)
	f.Add("", "general:12,jeux:0", 50)
	f.Add(" general , jeux ", "jeux:3", 50)
	f.Add("Bad", "", 50)
	f.Add("", "general", 50)
	f.Add("", "general:-3", 50)
	f.Add("", "general:1,general:2", 1)
	f.Add("general", "", 0)
	f.Add("", "12", 50)
	f.Add("jeux", " 7 ,jeux:3", 50)
	f.Fuzz(func(t *testing.T, rooms, since string, max int) {
		joins, err := parseJoins(rooms, since, max)
		if err != nil {
			if _, ok := err.(*app.Error); !ok {
				t.Fatalf("parseJoins(%q, %q, %d): error %T %v, want *app.Error", rooms, since, max, err, err)
			}
			return
		}
		if len(joins) > max || len(joins) < 1 {
			t.Fatalf("parseJoins(%q, %q, %d): %d rooms, want 1 to %d", rooms, since, max, len(joins), max)
		}
		named := func(list, name string, withID bool) bool {
			for _, item := range strings.Split(list, ",") {
				item = strings.TrimSpace(item)
				if withID {
					room, _, ok := strings.Cut(item, ":")
					item = room
					if !ok {
						item = app.DefaultRoom
					}
				}
				if item == name {
					return true
				}
			}
			return false
		}
		seen := map[string]bool{}
		for _, j := range joins {
			if !app.ValidRoom(j.Room) {
				t.Fatalf("parseJoins(%q, %q, %d): invalid room %q", rooms, since, max, j.Room)
			}
			if seen[j.Room] {
				t.Fatalf("parseJoins(%q, %q, %d): room %q twice", rooms, since, max, j.Room)
			}
			seen[j.Room] = true
			inSince := since != "" && named(since, j.Room, true)
			if !inSince && !named(rooms, j.Room, false) && !(namesNoRoom(rooms) && j.Room == app.DefaultRoom) {
				t.Fatalf("parseJoins(%q, %q, %d): room %q that the request does not name", rooms, since, max, j.Room)
			}
			if j.Since != nil && (*j.Since < 0 || !inSince) {
				t.Fatalf("parseJoins(%q, %q, %d): room %q since %d", rooms, since, max, j.Room, *j.Since)
			}
		}
	})
}
