package proxyproto

// Reading returns how many trusted connections' headers l is reading.
func Reading(l *Listener) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.reading)
}
