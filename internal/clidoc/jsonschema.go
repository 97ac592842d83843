package clidoc

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// Schema is what docs/CLI.md says about one command's --json output,
// under a heading "`sealfs WORDS --json`": an example (a ```json block),
// and a table of every field name in it with its type.
type Schema struct {
	Command string            // the subcommand's path ("key list")
	Lines   bool              // one document per line (the section says "one JSON document per line", in any case)
	Example []any             // the example's documents (several only when Lines)
	Types   map[string]string // field name -> its type, as the table writes it
}

// The types a field table may give: a JSON type, or a string of a form;
// any of them followed by " or null" when the field may be null.
const (
	TypeInteger = "integer"
	TypeNumber  = "number" // any JSON number, fractions too
	TypeString  = "string"
	TypeBoolean = "boolean"
	TypeTime    = "time"   // a string: RFC 3339, in UTC
	TypeID      = "id"     // a string: 64 lower-case hex digits
	TypeObject  = "object" // its fields are listed too
	TypeArray   = "array"  // its elements are as the example's first one
	orNull      = " or null"
)

var (
	jsonHeadingRE = regexp.MustCompile("^### `sealfs ([a-z][a-z ]*) --json`$")
	fieldRowRE    = regexp.MustCompile("^\\| `([a-z][a-z0-9_]*)` \\| ([a-z ]+) \\|")
	idRE          = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// ReadSchemas parses every --json section of the document at path.
func ReadSchemas(t testing.TB, path string) map[string]*Schema {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*Schema{}
	var cur *Schema
	var block *strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case block != nil && line == "```":
			if cur.Example != nil {
				t.Fatalf("%s: the section of %s has two examples", path, cur.Command)
			}
			cur.Example = decodeAll(t, cur.Command, block.String())
			block = nil
		case block != nil:
			block.WriteString(line + "\n")
		case strings.HasPrefix(line, "#"):
			cur = nil
			if m := jsonHeadingRE.FindStringSubmatch(line); m != nil {
				cur = &Schema{Command: m[1], Types: map[string]string{}}
				out[cur.Command] = cur
			}
		case cur == nil:
		case line == "```json":
			block = &strings.Builder{}
		case strings.Contains(strings.ToLower(line), "one json document per line"):
			cur.Lines = true
		default:
			if m := fieldRowRE.FindStringSubmatch(line); m != nil {
				if _, dup := cur.Types[m[1]]; dup {
					t.Errorf("%s: %s: field %s is listed twice", path, cur.Command, m[1])
				}
				cur.Types[m[1]] = strings.TrimSpace(m[2])
			}
		}
	}
	for _, s := range out {
		s.selfCheck(t)
	}
	return out
}

// decodeAll decodes every JSON document in s.
func decodeAll(t testing.TB, what, s string) []any {
	t.Helper()
	docs, err := decodeDocs(s)
	if err != nil {
		t.Fatalf("the example of %s in docs/CLI.md: %v", what, err)
	}
	return docs
}

func decodeDocs(s string) ([]any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var docs []any
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return docs, nil
		} else if err != nil {
			return nil, err
		}
		docs = append(docs, v)
	}
}

// selfCheck: the example exists (one document unless Lines), its every
// field is in the table and no other, and each value is of the table's
// type and not null (so that the example shows the type).
func (s *Schema) selfCheck(t testing.TB) {
	t.Helper()
	if len(s.Example) == 0 || (!s.Lines && len(s.Example) != 1) {
		t.Errorf("docs/CLI.md: %s --json: %d example documents", s.Command, len(s.Example))
		return
	}
	seen := map[string]bool{}
	for _, ex := range s.Example {
		var walk func(path string, v any)
		walk = func(path string, v any) {
			switch v := v.(type) {
			case map[string]any:
				for k, fv := range v {
					seen[k] = true
					typ, ok := s.Types[k]
					if !ok {
						t.Errorf("docs/CLI.md: %s --json: field %s%s is not in the table", s.Command, path, k)
						continue
					}
					if fv == nil {
						t.Errorf("docs/CLI.md: %s --json: the example's %s%s is null; show a value", s.Command, path, k)
						continue
					}
					if err := checkType(typ, fv); err != nil {
						t.Errorf("docs/CLI.md: %s --json: the example's %s%s: %v", s.Command, path, k, err)
					}
					walk(path+k+".", fv)
				}
			case []any:
				if len(v) == 0 {
					t.Errorf("docs/CLI.md: %s --json: the example's %s is an empty array; show an element", s.Command, strings.TrimSuffix(path, "."))
				}
				for _, e := range v {
					walk(path, e)
				}
			}
		}
		walk("", ex)
	}
	for k := range s.Types {
		if !seen[k] {
			t.Errorf("docs/CLI.md: %s --json: the table lists %s, which the example lacks", s.Command, k)
		}
	}
}

// checkType reports whether v (not null) is of the type typ.
func checkType(typ string, v any) error {
	typ = strings.TrimSuffix(typ, orNull)
	switch typ {
	case TypeInteger:
		n, ok := v.(json.Number)
		if !ok {
			return fmt.Errorf("%v is not an integer", v)
		}
		if _, err := n.Int64(); err != nil {
			return fmt.Errorf("%v is not an integer", v)
		}
	case TypeNumber:
		if _, ok := v.(json.Number); !ok {
			return fmt.Errorf("%v is not a number", v)
		}
	case TypeString, TypeTime, TypeID:
		str, ok := v.(string)
		if !ok {
			return fmt.Errorf("%v is not a string", v)
		}
		if typ == TypeTime {
			tm, err := time.Parse(time.RFC3339Nano, str)
			if err != nil || !strings.HasSuffix(str, "Z") || tm.Location() != time.UTC {
				return fmt.Errorf("%q is not an RFC 3339 time in UTC", str)
			}
		}
		if typ == TypeID && !idRE.MatchString(str) {
			return fmt.Errorf("%q is not 64 lower-case hex digits", str)
		}
	case TypeBoolean:
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%v is not a boolean", v)
		}
	case TypeObject:
		if _, ok := v.(map[string]any); !ok {
			return fmt.Errorf("%v is not an object", v)
		}
	case TypeArray:
		if _, ok := v.([]any); !ok {
			return fmt.Errorf("%v is not an array", v)
		}
	default:
		return fmt.Errorf("the table gives the unknown type %q", typ)
	}
	return nil
}

// Check checks a command's standard output against the schema: exactly
// one document (or, with Lines, one per line, and n of them when n >= 0)
// whose objects have exactly the example's fields, each of the table's
// type (null only where the table allows it), arrays' elements shaped as
// the example's first element. It returns the documents.
func (s *Schema) Check(t testing.TB, stdout string, n int) []any {
	t.Helper()
	var docs []any
	if s.Lines {
		for line := range strings.Lines(stdout) {
			d, err := decodeDocs(line)
			if err != nil || len(d) != 1 {
				t.Fatalf("%s --json: line %q is not one JSON document (%v)", s.Command, line, err)
			}
			docs = append(docs, d[0])
		}
		if n >= 0 && len(docs) != n {
			t.Fatalf("%s --json: %d documents, want %d:\n%s", s.Command, len(docs), n, stdout)
		}
	} else {
		d, err := decodeDocs(stdout)
		if err != nil || len(d) != 1 {
			t.Fatalf("%s --json: the output is not one JSON document (%d, %v):\n%s", s.Command, len(d), err, stdout)
		}
		docs = d
	}
	for _, d := range docs {
		s.match(t, "", s.Example[0], d)
	}
	return docs
}

// match checks got against the example want at path.
func (s *Schema) match(t testing.TB, path string, want, got any) {
	t.Helper()
	if reflectKind(got) != reflectKind(want) {
		t.Errorf("%s --json: %s is %v, the example's is %v", s.Command, strings.TrimSuffix(path, "."), got, want)
		return
	}
	switch w := want.(type) {
	case map[string]any:
		g := got.(map[string]any)
		for k := range g {
			if _, ok := w[k]; !ok {
				t.Errorf("%s --json: field %s%s is not documented", s.Command, path, k)
			}
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				t.Errorf("%s --json: documented field %s%s is missing", s.Command, path, k)
				continue
			}
			typ := s.Types[k]
			if gv == nil {
				if !strings.HasSuffix(typ, orNull) {
					t.Errorf("%s --json: field %s%s is null; the document says %s", s.Command, path, k, typ)
				}
				continue
			}
			if err := checkType(typ, gv); err != nil {
				t.Errorf("%s --json: field %s%s: %v", s.Command, path, k, err)
				continue
			}
			s.match(t, path+k+".", wv, gv)
		}
	case []any:
		for _, e := range got.([]any) {
			s.match(t, path, w[0], e)
		}
	}
}

// reflectKind names the JSON type of v.
func reflectKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return TypeObject
	case []any:
		return TypeArray
	case string:
		return TypeString
	case json.Number:
		return "number"
	case bool:
		return TypeBoolean
	}
	return "null"
}

// Commands returns the commands that have a --json section, sorted.
func Commands(schemas map[string]*Schema) []string {
	var out []string
	for c := range schemas {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}
