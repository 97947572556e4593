package config

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// decode applies data onto c, key by key, so that every unknown key and every
// type error is reported, not just the first. It returns the line of each key
// found (nil on a syntax error). requireAll also reports keys missing from data.
func decode(data []byte, c *Config, requireAll bool) (map[string]int, []Problem) {
	var root map[string]toml.Primitive
	md, err := toml.Decode(string(data), &root)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, []Problem{{Line: pe.Position.Line, Key: pe.LastKey, Msg: "syntax error: " + pe.Message}}
		}
		return nil, []Problem{{Msg: "syntax error: " + err.Error()}}
	}
	d := &decoder{md: &md, lines: map[string]int{}, requireAll: requireAll}
	d.table(nil, root, reflect.ValueOf(c).Elem())
	sortProblems(d.probs)
	return d.lines, d.probs
}

type decoder struct {
	md         *toml.MetaData
	lines      map[string]int
	requireAll bool
	probs      []Problem
}

func (d *decoder) add(line int, key toml.Key, format string, args ...any) {
	d.probs = append(d.probs, Problem{Line: line, Key: key.String(), Msg: fmt.Sprintf(format, args...)})
}

// table decodes the keys of one TOML table into the struct rv.
func (d *decoder) table(prefix toml.Key, m map[string]toml.Primitive, rv reflect.Value) {
	fields := tomlFields(rv.Type())
	for name, prim := range m {
		key := join(prefix, name)
		i, ok := fields[name]
		if !ok {
			line := d.firstLine(prim)
			d.add(line, key, "unknown key %q%s", key.String(), suggest(prefix, name))
			continue
		}
		d.value(key, prim, rv.Field(i))
	}
	if d.requireAll {
		for name := range fields {
			if _, ok := m[name]; !ok {
				d.add(0, join(prefix, name), "%s: missing", join(prefix, name))
			}
		}
	}
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// value decodes one key into the field fv, checking its TOML type first.
func (d *decoder) value(key toml.Key, prim toml.Primitive, fv reflect.Value) {
	line := d.firstLine(prim)
	d.lines[key.String()] = line
	var raw any
	if err := d.md.PrimitiveDecode(prim, &raw); err != nil {
		d.add(line, key, "%s: %v", key, err)
		return
	}
	bad := func(want string) { d.add(line, key, "%s: must be %s, not %s", key, want, describe(raw)) }

	if reflect.PointerTo(fv.Type()).Implements(textUnmarshaler) {
		s, ok := raw.(string)
		if !ok {
			if fv.Type() == reflect.TypeFor[Duration]() {
				bad(`a duration string such as "90s" or "5m"`)
			} else {
				bad("a string")
			}
			return
		}
		if err := fv.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			d.add(line, key, "%s: %v", key, err)
		}
		return
	}
	switch fv.Kind() {
	case reflect.Struct:
		if _, ok := raw.(map[string]any); !ok {
			bad(fmt.Sprintf("a table ([%s])", key))
			return
		}
		var sub map[string]toml.Primitive
		if err := d.md.PrimitiveDecode(prim, &sub); err != nil {
			d.add(line, key, "%s: %v", key, err)
			return
		}
		d.table(key, sub, fv)
	case reflect.String:
		if s, ok := raw.(string); ok {
			fv.SetString(s)
		} else {
			bad("a string")
		}
	case reflect.Bool:
		if b, ok := raw.(bool); ok {
			fv.SetBool(b)
		} else {
			bad("true or false")
		}
	case reflect.Int:
		if n, ok := raw.(int64); ok {
			fv.SetInt(n)
		} else {
			bad("an integer")
		}
	case reflect.Slice: // []string or []int
		arr, ok := raw.([]any)
		elem := "strings"
		if fv.Type().Elem().Kind() == reflect.Int {
			elem = "integers"
		}
		if !ok {
			bad("an array of " + elem)
			return
		}
		out := reflect.MakeSlice(fv.Type(), 0, len(arr))
		for i, e := range arr {
			var v reflect.Value
			switch x := e.(type) {
			case string:
				if elem == "strings" {
					v = reflect.ValueOf(x)
				}
			case int64:
				if elem == "integers" {
					v = reflect.ValueOf(int(x))
				}
			}
			if !v.IsValid() {
				d.add(line, key, "%s: element %d must be %s, not %s", key, i+1, map[string]string{"strings": "a string", "integers": "an integer"}[elem], describe(e))
				return
			}
			out = reflect.Append(out, v)
		}
		fv.Set(out)
	default:
		panic("config: unsupported field type " + fv.Type().String())
	}
}

// firstLine is the line where prim's key is defined; for a table only implied
// by dotted keys (a.b = 1), the first line of its contents.
func (d *decoder) firstLine(prim toml.Primitive) int {
	if l := d.line(prim); l > 0 {
		return l
	}
	var sub map[string]toml.Primitive
	if d.md.PrimitiveDecode(prim, &sub) != nil {
		return 0
	}
	first := 0
	for _, p := range sub {
		if l := d.firstLine(p); l > 0 && (first == 0 || l < first) {
			first = l
		}
	}
	return first
}

// line asks the toml package where prim's key is: the package records
// positions but only exposes them in the ParseError of a failed decode.
func (d *decoder) line(prim toml.Primitive) int {
	var pe toml.ParseError
	if errors.As(d.md.PrimitiveDecode(prim, &lineProbe{}), &pe) {
		return pe.Position.Line
	}
	return 0
}

type lineProbe struct{}

var errProbe = errors.New("probe")

func (*lineProbe) UnmarshalTOML(any) error { return errProbe }

// tomlFields maps each toml tag of struct type t to its field index.
func tomlFields(t reflect.Type) map[string]int {
	m := map[string]int{}
	for i := range t.NumField() {
		if tag := t.Field(i).Tag.Get("toml"); tag != "" {
			m[tag] = i
		}
	}
	return m
}

func join(prefix toml.Key, name string) toml.Key {
	return append(append(toml.Key{}, prefix...), name)
}

// describe names the TOML type of a decoded value for messages.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", v)
	case int64:
		return fmt.Sprintf("the integer %d", v)
	case float64:
		return fmt.Sprintf("the float %v", v)
	case bool:
		return fmt.Sprintf("%v", v)
	case []any:
		return "an array"
	case []map[string]any:
		return "an array of tables"
	case map[string]any:
		return "a table"
	case time.Time:
		return "a date/time"
	}
	return fmt.Sprintf("a %T", v)
}

// suggest returns " (did you mean ...?)" for a likely intended key, or "".
func suggest(prefix toml.Key, name string) string {
	all := knownKeys()
	here := prefix.String()
	best, bestDist := "", 3
	for _, k := range all {
		i := strings.LastIndexByte(k, '.')
		parent, last := "", k
		if i >= 0 {
			parent, last = k[:i], k[i+1:]
		}
		if parent != here {
			continue
		}
		if dist := editDistance(strings.ToLower(name), last); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	// The right name in the wrong place.
	for _, k := range all {
		i := strings.LastIndexByte(k, '.')
		if k[i+1:] != name {
			continue
		}
		if i < 0 {
			return fmt.Sprintf(" (%q is a top-level key: put it before the first [section])", k)
		}
		return fmt.Sprintf(" (did you mean %q, under [%s]?)", k, k[:i])
	}
	return ""
}

// knownKeys lists every dotted key of Config.
func knownKeys() []string {
	var out []string
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("toml")
			if tag == "" {
				continue
			}
			k := prefix + tag
			out = append(out, k)
			if f.Type.Kind() == reflect.Struct && !reflect.PointerTo(f.Type).Implements(textUnmarshaler) {
				walk(k+".", f.Type)
			}
		}
	}
	walk("", reflect.TypeFor[Config]())
	return out
}

// editDistance is the Damerau-Levenshtein (optimal string alignment) distance.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
