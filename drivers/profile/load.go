package profile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxFileBytes bounds a profile file.
const MaxFileBytes = 64 << 10

// ErrInvalid marks profiles that failed to load or validate; the error is a Problems list.
var ErrInvalid = errors.New("profile: invalid")

// Problem is one thing wrong with a profile, at a file and line (0 when unknown).
type Problem struct {
	File string
	Line int
	Path string // key path, e.g. transport.endpoints.in; empty for the whole file
	Msg  string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		b.WriteString(":" + strconv.Itoa(p.Line))
	}
	b.WriteString(": ")
	if p.Path != "" {
		b.WriteString(p.Path + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every problem found, in file and line order. As an error it wraps ErrInvalid.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Unwrap makes errors.Is(ps, ErrInvalid) hold.
func (ps Problems) Unwrap() error { return ErrInvalid }

func (ps Problems) sort() {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].File != ps[j].File {
			return ps[i].File < ps[j].File
		}
		return ps[i].Line < ps[j].Line
	})
}

// err returns ps as an error, or nil when empty.
func (ps Problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	ps.sort()
	return ps
}

var (
	reTypeErrLine = regexp.MustCompile(`^line (\d+): (.*)$`)
	reUnknownKey  = regexp.MustCompile(`^field (.+) not found in type .*$`)
	reYAMLLine    = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
)

// Decode parses one profile from data; name is the file name used in problems. It reports syntax
// errors, unknown keys and wrong types (every one, with its line), but not semantic problems:
// run Validate for those. The profile is nil only when the YAML could not be parsed at all.
func Decode(name string, data []byte) (*Profile, Problems) {
	var ps Problems
	add := func(line int, path, format string, a ...any) {
		ps = append(ps, Problem{File: name, Line: line, Path: path, Msg: fmt.Sprintf(format, a...)})
	}
	if len(data) > MaxFileBytes {
		add(0, "", "file is %d bytes, more than %d", len(data), MaxFileBytes)
		return nil, ps
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			add(0, "", "empty file")
		} else {
			line, msg := yamlErrLine(err)
			add(line, "", "%s", msg)
		}
		return nil, ps
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		line := 0
		if err == nil {
			line = extra.Line
		}
		add(line, "", "more than one YAML document; a file holds one profile")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		add(root.Line, "", "a profile must be a mapping of keys to values")
		return nil, ps
	}
	p := &Profile{File: name, lines: map[string]int{}}
	index(root, "", p.lines)

	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(p); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			line, msg := yamlErrLine(err)
			add(line, "", "%s", msg)
			return nil, ps
		}
		for _, e := range te.Errors {
			line, msg := 0, e
			if m := reTypeErrLine.FindStringSubmatch(e); m != nil {
				line, _ = strconv.Atoi(m[1])
				msg = m[2]
			}
			path := ""
			if m := reUnknownKey.FindStringSubmatch(msg); m != nil {
				msg = fmt.Sprintf("unknown key %q", m[1])
				path = p.pathAt(line, m[1])
			} else {
				path = p.pathAt(line, "")
			}
			add(line, path, "%s", msg)
		}
	}
	p.File = name
	return p, ps
}

func yamlErrLine(err error) (int, string) {
	s := err.Error()
	if m := reYAMLLine.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n, m[2]
	}
	return 0, strings.TrimPrefix(s, "yaml: ")
}

// index records the line of every key path under n.
func index(n *yaml.Node, path string, lines map[string]int) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			if _, dup := lines[p]; !dup {
				lines[p] = k.Line
			}
			index(v, p, lines)
		}
	case yaml.SequenceNode:
		for i, v := range n.Content {
			p := path + "[" + strconv.Itoa(i) + "]"
			lines[p] = v.Line
			index(v, p, lines)
		}
	}
}

// pathAt returns the key path of key on line, or with key "" the deepest path on line (the first
// in sort order if several), or "".
func (p *Profile) pathAt(line int, key string) string {
	best := ""
	for path, l := range p.lines {
		if l != line || (key != "" && path != key && !strings.HasSuffix(path, "."+key)) {
			continue
		}
		if best == "" || len(path) > len(best) || (len(path) == len(best) && path < best) {
			best = path
		}
	}
	return best
}

// line returns the line of path, or of its nearest ancestor present in the file, or 1.
func (p *Profile) line(path string) int {
	for path != "" {
		if n, ok := p.lines[path]; ok {
			return n
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 1
}

// LoadFile loads and validates one profile file.
func LoadFile(path string) (*Profile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	p, ps := Decode(path, data)
	if p != nil {
		ps = append(ps, Validate([]*Profile{p})...)
	}
	return p, ps.err()
}

// LoadDir loads every *.yaml and *.yml file in dir and validates them together. On error it
// returns Problems listing everything wrong with every file; profiles is then nil.
func LoadDir(dir string) ([]*Profile, error) {
	var names []string
	for _, pat := range []string{"*.yaml", "*.yml"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return nil, fmt.Errorf("profile: %w", err)
		}
		names = append(names, m...)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, fmt.Errorf("profile: no *.yaml profiles in %s", dir)
	}
	var all Problems
	var out []*Profile
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("profile: %w", err)
		}
		p, ps := Decode(name, data)
		all = append(all, ps...)
		if p != nil {
			out = append(out, p)
		}
	}
	all = append(all, Validate(out)...)
	if err := all.err(); err != nil {
		return nil, err
	}
	return out, nil
}
