package opsmetrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// snapshotCollector exports a fixed snapshot the way the collector does.
type snapshotCollector struct{ snap Snapshot }

func (c snapshotCollector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }
func (c snapshotCollector) Collect(ch chan<- prometheus.Metric) { collectSnapshot(ch, c.snap) }

func TestCollectSnapshot(t *testing.T) {
	t.Parallel()
	failed := time.Date(2026, 1, 2, 9, 0, 0, 0, time.UTC)
	snap := Snapshot{
		Queues: []Queue{
			{Name: "sms", Available: 7, Running: 3, OldestAvailable: 90*time.Second + 500*time.Millisecond},
			{Name: "inbound"},
		},
		DeadLettersOpen: map[string]int64{"sms_send": 4, "webhook_process": 0},
		Destinations: []Destination{
			{Name: "twilio", BreakerState: BreakerOpen, LastFailureAt: &failed, Paused: true},
			// A state the table does not allow has no breaker series.
			{Name: "telnyx", BreakerState: "bogus"},
		},
	}
	want := `
# HELP switchboard_queue_available_jobs River jobs available to work, by queue.
# TYPE switchboard_queue_available_jobs gauge
switchboard_queue_available_jobs{queue="inbound"} 0
switchboard_queue_available_jobs{queue="sms"} 7
# HELP switchboard_queue_oldest_available_seconds How long the oldest available River job of the queue has waited past its scheduled time; 0 when none.
# TYPE switchboard_queue_oldest_available_seconds gauge
switchboard_queue_oldest_available_seconds{queue="inbound"} 0
switchboard_queue_oldest_available_seconds{queue="sms"} 90.5
# HELP switchboard_dead_letters_open Open dead letters, by job kind (0 for every known kind without any).
# TYPE switchboard_dead_letters_open gauge
switchboard_dead_letters_open{kind="sms_send"} 4
switchboard_dead_letters_open{kind="webhook_process"} 0
# HELP switchboard_destination_up 1 when the destination's last success is newer than its last failure (or it never failed), else 0.
# TYPE switchboard_destination_up gauge
switchboard_destination_up{destination="telnyx"} 1
switchboard_destination_up{destination="twilio"} 0
# HELP switchboard_destination_breaker_state Circuit breaker of the destination: 0 closed, 1 half-open, 2 open.
# TYPE switchboard_destination_breaker_state gauge
switchboard_destination_breaker_state{destination="twilio"} 2
# HELP switchboard_destination_paused 1 when an operator paused calls to the destination, else 0.
# TYPE switchboard_destination_paused gauge
switchboard_destination_paused{destination="telnyx"} 0
switchboard_destination_paused{destination="twilio"} 1
`
	require.NoError(t, testutil.CollectAndCompare(snapshotCollector{snap}, strings.NewReader(want)))
}
