package sms

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/jobs"
)

// TestTransientFailuresAreRetriedQuickly pins the retry bound the crash
// suite and docs/sms.md rely on: a message that fails six runs in a row
// (5xx, timeouts, failed look-ups, all transient: an outage holds jobs
// without spending attempts) has had its seventh try within 2.5 minutes
// of the first failure, while all of sms_send's attempts still span most
// of an hour before the job becomes a dead letter. The old schedule (5 s,
// 15 s, 30 s, 1 min, 2 min, 5 min …) waited 8 m 50 s for the same six,
// longer than the reduced crash suite's drain.
func TestTransientFailuresAreRetriedQuickly(t *testing.T) {
	var firstSix, all time.Duration
	maxAttempts := (jobs.SMSSendArgs{}).InsertOpts().MaxAttempts
	for n := 1; n < maxAttempts; n++ { // the waits between maxAttempts runs
		if n <= 6 {
			firstSix += RetryWait(n)
		}
		all += RetryWait(n)
	}
	require.LessOrEqual(t, firstSix, 150*time.Second)
	require.GreaterOrEqual(t, all, 45*time.Minute)
	require.Equal(t, RetryWait(len(smsRetryWaits)), RetryWait(100), "runs past the schedule wait its last step")
	require.Equal(t, 5*time.Second, RetryWait(0))
}
