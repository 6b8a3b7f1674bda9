// Command derpload is a DERP load generator: N of Tailscale's own DERP clients
// (tailscale.com/derp/derphttp, dialling with Upgrade: DERP as tailscaled does) connect to a relay
// and send fixed-size packets around a ring, client i to client i+1 (mod N). Every client therefore
// sends one stream and receives one, so 2 clients are one stream each way, and 100 or 1,000 clients
// put 100 or 1,000 concurrent streams (and connections) on the relay, each destination fed by one
// sender. With -recv-url, even clients connect to -url and odd ones to -recv-url, so every packet
// crosses from one relay to the other: across two meshed relays.
//
// Each packet carries its sequence number and send time (monotonic ns since this process started)
// in its first 16 bytes; receivers compute the delivery latency. With -rate 0 every sender sends as
// fast as it can while keeping at most -window packets in flight to its receiver (sent but not yet
// received): DERP keeps one stream's order, so receiving packet k settles every packet before it,
// and a window no larger than the relay's per-client queue (32 in derper and in ours) measures
// throughput rather than queue drops. A sender whose window saw no progress for -stall presumes its
// in-flight packets lost and carries on.
//
// The run connects every client, sends for -warmup, then measures for -duration, then waits up to
// -drain for packets still in flight. Only packets sent during the measured window count. It prints
// one JSON line:
//
//	{"clients":N,"sizeBytes":S,"durationSeconds":D,"sent":N,"received":N,"lost":N,
//	 "packetsPerSecond":R,"p50Us":L,"p99Us":L,"stalls":N,"connectSeconds":C,"cpuSeconds":U}
//
// where cpuSeconds is this process's user+system time during the measured window. With -events it
// first prints {"event":"measuring"} and {"event":"measured"} as the window opens and closes, so a
// caller can read a server's CPU time over the same window.
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/net/netmon"
	"tailscale.com/types/key"
)

const headerLength = 16

// processStart anchors the monotonic send stamps: sender and receiver share this process's clock.
var processStart = time.Now()

func monotonicNs() int64 { return int64(time.Since(processStart)) }

type settings struct {
	url, recvURL     string
	clients, size    int
	window           int64
	inflight         int64
	rate             float64
	warmup, duration time.Duration
	drain, stall     time.Duration
	connectTimeout   time.Duration
	connectParallel  int
	events           bool
}

// stream is one sender's traffic to its receiver. The sender owns next and sent; the receiver
// publishes how far it got in settled and wakes the sender through progress.
type stream struct {
	from     *derphttp.Client
	toKey    key.NodePublic
	fromKey  key.NodePublic
	next     int64
	sent     int64
	settled  atomic.Int64
	progress chan struct{}
	stalls   int64

	mu          sync.Mutex
	received    int64
	latenciesNs []int64
}

// window is the measured interval in monotonic ns; packets stamped inside it count.
type window struct{ startNs, endNs int64 }

func (w window) holds(ns int64) bool { return ns >= w.startNs && ns < w.endNs }

func parseFlags() settings {
	var s settings
	flag.StringVar(&s.url, "url", "", "relay URL for senders: http(s)://host:port/derp")
	flag.StringVar(&s.recvURL, "recv-url", "", "relay URL for odd clients (default -url); a meshed relay makes every packet cross the mesh")
	flag.IntVar(&s.clients, "clients", 2, "clients in the ring, each sending to the next; even, at least 2")
	flag.IntVar(&s.size, "size", 1024, "packet size in bytes (at least 16)")
	flag.Int64Var(&s.window, "window", 32, "packets in flight per sender at most")
	flag.Int64Var(&s.inflight, "inflight", 4096, "packets in flight over all senders at most: each sender's window is min(-window, -inflight/clients), at least 1")
	flag.Float64Var(&s.rate, "rate", 0, "packets per second over all senders; 0: as fast as the window allows")
	flag.DurationVar(&s.warmup, "warmup", time.Second, "sending time before the measured window")
	flag.DurationVar(&s.duration, "duration", 3*time.Second, "measured window")
	flag.DurationVar(&s.drain, "drain", 2*time.Second, "wait at most this long for packets in flight after the window")
	flag.DurationVar(&s.stall, "stall", time.Second, "a window without progress for this long is presumed lost")
	flag.DurationVar(&s.connectTimeout, "connect-timeout", 30*time.Second, "time allowed to connect every client")
	flag.IntVar(&s.connectParallel, "connect-parallel", 32, "clients connecting at once")
	flag.BoolVar(&s.events, "events", false, "print measuring/measured event lines around the window")
	flag.Parse()
	if s.recvURL == "" {
		s.recvURL = s.url
	}
	switch {
	case s.url == "":
		log.Fatal("derpload: -url is required")
	case s.clients < 2 || s.clients%2 != 0:
		log.Fatalf("derpload: -clients %d: want an even number >= 2", s.clients)
	case s.size < headerLength || s.size > derp.MaxPacketSize:
		log.Fatalf("derpload: -size %d: want %d..%d", s.size, headerLength, derp.MaxPacketSize)
	case s.window < 1 || s.inflight < 1:
		log.Fatalf("derpload: -window %d, -inflight %d: want both >= 1", s.window, s.inflight)
	case s.rate < 0:
		log.Fatalf("derpload: -rate %v: want >= 0", s.rate)
	}
	s.window = max(1, min(s.window, s.inflight/int64(s.clients)))
	return s
}

func connectAll(s settings) ([]*derphttp.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.connectTimeout)
	defer cancel()
	clients := make([]*derphttp.Client, s.clients)
	errs := make([]error, s.clients)
	gate := make(chan struct{}, s.connectParallel)
	var wg sync.WaitGroup
	for i := range clients {
		url := s.url
		if i%2 == 1 {
			url = s.recvURL
		}
		client, err := derphttp.NewClient(key.NewNode(), url, func(string, ...any) {}, netmon.NewStatic())
		if err != nil {
			return nil, err
		}
		clients[i] = client
		wg.Go(func() {
			gate <- struct{}{}
			defer func() { <-gate }()
			errs[i] = client.Connect(ctx)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	return clients, nil
}

func (st *stream) waitForRoom(limit int64, stall time.Duration, timer *time.Timer) {
	for st.next-st.settled.Load() >= limit {
		timer.Reset(stall)
		select {
		case <-st.progress:
			timer.Stop()
		case <-timer.C:
			st.stalls++
			st.settled.Store(st.next)
		}
	}
}

// send runs one sender until the window closes. perSenderInterval is 0 without -rate.
func (st *stream) send(s settings, w window, perSenderInterval time.Duration) error {
	packet := make([]byte, s.size)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	begin := time.Now()
	for {
		if perSenderInterval > 0 {
			if wait := time.Until(begin.Add(time.Duration(st.next) * perSenderInterval)); wait > 0 {
				time.Sleep(wait)
			}
		}
		st.waitForRoom(s.window, s.stall, timer)
		now := monotonicNs()
		if now >= w.endNs {
			return nil
		}
		binary.BigEndian.PutUint64(packet[0:8], uint64(st.next))
		binary.BigEndian.PutUint64(packet[8:16], uint64(now))
		if err := st.from.Send(st.toKey, packet); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		st.next++
		if w.holds(now) {
			st.sent++
		}
	}
}

func (st *stream) record(data []byte, w window) {
	if len(data) < headerLength {
		return
	}
	sequence := int64(binary.BigEndian.Uint64(data[0:8]))
	sentNs := int64(binary.BigEndian.Uint64(data[8:16]))
	if sequence+1 > st.settled.Load() {
		st.settled.Store(sequence + 1)
	}
	select {
	case st.progress <- struct{}{}:
	default:
	}
	if !w.holds(sentNs) {
		return
	}
	latency := monotonicNs() - sentNs
	st.mu.Lock()
	st.received++
	st.latenciesNs = append(st.latenciesNs, latency)
	st.mu.Unlock()
}

// receive reads one client's connection until it closes; inbound is the stream that feeds it.
func receive(client *derphttp.Client, inbound *stream, w window, closing *atomic.Bool) {
	for {
		message, err := client.Recv()
		if err != nil {
			if !closing.Load() {
				log.Fatalf("derpload: receive: %v", err)
			}
			return
		}
		switch m := message.(type) {
		case derp.ReceivedPacket:
			if m.Source == inbound.fromKey {
				inbound.record(m.Data, w)
			}
		case derp.PingMessage:
			_ = client.SendPong(m)
		}
	}
}

func cpuSeconds() float64 {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano()).Seconds()
}

func printJSON(value any) {
	if err := json.NewEncoder(os.Stdout).Encode(value); err != nil {
		log.Fatalf("derpload: stdout: %v", err)
	}
}

// waitForDrain returns once every stream has settled every packet it sent, or after timeout.
func waitForDrain(streams []*stream, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !slices.ContainsFunc(streams, func(st *stream) bool { return st.settled.Load() < st.next }) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func percentileUs(sorted []int64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sorted[int(q*float64(len(sorted)-1))]) / 1e3
}

func main() {
	log.SetOutput(os.Stderr)
	s := parseFlags()
	connectStart := time.Now()
	clients, err := connectAll(s)
	if err != nil {
		log.Fatalf("derpload: %v", err)
	}
	connectSeconds := time.Since(connectStart).Seconds()

	streams := make([]*stream, s.clients)
	for i, client := range clients {
		to := clients[(i+1)%s.clients]
		streams[i] = &stream{
			from:     client,
			fromKey:  client.SelfPublicKey(),
			toKey:    to.SelfPublicKey(),
			progress: make(chan struct{}, 1),
		}
	}
	start := monotonicNs()
	w := window{startNs: start + int64(s.warmup), endNs: start + int64(s.warmup+s.duration)}
	var closing atomic.Bool
	for i, client := range clients {
		go receive(client, streams[(i+s.clients-1)%s.clients], w, &closing)
	}
	var perSenderInterval time.Duration
	if s.rate > 0 {
		perSenderInterval = time.Duration(float64(time.Second) * float64(s.clients) / s.rate)
	}

	senders := make([]error, len(streams))
	var wg sync.WaitGroup
	for i, st := range streams {
		wg.Go(func() { senders[i] = st.send(s, w, perSenderInterval) })
	}
	time.Sleep(time.Duration(w.startNs - monotonicNs()))
	cpuAtStart := cpuSeconds()
	if s.events {
		printJSON(map[string]any{"event": "measuring"})
	}
	wg.Wait()
	cpuAtEnd := cpuSeconds()
	if s.events {
		printJSON(map[string]any{"event": "measured"})
	}
	if err := errors.Join(senders...); err != nil {
		log.Fatalf("derpload: %v", err)
	}
	waitForDrain(streams, s.drain)
	closing.Store(true)

	var sent, received, stalls int64
	var latencies []int64
	for _, st := range streams {
		st.mu.Lock()
		sent += st.sent
		received += st.received
		stalls += st.stalls
		latencies = append(latencies, st.latenciesNs...)
		st.mu.Unlock()
	}
	slices.Sort(latencies)
	seconds := s.duration.Seconds()
	printJSON(map[string]any{
		"clients":          s.clients,
		"sizeBytes":        s.size,
		"durationSeconds":  seconds,
		"sent":             sent,
		"received":         received,
		"lost":             sent - received,
		"packetsPerSecond": float64(received) / seconds,
		"p50Us":            percentileUs(latencies, 0.50),
		"p99Us":            percentileUs(latencies, 0.99),
		"stalls":           stalls,
		"window":           s.window,
		"connectSeconds":   connectSeconds,
		"cpuSeconds":       cpuAtEnd - cpuAtStart,
	})
	for _, client := range clients {
		client.Close()
	}
}
