package watch

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/uniseg"

	"github.com/nspidtrace/nspidtrace/internal/pidmap"
	"github.com/nspidtrace/nspidtrace/internal/termsafe"
)

var (
	styleNormal  = tcell.StyleDefault
	styleBar     = tcell.StyleDefault.Reverse(true)
	styleTitles  = tcell.StyleDefault.Bold(true)
	styleNew     = tcell.StyleDefault.Foreground(tcell.ColorGreen)
	styleExited  = tcell.StyleDefault.Foreground(tcell.ColorRed)
	styleContext = tcell.StyleDefault.Dim(true)
	styleFlagged = tcell.StyleDefault.Foreground(tcell.ColorYellow).Bold(true)
)

// Column widths: a PID column wider than this is cut (32 levels of PIDs
// would fill any screen), and user names are cut as ps cuts them.
const (
	maxPIDsWidth = 40
	maxUserWidth = 12
	ageWidth     = 4
)

// draw paints the whole screen from the current frame.
func (a *App) draw() {
	a.screen.Clear()
	w, h := a.screen.Size()
	a.drawHeader(w)
	if a.mode == modeDetails {
		a.drawDetails(w, h)
	} else {
		a.drawRows(w, h)
	}
	a.drawFooter(w, h)
	a.screen.Show()
}

func (a *App) drawHeader(w int) {
	f := &a.frame
	parts := []string{"nspidtrace watch"}
	if a.tl != nil {
		// The cursor first: it is what a replay is about, and the title
		// (the file) is long.
		pos := a.tl.Position()
		at := a.tl.Instant()
		offset := float64(at-a.tl.Start()) / 1e9
		play := "paused"
		if a.playing {
			play = "▶ " + strconv.FormatFloat(a.speed, 'g', 4, 64) + "x"
		}
		parts = append(parts, play, fmt.Sprintf("event %d/%d", pos, a.tl.Positions()),
			fmt.Sprintf("%s (+%.3fs)", pidmap.FormatTime(at), offset))
	}
	if a.tl == nil {
		// What changes, and what is alarming, first: a narrow terminal
		// cuts the end, where the title is.
		parts = append(parts, pidmap.FormatTime(f.Now)[11:19]+"Z")
		if a.paused {
			parts = append(parts, "PAUSED")
		}
		parts = append(parts, fmt.Sprintf("%d lost", f.Lost), fmt.Sprintf("%.0f events/s", a.rate))
	}
	parts = append(parts, fmt.Sprintf("%d of %d processes", len(f.Rows), f.Processes), fmt.Sprintf("%d pid ns", f.Namespaces), f.Title)
	fill(a.screen, 0, w, styleBar)
	drawText(a.screen, 0, 0, w, strings.Join(parts, " │ "), styleBar)
}

// drawRows draws the column titles and the rows that fit, scrolled to keep
// the selection on screen.
func (a *App) drawRows(w, h int) {
	rows := a.frame.Rows
	n := a.rowsOnScreen()
	if a.cursor < a.top {
		a.top = a.cursor
	} else if a.cursor >= a.top+n {
		a.top = a.cursor - n + 1
	}
	a.top = max(0, min(a.top, len(rows)-n))

	pidsW, userW := len("PID"), len("USER")
	for _, r := range rows {
		pidsW = max(pidsW, len(r.PIDs))
		userW = max(userW, uniseg.StringWidth(termsafe.String(r.User)))
	}
	pidsW, userW = min(pidsW, maxPIDsWidth), min(userW, maxUserWidth)

	pidTitle := "PID"
	if a.st.Level > 0 {
		pidTitle = fmt.Sprintf("PID@%d", a.st.Level)
	} else if a.maxLevel > 0 {
		pidTitle = "PID (host/…)"
	}
	pidsW = max(pidsW, len(pidTitle))
	titles := fmt.Sprintf("  %-*s %-*s %*s COMMAND", pidsW, pidTitle, userW, "USER", ageWidth, "AGE")
	drawText(a.screen, 0, 1, w, titles, styleTitles)

	for i := 0; i < n && a.top+i < len(rows); i++ {
		r := &rows[a.top+i]
		style := styleNormal
		mark := " "
		switch {
		case r.Exited:
			style, mark = styleExited, "✗"
		case r.New:
			style, mark = styleNew, "+"
		case r.Context:
			style = styleContext
		}
		if a.top+i == a.cursor {
			style = style.Reverse(true)
			fill(a.screen, 2+i, w, style)
		}
		y := 2 + i
		x := drawText(a.screen, 0, y, w, mark, style)
		if r.Flagged {
			// The findings' column: what looks wrong, whatever else the
			// row says (the names are in its notes, why in its details).
			x = drawText(a.screen, x, y, w, "!", styleFlagged)
		} else {
			x = drawText(a.screen, x, y, w, " ", style)
		}
		drawText(a.screen, x, y, x+pidsW, cut(r.PIDs, pidsW), style)
		x += pidsW + 1
		drawText(a.screen, x, y, x+userW, r.User, style)
		x += userW + 1
		age := Age(r.Start, a.frame.Now)
		drawText(a.screen, x+ageWidth-len(age), y, w, age, style)
		x += ageWidth + 1
		x = drawText(a.screen, x, y, w, r.Prefix, style)
		x = drawText(a.screen, x, y, w, r.Comm, style.Bold(true))
		if r.Exited {
			x = drawText(a.screen, x, y, w, " ["+r.Exit+"]", style)
		}
		if r.Hidden > 0 {
			x = drawText(a.screen, x, y, w, fmt.Sprintf(" {+%d}", r.Hidden), style)
		}
		if r.Args != "" {
			x = drawText(a.screen, x+1, y, w, r.Args, style)
		}
		if r.Notes != "" {
			drawSafe(a.screen, x+1, y, w, r.Notes, style)
		}
	}
	if len(rows) == 0 {
		msg := "no process to show"
		if a.st.Filter != "" {
			msg = "no process matches the filter " + strconv.Quote(a.st.Filter) + " (Esc clears it)"
		}
		drawText(a.screen, 2, 2, w, msg, styleContext)
	}
}

func (a *App) drawDetails(w, h int) {
	lines := a.detailLines()
	for i := 0; i < a.rowsOnScreen()+1 && a.detTop+i < len(lines); i++ {
		drawSafe(a.screen, 1, 1+i, w, lines[a.detTop+i], styleNormal)
	}
}

// detailLines are the details made safe and wrapped to the screen's
// width: a long value (credentials, a cgroup path) continues on the next
// lines, indented, rather than being cut.
func (a *App) detailLines() []string {
	w, _ := a.screen.Size()
	width := max(w-2, 8) // a column's margin on each side
	var out []string
	for _, line := range a.details {
		line = termsafe.String(line)
		for first := true; ; first = false {
			if !first {
				line = "      " + line
			}
			head, rest := cutWidth(line, width)
			out = append(out, head)
			if rest == "" {
				break
			}
			line = rest
		}
	}
	return out
}

// cutWidth splits text at width columns, between graphemes.
func cutWidth(text string, width int) (head, rest string) {
	g := uniseg.NewGraphemes(text)
	x := 0
	for g.Next() {
		if x+g.Width() > width {
			from, _ := g.Positions()
			return text[:from], text[from:]
		}
		x += g.Width()
	}
	return text, ""
}

func (a *App) drawFooter(w, h int) {
	y := h - 1
	fill(a.screen, y, w, styleBar)
	var text string
	switch {
	case a.mode == modeFilter:
		text = "filter (comm or PID; Enter keeps it, Esc clears it): " + string(a.input) + "█"
	case a.mode == modeGoto:
		text = "go to (2026-11-23T10:03:00Z, or +90s from the start; Esc cancels): " + string(a.input) + "█"
	case a.status != "":
		text = a.status
	case a.frame.Note != "":
		text = a.frame.Note
	case a.mode == modeDetails:
		text = "↑↓ scroll · Esc back"
	case a.tl != nil:
		text = "q quit · p play · ←→ event · [ ] ±10s · g go to · +- speed · / filter · space fold · l level · Enter details · ? keys"
	default:
		text = "q quit · p pause · / filter · space fold · l level · Enter details · ? keys"
	}
	if a.st.Filter != "" && a.mode != modeFilter {
		text = "[filter: " + a.st.Filter + "] " + text
	}
	drawText(a.screen, 0, y, w, text, styleBar)
}

// cut shortens an ASCII text to width, marking the cut.
func cut(text string, width int) string {
	if len(text) <= width {
		return text
	}
	return text[:width-1] + "…"
}

// fill paints row y in style.
func fill(s tcell.Screen, y, w int, style tcell.Style) {
	for x := range w {
		s.SetContent(x, y, ' ', nil, style)
	}
}

// drawText draws text, made safe for the terminal, from x up to (not
// including) column end, and returns the column after it. Every string a
// process controls reaches the screen through here.
func drawText(s tcell.Screen, x, y, end int, text string, style tcell.Style) int {
	return drawSafe(s, x, y, end, termsafe.String(text), style)
}

// drawSafe draws text already made safe for the terminal.
func drawSafe(s tcell.Screen, x, y, end int, text string, style tcell.Style) int {
	g := uniseg.NewGraphemes(text)
	for g.Next() {
		width := g.Width()
		if width == 0 {
			continue
		}
		if x+width > end {
			break
		}
		runes := g.Runes()
		s.SetContent(x, y, runes[0], runes[1:], style)
		x += width
	}
	return x
}
