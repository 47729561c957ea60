package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/nspidtrace/nspidtrace/internal/metrics"
)

const daemonSetFile = "../../deploy/daemonset.yaml"

// decodeDaemonSet decodes a manifest strictly against the Kubernetes API
// types, as the API server's strict field validation does: field names are
// case-sensitive (encoding/json alone would take hostPid for hostPID), and
// an unknown field or a duplicate is an error.
func decodeDaemonSet(data []byte) (*appsv1.DaemonSet, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, err
	}
	var ds appsv1.DaemonSet
	strict, err := kjson.UnmarshalStrict(js, &ds, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return nil, err
	}
	if len(strict) > 0 {
		return nil, errors.Join(strict...)
	}
	return &ds, nil
}

// TestDaemonSetManifest checks deploy/daemonset.yaml: it decodes strictly,
// runs in the host's pid namespace with the least capabilities, mounts each
// host path where nspidtrace reads it, and its arguments are a valid
// nspidtrace command line naming the node on every line.
func TestDaemonSetManifest(t *testing.T) {
	data, err := os.ReadFile(daemonSetFile)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := decodeDaemonSet(data)
	if err != nil {
		t.Fatalf("%s: %v", daemonSetFile, err)
	}
	if ds.APIVersion != "apps/v1" || ds.Kind != "DaemonSet" {
		t.Errorf("apiVersion %q kind %q", ds.APIVersion, ds.Kind)
	}
	pod := ds.Spec.Template.Spec
	if !pod.HostPID {
		t.Error("hostPID is not set: the feed would see the pod's own processes only")
	}
	sel := ds.Spec.Selector.MatchLabels
	for k, v := range sel {
		if ds.Spec.Template.Labels[k] != v {
			t.Errorf("the selector's %s=%s is not on the pod template", k, v)
		}
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]

	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil {
		t.Fatal("no capabilities set")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("privileged: the capabilities listed are enough")
	}
	if !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("drop %v, want ALL", sc.Capabilities.Drop)
	}
	for _, want := range []corev1.Capability{"BPF", "PERFMON"} {
		if !slices.Contains(sc.Capabilities.Add, want) {
			t.Errorf("capabilities %v lack %s", sc.Capabilities.Add, want)
		}
	}
	if slices.Contains(sc.Capabilities.Add, "SYS_ADMIN") {
		t.Error("SYS_ADMIN is added: BPF and PERFMON do on the runtimes the manifest is for")
	}

	// Host paths are mounted where nspidtrace looks for them, read-only.
	volumes := map[string]*corev1.HostPathVolumeSource{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v.HostPath
	}
	for _, m := range c.VolumeMounts {
		hp := volumes[m.Name]
		switch {
		case hp == nil:
			t.Errorf("mount %s: no host path volume of that name", m.Name)
		case hp.Path != m.MountPath:
			t.Errorf("mount %s: host %s at %s; nspidtrace reads the host's paths where they are on the host", m.Name, hp.Path, m.MountPath)
		case !m.ReadOnly:
			t.Errorf("mount %s is writable", m.Name)
		}
	}
	for _, path := range []string{"/sys/kernel/btf", "/sys/kernel/tracing", "/sys/fs/cgroup"} {
		if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == path }) {
			t.Errorf("%s is not mounted", path)
		}
	}

	// The arguments, with the node's name substituted as the kubelet does,
	// are a command line nspidtrace accepts.
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName" {
			env[e.Name] = "node-1"
		}
	}
	args := slices.Clone(c.Args)
	for i, a := range args {
		for name, value := range env {
			a = strings.ReplaceAll(a, "$("+name+")", value)
		}
		args[i] = a
	}
	cmd, o, _, err := parseCommandLine(args, io.Discard)
	if err == nil && cmd != traceCommand && cmd != recordCommand {
		err = fmt.Errorf("the command is %s, not trace or record", cmd.name)
	}
	if err != nil {
		t.Fatalf("args %q: %v", c.Args, err)
	}
	if o.host != "node-1" {
		t.Errorf("args %q: --host is %q, want the node's name on every line", c.Args, o.host)
	}
	addr, err := metrics.ListenAddr(o.metrics)
	if err != nil || !strings.HasPrefix(addr, ":") {
		t.Errorf("--metrics %q (%s, %v): the pod's port must listen on every interface to be scraped", o.metrics, addr, err)
	}
	port := strings.TrimPrefix(addr, ":")
	if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool {
		return p.Name == "metrics" && strconv.Itoa(int(p.ContainerPort)) == port
	}) {
		t.Errorf("ports %+v lack metrics on %s", c.Ports, port)
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port.String() != "metrics" {
		t.Errorf("readiness probe %+v, want GET /healthz on the metrics port", p)
	}
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Error("no memory request or limit")
	}
	if !c.Resources.Limits.Cpu().IsZero() {
		t.Error("a CPU limit throttles the reader, and the kernel drops events")
	}
}

// TestDaemonSetManifestStrict proves the decoding above catches a typo: a
// misspelt field in a copy of the manifest fails.
func TestDaemonSetManifestStrict(t *testing.T) {
	data, err := os.ReadFile(daemonSetFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, typo := range [][2]string{
		{"hostPID: true", "hostPid: true"},
		{"readinessProbe:", "readynessProbe:"},
		{"fieldPath: spec.nodeName", "fieldpath: spec.nodeName"},
		{"containerPort: 9464", "containerPort: \"9464\""},
	} {
		if !strings.Contains(string(data), typo[0]) {
			t.Fatalf("the manifest has no %q to misspell", typo[0])
		}
		bad := strings.Replace(string(data), typo[0], typo[1], 1)
		if _, err := decodeDaemonSet([]byte(bad)); err == nil {
			t.Errorf("%q instead of %q decodes without an error", typo[1], typo[0])
		}
	}
}
