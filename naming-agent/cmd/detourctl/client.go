package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// ctl talks to one agent and prints what it answers.
type ctl struct {
	base   string // the agent's base URL
	asJSON bool   // print the agent's JSON rather than text
	out    io.Writer
	errOut io.Writer // notes beside the answer (a subscription created)
	client *http.Client
}

// agentError is the agent's answer to a request it refused: its
// {"error": ...} text, or the HTTP status when it gave none.
type agentError struct {
	code int
	msg  string
}

func (e *agentError) Error() string { return e.msg }

// call does one request and decodes a 2xx JSON answer into v. It returns
// the raw answer too, for --json. A non-2xx answer is an *agentError.
func (c *ctl) call(method, path string, body, v any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("agent at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("agent at %s: %w", c.base, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return nil, &agentError{resp.StatusCode, e.Error}
		}
		return nil, &agentError{resp.StatusCode, "agent at " + c.base + " answered " + resp.Status}
	}
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("agent at %s: %s %s: %w", c.base, method, path, err)
	}
	return b, nil
}

// printJSON prints an answer as the agent gave it, indented.
func (c *ctl) printJSON(raw []byte) error {
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, raw, "", "  "); err != nil {
		return err
	}
	pretty.WriteByte('\n')
	_, err := pretty.WriteTo(c.out)
	return err
}
