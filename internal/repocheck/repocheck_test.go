// Package repocheck holds tests of the repository's own rules of shape:
// what a reader may count on when opening any file of it.
package repocheck

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Limits of the shape of the code, tests aside.
const (
	maxFunc        = 150 // lines of any function, anywhere
	maxCommandFunc = 80  // lines of a function of the command
	// Lines of the command, which only wires packages together. It grows
	// with its subcommands' flags (monitor takes a trace's and its own),
	// while their logic stays in packages. The fleet client (fleetcmd) hooks
	// into three commands (a trace's --agents, monitor --nats, diff
	// nats:ID): a call and an import each.
	maxCommand = 995
)

// root is the module's directory.
const root = "../.."

type goFile struct {
	path  string // relative to the module
	lines int
	funcs []goFunc
}

type goFunc struct {
	name  string
	line  int
	lines int
}

// sources parses every non-test Go file of the module (generated bindings
// and node_modules aside).
func sources(t *testing.T) []goFile {
	t.Helper()
	var out []goFile
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") && path != root) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parseFile(path)
		if err != nil {
			return err
		}
		if f != nil {
			out = append(out, *f)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 50 {
		t.Fatalf("found %d Go files under %s: not the module", len(out), root)
	}
	return out
}

func parseFile(path string) (*goFile, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, src, parser.ParseComments)
	if err != nil {
		return nil, err
	}
	if ast.IsGenerated(f) {
		return nil, nil
	}
	rel, _ := filepath.Rel(root, path)
	g := &goFile{path: filepath.ToSlash(rel), lines: strings.Count(string(src), "\n")}
	ast.Inspect(f, func(n ast.Node) bool {
		var body *ast.BlockStmt
		name := ""
		switch x := n.(type) {
		case *ast.FuncDecl:
			body, name = x.Body, x.Name.Name
		case *ast.FuncLit:
			body, name = x.Body, "func literal"
		}
		if body != nil {
			start, end := fset.Position(n.Pos()).Line, fset.Position(body.Rbrace).Line
			g.funcs = append(g.funcs, goFunc{name: name, line: start, lines: end - start + 1})
		}
		return true
	})
	return g, nil
}

func TestNoLongFunctions(t *testing.T) {
	for _, f := range sources(t) {
		limit := maxFunc
		if strings.HasPrefix(f.path, "cmd/") {
			limit = maxCommandFunc
		}
		for _, fn := range f.funcs {
			if fn.lines > limit {
				t.Errorf("%s:%d: %s is %d lines, more than %d: split it into named steps", f.path, fn.line, fn.name, fn.lines, limit)
			}
		}
	}
}

// The command reads flags, opens what needs privileges, drops them, picks
// the writers and the exit status; the rest lives in packages.
func TestThinCommand(t *testing.T) {
	total := 0
	for _, f := range sources(t) {
		if strings.HasPrefix(f.path, "cmd/") {
			total += f.lines
		}
	}
	if total == 0 || total > maxCommand {
		t.Errorf("cmd/ holds %d lines of Go outside its tests, want at most %d", total, maxCommand)
	}
}
