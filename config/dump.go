package config

import (
	"io"
	"os"
)

// Dump writes the configuration like "nginx -T" (ngx_dump_config in
// nginx.c): for every file, in the order first read,
// "# configuration file PATH:\n", the raw content and a newline. The content
// is the one Load parsed; for a Config not made by Load the files are read
// from disk. Dump may be called from any goroutine.
func Dump(w io.Writer, c *Config) error {
	for _, name := range c.Files {
		src, ok := c.contents[name]
		if !ok {
			var err error
			if src, err = os.ReadFile(name); err != nil {
				return err
			}
		}
		if _, err := io.WriteString(w, "# configuration file "+name+":\n"); err != nil {
			return err
		}
		if _, err := w.Write(src); err != nil {
			return err
		}
		if _, err := io.WriteString(w, "\n"); err != nil {
			return err
		}
	}
	return nil
}
