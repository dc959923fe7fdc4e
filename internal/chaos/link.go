//go:build chaos

package chaos

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Trap decides, for every message a NATS client publishes through a Link
// (PUB or HPUB, by subject, before it is forwarded), whether the link is cut
// right there: the message and everything after it never reach the server.
type Trap func(subject string) bool

// Link is a TCP proxy between one in-process component and a server (a NATS
// node or PostgreSQL). Cutting it is the harness's way of killing a worker
// abruptly: every connection is closed at once, nothing in flight is
// forwarded, and new connections are refused until Restore. A Link can also
// delay every chunk it forwards (a slow network or server), and, on a NATS
// link, be armed with a Trap that cuts it at an exact point of the protocol,
// for instance between a breaker write and the ack that follows it.
type Link struct {
	ln      net.Listener
	targets []string
	nats    bool

	next  atomic.Uint64 // round robin over targets
	delay atomic.Int64  // nanoseconds per forwarded chunk
	trap  atomic.Pointer[Trap]
	cuts  atomic.Int64

	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewNATSLink starts a link in front of the given NATS node addresses
// (host:port), which it dials in turn, skipping nodes that refuse. It speaks
// the client side of the NATS protocol so that it can be armed with a Trap.
// It is closed when the test ends.
func NewNATSLink(tb testing.TB, targets ...string) *Link { return newLink(tb, true, targets) }

// NewTCPLink starts a plain TCP link in front of targets (PostgreSQL). It is
// closed when the test ends.
func NewTCPLink(tb testing.TB, targets ...string) *Link { return newLink(tb, false, targets) }

func newLink(tb testing.TB, natsProto bool, targets []string) *Link {
	tb.Helper()
	if len(targets) == 0 {
		tb.Fatal("chaos: a link needs at least one target")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("chaos: link listen: %v", err)
	}
	l := &Link{ln: ln, targets: targets, nats: natsProto, conns: map[net.Conn]struct{}{}}
	l.wg.Add(1)
	go l.accept()
	tb.Cleanup(l.Close)
	return l
}

// Addr is the link's listening address (host:port).
func (l *Link) Addr() string { return l.ln.Addr().String() }

// URL is the link's address as a nats:// URL.
func (l *Link) URL() string { return "nats://" + l.Addr() }

// Cut closes every connection through the link at once and refuses new ones
// until Restore. Nothing received from either side after the cut is
// forwarded.
func (l *Link) Cut() {
	l.mu.Lock()
	l.down = true
	conns := make([]net.Conn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	l.cuts.Add(1)
}

// Restore accepts connections again after a Cut.
func (l *Link) Restore() {
	l.mu.Lock()
	l.down = false
	l.mu.Unlock()
}

// Down reports whether the link is cut.
func (l *Link) Down() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.down
}

// Cuts counts the cuts so far, by Cut or by a Trap.
func (l *Link) Cuts() int64 { return l.cuts.Load() }

// SetDelay makes the link wait d before forwarding each chunk, in both
// directions; 0 forwards at once.
func (l *Link) SetDelay(d time.Duration) { l.delay.Store(int64(d)) }

// Arm sets the trap asked before every message a client publishes (NATS
// links only); nil disarms it. A trap that fires cuts the link and is
// disarmed.
func (l *Link) Arm(t Trap) {
	if t == nil {
		l.trap.Store(nil)
		return
	}
	l.trap.Store(&t)
}

// Close stops the link and closes every connection through it.
func (l *Link) Close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.mu.Unlock()
	_ = l.ln.Close()
	l.Cut()
	l.wg.Wait()
}

func (l *Link) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.serve(c)
		}()
	}
}

// track registers c, unless the link is down; it reports whether c may be used.
func (l *Link) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down || l.closed {
		return false
	}
	l.conns[c] = struct{}{}
	return true
}

func (l *Link) untrack(cs ...net.Conn) {
	l.mu.Lock()
	for _, c := range cs {
		delete(l.conns, c)
	}
	l.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
	}
}

func (l *Link) dial() (net.Conn, error) {
	var errs []error
	start := l.next.Add(1)
	for i := range l.targets {
		addr := l.targets[(int(start)+i)%len(l.targets)]
		up, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err == nil {
			return up, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func (l *Link) serve(down net.Conn) {
	if !l.track(down) {
		_ = down.Close()
		return
	}
	up, err := l.dial()
	if err != nil || !l.track(up) {
		if up != nil {
			_ = up.Close()
		}
		l.untrack(down)
		return
	}
	defer l.untrack(down, up)
	done := make(chan struct{}, 2)
	go func() {
		l.copyRaw(down, up) // server to client
		done <- struct{}{}
	}()
	go func() {
		if l.nats {
			l.copyNATS(up, down)
		} else {
			l.copyRaw(up, down)
		}
		done <- struct{}{}
	}()
	<-done
	// One direction ended: end the other too.
	_ = down.Close()
	_ = up.Close()
	<-done
}

func (l *Link) wait() {
	if d := time.Duration(l.delay.Load()); d > 0 {
		time.Sleep(d)
	}
}

func (l *Link) copyRaw(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			l.wait()
			if l.Down() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// copyNATS forwards a client's protocol operations to the server one by
// one, asking the trap about every PUB and HPUB before forwarding it.
func (l *Link) copyNATS(dst, src net.Conn) {
	r := bufio.NewReaderSize(src, 64<<10)
	w := bufio.NewWriterSize(dst, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		var payload []byte
		subject, size, isPub, perr := parsePub(line)
		if perr != nil {
			return // not the NATS protocol: drop the connection
		}
		if isPub {
			payload = make([]byte, size+2)
			if _, err := io.ReadFull(r, payload); err != nil {
				return
			}
			if t := l.trap.Load(); t != nil && (*t)(subject) {
				l.trap.CompareAndSwap(t, nil)
				l.Cut()
				return
			}
		}
		if r.Buffered() == 0 {
			l.wait()
		}
		if l.Down() {
			return
		}
		if _, err := w.Write(line); err != nil {
			return
		}
		if _, err := w.Write(payload); err != nil {
			return
		}
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}

// parsePub reads a client protocol line: for PUB and HPUB it returns the
// subject and the size of the payload (headers included) that follows.
func parsePub(line []byte) (subject string, size int, isPub bool, err error) {
	fields := bytes.Fields(line)
	if len(fields) == 0 {
		return "", 0, false, nil
	}
	op := string(bytes.ToUpper(fields[0]))
	var min int
	switch op {
	case "PUB":
		min = 3 // PUB <subject> [reply] <size>
	case "HPUB":
		min = 4 // HPUB <subject> [reply] <header size> <total size>
	default:
		return "", 0, false, nil
	}
	if len(fields) < min || len(fields) > min+1 {
		return "", 0, false, fmt.Errorf("chaos: malformed %s line %q", op, line)
	}
	size, err = strconv.Atoi(string(fields[len(fields)-1]))
	if err != nil || size < 0 {
		return "", 0, false, fmt.Errorf("chaos: malformed %s size in %q", op, line)
	}
	return string(fields[1]), size, true, nil
}
