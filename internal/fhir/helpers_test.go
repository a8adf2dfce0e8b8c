package fhir_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func newJSONServer(t testing.TB, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
