// Command derpclient is Tailscale's own DERP client (tailscale.com/derp/derphttp) behind a JSON-lines
// protocol on stdin and stdout, so that tests and benchmarks in other languages can drive a real Go
// peer against any DERP server.
//
// It connects to -url at start and, once the server's info frame says the login is complete, prints
//
//	{"event":"ready","publicKey":"nodekey:<hex>","serverKey":"nodekey:<hex>"}
//
// then reads one command per line on stdin:
//
//	{"op":"send","to":"nodekey:<hex>","payload":"<base64>"}   no reply unless it fails
//	{"op":"ping"}                                             {"event":"pong","rttNs":N}
//	{"op":"flood","to":"nodekey:<hex>","count":N,"size":S}    {"event":"flooded","count":N,"elapsedNs":T}
//	{"op":"stats","waitFor":N,"timeoutMs":T}                  {"event":"stats","received":N,...}
//	{"op":"close"}                                            {"event":"closed"}, then exit 0
//
// Received packets print as {"event":"recv","from":"nodekey:<hex>","payload":"<base64>"} (with
// -recv=print, the default) or are only counted (-recv=count, for load). A peer-gone frame prints
// {"event":"peerGone","peer":...,"reason":N}. Failures print {"event":"error","op":...,"message":...};
// a lost connection prints {"event":"disconnected","message":...} and exits 1: this program never
// reconnects, so a test sees every drop.
//
// A ws:// or wss:// URL makes derphttp dial WebSocket (subprotocol "derp"); that needs the binary
// built with -tags ts_debug_websockets, which scripts/build-go-tools.sh reads from build-tags.
package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/url"
	"os"
	"slices"
	"sync"
	"time"

	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/net/netmon"
	"tailscale.com/types/key"
)

// Flood packets carry a big-endian sequence number and send time (Unix ns) in their first 16 bytes,
// so that a receiver in -recv=count mode can report delivery latency.
const floodHeaderLength = 16

type command struct {
	Op        string `json:"op"`
	To        string `json:"to"`
	Payload   string `json:"payload"`
	Count     int    `json:"count"`
	Size      int    `json:"size"`
	WaitFor   int64  `json:"waitFor"`
	TimeoutMs int    `json:"timeoutMs"`
}

type output struct {
	mu      sync.Mutex
	encoder *json.Encoder
}

func (o *output) print(event map[string]any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.encoder.Encode(event); err != nil {
		log.Fatalf("derpclient: stdout: %v", err)
	}
}

func (o *output) fail(op string, err error) {
	o.print(map[string]any{"event": "error", "op": op, "message": err.Error()})
}

// receiveStats counts received packets; latencies are kept only for flood packets in count mode.
type receiveStats struct {
	mu          sync.Mutex
	changed     *sync.Cond
	received    int64
	bytes       int64
	latenciesNs []int64
}

func newReceiveStats() *receiveStats {
	stats := &receiveStats{}
	stats.changed = sync.NewCond(&stats.mu)
	return stats
}

func (s *receiveStats) record(packet []byte, withLatency bool) {
	s.mu.Lock()
	s.received++
	s.bytes += int64(len(packet))
	if withLatency && len(packet) >= floodHeaderLength {
		sentNs := int64(binary.BigEndian.Uint64(packet[8:16]))
		s.latenciesNs = append(s.latenciesNs, time.Now().UnixNano()-sentNs)
	}
	s.mu.Unlock()
	s.changed.Broadcast()
}

// snapshot waits until at least waitFor packets arrived or the deadline passed.
func (s *receiveStats) snapshot(waitFor int64, deadline time.Time) map[string]any {
	timer := time.AfterFunc(time.Until(deadline), s.changed.Broadcast)
	defer timer.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.received < waitFor && time.Now().Before(deadline) {
		s.changed.Wait()
	}
	sorted := slices.Clone(s.latenciesNs)
	slices.Sort(sorted)
	return map[string]any{
		"event":         "stats",
		"received":      s.received,
		"bytesReceived": s.bytes,
		"p50Ns":         percentile(sorted, 0.50),
		"p99Ns":         percentile(sorted, 0.99),
	}
}

func percentile(sorted []int64, q float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(q*float64(len(sorted)-1))]
}

type peer struct {
	client  *derphttp.Client
	out     *output
	stats   *receiveStats
	counted bool
	closing sync.Once
	// Closed at the server info frame: derper registers a client before it sends that frame, while
	// derphttp's Connect returns as soon as the login is sent, so only then can peers reach us.
	ready     chan struct{}
	readyOnce sync.Once
}

func main() {
	serverURL := flag.String("url", "", "DERP server URL: http://host:port/derp (Upgrade: DERP), https://..., or ws://host:port/derp (WebSocket)")
	privateKeyText := flag.String("key", "", "node private key as privkey:<hex>; default: a fresh key")
	recvMode := flag.String("recv", "print", "print: one recv line per packet; count: only count packets (see the stats op)")
	timeout := flag.Duration("connect-timeout", 10*time.Second, "time allowed to connect and log in")
	flag.Parse()
	log.SetOutput(os.Stderr)
	if *serverURL == "" || (*recvMode != "print" && *recvMode != "count") {
		flag.Usage()
		os.Exit(2)
	}
	privateKey := key.NewNode()
	if *privateKeyText != "" {
		if err := privateKey.UnmarshalText([]byte(*privateKeyText)); err != nil {
			log.Fatalf("derpclient: -key: %v", err)
		}
	}
	dialURL, err := chooseTransport(*serverURL)
	if err != nil {
		log.Fatalf("derpclient: -url: %v", err)
	}
	client, err := derphttp.NewClient(privateKey, dialURL, log.Printf, netmon.NewStatic())
	if err != nil {
		log.Fatalf("derpclient: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := client.Connect(ctx); err != nil {
		log.Fatalf("derpclient: connect: %v", err)
	}
	p := &peer{
		client:  client,
		out:     &output{encoder: json.NewEncoder(os.Stdout)},
		stats:   newReceiveStats(),
		counted: *recvMode == "count",
		ready:   make(chan struct{}),
	}
	go p.receiveLoop()
	select {
	case <-p.ready:
	case <-ctx.Done():
		log.Fatalf("derpclient: no server info from %s: %v", *serverURL, ctx.Err())
	}
	p.out.print(map[string]any{
		"event":     "ready",
		"publicKey": privateKey.Public().String(),
		"serverKey": client.ServerPublicKey().String(),
	})
	p.commandLoop(os.Stdin)
}

// chooseTransport returns the URL derphttp dials. derphttp picks WebSocket from an environment knob
// rather than the scheme, so a ws(s):// URL sets that knob and becomes http(s)://.
func chooseTransport(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "http", "https":
		return raw, nil
	case "ws", "wss":
		u.Scheme = map[string]string{"ws": "http", "wss": "https"}[u.Scheme]
		if err := os.Setenv("TS_DEBUG_DERP_WS_CLIENT", "true"); err != nil {
			return "", err
		}
		return u.String(), nil
	default:
		return "", fmt.Errorf("scheme %q: want http, https, ws or wss", u.Scheme)
	}
}

func (p *peer) receiveLoop() {
	for {
		message, err := p.client.Recv()
		if err != nil {
			p.exit(1, map[string]any{"event": "disconnected", "message": err.Error()})
			return
		}
		switch m := message.(type) {
		case derp.ServerInfoMessage:
			p.readyOnce.Do(func() { close(p.ready) })
		case derp.ReceivedPacket:
			p.stats.record(m.Data, p.counted)
			if !p.counted {
				p.out.print(map[string]any{
					"event":   "recv",
					"from":    m.Source.String(),
					"payload": base64.StdEncoding.EncodeToString(m.Data),
				})
			}
		case derp.PeerGoneMessage:
			p.out.print(map[string]any{"event": "peerGone", "peer": m.Peer.String(), "reason": int(m.Reason)})
		}
	}
}

func (p *peer) commandLoop(input io.Reader) {
	lines := bufio.NewScanner(input)
	lines.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for lines.Scan() {
		var cmd command
		if err := json.Unmarshal(lines.Bytes(), &cmd); err != nil {
			p.out.fail("", fmt.Errorf("command is not JSON: %v", err))
			continue
		}
		if cmd.Op == "close" {
			break
		}
		p.run(cmd)
	}
	p.exit(0, map[string]any{"event": "closed"})
}

func (p *peer) run(cmd command) {
	switch cmd.Op {
	case "send":
		p.send(cmd)
	case "ping":
		go p.ping()
	case "flood":
		p.flood(cmd)
	case "stats":
		deadline := time.Now().Add(time.Duration(cmd.TimeoutMs) * time.Millisecond)
		go func() { p.out.print(p.stats.snapshot(cmd.WaitFor, deadline)) }()
	default:
		p.out.fail(cmd.Op, fmt.Errorf("unknown op %q: want send, ping, flood, stats or close", cmd.Op))
	}
}

func (p *peer) send(cmd command) {
	var to key.NodePublic
	if err := to.UnmarshalText([]byte(cmd.To)); err != nil {
		p.out.fail("send", fmt.Errorf("to: %v", err))
		return
	}
	payload, err := base64.StdEncoding.DecodeString(cmd.Payload)
	if err != nil {
		p.out.fail("send", fmt.Errorf("payload is not base64: %v", err))
		return
	}
	if err := p.client.Send(to, payload); err != nil {
		p.out.fail("send", err)
	}
}

func (p *peer) ping() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := p.client.Ping(ctx); err != nil {
		p.out.fail("ping", err)
		return
	}
	p.out.print(map[string]any{"event": "pong", "rttNs": time.Since(start).Nanoseconds()})
}

func (p *peer) flood(cmd command) {
	var to key.NodePublic
	if err := to.UnmarshalText([]byte(cmd.To)); err != nil {
		p.out.fail("flood", fmt.Errorf("to: %v", err))
		return
	}
	if cmd.Size < floodHeaderLength || cmd.Size > derp.MaxPacketSize || cmd.Count < 1 {
		p.out.fail("flood", fmt.Errorf("size %d, count %d: want %d <= size <= %d and count >= 1", cmd.Size, cmd.Count, floodHeaderLength, derp.MaxPacketSize))
		return
	}
	packet := make([]byte, cmd.Size)
	start := time.Now()
	for sequence := range cmd.Count {
		binary.BigEndian.PutUint64(packet[0:8], uint64(sequence))
		binary.BigEndian.PutUint64(packet[8:16], uint64(time.Now().UnixNano()))
		if err := p.client.Send(to, packet); err != nil {
			p.out.fail("flood", err)
			return
		}
	}
	p.out.print(map[string]any{"event": "flooded", "count": cmd.Count, "elapsedNs": time.Since(start).Nanoseconds()})
}

// exit prints the last event and ends the process. The first caller wins and a later one blocks in
// Do until the process is gone, so a deliberate close is never reported as a lost connection.
func (p *peer) exit(code int, last map[string]any) {
	p.closing.Do(func() {
		p.client.Close()
		p.out.print(last)
		os.Exit(code)
	})
}
