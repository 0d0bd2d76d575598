package app_test

import (
	"strings"
	"testing"

	"github.com/causerie/causerie/app"
)

func TestNormalizeName(t *testing.T) {
	cases := []struct {
		name, in string
		want     string // the display form; "" when the name is refused
		key      string
	}{
		// What people are called.
		{"first and last name", "Ada Lovelace", "Ada Lovelace", "ada lovelace"},
		{"initial", " Ada  L. ", "Ada L.", "ada l."},
		{"e-mail local part", "claire.dupont", "claire.dupont", "claire.dupont"},
		{"accent, composed", "Élodie", "Élodie", "élodie"},
		{"accent, decomposed", "E\u0301lodie", "Élodie", "élodie"},
		{"apostrophe and hyphen", "O'Brien-Smith", "O'Brien-Smith", "o'brien-smith"},
		{"digits", "ada2", "ada2", "ada2"},
		{"Cyrillic", "Дмитрий", "Дмитрий", "дмитрий"},
		{"Greek", "Σοφία", "Σοφία", "σοφία"},
		{"Han", "太郎", "太郎", "太郎"},
		{"Han and kana", "山田たろう", "山田たろう", "山田たろう"},
		{"Hangul and Han", "김민준 金", "김민준 金", "김민준 金"},
		{"Arabic", "ليلى", "ليلى", "ليلى"},
		{"full width", "ａｌｉｃｅ", "alice", "alice"},
		{"64 characters", strings.Repeat("é", 64), strings.Repeat("é", 64), strings.Repeat("é", 64)},
		{"64 characters, decomposed", strings.Repeat("e\u0301", 64), strings.Repeat("é", 64), strings.Repeat("é", 64)},

		// What fakes a name.
		{"empty", "", "", ""},
		{"spaces", "   ", "", ""},
		{"NUL", "ali\x00ce", "", ""},
		{"right-to-left override", "alice\u202eecila", "", ""},
		{"zero-width space", "al\u200bice", "", ""},
		{"zero-width joiner", "al\u200dice", "", ""},
		{"tab", "Ada\tLovelace", "", ""},
		{"newline", "Ada\nLovelace", "", ""},
		{"no-break space", "Ada\u00a0Lovelace", "", ""},
		{"Cyrillic a among Latin", "\u0430lice", "", ""},
		{"Greek omicron among Latin", "b\u03bfb", "", ""},
		{"Latin and Cyrillic words", "Ada Дмитрий", "", ""},
		{"emoji", "Ada 🎉", "", ""},
		{"leading combining mark", "\u0301ada", "", ""},
		{"65 characters", strings.Repeat("é", 65), "", ""},
		{"65 characters, decomposed", strings.Repeat("e\u0301", 65), "", ""},
		{"64 KiB", strings.Repeat("a", 64<<10), "", ""},
		{"invalid UTF-8", "ada\xff", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := app.NormalizeName(tc.in)
			if tc.want == "" {
				if err == nil || app.ErrorCode(err) != app.CodeInvalid {
					t.Fatalf("NormalizeName(%q) = %q, %v; want an %s error", tc.in, got, err, app.CodeInvalid)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("NormalizeName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
			if key, err := app.NameKey(got); err != nil || key != tc.key {
				t.Errorf("NameKey(%q) = %q, %v; want %q", got, key, err, tc.key)
			}
			if key, err := app.NameKey(tc.in); err != nil || key != tc.key {
				t.Errorf("NameKey(%q) = %q, %v; want %q, as for its display form", tc.in, key, err, tc.key)
			}
		})
	}
}

// Names that differ only in case, width or Unicode normalization have one key; names that only look
// alike keep theirs apart (NormalizeName refuses the mixed ones).
func TestNameKeys(t *testing.T) {
	same := [][]string{
		{"alice", "Alice", "ALICE", "ａｌｉｃｅ"},
		{"Élodie", "E\u0301lodie", "ÉLODIE"},
		{"Ada Lovelace", "ada  lovelace", "ADA LOVELACE"},
		{"Дмитрий", "ДМИТРИЙ"},
	}
	keys := map[string]string{}
	for _, names := range same {
		want, err := app.NameKey(names[0])
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if got, err := app.NameKey(n); err != nil || got != want {
				t.Errorf("NameKey(%q) = %q, %v; want %q, the key of %q", n, got, err, want, names[0])
			}
		}
		if other, ok := keys[want]; ok {
			t.Errorf("%q and %q have the same key %q", names[0], other, want)
		}
		keys[want] = names[0]
	}
	latin, _ := app.NameKey("alice")
	if cyrillic, err := app.NameKey("\u0430lice"); err != nil || cyrillic == latin {
		t.Errorf("NameKey(Cyrillic аlice) = %q, %v: PRECIS gives it a key of its own", cyrillic, err)
	}
	for _, bad := range []string{"", "a\x00b", "a\u202eb", "a\tb"} {
		if key, err := app.NameKey(bad); err == nil {
			t.Errorf("NameKey(%q) = %q, want an error", bad, key)
		}
	}
}
