package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// containerdSocket is the system containerd's socket: the CRI tests' own
// containerd listens there, and dockerd uses whatever answers there rather
// than the containerd it would start for itself.
const containerdSocket = "/run/containerd/containerd.sock"

// removeStaleSocket removes the Unix socket at path when nothing listens
// on it. A daemon killed at the end of an earlier session leaves its socket
// behind: dockerd, seeing containerd's, dials it and gives up after its
// timeout instead of starting its own.
func removeStaleSocket(path string) error {
	st, err := os.Lstat(path)
	if err != nil || st.Mode().Type() != fs.ModeSocket {
		return nil
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return nil
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the stale socket %s: %w", path, err)
	}
	return nil
}

// removeStalePidfile removes the pid file at path when the process it
// names is not comm: dockerd refuses to start while the PID in its pid file
// lives, and a daemon killed at the end of an earlier session leaves the
// file behind, its PID free for any process to take.
func removeStalePidfile(path, comm string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err == nil {
		if running, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.TrimSpace(string(running)) == comm {
			return nil
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the stale pid file %s: %w", path, err)
	}
	return nil
}

// startDaemon starts name with args in a session of its own, its output in
// logPath, and waits up to a minute for answers. A daemon that exits first
// fails at once, with the end of its log.
func startDaemon(logPath, name string, args []string, answers func() bool) error {
	log, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer log.Close()
	d := exec.Command(name, args...)
	d.Stdout, d.Stderr = log, log
	d.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := d.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- d.Wait() }()
	for deadline := time.Now().Add(60 * time.Second); !answers(); time.Sleep(250 * time.Millisecond) {
		select {
		case err := <-exited:
			return fmt.Errorf("%s exited (%v): %s (its log: %s)", name, err, lastLine(logPath), logPath)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer within 60 s: %s (its log: %s)", name, lastLine(logPath), logPath)
		}
	}
	return nil
}

// lastLine is the last non-empty line of the file at path, at most 500 bytes.
func lastLine(path string) string {
	data, _ := os.ReadFile(path)
	lines := bytes.Split(bytes.TrimSpace(data), []byte("\n"))
	last := lines[len(lines)-1]
	if len(last) > 500 {
		last = last[len(last)-500:]
	}
	return string(last)
}
