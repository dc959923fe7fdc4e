package baldur

// Generation returns the generation of svc's breaker in c's view, 0 when it
// has none (tests wait on it).
func (c *Client) Generation(svc string) uint64 {
	s, ok := c.view.Snapshot(svc)
	if !ok {
		return 0
	}
	return s.Generation
}
