// Package smstest is the conformance suite every SMS provider adapter
// passes (like River's driver tests): the send path relies on exactly what
// it checks. An adapter package runs it from its own tests against its
// sandbox:
//
//	func TestConformance(t *testing.T) {
//		smstest.Run(t, func(t *testing.T) smstest.Harness { … })
//	}
package smstest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/sms"
)

// Harness is one adapter under test, configured against a fresh sandbox of
// its provider.
type Harness struct {
	// Adapter is the adapter under test.
	Adapter sms.Adapter
	// To is a recipient the sandbox accepts.
	To string
	// UnknownID is a well-formed provider message id the sandbox never
	// issued.
	UnknownID string
}

// A provider that indexes its messages late (Telnyx's detail records) may
// answer FindSent for a young attempt with an error of class
// sms.ClassThrottled; the suite looks up attempts older than a second, so
// a harness sets such a lag below that.

// callback is the status callback URL the send worker gives message id.
func callback(provider string, id int64) string {
	return fmt.Sprintf("https://switchboard.example.com/webhooks/%s/status?m=%d", provider, id)
}

// Run runs the suite; newHarness makes a fresh adapter and sandbox for each
// case.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	t.Helper()
	ctx := context.Background()
	out := func(h Harness, id int64, body string) sms.Outbound {
		return sms.Outbound{MessageID: id, To: h.To, Body: body, StatusCallbackURL: callback(h.Adapter.Provider(), id)}
	}

	t.Run("ProviderIsNamed", func(t *testing.T) {
		t.Parallel()
		require.NotEmpty(t, newHarness(t).Adapter.Provider())
	})

	t.Run("ProbeAnswers", func(t *testing.T) {
		t.Parallel()
		require.NoError(t, newHarness(t).Adapter.Probe(ctx))
	})

	t.Run("SendIsAcceptedWithAnID", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		acc, err := h.Adapter.Send(ctx, out(h, 1, "Your appointment is tomorrow."))
		require.NoError(t, err)
		require.NotEmpty(t, acc.ProviderMessageID)
	})

	// An attempt whose answer was lost is found by its look-up, with the
	// provider's creation time (how same-body copies are told apart).
	t.Run("FindSentListsTheCopy", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		since := time.Now().Add(-time.Second) // older than the harness's indexing lag
		m := out(h, 7, "Reply YES to confirm.")
		acc, err := h.Adapter.Send(ctx, m)
		require.NoError(t, err)
		cands, err := h.Adapter.FindSent(ctx, m, since, nil)
		require.NoError(t, err)
		var found *sms.Candidate
		for i := range cands {
			if cands[i].ProviderMessageID == acc.ProviderMessageID {
				found = &cands[i]
			}
		}
		require.NotNil(t, found, "the copy is listed")
		require.WithinDuration(t, time.Now(), found.CreatedAt, 2*time.Minute, "with the provider's creation time")
	})

	// A copy is Tagged only when the provider echoed this message's own
	// callback URL: another message's copy with the same body never is.
	t.Run("FindSentNeverTagsAnotherMessagesCopy", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		since := time.Now().Add(-time.Second) // older than the harness's indexing lag
		const body = "Reply YES to confirm."
		first, second := out(h, 11, body), out(h, 12, body)
		a1, err := h.Adapter.Send(ctx, first)
		require.NoError(t, err)
		a2, err := h.Adapter.Send(ctx, second)
		require.NoError(t, err)
		cands, err := h.Adapter.FindSent(ctx, second, since, nil)
		require.NoError(t, err)
		ids := map[string]bool{}
		for _, c := range cands {
			ids[c.ProviderMessageID] = true
			if c.ProviderMessageID == a1.ProviderMessageID {
				require.False(t, c.Tagged, "another message's copy is never tagged as this one's")
			}
		}
		require.True(t, ids[a2.ProviderMessageID] || len(cands) == 0, "its own copy is listed (or nothing, never only another's)")
		if len(cands) > 0 && !ids[a2.ProviderMessageID] {
			t.Fatalf("only another message's copy was listed")
		}
	})

	// A copy another message holds (taken) is never listed, even with the
	// same body; the other copies are, and taken is asked about them.
	t.Run("FindSentLeavesOutCopiesOtherMessagesHold", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		since := time.Now().Add(-time.Second) // older than the harness's indexing lag
		const body = "Reply YES to confirm."
		other, mine := out(h, 41, body), out(h, 42, body)
		a1, err := h.Adapter.Send(ctx, other)
		require.NoError(t, err)
		a2, err := h.Adapter.Send(ctx, mine)
		require.NoError(t, err)
		asked := map[string]bool{}
		taken := func(_ context.Context, ids []string) (map[string]bool, error) {
			for _, id := range ids {
				asked[id] = true
			}
			return map[string]bool{a1.ProviderMessageID: true}, nil
		}
		cands, err := h.Adapter.FindSent(ctx, mine, since, taken)
		require.NoError(t, err)
		require.True(t, asked[a1.ProviderMessageID], "taken was asked about the other copy")
		ids := map[string]bool{}
		for _, c := range cands {
			ids[c.ProviderMessageID] = true
		}
		require.False(t, ids[a1.ProviderMessageID], "the copy another message holds is not listed")
		require.True(t, ids[a2.ProviderMessageID], "this message's copy is")

		failing := func(context.Context, []string) (map[string]bool, error) { return nil, errors.New("database down") }
		_, err = h.Adapter.FindSent(ctx, mine, since, failing)
		require.Error(t, err, "a look-up that cannot tell whose copies are whose fails")
	})

	t.Run("FindSentIgnoresOtherBodies", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		since := time.Now().Add(-time.Second) // older than the harness's indexing lag
		_, err := h.Adapter.Send(ctx, out(h, 21, "Your lab results are ready."))
		require.NoError(t, err)
		cands, err := h.Adapter.FindSent(ctx, out(h, 22, "Your prescription is ready."), since, nil)
		require.NoError(t, err)
		require.Empty(t, cands)
	})

	// Lost status callbacks are made good by FetchReport; an id the
	// provider does not know is (nil, nil).
	t.Run("FetchReportKnowsItsMessages", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		acc, err := h.Adapter.Send(ctx, out(h, 31, "See you soon."))
		require.NoError(t, err)
		rep, err := h.Adapter.FetchReport(ctx, acc.ProviderMessageID)
		require.NoError(t, err)
		require.NotNil(t, rep)
		require.Equal(t, acc.ProviderMessageID, rep.ProviderMessageID)
		require.Equal(t, h.Adapter.Provider(), rep.Provider)
		none, err := h.Adapter.FetchReport(ctx, h.UnknownID)
		require.NoError(t, err)
		require.Nil(t, none)
	})
}

// FindOne is FindSent for a test that expects at most one candidate: the
// first, or nil.
func FindOne(c interface {
	FindSent(context.Context, sms.Outbound, time.Time, sms.Taken) ([]sms.Candidate, error)
}, m sms.Outbound, since time.Time) (*sms.Accepted, error) {
	cands, err := c.FindSent(context.Background(), m, since, nil)
	if err != nil || len(cands) == 0 {
		return nil, err
	}
	return &cands[0].Accepted, nil
}
