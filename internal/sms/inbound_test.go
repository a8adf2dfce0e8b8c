package sms_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/sms"
)

func TestKeyword(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]string{
		"STOP": sms.KeywordStop, " stop ": sms.KeywordStop, "Stop.": sms.KeywordStop, "STOP ALL": sms.KeywordStop,
		"unsubscribe": sms.KeywordStop, "Cancel": sms.KeywordStop, "end": sms.KeywordStop, "QUIT": sms.KeywordStop,
		"revoke": sms.KeywordStop, "OPTOUT": sms.KeywordStop, "stopall": sms.KeywordStop,
		"START": sms.KeywordStart, "yes": sms.KeywordStart, "UNSTOP": sms.KeywordStart,
		"help": sms.KeywordHelp, "INFO": sms.KeywordHelp,
		"Stop please": "", "Can I reschedule?": "", "": "", "STOPP": "",
	} {
		require.Equal(t, want, sms.Keyword(body), "%q", body)
	}
}

func TestConsentFromInboundKeywords(t *testing.T) {
	t.Parallel()
	b, apiURL := withAPI(t)
	ctx := context.Background()
	inbound := apiURL + "/webhooks/twilio/inbound"
	inbox := func() int {
		return b.count(t, "SELECT count(*) FROM switchboard.inbound_webhooks WHERE state <> 'pending' AND event_type = 'message.inbound'")
	}

	// STOP: the number is opted out before anything is sent to it.
	_, err := b.sandbox.SendInbound(ctx, inbound, testTo, testFrom, "stop")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return inbox() == 1 }, 60*time.Second, 20*time.Millisecond, "STOP processed")
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM switchboard.sms_consent WHERE phone_e164 = $1 AND opted_out", testTo))

	// Consent is checked when the job runs: the message ends blocked and
	// never reaches Twilio.
	blocked := b.send(t, "after-stop")
	m := b.waitJob(t, blocked, "completed")
	require.Equal(t, "blocked_opted_out", m.Status)
	require.Zero(t, b.sandbox.CreateCalls())
	require.Zero(t, b.count(t, "SELECT count(*) FROM switchboard.dead_letters"))

	// HELP is answered even to an opted-out number.
	_, err = b.sandbox.SendInbound(ctx, inbound, testTo, testFrom, "HELP")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		for _, msg := range b.sandbox.Messages() {
			if msg.To == testTo && msg.Body == "help text" {
				return true
			}
		}
		return false
	}, 60*time.Second, 20*time.Millisecond, "HELP answered")

	// START re-enables sending.
	_, err = b.sandbox.SendInbound(ctx, inbound, testTo, testFrom, "Start")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return inbox() == 3 }, 60*time.Second, 20*time.Millisecond, "START processed")
	again := b.send(t, "after-start")
	m = b.waitJob(t, again, "completed")
	require.NotNil(t, m.SID)
}

func TestInboundRepliesAreStoredAnnouncedAndAnsweredOncePerWindow(t *testing.T) {
	t.Parallel()
	b, apiURL := withAPI(t)
	ctx := context.Background()
	inbound := apiURL + "/webhooks/twilio/inbound"

	for _, text := range []string{"Can I come at 10 instead?", "Hello?"} {
		_, err := b.sandbox.SendInbound(ctx, inbound, testTo, testFrom, text)
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		return b.count(t, "SELECT count(*) FROM switchboard.inbound_messages") == 2
	}, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, 2, b.count(t, "SELECT count(*) FROM switchboard.events WHERE kind = 'sms.inbound'"))
	require.Eventually(t, func() bool {
		return b.count(t, "SELECT count(*) FROM switchboard.messages WHERE purpose = 'auto_reply' AND provider_message_id IS NOT NULL") == 1
	}, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM switchboard.messages WHERE purpose = 'auto_reply'"), "one auto-reply per window")
}
