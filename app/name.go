package app

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/secure/precis"
)

// MaxNameChars is the longest display name, in characters.
const MaxNameChars = 64

// NormalizeName returns the display form of the name s, or a CodeInvalid error saying why s cannot be a
// name.
//
// Names follow the PRECIS profiles for usernames (RFC 8265) of golang.org/x/text/secure/precis: a name
// is one or more userparts separated by spaces (the RFC's own grammar, section 3.1; runs of spaces and
// those at either end are dropped), each of which must pass the profile. A name is shown as
// UsernameCasePreserved gives it (width-mapped and in NFC, its case kept) and compared by its key, what
// UsernameCaseMapped gives (the same, in lower case; see NameKey): "Alice", "ALICE" and a full-width
// "ａｌｉｃｅ" have the key "alice", so only one of them can be taken.
//
// The profiles refuse control characters (NUL), format characters (the bidi overrides such as U+202E,
// zero-width spaces), symbols (emoji), spaces other than U+0020 and unassigned code points, and apply
// the Bidi Rule to each part. They do not look for look-alikes: a Cyrillic "аlice" (U+0430 first) passes
// them and has a key of its own, different from the Latin "alice". As the page shows only names, a name
// must also be written in one script (see oneScript), and be at most MaxNameChars characters long.
func NormalizeName(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", Errorf(CodeInvalid, "name is not valid UTF-8")
	}
	// Normalization may shorten a name (spaces, combining marks), but not by this much: what is longer
	// is refused before any work, and never repeated in a message.
	if utf8.RuneCountInString(s) > 4*MaxNameChars {
		return "", Errorf(CodeInvalid, "name must be at most %d characters", MaxNameChars)
	}
	parts := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' })
	if len(parts) == 0 {
		return "", Errorf(CodeInvalid, "name is empty")
	}
	for i, p := range parts {
		shown, err := precis.UsernameCasePreserved.String(p)
		if err == nil {
			_, err = precis.UsernameCaseMapped.String(p)
		}
		if err != nil {
			return "", Errorf(CodeInvalid, "name %q is not allowed: a name holds letters, marks, digits, ASCII "+
				"punctuation and single spaces, and no control, format (bidi), symbol or other space character", s)
		}
		parts[i] = shown
	}
	name := strings.Join(parts, " ")
	if utf8.RuneCountInString(name) > MaxNameChars {
		return "", Errorf(CodeInvalid, "name must be at most %d characters", MaxNameChars)
	}
	if scripts, ok := oneScript(name); !ok {
		return "", Errorf(CodeInvalid, "name %q mixes scripts (%s): write it in one", s, strings.Join(scripts, ", "))
	}
	return name, nil
}

// NameKey returns the key that names are compared by: two names with the same key are the same name.
// It fails for a string that the PRECIS profile refuses, such as a name stored before the profile was
// applied; it does not apply the other rules of NormalizeName.
func NameKey(name string) (string, error) {
	parts := strings.FieldsFunc(name, func(r rune) bool { return r == ' ' })
	if len(parts) == 0 {
		return "", fmt.Errorf("name %q is empty", name)
	}
	for i, p := range parts {
		k, err := precis.UsernameCaseMapped.String(p)
		if err != nil {
			return "", fmt.Errorf("name %q: %w", name, err)
		}
		parts[i] = k
	}
	return strings.Join(parts, " "), nil
}

// augmentedScripts are the scripts that belong to several writing systems, each named by its ISO 15924
// code: Japanese (Jpan) is written in Han, Hiragana and Katakana at once, Korean (Kore) in Han and
// Hangul, Chinese (Hanb) in Han and Bopomofo. They are the augmented script sets of Unicode's UTS #39
// (section 5.1), by which "山田たろう" is written in one script. Any other script is a system of its own.
var augmentedScripts = map[string][]string{
	"Han":      {"Han", "Jpan", "Kore", "Hanb"},
	"Hiragana": {"Jpan"},
	"Katakana": {"Jpan"},
	"Hangul":   {"Kore"},
	"Bopomofo": {"Hanb"},
}

// oneScript reports whether the characters of s that belong to a script (all but those of Common, such
// as digits, punctuation and spaces, and of Inherited, such as combining accents) share a writing
// system, and returns their scripts in order of appearance. This is UTS #39's single-script test, with
// Go's script tables: it catches a look-alike letter of another script slipped into a name ("аlice",
// Cyrillic and Latin), not a name written wholly in another script.
func oneScript(s string) (scripts []string, ok bool) {
	var shared []string // the writing systems of every character so far
	for _, r := range s {
		if unicode.In(r, unicode.Common, unicode.Inherited) {
			continue
		}
		script := scriptOf(r)
		systems, augmented := augmentedScripts[script]
		if !augmented {
			systems = []string{script}
		}
		if len(scripts) == 0 {
			shared = systems
		} else {
			shared = slices.DeleteFunc(slices.Clone(shared), func(w string) bool { return !slices.Contains(systems, w) })
		}
		if !slices.Contains(scripts, script) {
			scripts = append(scripts, script)
		}
	}
	return scripts, len(scripts) == 0 || len(shared) > 0
}

// scriptOf returns the name of the script of r, as unicode.Scripts names it, or "Unknown".
func scriptOf(r rune) string {
	for name, table := range unicode.Scripts {
		if unicode.Is(table, r) {
			return name
		}
	}
	return "Unknown"
}
