package telemetry_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/telemetry"
)

// TestTCPConnOfARequest: a handler served by Serve (NewHTTPServer behind the
// connection cap) finds the TCP connection its request came on, the one the
// client dialled; a handler served some other way finds none.
func TestTCPConnOfARequest(t *testing.T) {
	t.Parallel()
	local := make(chan string, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		addr := ""
		if tc := telemetry.TCPConn(r.Context()); tc != nil {
			addr = tc.RemoteAddr().String()
		}
		local <- addr
	})
	srv, err := telemetry.Serve("127.0.0.1:0", h, nil)
	require.NoError(t, err)
	t.Cleanup(srv.Close)

	c, err := net.Dial("tcp", srv.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	_, err = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	require.Equal(t, c.LocalAddr().String(), <-local)

	other := httptest.NewServer(h)
	t.Cleanup(other.Close)
	res, err := http.Get(other.URL)
	require.NoError(t, err)
	require.NoError(t, res.Body.Close())
	require.Empty(t, <-local)
}
