// Package kdg reads Kinesis Data Generator templates and renders records from them.
//
// A template is literal text with {{ … }} expressions in the Kinesis Data Generator's faker.js
// dialect: a dotted function name, optionally followed by JSON arguments in parentheses, such as
// {{random.number({"min":10,"max":150})}} or {{date.now("YYYY-MM-DD HH:mm:ss")}}. The fake data
// comes from gofakeit; this package only parses templates and maps the faker.js names onto it
// (see Functions for the list).
//
// Parse checks everything it can before a record is rendered: an unknown function, a bad
// argument or an unclosed {{ is an *Error naming the template, the line and the column. A parsed
// Template cannot fail to render. A Template is immutable and safe for concurrent use; the
// Faker that renders it holds the random state and is not.
package kdg

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"unicode/utf8"
)

// Error is a problem found in a template: where it is and what is wrong.
type Error struct {
	// Template is the template's name, usually its file's path.
	Template string
	// Line and Column locate the problem, both from 1; Column counts characters, not bytes.
	Line, Column int
	// Msg says what is wrong and what is allowed.
	Msg string
}

func (e *Error) Error() string {
	return fmt.Sprintf("template %s: line %d, column %d: %s", e.Template, e.Line, e.Column, e.Msg)
}

// Template is a parsed template: literal text and the expressions between it.
type Template struct {
	name  string
	parts []part
}

// part is a literal (gen nil) or an expression.
type part struct {
	lit []byte
	gen gen
}

// Name returns the name the template was parsed with.
func (t *Template) Name() string { return t.name }

// ParseFile reads and parses the template in the file at path, naming it by path. The file's
// final line break, which editors add, is not part of the template: a one-line file renders
// records without a trailing newline, as the Kinesis Data Generator's text box does.
func ParseFile(path string) (*Template, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read template: %w", err)
	}
	text := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	return Parse(path, text)
}

// Parse parses text as a template called name. Every expression is resolved and its arguments
// checked; the first problem is returned as an *Error.
func Parse(name, text string) (*Template, error) {
	t := &Template{name: name}
	errAt := func(off int, format string, args ...any) error {
		line, col := position(text, off)
		return &Error{Template: name, Line: line, Column: col, Msg: fmt.Sprintf(format, args...)}
	}
	rest := 0
	for {
		open := strings.Index(text[rest:], "{{")
		if open < 0 {
			if rest < len(text) {
				t.parts = append(t.parts, part{lit: []byte(text[rest:])})
			}
			return t, nil
		}
		open += rest
		if open > rest {
			t.parts = append(t.parts, part{lit: []byte(text[rest:open])})
		}
		g, end, err := parseExpr(text, open, errAt)
		if err != nil {
			return nil, err
		}
		t.parts = append(t.parts, part{gen: g})
		rest = end
	}
}

// parseExpr parses the expression whose {{ is at open and returns its generator and the offset
// just past its }}.
func parseExpr(text string, open int, errAt func(int, string, ...any) error) (gen, int, error) {
	i := skipSpace(text, open+2)
	start := i
	for i < len(text) && isNameByte(text[i]) {
		i++
	}
	fname := text[start:i]
	if fname == "" {
		if i >= len(text) {
			return nil, 0, errAt(open, "{{ is not closed with }}")
		}
		if strings.HasPrefix(text[i:], "}}") {
			return nil, 0, errAt(open, "empty expression {{}}; write a function such as {{random.uuid}}")
		}
		return nil, 0, errAt(i, "expected a function name such as random.number after {{, found %q", firstRune(text[i:]))
	}
	var args []any
	j := skipSpace(text, i)
	if j < len(text) && text[j] == '(' {
		end, ok := matchParen(text, j)
		if !ok {
			if !strings.Contains(text[j:], "}}") {
				return nil, 0, errAt(open, "{{ is not closed with }}")
			}
			return nil, 0, errAt(j, "%s: ( is not closed with )", fname)
		}
		var err error
		args, err = parseArgs(text[j+1 : end])
		if err != nil {
			return nil, 0, errAt(j+1, "%s: arguments are not JSON values separated by commas: %v", fname, err)
		}
		j = skipSpace(text, end+1)
	}
	if !strings.HasPrefix(text[j:], "}}") {
		if j >= len(text) || !strings.Contains(text[j:], "}}") {
			return nil, 0, errAt(open, "{{ is not closed with }}")
		}
		return nil, 0, errAt(j, "%s: expected }} or (arguments), found %q", fname, firstRune(text[j:]))
	}
	g, err := compile(fname, args)
	if err != nil {
		return nil, 0, errAt(start, "%v", err)
	}
	return g, j + 2, nil
}

// compile resolves a function name and checks its arguments.
func compile(name string, args []any) (gen, error) {
	f, ok := functions[name]
	if !ok {
		return nil, unknownFunction(name)
	}
	g, err := f.compile(&argList{fn: name, vals: args})
	if err != nil {
		return nil, err
	}
	return g, nil
}

func unknownFunction(name string) error {
	ns, _, found := strings.Cut(name, ".")
	if found {
		var known []string
		for _, n := range Functions() {
			if strings.HasPrefix(n, ns+".") {
				known = append(known, n)
			}
		}
		if len(known) > 0 {
			return fmt.Errorf("unknown function %q; %s has: %s", name, ns, strings.Join(known, ", "))
		}
	}
	return fmt.Errorf("unknown function %q; namespaces: %s", name, strings.Join(namespaces(), ", "))
}

// parseArgs reads a comma-separated list of JSON values.
func parseArgs(s string) ([]any, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader("[" + s + "]"))
	dec.UseNumber()
	var args []any
	if err := dec.Decode(&args); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("unexpected text after the arguments")
	}
	return args, nil
}

// matchParen returns the offset of the ) closing the ( at open, skipping JSON strings.
func matchParen(text string, open int) (int, bool) {
	depth := 0
	for i := open; i < len(text); i++ {
		switch text[i] {
		case '"':
			for i++; i < len(text) && text[i] != '"'; i++ {
				if text[i] == '\\' {
					i++
				}
			}
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i, true
			}
		}
	}
	return 0, false
}

func isNameByte(c byte) bool {
	return c == '.' || c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

func firstRune(s string) string {
	r, _ := utf8.DecodeRuneInString(s)
	return string(r)
}

// position turns a byte offset into a line and a character column, both from 1.
func position(text string, off int) (line, col int) {
	before := text[:off]
	line = 1 + strings.Count(before, "\n")
	if nl := strings.LastIndexByte(before, '\n'); nl >= 0 {
		before = before[nl+1:]
	}
	return line, 1 + utf8.RuneCountInString(before)
}

// Render returns one record rendered with f.
func (t *Template) Render(f *Faker) []byte {
	return t.AppendRender(nil, f)
}

// AppendRender appends one record rendered with f to dst and returns the extended slice.
func (t *Template) AppendRender(dst []byte, f *Faker) []byte {
	for _, p := range t.parts {
		if p.gen == nil {
			dst = append(dst, p.lit...)
			continue
		}
		dst = append(dst, p.gen(f)...)
	}
	return dst
}

// IsJSON reports whether b is one JSON value (surrounding white space allowed).
func IsJSON(b []byte) bool {
	return json.Valid(bytes.TrimSpace(b))
}
