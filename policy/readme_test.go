package policy

import (
	"bufio"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

// tomlBlocks returns the ```toml blocks of a Markdown file with the line
// each starts on. If section is not "", only blocks under that "## "
// heading count.
func tomlBlocks(t *testing.T, path, section string) (blocks []string, lines []int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in, inBlock := section == "", false
	var b strings.Builder
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if section != "" && strings.HasPrefix(line, "## ") {
			in = line == "## "+section
		}
		switch {
		case !in:
		case !inBlock && line == "```toml":
			inBlock = true
			b.Reset()
			lines = append(lines, n+1)
		case inBlock && line == "```":
			inBlock = false
			blocks = append(blocks, b.String())
		case inBlock:
			b.WriteString(line + "\n")
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return blocks, lines
}

// TestReadme loads every TOML example of the README's "Policy" section
// and of the filters' READMEs, like CoreDNS's test/readme_test.go: the
// documentation cannot drift from the loader. Relative file names in the
// examples resolve against policy/testdata.
func TestReadme(t *testing.T) {
	root := testenv.ModuleRoot(t)
	type doc struct{ path, section string }
	docs := []doc{{filepath.Join(root, "README.md"), "Policy"}}
	readmes, _ := filepath.Glob(filepath.Join(root, "filters", "*", "README.md"))
	for _, r := range readmes {
		docs = append(docs, doc{r, ""})
	}
	total := 0
	for _, d := range docs {
		blocks, lines := tomlBlocks(t, d.path, d.section)
		for i, src := range blocks {
			total++
			name := filepath.Join("testdata", "readme.toml")
			p, err := Parse(name, []byte(src))
			if err != nil {
				t.Errorf("%s:%d: example does not load:\n%v", d.path, lines[i], err)
				continue
			}
			if len(p.Warnings) > 0 {
				t.Errorf("%s:%d: warnings %q", d.path, lines[i], p.Warnings)
			}
			p.Close()
		}
	}
	if total < 6 {
		t.Errorf("found only %d TOML examples: is the README section still there?", total)
	}
}

// TestReadmeDocumentsEveryKey checks that every key the loader accepts
// appears as a key in an example of the README's "Policy" section.
func TestReadmeDocumentsEveryKey(t *testing.T) {
	blocks, _ := tomlBlocks(t, filepath.Join(testenv.ModuleRoot(t), "README.md"), "Policy")
	text := strings.Join(blocks, "\n")
	seen := map[reflect.Type]bool{}
	var walk func(typ reflect.Type, path string)
	walk = func(typ reflect.Type, path string) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || seen[typ] {
			return
		}
		seen[typ] = true
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			key := f.Tag.Get("toml")
			if key == "" || key == "-" {
				continue
			}
			// As a key: "key =", "key.", "[key" or ".key]".
			re := regexp.MustCompile(`(?m)(^|[.\[\s])` + regexp.QuoteMeta(key) + `(\s*=|\.|\]|\s*$)`)
			if !re.MatchString(text) {
				t.Errorf("key %s.%s is not in any README example", path, key)
			}
			walk(f.Type, path+"."+key)
		}
	}
	walk(reflect.TypeOf(fileConfig{}), "policy")
}
