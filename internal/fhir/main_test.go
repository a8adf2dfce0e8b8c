package fhir_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/fhir"
	"github.com/switchboard-health/switchboard/internal/fhir/fhirsandbox"
)

// The FHIR peer and the schema are started/compiled once per test binary.
var (
	peerOnce   sync.Once
	peerServer *fhirsandbox.Server
	peerErr    error

	schemaOnce sync.Once
	schema     *jsonschema.Schema
	schemaPath string
	schemaErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if peerServer != nil {
		peerServer.Stop()
	}
	os.Exit(code)
}

// peer returns the base URL of the shared FHIR peer; the test fails (never
// skips) when it cannot start.
func peer(t testing.TB) string {
	t.Helper()
	peerOnce.Do(func() { peerServer, peerErr = fhirsandbox.Start(context.Background()) })
	require.NoError(t, peerErr, "the FHIR peer (Node + Medplum) must start")
	return peerServer.BaseURL
}

// officialSchema compiles the official FHIR R4 JSON schema from npm.
func officialSchema(t testing.TB) (*jsonschema.Schema, string) {
	t.Helper()
	schemaOnce.Do(func() {
		schemaPath, schemaErr = fhirsandbox.SchemaPath(context.Background())
		if schemaErr == nil {
			schema, schemaErr = fhir.CompileSchema(schemaPath)
		}
	})
	require.NoError(t, schemaErr, "the official FHIR JSON schema must load")
	return schema, schemaPath
}

// medplumValidate runs Medplum's validateResource through the peer's
// $validate, with a profile when given, and returns the error issues.
func medplumValidate(t testing.TB, resource []byte, profile string) []string {
	t.Helper()
	u := peer(t) + "/$validate"
	if profile != "" {
		u += "?profile=" + url.QueryEscape(profile)
	}
	resp, err := http.Post(u, fhir.MediaType, bytes.NewReader(resource))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	var oo struct {
		Issue []struct {
			Severity   string                `json:"severity"`
			Code       string                `json:"code"`
			Details    struct{ Text string } `json:"details"`
			Expression []string              `json:"expression"`
		} `json:"issue"`
	}
	require.NoError(t, json.Unmarshal(b, &oo))
	var errs []string
	for _, is := range oo.Issue {
		if is.Severity == "error" || is.Severity == "fatal" {
			errs = append(errs, is.Code+": "+is.Details.Text+" @ "+join(is.Expression))
		}
	}
	return errs
}

func join(s []string) string {
	var b bytes.Buffer
	for i, x := range s {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(x)
	}
	return b.String()
}
