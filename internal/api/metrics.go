package api

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Results of a callback, the result label of switchboard_webhooks_total.
const (
	resultAccepted     = "accepted"
	resultDuplicate    = "duplicate"
	resultBadSignature = "bad_signature"
	resultMalformed    = "malformed"
	resultTooLarge     = "too_large"
	resultError        = "error"
)

var allResults = []string{resultAccepted, resultDuplicate, resultBadSignature, resultMalformed, resultTooLarge, resultError}

// webhooksTotal is registered once per process on the default registry:
// several Servers (tests) share it.
var webhooksTotal = promauto.NewCounterVec(prometheus.CounterOpts{
	Namespace: "switchboard",
	Name:      "webhooks_total",
	Help:      "Vendor callbacks received, by provider, route and result (accepted, duplicate, bad_signature, malformed, too_large, error).",
}, []string{"provider", "route", "result"})
