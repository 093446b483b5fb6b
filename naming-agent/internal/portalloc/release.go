package portalloc

// Release gives key's port in pool back, for good: the next Assign of
// key may get another port. The whole assignment is written at once
// (file, then the journal dropped), so a restart cannot bring the
// released port back; releases are rare (an operator's unsubscribe, an
// unused subscription expiring). Releasing a key without a port is a
// no-op. On error nothing is released.
func (a *Allocator) Release(pool, key string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	port, ok := a.assigned[pool][key]
	if !ok {
		return nil
	}
	delete(a.assigned[pool], key)
	if err := a.foldLocked(); err != nil {
		a.assigned[pool][key] = port
		return err
	}
	delete(a.used[pool], port)
	return nil
}
