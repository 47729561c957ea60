// Package pidmap knows processes across pid namespaces: the kernel's truth
// as procfs shows it, read the same way for the /proc fallback and for tests.
package pidmap
