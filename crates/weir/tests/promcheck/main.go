// Checks Prometheus' text exposition format on stdin with the parser of Prometheus' own Go libraries
// (github.com/prometheus/common/expfmt), which refuses a family whose HELP or TYPE comes twice, and checks that the
// samples of each family come together (a scraper may drop a family split in two). Prints each family and its
// number of samples; exits 1 naming the first problem.
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func main() {
	text, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("read: %v", err)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		fail("%v", err)
	}
	seen := map[string]bool{}
	current := ""
	lines := bufio.NewScanner(bytes.NewReader(text))
	for n := 1; lines.Scan(); n++ {
		line := lines.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name := strings.FieldsFunc(line, func(r rune) bool { return r == '{' || r == ' ' })[0]
		if name != current {
			if seen[name] {
				fail("line %d: the samples of %s are split by those of %s", n, name, current)
			}
			seen[name] = true
			current = name
		}
	}
	names := make([]string, 0, len(families))
	for name := range families {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Printf("%s %d\n", name, len(families[name].GetMetric()))
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}
