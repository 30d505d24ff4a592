package repocheck

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// testenvPath is the package that holds the rule for skips: skip naming
// why, but fail under CI=true.
const testenvPath = "github.com/traceflow-fast/traceflow-fast/internal/testenv"

// TestSkipsGoThroughTestenv holds every Go file of the module, tests
// included, to the rule for skips: no t.Skip, t.Skipf or t.SkipNow, no
// testing.Short and no reading of $CI outside internal/testenv, whose
// functions decide (and fail under CI=true instead of skipping).
func TestSkipsGoThroughTestenv(t *testing.T) {
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") && path != root) {
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() || !strings.HasSuffix(path, ".go") || filepath.ToSlash(filepath.Dir(rel)) == "internal/testenv" {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		bad, err := bypasses(filepath.ToSlash(rel), src)
		for _, b := range bad {
			t.Error(b)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 100 {
		t.Fatalf("read %d Go files under %s: not the module", files, root)
	}
}

// bypasses lists the places of a Go source that skip or read $CI without
// internal/testenv.
func bypasses(name string, src []byte) ([]string, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	imported := map[string]string{} // local name -> import path
	for _, im := range f.Imports {
		p, _ := strconv.Unquote(im.Path.Value)
		local := p[strings.LastIndex(p, "/")+1:]
		if im.Name != nil {
			local = im.Name.Name
		}
		imported[local] = p
	}
	var bad []string
	report := func(n ast.Node, what string) {
		bad = append(bad, fmt.Sprintf("%s: %s: skip through internal/testenv (Skip, Skipf, SkipPart, SkipIfShort, InCI), which fails under CI=true",
			fset.Position(n.Pos()), what))
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.SelectorExpr:
			pkg := ""
			if id, ok := x.X.(*ast.Ident); ok {
				pkg = imported[id.Name]
			}
			switch {
			case pkg == "testing" && x.Sel.Name == "Short":
				report(x, "testing.Short")
			case pkg == "" && (x.Sel.Name == "Skip" || x.Sel.Name == "Skipf" || x.Sel.Name == "SkipNow"):
				report(x, "a direct "+x.Sel.Name)
			}
		case *ast.CallExpr:
			if readsCI(x, imported) {
				report(x, "reads $CI")
			}
		}
		return true
	})
	return bad, nil
}

// readsCI says whether call is os.Getenv("CI") or os.LookupEnv("CI").
func readsCI(call *ast.CallExpr, imported map[string]string) bool {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || len(call.Args) != 1 || sel.Sel.Name != "Getenv" && sel.Sel.Name != "LookupEnv" {
		return false
	}
	if id, ok := sel.X.(*ast.Ident); !ok || imported[id.Name] != "os" {
		return false
	}
	lit, ok := call.Args[0].(*ast.BasicLit)
	return ok && lit.Kind == token.STRING && lit.Value == `"CI"`
}

// TestBypasses checks the check on sources that bypass the rule and on
// one that keeps it.
func TestBypasses(t *testing.T) {
	const bypassing = `package x

import (
	"os"
	tt "testing"
)

func helper(tb tt.TB) {
	if os.Getenv("CI") == "true" {
		tb.Fatal("no")
	}
	if tt.Short() {
		tb.Skip("slow")
	}
	tb.Skipf("%d", 1)
	tb.SkipNow()
}
`
	bad, err := bypasses("x_test.go", []byte(bypassing))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"x_test.go:9:5: reads $CI", "x_test.go:12:5: testing.Short", "x_test.go:13:3: a direct Skip",
		"x_test.go:15:2: a direct Skipf", "x_test.go:16:2: a direct SkipNow"}
	if len(bad) != len(want) {
		t.Fatalf("found %d bypasses, want %d: %q", len(bad), len(want), bad)
	}
	for i, w := range want {
		if !strings.HasPrefix(bad[i], w+":") {
			t.Errorf("bypass %d: %q, want %q", i, bad[i], w)
		}
	}

	const keeping = `package x

import (
	"testing"

	"github.com/traceflow-fast/traceflow-fast/internal/testenv"
	tracer "example.com/tracer"
)

func TestX(t *testing.T) {
	testenv.SkipIfShort(t, "slow")
	testenv.Skip(t, "needs a unicorn")
	_ = tracer.Skip{}
	_ = tracer.OnSkip
}
`
	if bad, err := bypasses("y_test.go", []byte(keeping)); err != nil || len(bad) > 0 {
		t.Errorf("a file keeping the rule: %q, %v", bad, err)
	}
}
