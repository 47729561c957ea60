package events

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Header is the first line of a recording (docs/recordings.md).
type Header struct {
	Format   string
	Version  int
	Hostname string
	Kernel   string
	BootID   string
	Start    int64 // Unix ns
}

// RecordFormat names nspidtrace recordings in their header.
const RecordFormat = "nspidtrace-record"

// ErrHeader is returned by Parse for a header line; ParseHeader reads it.
var ErrHeader = errors.New("header line")

// AppendHeader appends h as the recording's first line.
func AppendHeader(buf []byte, h *Header) []byte {
	buf = append(buf, `{"type":"header","format":`...)
	buf = appendString(buf, []byte(h.Format))
	buf = append(buf, `,"version":`...)
	buf = strconv.AppendInt(buf, int64(h.Version), 10)
	buf = append(buf, `,"hostname":`...)
	buf = appendString(buf, []byte(h.Hostname))
	buf = append(buf, `,"kernel":`...)
	buf = appendString(buf, []byte(h.Kernel))
	buf = append(buf, `,"boot_id":`...)
	buf = appendString(buf, []byte(h.BootID))
	buf = append(buf, `,"start":"`...)
	buf = AppendTime(buf, h.Start)
	return append(buf, "\"}\n"...)
}

// ParseHeader reads a recording's header line.
func ParseHeader(line []byte) (Header, error) {
	var h Header
	p := parser{b: line}
	err := p.object(func(key []byte) error {
		switch string(key) {
		case "format", "hostname", "kernel", "boot_id", "start", "type":
			k := string(key)
			s, err := p.string()
			switch k {
			case "format":
				h.Format = string(s)
			case "hostname":
				h.Hostname = string(s)
			case "kernel":
				h.Kernel = string(s)
			case "boot_id":
				h.BootID = string(s)
			case "start":
				ts, terr := time.Parse(time.RFC3339Nano, string(s))
				if terr != nil {
					return fmt.Errorf("bad start %q", s)
				}
				h.Start = ts.UnixNano()
			}
			return err
		case "version":
			n, err := p.number()
			h.Version = int(n)
			return err
		}
		return p.skip()
	})
	return h, err
}
