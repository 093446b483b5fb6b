package portalloc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// New assignments are appended to a journal next to the file, one JSON
// line each, and folded into the file now and then. Rewriting the whole
// file for every new service made subscribing N services O(N²) in bytes
// encoded and written: 10,000 services took over two minutes.
//
// Neither is fsynced per assignment: assignments must outlive the agent's
// process (apps keep the egress addresses they were given across an agent
// restart), which the kernel's copy ensures; a machine crash restarts the
// apps too. Folding the journal in is a durable atomic write.

// journalLine is one appended assignment.
type journalLine struct {
	Pool string `json:"pool"`
	Key  string `json:"key"`
	Port int    `json:"port"`
}

// minCompact is the journal length below which it is never folded in.
const minCompact = 256

func (a *Allocator) journalPath() string { return a.cfg.Path + ".journal" }

// appendLocked appends one assignment to the journal.
func (a *Allocator) appendLocked(pool, key string, port int) error {
	line, err := json.Marshal(journalLine{Pool: pool, Key: key, Port: port})
	if err != nil {
		return fmt.Errorf("portalloc: %w", err)
	}
	f, err := os.OpenFile(a.journalPath(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("portalloc: save: %w", err)
	}
	// One write per line: a crash leaves at most a torn last line.
	_, werr := f.Write(append(line, '\n'))
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("portalloc: save: %w", werr)
	}
	a.journaled++
	return nil
}

// compactLocked folds the journal into the file once it is as long as the
// file (amortised O(1) per assignment). A failure only leaves the journal
// longer: it is reported and retried with the next assignment.
func (a *Allocator) compactLocked() {
	total := 0
	for _, keys := range a.assigned {
		total += len(keys)
	}
	if a.journaled < max(minCompact, total/2) {
		return
	}
	if err := a.foldLocked(); err != nil {
		a.cfg.Warn(err)
	}
}

// foldLocked writes the whole assignment to the file, then drops the
// journal (were it kept, replaying it would only repeat the file).
func (a *Allocator) foldLocked() error {
	if err := a.saveLocked(); err != nil {
		return err
	}
	if err := os.Remove(a.journalPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("portalloc: drop journal: %w", err)
	}
	a.journaled = 0
	return nil
}

// replayJournal applies the journal left by the last run, then folds it
// in. A line that cannot be parsed is skipped with a warning and the
// replay goes on: lines are independent, so one garbage line (a stray
// write, a bad edit) must not cost the valid assignments after it. A torn
// last line (no newline: a crash mid-append) is skipped the same way.
func (a *Allocator) replayJournal() error {
	b, err := os.ReadFile(a.journalPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("portalloc: %w", err)
	}
	for n := 1; len(b) > 0; n++ {
		line, rest, complete := bytes.Cut(b, []byte{'\n'})
		b = rest
		var l journalLine
		if err := json.Unmarshal(line, &l); err != nil || l.Pool == "" || l.Key == "" {
			what := "unreadable, skipped"
			if !complete {
				what = "torn (no newline: a crash mid-append?), ignored"
			}
			a.cfg.Warn(fmt.Errorf("portalloc: %s line %d %s: %q", a.journalPath(), n, what, clip(line)))
			continue
		}
		a.loadLocked(l.Pool, l.Key, l.Port, a.journalPath())
	}
	if err := a.foldLocked(); err != nil {
		return err
	}
	return nil
}

// clip shortens a bad line for a warning.
func clip(line []byte) []byte {
	const n = 120
	if len(line) <= n {
		return line
	}
	return append(line[:n:n], "..."...)
}
