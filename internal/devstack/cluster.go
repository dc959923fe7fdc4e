package devstack

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ClusterOptions configure StartCluster.
type ClusterOptions struct {
	// Nodes is the number of servers, at least 2; 0 means 3.
	Nodes int
	// Name is the cluster name; empty means "baldur".
	Name string
	// StoreDir holds one JetStream store directory per node (node-0,
	// node-1, ...). Required.
	StoreDir string
	// Host is the address every node listens on; empty means 127.0.0.1.
	Host string
	// Logger receives the servers' logs, with a "node" attribute; nil
	// discards them.
	Logger *slog.Logger
	// Configure, when set, adjusts node i's nats-server options last, before
	// the server is created (also on RestartNode).
	Configure func(i int, o *server.Options)
}

// Cluster is an N-node nats-server cluster with clustered JetStream, every
// node on loopback with its own store directory and full-mesh routes. Nodes can
// be stopped and restarted with the same ports and store, so tests can prove
// that data survives the loss of a node.
type Cluster struct {
	opts ClusterOptions

	mu    sync.Mutex
	nodes []*clusterNode
}

type clusterNode struct {
	name        string
	storeDir    string
	clientPort  int // RandomPort until the first start
	clusterPort int
	srv         *server.Server // nil while stopped
}

// StartCluster starts the nodes and returns once every node is routed to
// every other and JetStream has a meta leader that every node follows, or ctx
// ends (30 seconds when ctx has no deadline).
func StartCluster(ctx context.Context, opts ClusterOptions) (*Cluster, error) {
	if opts.StoreDir == "" {
		return nil, fmt.Errorf("devstack: ClusterOptions.StoreDir is required for JetStream file storage")
	}
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.Nodes < 2 {
		return nil, fmt.Errorf("devstack: a cluster needs at least two nodes, not %d (use StartNATS for one server): "+
			"nats-server runs clustered JetStream only with routes to other nodes", opts.Nodes)
	}
	opts.Name = orDefault(opts.Name, "baldur")
	opts.Host = orDefault(opts.Host, "127.0.0.1")
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultReadyTimeout)
		defer cancel()
	}

	// Route ports are chosen before the nodes start, since every node names
	// the others' in its routes. Another process can take one in between;
	// then start over with other ports.
	const attempts = 3
	var err error
	for range attempts {
		c := &Cluster{opts: opts}
		if err = c.start(ctx); err == nil {
			return c, nil
		}
		c.Shutdown()
		if ctx.Err() != nil {
			break
		}
	}
	return nil, err
}

func (c *Cluster) start(ctx context.Context) error {
	ports, err := freePorts(c.opts.Host, c.opts.Nodes)
	if err != nil {
		return err
	}
	c.nodes = make([]*clusterNode, c.opts.Nodes)
	for i := range c.nodes {
		dir := filepath.Join(c.opts.StoreDir, "node-"+strconv.Itoa(i))
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("devstack: clear store of node %d: %w", i, err)
		}
		c.nodes[i] = &clusterNode{
			name:        c.opts.Name + "-" + strconv.Itoa(i),
			storeDir:    dir,
			clientPort:  RandomPort,
			clusterPort: ports[i],
		}
	}
	for i := range c.nodes {
		if err := c.startNode(ctx, i); err != nil {
			return err
		}
	}
	return c.WaitReady(ctx)
}

// startNode starts node i; the caller holds no lock or is still constructing.
func (c *Cluster) startNode(ctx context.Context, i int) error {
	n := c.nodes[i]
	var routes []*url.URL
	for j, other := range c.nodes {
		if j != i {
			routes = append(routes, &url.URL{
				Scheme: "nats-route",
				Host:   net.JoinHostPort(c.opts.Host, strconv.Itoa(other.clusterPort)),
			})
		}
	}
	o := &server.Options{
		ServerName: n.name,
		Host:       c.opts.Host,
		Port:       n.clientPort,
		JetStream:  true,
		StoreDir:   n.storeDir,
		NoSigs:     true,
		Cluster: server.ClusterOpts{
			Name: c.opts.Name,
			Host: c.opts.Host,
			Port: n.clusterPort,
		},
		Routes: routes,
	}
	if c.opts.Configure != nil {
		c.opts.Configure(i, o)
	}
	var logger *slog.Logger
	if c.opts.Logger != nil {
		logger = c.opts.Logger.With(slog.Int("node", i), slog.String("server", n.name))
	}
	srv, err := startServer(ctx, o, logger)
	if err != nil {
		return fmt.Errorf("devstack: start cluster node %d: %w", i, err)
	}
	n.srv = srv
	if addr, ok := srv.Addr().(*net.TCPAddr); ok {
		n.clientPort = addr.Port // kept for RestartNode
	}
	return nil
}

// Size is the number of nodes, running or stopped.
func (c *Cluster) Size() int { return len(c.nodes) }

// ClientURLs are the client URLs of all nodes, running or stopped (a stopped
// node comes back on the same port).
func (c *Cluster) ClientURLs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	urls := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		urls[i] = (&url.URL{Scheme: "nats", Host: net.JoinHostPort(c.opts.Host, strconv.Itoa(n.clientPort))}).String()
	}
	return urls
}

// ClientURL is every node's client URL, comma separated, as nats.Connect
// accepts them.
func (c *Cluster) ClientURL() string { return strings.Join(c.ClientURLs(), ",") }

// Server is node i's server, or nil while it is stopped or i is out of range.
func (c *Cluster) Server(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i < 0 || i >= len(c.nodes) {
		return nil
	}
	return c.nodes[i].srv
}

// Running reports whether node i is running.
func (c *Cluster) Running(i int) bool { return c.Server(i) != nil }

// MetaLeader is the index of the node that leads the JetStream meta group, or
// -1 when no running node does.
func (c *Cluster) MetaLeader() int {
	return c.find(func(s *server.Server) bool { return s.JetStreamIsLeader() })
}

// StreamLeader is the index of the node that leads stream (in the default
// account), or -1 when no running node does.
func (c *Cluster) StreamLeader(stream string) int {
	return c.find(func(s *server.Server) bool {
		return s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream)
	})
}

func (c *Cluster) find(pred func(*server.Server) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, n := range c.nodes {
		if n.srv != nil && pred(n.srv) {
			return i
		}
	}
	return -1
}

// StopNode shuts node i down and waits until it has stopped. Its store and
// ports are kept for RestartNode. Stopping a stopped node does nothing.
func (c *Cluster) StopNode(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i < 0 || i >= len(c.nodes) {
		return fmt.Errorf("%w: %d of %d", ErrNodeIndex, i, len(c.nodes))
	}
	if srv := c.nodes[i].srv; srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
		c.nodes[i].srv = nil
	}
	return nil
}

// RestartNode starts a stopped node i again with its store directory and
// ports, and waits until the cluster is ready again (see WaitReady).
// Restarting a running node does nothing.
func (c *Cluster) RestartNode(ctx context.Context, i int) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultReadyTimeout)
		defer cancel()
	}
	c.mu.Lock()
	if i < 0 || i >= len(c.nodes) {
		c.mu.Unlock()
		return fmt.Errorf("%w: %d of %d", ErrNodeIndex, i, len(c.nodes))
	}
	var err error
	if c.nodes[i].srv == nil {
		err = c.startNode(ctx, i)
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return c.WaitReady(ctx)
}

// WaitReady waits until every running node has a route to every other
// running node, one of them leads the JetStream meta group, every running
// node is current with it and the leader can place replicas on every running
// node, or ctx ends. Use it after StopNode before
// depending on a new meta leader.
func (c *Cluster) WaitReady(ctx context.Context) error {
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		problem := c.notReady()
		if problem == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: cluster %s: %s: %w", ErrNATSNotReady, c.opts.Name, problem, ctx.Err())
		case <-tick.C:
		}
	}
}

// notReady describes what the cluster still lacks, or returns "".
func (c *Cluster) notReady() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	running := map[string]bool{}
	for _, n := range c.nodes {
		if n.srv != nil {
			running[n.name] = true
		}
	}
	leader := false
	for _, n := range c.nodes {
		if n.srv == nil {
			continue
		}
		rz, err := n.srv.Routez(nil)
		if err != nil {
			return fmt.Sprintf("%s: routes: %v", n.name, err)
		}
		routed := map[string]bool{}
		for _, r := range rz.Routes {
			if running[r.RemoteName] {
				routed[r.RemoteName] = true
			}
		}
		if len(routed) != len(running)-1 {
			return fmt.Sprintf("%s is routed to %d of %d running nodes", n.name, len(routed), len(running)-1)
		}
		if !n.srv.JetStreamIsCurrent() {
			return n.name + " is not current with a JetStream meta leader"
		}
		if n.srv.JetStreamIsLeader() {
			leader = true
			// The leader places assets only on peers it has JetStream stats
			// from; until then an R3 stream fails with "no suitable peers".
			placeable := map[string]bool{}
			for _, p := range n.srv.JetStreamClusterPeers() {
				placeable[p] = true
			}
			for name := range running {
				if !placeable[name] {
					return fmt.Sprintf("the meta leader %s cannot yet place assets on %s", n.name, name)
				}
			}
		}
	}
	if !leader {
		return "no running node leads the JetStream meta group"
	}
	return ""
}

// Shutdown stops every running node and waits until they have stopped.
func (c *Cluster) Shutdown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		if n != nil && n.srv != nil {
			wg.Go(func() {
				n.srv.Shutdown()
				n.srv.WaitForShutdown()
			})
		}
	}
	wg.Wait()
	for _, n := range c.nodes {
		if n != nil {
			n.srv = nil
		}
	}
}
