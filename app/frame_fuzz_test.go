package app_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/causerie/causerie/app"
)

// FuzzDecodeInbound feeds DecodeInbound any frame. It must not panic; an error is an *app.Error with a
// code; a frame that is not a JSON object (after JSON's leading whitespace) is a message of the whole
// frame; a frame that is a malformed object is refused; and no id longer than MaxClientIDBytes gets
// through.
func FuzzDecodeInbound(f *testing.F) {
	for _, s := range []string{
		`{"type":"message","text":"hi","id":"c1"}`,
		"  \n{\"type\":\"ping\"}",
		"hello from Postman",
		`"quoted"`,
		"",
		" \t\r\n",
		`{"type":"join","room":"general","since":12}`,
		`{"type":"message","text":5,"id":"c2"}`,
		`{"type":"message","text":`,
		`{"type":"auth","token":"a.b.c"} trailing`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := app.DecodeInbound(data)
		if len(in.ID) > app.MaxClientIDBytes {
			t.Fatalf("DecodeInbound(%q): id of %d bytes, over %d", data, len(in.ID), app.MaxClientIDBytes)
		}
		trimmed := bytes.TrimLeft(data, " \t\r\n") // JSON's whitespace
		object := len(trimmed) > 0 && trimmed[0] == '{'
		if err != nil {
			e, ok := err.(*app.Error)
			if !ok {
				t.Fatalf("DecodeInbound(%q): error %T %v, want *app.Error", data, err, err)
			}
			if e.Code == "" {
				t.Fatalf("DecodeInbound(%q): error %v has no code", data, err)
			}
			if !object {
				t.Fatalf("DecodeInbound(%q): error %v for a frame that is not a JSON object", data, err)
			}
			return
		}
		if !object {
			if in.Type != app.FrameMessage || in.Text != string(data) {
				t.Fatalf("DecodeInbound(%q) = %+v, want a message whose text is the frame", data, in)
			}
		} else if !json.Valid(trimmed) {
			t.Fatalf("DecodeInbound(%q) = %+v, nil; want an error for invalid JSON", data, in)
		}
	})
}
