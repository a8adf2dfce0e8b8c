package logging_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/logging"
)

func TestLibraryInfoIsDebug(t *testing.T) {
	var buf bytes.Buffer
	l, err := logging.New(logging.Config{Level: "info", Format: "json"}, &buf)
	require.NoError(t, err)
	lib := logging.Library(l).With("component", "river")
	lib.Info("producer job counts")
	require.Empty(t, buf.String(), "routine library lines are not shown at info")
	lib.Warn("jobs stuck")
	require.Contains(t, buf.String(), `"level":"WARN"`)

	buf.Reset()
	l, err = logging.New(logging.Config{Level: "debug", Format: "json"}, &buf)
	require.NoError(t, err)
	logging.Library(l).Info("producer job counts")
	require.Contains(t, buf.String(), `"level":"DEBUG"`)
	require.Contains(t, buf.String(), "producer job counts")
}
