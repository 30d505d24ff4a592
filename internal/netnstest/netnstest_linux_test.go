package netnstest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// inode returns the inode of a namespace file.
func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func exists(name string) bool {
	_, err := os.Stat("/run/netns/" + name)
	return err == nil
}

func TestSet(t *testing.T) {
	var names []string
	t.Run("build", func(t *testing.T) {
		s := New(t, "z", "a", "b")
		names = []string{s.NS("a"), s.NS("b")}
		if Creator(s.NS("a")) != os.Getpid() || !strings.HasPrefix(s.NS("a"), s.Prefix()+"-") {
			t.Errorf("name %q does not follow the package's pattern", s.NS("a"))
		}
		s.Veth("a", "va", "02:74:66:0e:00:01", "10.66.0.1/24", "b", "vb", "02:74:66:0e:00:02", "10.66.0.2/24")
		if out := s.Exec("a", "sysctl", "-n", "net.ipv4.icmp_ratelimit"); strings.TrimSpace(out) != "0" {
			t.Errorf("icmp_ratelimit = %q; want 0", out)
		}
		if out := s.NSIP("b", "-br", "addr", "show", "dev", "vb"); !strings.Contains(out, "10.66.0.2/24") || !strings.Contains(out, "UP") {
			t.Errorf("vb in b: %q; want up with 10.66.0.2/24", out)
		}
		// In must run fn in the namespace: same inode, the veth end there,
		// and a datagram from a reaches a socket in b.
		var rcv int
		s.In(t, "b", func() (err error) {
			if got, want := inode(t, "/proc/thread-self/ns/net"), inode(t, "/run/netns/"+s.NS("b")); got != want {
				return fmt.Errorf("thread in netns inode %d; want %d", got, want)
			}
			if rcv, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
				return err
			}
			return unix.Bind(rcv, &unix.SockaddrInet4{Port: 7777, Addr: [4]byte{10, 66, 0, 2}})
		})
		defer unix.Close(rcv)
		In(t, s.NS("a"), func() error {
			if _, err := net.InterfaceByName("va"); err != nil {
				return err
			}
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			return unix.Sendto(fd, []byte("hello"), 0, &unix.SockaddrInet4{Port: 7777, Addr: [4]byte{10, 66, 0, 2}})
		})
		_ = unix.SetsockoptTimeval(rcv, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 2})
		buf := make([]byte, 16)
		if n, _, err := unix.Recvfrom(rcv, buf, 0); err != nil || string(buf[:n]) != "hello" {
			t.Errorf("datagram a -> b: %q, %v", buf[:n], err)
		}
		if _, err := net.InterfaceByName("va"); err == nil {
			t.Error("va visible outside the namespace")
		}
		for _, n := range names {
			if !exists(n) {
				t.Errorf("namespace %s missing during the test", n)
			}
		}
	})
	for _, n := range names {
		if exists(n) {
			t.Errorf("namespace %s left after the test", n)
			_ = exec.Command("ip", "netns", "del", n).Run()
		}
	}
}

// TestSweep leaves namespaces of this process and of a process that
// exists (init), and removes those of a process that cannot exist (a PID
// above pid_max), in every naming scheme Sweep knows.
func TestSweep(t *testing.T) {
	s := New(t, "z", "live")
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	pidMax, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	dead := []string{
		fmt.Sprintf("tfx%dz0a1b2c-stale", pidMax+1),
		fmt.Sprintf("tfx%dl0a1b2c-prober", pidMax+1), // internal/lab's
		fmt.Sprintf("cb%d-0a1b2c-bpf", pidMax+1),
	}
	kept := []string{s.NS("live"), "tfx1z0a1b2c-init"}
	for _, ns := range append(dead, kept[1:]...) {
		s.IP("netns", "add", ns)
		t.Cleanup(func() {
			if exists(ns) {
				_ = exec.Command("ip", "netns", "del", ns).Run()
			}
		})
	}
	Sweep()
	for _, ns := range dead {
		if exists(ns) {
			t.Errorf("Sweep left %s, whose process cannot exist", ns)
		}
	}
	for _, ns := range kept {
		if !exists(ns) {
			t.Errorf("Sweep removed %s, a namespace of a process that exists", ns)
		}
	}
}

func TestWithoutCap(t *testing.T) {
	NeedRoot(t)
	raw := func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
		}
		return err
	}
	err := WithoutCap(unix.CAP_NET_RAW, raw)
	if !errors.Is(err, unix.EPERM) {
		t.Errorf("AF_PACKET socket without CAP_NET_RAW: %v; want EPERM", err)
	}
	if err := raw(); err != nil {
		t.Errorf("AF_PACKET socket after WithoutCap: %v; the capability must be dropped on its thread only", err)
	}
	want := errors.New("from fn")
	if err := WithoutCap(unix.CAP_NET_ADMIN, func() error { return want }); err != want {
		t.Errorf("WithoutCap returned %v; want fn's error", err)
	}
}
