package app_test

import (
	"testing"

	"github.com/causerie/causerie/app"
)

func TestDecodeInbound(t *testing.T) {
	cases := []struct {
		frame, typ, text, code string
	}{
		{`{"type":"message","text":"hi","id":"c1"}`, "message", "hi", ""},
		{"  \n{\"type\":\"ping\"}", "ping", "", ""},
		{"hello from Postman", "message", "hello from Postman", ""},
		{`"quoted"`, "message", `"quoted"`, ""},
		{`{"type":"message","text":`, "", "", app.CodeBadJSON},
		{`{"type":"message","text":5}`, "", "", app.CodeInvalid},
		{`{"type":"join","since":"3"}`, "", "", app.CodeInvalid},
	}
	for _, tc := range cases {
		in, err := app.DecodeInbound([]byte(tc.frame))
		if err != nil {
			if code := app.ErrorCode(err); code != tc.code {
				t.Errorf("%q: error %v, want code %q", tc.frame, err, tc.code)
			}
			continue
		}
		if tc.code != "" || in.Type != tc.typ || in.Text != tc.text {
			t.Errorf("%q: got %+v, want type %q text %q (code %q)", tc.frame, in, tc.typ, tc.text, tc.code)
		}
	}
}

func BenchmarkDecodeInbound(b *testing.B) {
	for _, bc := range []struct{ name, frame string }{
		{"json", `{"type":"message","room":"general","text":"Bonjour à tous, comment ça va ?","id":"c-12345"}`},
		{"plain", "Bonjour à tous, comment ça va ?"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			frame := []byte(bc.frame)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := app.DecodeInbound(frame); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncodeMessage(b *testing.B) {
	m := app.Message{ID: 42, Room: "general", From: app.Author{ID: 7, Name: "ada"}, Text: "Bonjour à tous"}
	b.ReportAllocs()
	for b.Loop() {
		frame, object, err := app.EncodeMessage(m)
		if err != nil || len(app.EncodeMessageAck("c-1", object)) == 0 || len(frame) == 0 {
			b.Fatal(err)
		}
	}
}
