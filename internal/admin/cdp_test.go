package admin_test

// A small Chrome DevTools Protocol client for the browser test: it starts
// headless Chromium, speaks CDP over a WebSocket (a minimal RFC 6455 client:
// the standard library has none) and offers the few page operations the
// test needs.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// chromiumPath is where the Debian package chromium installs the browser;
// BALDUR_CHROMIUM overrides it.
const chromiumPath = "/usr/bin/chromium"

// wsConn is a client WebSocket connection carrying text messages.
type wsConn struct {
	conn net.Conn
	r    *bufio.Reader
	wmu  sync.Mutex
}

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func dialWS(ctx context.Context, rawURL string) (*wsConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	keyRaw := make([]byte, 16)
	_, _ = rand.Read(keyRaw)
	key := base64.StdEncoding.EncodeToString(keyRaw)
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
		"\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		conn.Close()
		return nil, err
	}
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	sum := sha1.Sum([]byte(key + wsGUID))
	if res.StatusCode != http.StatusSwitchingProtocols || res.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		conn.Close()
		return nil, fmt.Errorf("websocket handshake with %s: status %s", rawURL, res.Status)
	}
	return &wsConn{conn: conn, r: br}, nil
}

// write sends one masked text frame.
func (c *wsConn) write(p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.frame(0x1, p)
}

func (c *wsConn) frame(op byte, p []byte) error {
	hdr := []byte{0x80 | op}
	switch n := len(p); {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	case n <= 0xFFFF:
		hdr = append(hdr, 0x80|126)
		hdr = binary.BigEndian.AppendUint16(hdr, uint16(n))
	default:
		hdr = append(hdr, 0x80|127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	hdr = append(hdr, mask[:]...)
	out := make([]byte, len(hdr)+len(p))
	copy(out, hdr)
	for i, b := range p {
		out[len(hdr)+i] = b ^ mask[i%4]
	}
	_, err := c.conn.Write(out)
	return err
}

// read returns the next complete text or binary message, answering pings.
func (c *wsConn) read() ([]byte, error) {
	var msg []byte
	for {
		var h [2]byte
		if _, err := io.ReadFull(c.r, h[:]); err != nil {
			return nil, err
		}
		fin, op := h[0]&0x80 != 0, h[0]&0x0F
		n := uint64(h[1] & 0x7F)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(c.r, b[:]); err != nil {
				return nil, err
			}
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(c.r, b[:]); err != nil {
				return nil, err
			}
			n = binary.BigEndian.Uint64(b[:])
		}
		if n > 64<<20 {
			return nil, fmt.Errorf("websocket frame of %d bytes", n)
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(c.r, p); err != nil {
			return nil, err
		}
		switch op {
		case 0x8:
			return nil, io.EOF
		case 0x9:
			c.wmu.Lock()
			err := c.frame(0xA, p)
			c.wmu.Unlock()
			if err != nil {
				return nil, err
			}
			continue
		case 0xA:
			continue
		}
		msg = append(msg, p...)
		if fin {
			return msg, nil
		}
	}
}

// browser is a headless Chromium with one page, driven over CDP.
type browser struct {
	t       *testing.T
	ws      *wsConn
	session string

	mu      sync.Mutex
	nextID  int64
	waiting map[int64]chan cdpReply
	done    chan struct{}
}

type cdpReply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// startBrowser starts Chromium and opens a blank page. A missing browser
// fails the test with the command that installs it.
func startBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromiumPath
	if p := os.Getenv("BALDUR_CHROMIUM"); p != "" {
		path = p
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the browser test needs Chromium at %s (%v); install it with: sudo apt-get install -y chromium (or set BALDUR_CHROMIUM to a Chromium binary)", path, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, path,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
		"--user-data-dir="+t.TempDir(), "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
		"--window-size=1280,860", "about:blank")
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cancel()
		<-exited
	})

	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if after, ok := strings.CutPrefix(line, "DevTools listening on "); ok {
				found <- strings.TrimSpace(after)
			}
		}
	}()
	var wsURL string
	select {
	case wsURL = <-found:
	case <-exited:
		t.Fatalf("chromium exited before it listened for DevTools")
	case <-time.After(30 * time.Second):
		t.Fatalf("chromium did not announce its DevTools endpoint within 30s")
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer dcancel()
	ws, err := dialWS(dctx, wsURL)
	require.NoError(t, err)
	b := &browser{t: t, ws: ws, waiting: map[int64]chan cdpReply{}, done: make(chan struct{})}
	go b.readLoop()
	t.Cleanup(func() {
		// Ask Chromium to close so that its helper processes leave the
		// profile directory before t.TempDir removes it; killing only the
		// main process leaves them writing there.
		if err := ws.write([]byte(`{"id":0,"method":"Browser.close"}`)); err == nil {
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
			}
		}
		_ = ws.conn.Close()
		<-b.done
	})

	var target struct {
		TargetID string `json:"targetId"`
	}
	b.call("Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var att struct {
		SessionID string `json:"sessionId"`
	}
	b.call("Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &att)
	b.session = att.SessionID
	b.call("Page.enable", nil, nil)
	b.call("Runtime.enable", nil, nil)
	b.call("Emulation.setDeviceMetricsOverride", map[string]any{"width": 1280, "height": 860, "deviceScaleFactor": 1, "mobile": false}, nil)
	return b
}

func (b *browser) readLoop() {
	defer close(b.done)
	for {
		data, err := b.ws.read()
		if err != nil {
			b.mu.Lock()
			for id, ch := range b.waiting {
				close(ch)
				delete(b.waiting, id)
			}
			b.mu.Unlock()
			return
		}
		var m struct {
			ID     int64           `json:"id"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
			cdpReply
		}
		if json.Unmarshal(data, &m) != nil {
			continue
		}
		if m.ID != 0 {
			b.mu.Lock()
			ch := b.waiting[m.ID]
			delete(b.waiting, m.ID)
			b.mu.Unlock()
			if ch != nil {
				ch <- m.cdpReply
			}
			continue
		}
		switch m.Method {
		case "Runtime.exceptionThrown", "Runtime.consoleAPICalled":
			b.t.Logf("browser %s: %s", m.Method, clip(string(m.Params), 600))
		}
	}
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// call sends one CDP command (to the page's session once attached) and
// decodes its result into out.
func (b *browser) call(method string, params any, out any) {
	b.t.Helper()
	res, err := b.try(method, params)
	require.NoError(b.t, err)
	if out != nil {
		require.NoError(b.t, json.Unmarshal(res, out))
	}
}

func (b *browser) try(method string, params any) (json.RawMessage, error) {
	b.mu.Lock()
	b.nextID++
	id := b.nextID
	ch := make(chan cdpReply, 1)
	b.waiting[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if b.session != "" {
		msg["sessionId"] = b.session
	}
	data, _ := json.Marshal(msg)
	if err := b.ws.write(data); err != nil {
		return nil, err
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return nil, errors.New("cdp: connection closed")
		}
		if r.Error != nil {
			return nil, fmt.Errorf("cdp %s: %d %s", method, r.Error.Code, r.Error.Message)
		}
		return r.Result, nil
	case <-time.After(60 * time.Second):
		return nil, fmt.Errorf("cdp %s: no answer within 60s", method)
	}
}

// eval evaluates a JavaScript expression in the page, awaiting a promise,
// and decodes its value into out.
func (b *browser) eval(expr string, out any) {
	b.t.Helper()
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	b.call("Runtime.evaluate", map[string]any{"expression": expr, "awaitPromise": true, "returnByValue": true}, &r)
	if r.ExceptionDetails != nil {
		b.t.Fatalf("javascript %q: %s %s", clip(expr, 200), r.ExceptionDetails.Text, r.ExceptionDetails.Exception.Description)
	}
	if out != nil && len(r.Result.Value) > 0 {
		require.NoError(b.t, json.Unmarshal(r.Result.Value, out))
	}
}

// navigate loads url and waits until the document has loaded.
func (b *browser) navigate(url string) {
	b.t.Helper()
	b.call("Page.navigate", map[string]any{"url": url}, nil)
	b.waitJS(`document.readyState === "complete"`, 30*time.Second, "the page to load")
}

// waitJS waits, inside the page, until cond (a JavaScript expression) is
// true: the page re-checks it on every DOM change, so the wait ends on the
// change itself. It fails the test after timeout, describing what.
func (b *browser) waitJS(cond string, timeout time.Duration, what string) {
	b.t.Helper()
	expr := fmt.Sprintf(`new Promise((resolve) => {
  const check = () => { try { return !!(%s); } catch (e) { return false; } };
  if (check()) { resolve(true); return; }
  const obs = new MutationObserver(() => { if (check()) { obs.disconnect(); clearTimeout(timer); resolve(true); } });
  obs.observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
  const timer = setTimeout(() => { obs.disconnect(); resolve(check()); }, %d);
})`, cond, timeout.Milliseconds())
	var ok bool
	b.eval(expr, &ok)
	if !ok {
		var body string
		b.eval(`document.body ? document.body.innerText : ""`, &body)
		b.t.Fatalf("waiting for %s (%s) timed out after %s; the page shows:\n%s", what, cond, timeout, clip(body, 3000))
	}
}

// click clicks the centre of the element that selector names, as a user
// would: it scrolls it into view and sends the mouse press and release.
func (b *browser) click(selector string) {
	b.t.Helper()
	var box struct{ X, Y float64 }
	b.eval(fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) throw new Error("no element " + %q);
  e.scrollIntoView({block: "center"}); const r = e.getBoundingClientRect();
  return {X: r.x + r.width / 2, Y: r.y + r.height / 2}; })()`, selector, selector), &box)
	for _, typ := range []string{"mouseMoved", "mousePressed", "mouseReleased"} {
		b.call("Input.dispatchMouseEvent", map[string]any{"type": typ, "x": box.X, "y": box.Y, "button": "left", "clickCount": 1}, nil)
	}
}

// typeText focuses the element that selector names and types text into it.
func (b *browser) typeText(selector, text string) {
	b.t.Helper()
	b.eval(fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) throw new Error("no element " + %q); e.focus(); e.select && e.select(); })()`, selector, selector), nil)
	b.call("Input.insertText", map[string]any{"text": text}, nil)
}

// text returns the trimmed text of the element that selector names.
func (b *browser) text(selector string) string {
	b.t.Helper()
	var s string
	b.eval(fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e ? e.textContent.trim() : ""; })()`, selector), &s)
	return s
}

// attr returns the attribute name of the element that selector names ("" when
// either is absent).
func (b *browser) attr(selector, name string) string {
	b.t.Helper()
	var s string
	b.eval(fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e ? (e.getAttribute(%q) || "") : ""; })()`, selector, name), &s)
	return s
}

// screenshot returns a PNG of the page.
func (b *browser) screenshot() []byte {
	b.t.Helper()
	var r struct {
		Data string `json:"data"`
	}
	b.call("Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": false}, &r)
	png, err := base64.StdEncoding.DecodeString(r.Data)
	require.NoError(b.t, err)
	return png
}
