package netnstest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
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
		if !ours.MatchString(s.NS("a")) || !strings.HasPrefix(s.NS("a"), s.Prefix()+"-") {
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

func TestSweep(t *testing.T) {
	s := New(t, "z", "live")
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := fmt.Sprintf("tfx%dz%s-stale", cmd.Process.Pid, "0a1b2c")
	if unix.Kill(cmd.Process.Pid, 0) == nil {
		t.Skipf("pid %d reused already", cmd.Process.Pid)
	}
	s.IP("netns", "add", dead)
	t.Cleanup(func() {
		if exists(dead) {
			_ = exec.Command("ip", "netns", "del", dead).Run()
		}
	})
	Sweep()
	if exists(dead) {
		t.Errorf("Sweep left %s, whose process is gone", dead)
	}
	if !exists(s.NS("live")) {
		t.Errorf("Sweep removed %s, a namespace of this process", s.NS("live"))
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
