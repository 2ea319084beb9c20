package benchmd

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// WriteSection replaces the "## <title>" section of file (up to the next "## " heading), appending it when absent
// and creating the file (with a "# Benchmarks" heading) when missing. section starts with its own heading; it is
// ended with a blank line so the next section stays separated.
func WriteSection(file, title, section string) error {
	old, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", file, err)
	}
	section = strings.TrimRight(section, "\n") + "\n\n"
	text := string(old)
	if text == "" {
		text = "# Benchmarks\n\n"
	}
	head := "## " + title + "\n"
	start := strings.Index(text, head)
	if start < 0 {
		if !strings.HasSuffix(text, "\n\n") {
			text = strings.TrimRight(text, "\n") + "\n\n"
		}
		text += section
	} else {
		end := len(text)
		if i := strings.Index(text[start+len(head):], "\n## "); i >= 0 {
			end = start + len(head) + i + 1
		}
		text = text[:start] + section + text[end:]
	}
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}
