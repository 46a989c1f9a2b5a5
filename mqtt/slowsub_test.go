package mqtt

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/internal/testwait"
)

// TestSlowSubscriberDropsCounted: an MQTT client subscribes with QoS 1
// and then neither reads nor acknowledges. The gateway delivers a burst
// from the mesh; what the broker cannot hand that subscriber (beyond its
// in-flight window, or a full write queue) is dropped and counted by
// reason, never silently, and the gateway goes on.
func TestSlowSubscriberDropsCounted(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	g := startGateway(t, cfg, "", nil)
	// A clean session, client "slow", subscribed to "t" at QoS 1, that
	// reads nothing after its SUBACK.
	c := mqttConnect(t, g.gw.Addr(), "slow", true, "t")
	defer c.Close()
	const burst = 5000
	for i := range burst {
		g.gw.deliverLocal(Delivered{Topic: "t", Payload: []byte{byte(i), byte(i >> 8)}, Entry: -1, Time: time.Now()}, false)
	}
	testwait.For(t, 5*time.Second, 10*time.Millisecond, func() error {
		st := g.gw.Stats()
		dropped := st[countSlowSub] + st[countSubInflight]
		if st[countDelivered] != burst || dropped < burst-uint64(cfg.MaxQueued) {
			return fmt.Errorf("delivered %d, dropped %d (write queue %d, in-flight window %d) of %d", st[countDelivered], dropped, st[countSlowSub], st[countSubInflight], burst)
		}
		return nil
	})
	t.Logf("stats: %v", g.gw.Stats())
}

// TestBrokerLogRateLimited: the broker's log drops records below its
// level, passes each message once per interval by the records' own time,
// and the next one after a quiet interval says how many it suppressed.
func TestBrokerLogRateLimited(t *testing.T) {
	var got []string
	capture := &captureHandler{out: &got}
	log := slog.New(newBrokerLog(capture, slog.LevelWarn, 10*time.Second)).With("component", "mqtt-broker")
	t0 := time.Unix(1_800_000_000, 0)
	emit := func(at time.Duration, level slog.Level, msg string) {
		r := slog.NewRecord(t0.Add(at), level, msg, 0)
		if log.Handler().Enabled(context.Background(), level) {
			log.Handler().Handle(context.Background(), r)
		}
	}
	emit(0, slog.LevelInfo, "client connected")
	for i := range 1000 {
		emit(time.Duration(i)*time.Millisecond, slog.LevelWarn, "client store quota reached")
	}
	emit(time.Second, slog.LevelError, "another message")
	emit(11*time.Second, slog.LevelWarn, "client store quota reached")
	want := []string{
		"WARN client store quota reached component=mqtt-broker",
		"ERROR another message component=mqtt-broker",
		"WARN client store quota reached component=mqtt-broker suppressed=999",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("logged:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// captureHandler records each record as "LEVEL message k=v…".
type captureHandler struct {
	out   *[]string
	attrs []slog.Attr
}

func (c *captureHandler) Enabled(context.Context, slog.Level) bool { return true }

func (c *captureHandler) Handle(_ context.Context, r slog.Record) error {
	line := r.Level.String() + " " + r.Message
	for _, a := range c.attrs {
		line += " " + a.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		line += " " + a.String()
		return true
	})
	*c.out = append(*c.out, line)
	return nil
}

func (c *captureHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &captureHandler{out: c.out, attrs: append(append([]slog.Attr(nil), c.attrs...), as...)}
}

func (c *captureHandler) WithGroup(string) slog.Handler { return c }
