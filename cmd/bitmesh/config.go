package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The configuration file of `bitmesh node --config FILE` is YAML whose
// keys are the node's flag names and whose values are what the flags
// would be given: a scalar, or a list for a repeatable flag. A flag given
// on the command line wins over the file's key. An unknown key, or a value
// a flag refuses, is a usage error naming the file and line.

// maxConfigSize bounds a configuration file: far above any real one.
const maxConfigSize = 1 << 20

// applyConfigFile sets fs's flags from the file at path, except those
// already set on the command line.
func applyConfigFile(fs *flag.FlagSet, path string) error {
	b, err := readConfigFile(path)
	if err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("config %s: %v", path, err)
	}
	if len(doc.Content) == 0 {
		return nil // empty file
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return fmt.Errorf("config %s line %d: want a mapping of flag names to values", path, top.Line)
	}
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	seen := map[string]bool{}
	for i := 0; i+1 < len(top.Content); i += 2 {
		key, val := top.Content[i], top.Content[i+1]
		name := key.Value
		f := fs.Lookup(name)
		switch {
		case f == nil || name == "config" || name == "help":
			return fmt.Errorf("config %s line %d: unknown key %q (run 'bitmesh config default' for the keys)", path, key.Line, name)
		case seen[name]:
			return fmt.Errorf("config %s line %d: key %q given twice", path, key.Line, name)
		}
		seen[name] = true
		if onCommandLine[name] {
			continue
		}
		values, err := configValues(val)
		if err != nil {
			return fmt.Errorf("config %s line %d: %s: %v", path, val.Line, name, err)
		}
		if _, repeatable := f.Value.(*stringList); !repeatable && len(values) != 1 {
			return fmt.Errorf("config %s line %d: %s takes one value, not a list", path, val.Line, name)
		}
		for _, v := range values {
			if err := fs.Set(name, v); err != nil {
				return fmt.Errorf("config %s line %d: %s: %v", path, val.Line, name, err)
			}
		}
	}
	return nil
}

// configValues returns a scalar's value, or a list's values.
func configValues(n *yaml.Node) ([]string, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		return []string{n.Value}, nil
	case yaml.SequenceNode:
		out := make([]string, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return nil, errors.New("a list holds plain values only")
			}
			out = append(out, c.Value)
		}
		return out, nil
	}
	return nil, errors.New("want a value or a list of values")
}

func readConfigFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if len(b) > maxConfigSize {
		return nil, fmt.Errorf("config %s: larger than %d bytes", path, maxConfigSize)
	}
	return b, nil
}

func runConfig(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("config", "config default", stderr)
	pos, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if pos[0] != "default" {
		return usagef(fs, "unknown subcommand %q: want default", pos[0])
	}
	_, err = stdout.Write(defaultConfigFile(newNodeFlags(io.Discard).fs))
	return err
}

// defaultConfigFile renders every flag of fs (but config and help) as a
// commented key with its default value: a complete file that `bitmesh
// node --config` reads back to the defaults.
func defaultConfigFile(fs *flag.FlagSet) []byte {
	var b bytes.Buffer
	b.WriteString("# bitmesh node configuration: every key is a flag of 'bitmesh node',\n" +
		"# shown with its default. Flags given on the command line win over this file.\n" +
		"# Run 'bitmesh node --config FILE'.\n")
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "config" || f.Name == "help" {
			return
		}
		_, usage := flag.UnquoteUsage(f)
		b.WriteString("\n")
		for _, line := range wrap(usage, 76) {
			b.WriteString("# " + line + "\n")
		}
		fmt.Fprintf(&b, "%s: %s\n", f.Name, yamlDefault(f))
	})
	return b.Bytes()
}

// yamlDefault is f's default as a YAML value: a list for a repeatable
// flag, plain for a boolean or a number, else a string quoted if YAML
// would read it as anything else.
func yamlDefault(f *flag.Flag) string {
	if _, ok := f.Value.(*stringList); ok {
		return "[]"
	}
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return f.DefValue
	}
	if _, err := strconv.ParseFloat(f.DefValue, 64); err == nil {
		return f.DefValue
	}
	v, _ := yaml.Marshal(f.DefValue)
	return strings.TrimSuffix(string(v), "\n")
}

// wrap breaks s into lines of at most width runes at spaces.
func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return append(lines, line)
}
