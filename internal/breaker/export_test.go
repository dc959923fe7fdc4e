package breaker

// SetCrashHook makes w simulate a crash between a batch's breaker writes and
// its ack whenever fn returns true: the partition stops without acking, the
// worker stops renewing its leases and Stop releases nothing.
func SetCrashHook(w *Worker, fn func(partition int) bool) { w.crashHook = fn }
