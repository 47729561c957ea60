package report

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"strings"
)

// The page's parts, kept as files of their own so that they read as what
// they are.
var (
	//go:embed page/report.html
	pageHTML string
	//go:embed page/report.js
	pageJS string
	//go:embed page/report.css
	pageCSS string
)

// CSP is the page's Content-Security-Policy: nothing from anywhere, its own
// script and style only, by their hashes. A comm of </script><img
// onerror=…> in the data could not run even if it escaped the JSON.
func CSP() string {
	return "default-src 'none'; script-src " + hash(pageJS) + "; style-src " + hash(pageCSS) +
		"; img-src 'none'; connect-src 'none'; font-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'"
}

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// Write writes the page of d. The data is JSON inside a script element that
// the browser does not run: encoding/json escapes <, > and & (and U+2028,
// U+2029), so nothing a process chose can close the element.
func Write(w io.Writer, d *Data) error {
	data, err := json.Marshal(d)
	if err != nil {
		return err
	}
	title := "nspidtrace report"
	if d.Host != "" {
		title += " of " + d.Host
	}
	page := strings.NewReplacer(
		"{{CSP}}", CSP(),
		"{{TITLE}}", html.EscapeString(title),
		"{{STYLE}}", pageCSS,
		"{{SCRIPT}}", pageJS,
		"{{DATA}}", string(data),
	).Replace(pageHTML)
	_, err = io.WriteString(w, page)
	return err
}
