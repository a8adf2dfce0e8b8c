package jobs_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/jobs"
)

// TestSendSMSWakeUpThrottle holds send_sms's inline reading of the sms
// queue's wake-up clock (00097) to wake_river's rules. A notification is
// observed through the clock: wake_river advances it exactly when it
// notifies. Only the outcomes that do not depend on the wall clock are
// asserted (a clock set "just now" would race the 5 ms cooldown).
func TestSendSMSWakeUpThrottle(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	ctx := context.Background()

	clock := func() int64 {
		var v int64
		require.NoError(t, pool.QueryRow(ctx, "SELECT coalesce(pg_sequence_last_value('switchboard.river_wakeup_sms'), -1)").Scan(&v))
		return v
	}
	setClock := func(sql string) {
		_, err := pool.Exec(ctx, "SELECT setval('switchboard.river_wakeup_sms', "+sql+")")
		require.NoError(t, err)
	}
	n := 0
	send := func(setting string, p jobs.SendSMSParams) {
		n++
		require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if setting != "" {
				if _, err := tx.Exec(ctx, "SELECT set_config('switchboard.wakeup_cooldown_ms', $1, true)", setting); err != nil {
					return err
				}
			}
			if p.IdempotencyKey == "" {
				p = validParams("wake-" + strconv.Itoa(n))
			}
			_, err := jobs.SendSMS(ctx, tx, p)
			return err
		}))
	}

	t.Run("NeverNotifiedNotifies", func(t *testing.T) {
		setClock("0")
		send("", jobs.SendSMSParams{})
		require.Greater(t, clock(), int64(0))
	})
	t.Run("ClockAheadNotifies", func(t *testing.T) {
		// A clock that went backwards notifies rather than going silent.
		ahead := "(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint + 3600000) * 1024 + (hashtext('sms') & 1023)"
		setClock(ahead)
		before := clock()
		send("", jobs.SendSMSParams{})
		require.Less(t, clock(), before)
	})
	t.Run("LongCooldownNotifiesOnceThenNot", func(t *testing.T) {
		setClock("0")
		send("600000", jobs.SendSMSParams{})
		first := clock()
		require.Greater(t, first, int64(0))
		send("600000", jobs.SendSMSParams{})
		require.Equal(t, first, clock())
	})
	t.Run("OffNeverNotifies", func(t *testing.T) {
		setClock("0")
		send("off", jobs.SendSMSParams{})
		require.Equal(t, int64(0), clock())
	})
	t.Run("ScheduledJobDoesNotNotify", func(t *testing.T) {
		setClock("0")
		p := validParams("wake-scheduled")
		require.NoError(t, pool.QueryRow(ctx, "SELECT now() + interval '1 hour'").Scan(&p.NotBefore))
		send("", p)
		require.Equal(t, int64(0), clock())
	})
}
