package container

import (
	"errors"
	"strings"
	"testing"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/fault"
)

// TestSelect resolves --container as docker does, and refuses a name that
// several containers have: two pods may each run a container called web.
func TestSelect(t *testing.T) {
	id := func(c byte) string { return strings.Repeat(string(c), 64) }
	pod := func(ns, name string) *events.Pod { return &events.Pod{Namespace: ns, Name: name} }
	shopWeb := &events.Container{ID: id('a'), Name: "web", Runtime: "containerd", Pod: pod("shop", "web-1")}
	devWeb := &events.Container{ID: id('b'), Name: "web", Runtime: "containerd", Pod: pod("dev", "web-2")}
	db := &events.Container{ID: "ab" + id('c')[2:], Name: "db", Runtime: "docker"}
	// A container restarted in its pod: a new ID, the same name there.
	shopWebAgain := &events.Container{ID: id('d'), Name: "web", Runtime: "containerd", Pod: pod("shop", "web-1")}
	cs := []*events.Container{shopWeb, devWeb, db, shopWeb}

	for arg, want := range map[string]*events.Container{
		"shop/web-1/web": shopWeb,
		"dev/web-2/web":  devWeb,
		"db":             db,
		id('b'):          devWeb,
		"bbbb":           devWeb,
	} {
		if got, err := Select(cs, arg); err != nil || got != want {
			t.Errorf("Select(%q) = %+v, %v; want %s", arg, got, err, want.Qualified())
		}
	}
	_, err := Select(cs, "web")
	if !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), "dev/web-2/web (bbbbbbbbbbbb), shop/web-1/web (aaaaaaaaaaaa)") {
		t.Errorf("Select(web) in two pods: %v, want both named", err)
	}
	if _, err := Select(cs, "a"); !errors.Is(err, ErrAmbiguous) {
		t.Errorf("Select(a), a prefix of two IDs: %v", err)
	}
	if got, err := Select([]*events.Container{shopWeb, shopWebAgain}, "web"); err != nil || got != shopWeb {
		t.Errorf("one pod's web, restarted: %+v, %v; want one container", got, err)
	}
	if _, err := Select(cs, "nosuch"); !errors.Is(err, ErrNoContainer) {
		t.Errorf("Select(nosuch): %v", err)
	}
}

// TestSelectPod resolves --pod NAMESPACE/NAME to every container of the
// pod, its sandbox too, and says which pods there are when none matches.
func TestSelectPod(t *testing.T) {
	id := func(c byte) string { return strings.Repeat(string(c), 64) }
	pod := func(ns, name, uid string) *events.Pod { return &events.Pod{Namespace: ns, Name: name, UID: uid} }
	sandbox := &events.Container{ID: id('a'), Name: SandboxName, Pod: pod("shop", "web-1", "u1")}
	app := &events.Container{ID: id('b'), Name: "app", Pod: pod("shop", "web-1", "u1")}
	other := &events.Container{ID: id('c'), Name: "app", Pod: pod("dev", "web-1", "u2")}
	plain := &events.Container{ID: id('d'), Name: "web-1"}
	cs := []*events.Container{sandbox, app, other, plain, app}

	ref, err := ParsePod("shop/web-1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := SelectPod(cs, ref)
	if err != nil || len(got) != 2 || got[0] != sandbox || got[1] != app {
		t.Errorf("SelectPod(shop/web-1) = %v, %v; want its sandbox and app", got, err)
	}
	ref, _ = ParsePod("shop/web-2")
	if _, err := SelectPod(cs, ref); !errors.Is(err, ErrNoPod) || !strings.Contains(err.Error(), "dev/web-1, shop/web-1") {
		t.Errorf("SelectPod(shop/web-2): %v, want the pods there are named", err)
	}
	// Run in a container without the runtime's state, pods have the UID
	// of their kubepods cgroups and no name: the error says so.
	uidOnly := &events.Container{ID: id('f'), Pod: &events.Pod{UID: "u4"}}
	if _, err := SelectPod([]*events.Container{uidOnly}, ref); !errors.Is(err, ErrNoPod) || !strings.Contains(err.Error(), "no pod has processes; pods known only by their cgroups' UID: 1,") {
		t.Errorf("SelectPod among unnamed pods: %v", err)
	}
	// A pod deleted and made again under its name, both running: two UIDs.
	again := &events.Container{ID: id('e'), Name: "app", Pod: pod("shop", "web-1", "u3")}
	ref, _ = ParsePod("shop/web-1")
	if _, err := SelectPod(append(cs, again), ref); !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), "u1 and u3") {
		t.Errorf("two pods of one name: %v", err)
	}
	for _, bad := range []string{"web-1", "/web-1", "shop/", "shop/web/app", ""} {
		var usage fault.Usage
		if _, err := ParsePod(bad); !errors.As(err, &usage) {
			t.Errorf("ParsePod(%q): %v, want a usage error", bad, err)
		} else if strings.Contains(err.Error(), "--container") != (bad == "shop/web/app") {
			t.Errorf("ParsePod(%q): %v: --container is the hint for NAMESPACE/POD/NAME alone", bad, err)
		}
	}
}
