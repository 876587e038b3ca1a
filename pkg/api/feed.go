package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxEventLine bounds one line of an event stream: an Event is well under a kilobyte.
const maxEventLine = 64 << 10

// ErrBadFeed is returned by ReadFeed for a stream that is not one of Notices (the bytes' fault,
// not the connection's).
var ErrBadFeed = errors.New("api: feed: malformed")

// Feed streams the hub's change notices (FeedPath) to fn until ctx ends or the hub ends the
// stream, which it does every few minutes: the caller reconnects, with a fresh token. It returns
// nil when the hub ended the stream, else why it could not be read. The stream is read without
// the HTTP client's timeout (it lasts minutes); ctx bounds it.
func (c *Client) Feed(ctx context.Context, fn func(Notice)) error {
	body, err := c.OpenFeed(ctx)
	if err != nil {
		return err
	}
	defer body.Close()
	return ReadFeed(body, fn)
}

// OpenFeed opens the hub's stream of change notices (FeedPath), for ReadFeed; the caller closes
// it. The hub has subscribed the caller when it returns: what changes from then on is in it. An
// answer other than 200 is an *Error.
func (c *Client) OpenFeed(ctx context.Context) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.BaseURL, "/")+FeedPath, nil)
	if err != nil {
		return nil, fmt.Errorf("api: feed: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := *c.HTTPClient()
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("api: feed: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, responseError(resp.StatusCode, b)
	}
	return resp.Body, nil
}

// ReadFeed reads a server-sent event stream (HTML Living Standard §9.2.6) of Notices: the data
// lines of each event (ended by a blank line) are one Notice as JSON; comments, "retry:", "id:"
// and "event:" lines are skipped. A data that is not a Notice is an error (ErrBadFeed).
func ReadFeed(r io.Reader, fn func(Notice)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxEventLine)
	var data bytes.Buffer
	for sc.Scan() {
		line := bytes.TrimSuffix(sc.Bytes(), []byte("\r"))
		if len(line) == 0 {
			if data.Len() == 0 {
				continue
			}
			var ev Notice
			if err := json.Unmarshal(data.Bytes(), &ev); err != nil || ev.Kind == "" {
				return fmt.Errorf("%w: not an event: %.100q", ErrBadFeed, data.Bytes())
			}
			data.Reset()
			fn(ev)
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		if string(field) != "data" {
			continue
		}
		value = bytes.TrimPrefix(value, []byte(" "))
		if data.Len() > 0 {
			data.WriteByte('\n')
		}
		if data.Len()+len(value) > maxEventLine {
			return fmt.Errorf("%w: an event over %d bytes", ErrBadFeed, maxEventLine)
		}
		data.Write(value)
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		return fmt.Errorf("%w: a line over %d bytes", ErrBadFeed, maxEventLine)
	} else if err != nil {
		return fmt.Errorf("api: feed: %w", err)
	}
	return nil
}
