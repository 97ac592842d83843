package layering

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// maxFuncLines is the longest function body (the lines between its braces)
// allowed without a reason: a longer function is split into steps that
// read like a story, or says why it is not in a line "// Long: <reason>"
// directly above its func keyword (the last line of its doc comment).
const maxFuncLines = 80

var longReason = regexp.MustCompile(`^\s*//\s*Long:\s*\S`)

// longAllowed names the functions still over the limit, without a reason,
// while issue 9 rewrites the code they are in (package path in the module,
// then the function, with its receiver type for a method). It may only
// shrink: an entry whose function is gone or short again fails the test
// until it is removed.
var longAllowed = map[string]bool{}

func TestFunctionLength(t *testing.T) {
	root := filepath.Join("..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("the module root is not two folders up: %v", err)
	}
	seen := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") || strings.HasPrefix(d.Name(), "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		for _, f := range longFuncs(t, p, filepath.ToSlash(rel)) {
			switch {
			case longAllowed[f.name]:
				seen[f.name] = true
			default:
				t.Errorf("%s:%d: %s has a body of %d lines, over %d: split it into steps, or say why in a line \"// Long: <reason>\" directly above it",
					filepath.ToSlash(rel), f.line, f.name, f.lines, maxFuncLines)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name := range longAllowed {
		if !seen[name] {
			t.Errorf("%s is in longAllowed but is no longer a function over %d lines: remove it from the list", name, maxFuncLines)
		}
	}
}

// longFunc is a function over the limit without a reason above it.
type longFunc struct {
	name  string // package path in the module, "." and the function's name
	line  int    // of its func keyword
	lines int    // of its body
}

// longFuncs parses the Go file at path (rel from the module root) and
// returns its functions over the limit that do not say why.
func longFuncs(t *testing.T, path, rel string) []longFunc {
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	lines := strings.Split(string(src), "\n")
	var out []longFunc
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Body == nil {
			continue
		}
		n := fset.Position(fd.Body.Rbrace).Line - fset.Position(fd.Body.Lbrace).Line - 1
		line := fset.Position(fd.Type.Func).Line
		if n <= maxFuncLines || (line >= 2 && longReason.MatchString(lines[line-2])) {
			continue
		}
		out = append(out, longFunc{name: path2pkg(rel) + "." + funcName(fd), line: line, lines: n})
	}
	return out
}

// path2pkg is the package path in the module of the file rel.
func path2pkg(rel string) string {
	dir := filepath.ToSlash(filepath.Dir(rel))
	if dir == "." {
		return ""
	}
	return dir
}

// funcName is a function's name, with its receiver type for a method.
func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	t := fd.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	switch x := t.(type) {
	case *ast.IndexExpr:
		t = x.X
	case *ast.IndexListExpr:
		t = x.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name + "." + fd.Name.Name
	}
	return fd.Name.Name
}
