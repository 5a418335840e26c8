// Command sdk checks Grafana dashboard JSON files with the Grafana foundation SDK:
// a strict decode (unknown keys, wrong types and missing required fields are errors,
// panel options and queries included through the registered plugins) followed by
// Validate. It prints "ok" per valid file, one line per error otherwise, and exits 1 when
// any file fails.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

func check(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var board dashboard.Dashboard
	if err := orNil(board.UnmarshalJSONStrict(raw)); err != nil {
		return fmt.Errorf("strict decode: %w", err)
	}
	if err := orNil(board.Validate()); err != nil {
		return fmt.Errorf("validate: %w", err)
	}
	return nil
}

// orNil turns the empty error list the generated code returns on success (a typed nil
// cog.BuildErrors inside a non-nil error) into nil.
func orNil(err error) error {
	var list cog.BuildErrors
	if errors.As(err, &list) && len(list) == 0 {
		return nil
	}
	return err
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: sdk DASHBOARD.json...")
		os.Exit(2)
	}
	plugins.RegisterDefaultPlugins()
	failed := false
	for _, path := range os.Args[1:] {
		if err := check(path); err != nil {
			// One line per error, each naming its file, as validate.mjs prints them.
			for _, line := range strings.Split(err.Error(), "\n") {
				fmt.Printf("%s: %s\n", path, line)
			}
			failed = true
			continue
		}
		fmt.Printf("%s: ok\n", path)
	}
	if failed {
		os.Exit(1)
	}
}
